"""Datasets the way ``run_clm.py`` prepares them: load, tokenize, pack into blocks, limit.

Two packings:

- ``"group"`` (run_clm): every batch of 1000 tokenized examples is concatenated and
  cut into ``block_size`` chunks (the remainder of each batch is dropped);
  ``labels`` is a copy of ``input_ids``.
- ``"line"``: each non-empty example becomes one block, truncated or padded to
  ``block_size``; padded positions get ``attention_mask`` 0 and label -100 so the
  padding is never learned.

The map functions are module-level functions bound with ``functools.partial`` to
plain values, so ``datasets`` computes the same fingerprint in every process and
a second run on the same data loads the tokenized and grouped data from its cache.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.events import Emit, make_event
from clmtune.backend.model import TrainingSetupError

if TYPE_CHECKING:
    from clmtune.backend.settings.run_config import RunConfig

PACKINGS = ("group", "line")
# File suffix -> `datasets` builder, as run_clm maps them (jsonl is json lines).
BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv"}
IGNORE_INDEX = -100

MainProcessFirst = Callable[[str], AbstractContextManager[Any]]


@dataclass
class PreparedData:
    """Datasets ready for ``Trainer`` plus what the run reports about them."""

    train_dataset: Any
    eval_dataset: Any | None
    block_size: int
    warnings: list[str] = field(default_factory=list)
    train_samples: int | None = None  # None when streaming (length unknown)
    eval_samples: int | None = None
    dataset_name: str | None = None
    dataset_config_name: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    # For `clmtune preview`: the tokenized splits before packing, the text column used and
    # the number of blocks per split before max_*_samples.
    tokenized: Any = None
    text_column: str | None = None
    packed_samples: dict[str, int | None] = field(default_factory=dict)


# ---------------------------------------------------------------------------- loading


def _builder_for(path: str, key: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in BUILDERS:
        raise TrainingSetupError(
            f"[data] {key} = {path!r} has an unsupported type {suffix or '(none)'!r}",
            "use a .txt, .json, .jsonl or .csv file",
        )
    return BUILDERS[suffix]


def _split_percentage(cfg: RunConfig) -> int:
    settings = cfg.settings
    pct = int(settings.data.validation_split_percentage)
    if not 1 <= pct <= 99:
        raise TrainingSetupError(
            f"[data] validation_split_percentage = {pct} is out of range",
            "use a value from 1 to 99",
        )
    return pct


def load_raw_datasets(cfg: RunConfig, *, cache_dir: str | None = None) -> tuple[Any, list[str]]:
    """Load the raw train/validation splits like run_clm; returns (datasets, warnings).

    Without a validation split, the first ``validation_split_percentage`` percent
    of the training split becomes the validation split (not possible when
    streaming: the run then has no evaluation, with a warning).
    """
    raw, warnings, _ = _load_raw(cfg, cache_dir)
    return raw, warnings


def _load_raw(cfg: RunConfig, cache_dir: str | None) -> tuple[Any, list[str], int | None]:
    """``load_raw_datasets`` plus the percentage held out of the training data for
    validation (None when the validation split is a file or the dataset's own)."""
    from datasets import load_dataset

    warnings: list[str] = []
    settings = cfg.settings
    streaming = bool(settings.data.streaming)
    dataset_name = settings.data.dataset_name
    if dataset_name:
        args: tuple[Any, ...] = (dataset_name, settings.data.dataset_config_name)
        kwargs: dict[str, Any] = {}
        source = f"[data] dataset_name = {dataset_name!r}"
    else:
        train_file = settings.data.train_file
        validation_file = settings.data.validation_file
        if not train_file:
            raise TrainingSetupError(
                "[data] has neither dataset_name nor train_file",
                "set [data] train_file to a .txt/.json/.jsonl/.csv file or a dataset_name",
            )
        data_files = {"train": str(train_file)}
        builder = _builder_for(str(train_file), "train_file")
        if validation_file:
            data_files["validation"] = str(validation_file)
            if _builder_for(str(validation_file), "validation_file") != builder:
                raise TrainingSetupError(
                    "[data] train_file and validation_file have different file types",
                    "give both files the same type (txt, json/jsonl or csv)",
                )
        kwargs = {"data_files": data_files}
        if builder == "text":
            kwargs["keep_linebreaks"] = bool(settings.data.keep_linebreaks)
        args = (builder,)
        source = f"[data] train_file = {str(train_file)!r}"

    def load(hint: str = "check the path or name, and that the file parses as its type",
             **extra: Any) -> Any:
        try:
            return load_dataset(*args, cache_dir=cache_dir, streaming=streaming, **kwargs, **extra)
        except (FileNotFoundError, ValueError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrainingSetupError(f"{source} could not be loaded: {first}", hint) from exc

    raw = load()
    if "train" not in raw:
        raise TrainingSetupError(f"{source} has no 'train' split", "use a dataset with one")
    carved = None
    if "validation" not in raw:
        if streaming:
            warnings.append(
                "streaming data has no validation split and none can be carved out of a "
                "stream: the run will not evaluate (set [data] validation_file to evaluate)"
            )
        else:
            pct = carved = _split_percentage(cfg)
            # The file loaded; a split fails when it holds too few examples for pct %.
            too_small = (
                f"the training data has too few examples to hold out {pct}% for validation:"
                " add data, set [data] validation_file, or raise"
                " [data] validation_split_percentage"
            )
            raw["validation"] = load(too_small, split=f"train[:{pct}%]")
            nothing_left = (
                f"[data] validation_split_percentage = {pct} leaves no training examples:"
                " lower it, set [data] validation_file, or add data"
            )
            raw["train"] = load(nothing_left, split=f"train[{pct}%:]")
    return raw, warnings, carved


# ------------------------------------------------------------------------- block size


def resolve_block_size(
    requested: int | None, model_config: Any, tokenizer: Any
) -> tuple[int, list[str]]:
    """The block size run_clm would use, and one warning per adjustment it made.

    - unset: the tokenizer's ``model_max_length``; when that exceeds the model's
      ``max_position_embeddings`` (1024 when the config has none), use
      ``min(1024, max_position_embeddings)`` instead;
    - set: capped at the tokenizer's ``model_max_length``.

    One more cap than run_clm: a requested size beyond the model's positions (with
    a tokenizer that has no real limit) would crash inside the model, so it is
    lowered to ``max_position_embeddings`` with a warning.
    """
    max_pos = getattr(model_config, "max_position_embeddings", None) or 1024
    tok_max = int(getattr(tokenizer, "model_max_length", max_pos) or max_pos)
    warnings: list[str] = []
    if requested is None:
        block_size = tok_max
        if block_size > max_pos:
            block_size = min(1024, max_pos) if max_pos > 0 else 1024
            warnings.append(
                f"the tokenizer's model_max_length ({tok_max}) is larger than the model's "
                f"max_position_embeddings ({max_pos}): using block_size = {block_size}; "
                f"set [data] block_size to choose another"
            )
        return block_size, warnings
    block_size = int(requested)
    if block_size > tok_max:
        warnings.append(
            f"[data] block_size = {block_size} is larger than the tokenizer's maximum length "
            f"({tok_max}): using block_size = {tok_max}"
        )
        block_size = tok_max
    if max_pos > 0 and block_size > max_pos:
        warnings.append(
            f"[data] block_size = {block_size} is larger than the model's "
            f"max_position_embeddings ({max_pos}): using block_size = {max_pos}"
        )
        block_size = max_pos
    return block_size, warnings


# ----------------------------------------------------------------- map functions (pure)


def tokenize_batch(examples: dict[str, list[Any]], *, tokenizer: Any, column: str) -> Any:
    """Tokenize one batch of the text column (no truncation: blocks are cut later)."""
    return tokenizer(examples[column])


def group_texts(examples: dict[str, list[Any]], *, block_size: int) -> dict[str, list[Any]]:
    """run_clm's packing: concatenate the batch, cut full blocks, drop the remainder."""
    concatenated = {k: list(chain.from_iterable(examples[k])) for k in examples}
    total = len(concatenated["input_ids"])
    total = (total // block_size) * block_size
    result = {
        k: [values[i : i + block_size] for i in range(0, total, block_size)]
        for k, values in concatenated.items()
    }
    result["labels"] = [list(block) for block in result["input_ids"]]
    return result


def pad_lines(
    examples: dict[str, list[Any]], *, block_size: int, pad_token_id: int
) -> dict[str, list[Any]]:
    """One block per non-empty example: truncate or pad; padding is masked and labelled -100."""
    input_ids: list[list[int]] = []
    attention: list[list[int]] = []
    labels: list[list[int]] = []
    for ids in examples["input_ids"]:
        ids = list(ids[:block_size])
        if not ids:
            continue  # an empty line would be a block with nothing to learn (loss NaN)
        pad = block_size - len(ids)
        input_ids.append(ids + [pad_token_id] * pad)
        attention.append([1] * len(ids) + [0] * pad)
        labels.append(ids + [IGNORE_INDEX] * pad)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# ---------------------------------------------------------------------- the pipeline


def _column_names(dataset: Any) -> list[str]:
    features = getattr(dataset, "features", None)
    if features is not None:
        return list(features)
    first = next(iter(dataset))  # an IterableDataset whose features are not resolved
    return list(first)


def _text_column(cfg: RunConfig, columns: list[str]) -> str:
    settings = cfg.settings
    wanted = settings.data.text_column
    user_set = settings.data.was_set("text_column")
    if wanted in columns:
        return wanted
    if user_set:
        raise TrainingSetupError(
            f"[data] text_column = {wanted!r} is not a column of the training data",
            f"use one of {', '.join(repr(c) for c in columns)}",
        )
    return columns[0]


def _check_text_type(dataset: Any, column: str) -> None:
    features = getattr(dataset, "features", None)
    if features is not None:
        dtype = getattr(features[column], "dtype", None)
        if dtype not in ("string", "large_string"):
            raise TrainingSetupError(
                f"the text column {column!r} of the training data holds {dtype or 'nested'} "
                f"values, not text",
                "set [data] text_column to a column of strings",
            )


# --------------------------------------------------------------------- empty rows


def has_text(examples: dict[str, list[Any]], *, column: str) -> list[bool]:
    """Which rows of a batch hold text: a CSV's empty cell and JSON's null read as None."""
    return [value is not None and value != "" for value in examples[column]]


def _text_gaps(dataset: Any, column: str) -> tuple[bool, bool]:
    """(some rows lack text, every row is null), read from the Arrow column without
    building a Python object per row."""
    values = dataset.with_format("arrow")[column]
    if values.null_count:
        return True, values.null_count == len(values)
    strings = str(values.type) in ("string", "large_string")
    return strings and values.index("").as_py() != -1, False


def _sources(cfg: RunConfig, carved: int | None) -> list[tuple[str, str, tuple[str, ...]]]:
    """(setting, value, the splits read from it) for each place the data comes from."""
    data = cfg.settings.data
    if data.dataset_name:
        return [("dataset_name", str(data.dataset_name), ("train", "validation"))]
    train_splits = ("train", "validation") if carved is not None else ("train",)
    sources = [("train_file", str(data.train_file), train_splits)]
    if data.validation_file:
        sources.append(("validation_file", str(data.validation_file), ("validation",)))
    return sources


def _reads_lines(cfg: RunConfig) -> bool:
    data = cfg.settings.data
    return not data.dataset_name and _builder_for(str(data.train_file), "train_file") == "text"


def _no_text_error(key: str, value: str, column: str) -> TrainingSetupError:
    return TrainingSetupError(
        f"[data] {key} = {value!r}: every row has an empty or null {column!r}",
        "fill that column, or set [data] text_column to the column with the text",
    )


#: (setting, value, its splits, those of them with rows without text) per source of the data.
Gaps = list[tuple[str, str, list[str], list[str]]]


def _splits_with_gaps(cfg: RunConfig, raw: Any, column: str, carved: int | None) -> Gaps:
    """Where the rows without text are (see ``Gaps``).

    A source whose every row is null (an all-empty CSV column reads as numbers, a JSON one
    as nulls) is an error naming it, before the column's type is judged. Nothing is read
    when streaming (no length) or for ``.txt`` files (see ``_skip_empty_rows``).
    """
    if cfg.settings.data.streaming or _reads_lines(cfg):
        return []
    found: Gaps = []
    for key, value, splits in _sources(cfg, carved):
        present = [s for s in splits if s in raw]
        for split in present:
            if column not in raw[split].column_names:
                raise TrainingSetupError(
                    f"[data] {key} = {value!r} has no column {column!r} (its columns: "
                    f"{', '.join(map(repr, raw[split].column_names))})",
                    "give the training and validation data the same columns",
                )
        gaps = {s: _text_gaps(raw[s], column) for s in present}
        if present and all(all_null for _, all_null in gaps.values()):
            raise _no_text_error(key, value, column)
        found.append((key, value, present, [s for s in present if gaps[s][0]]))
    return found


def _skip_empty_rows(
    cfg: RunConfig, raw: Any, column: str, gaps: Gaps, first: MainProcessFirst,
    map_opts: dict[str, Any],
) -> tuple[Any, list[str]]:
    """Drop the rows without text (a CSV's empty cell, JSON's null or ""), with one warning
    per source that had some; a source left with no row is an error naming it.

    A ``.txt`` file's empty lines stay, as in run_clm: they tokenise to nothing (group
    packing) or are dropped by line packing, and blank lines between paragraphs are normal,
    so they are not worth a warning.
    """
    if _reads_lines(cfg):
        return raw, []
    keep = functools.partial(has_text, column=column)
    if cfg.settings.data.streaming:  # no length to count: skipped silently as they stream
        return raw.filter(keep, batched=True), []
    warnings: list[str] = []
    for key, value, present, with_gaps in gaps:
        if not with_gaps:
            continue
        before = sum(len(raw[s]) for s in present)
        with first("skipping rows without text"):
            for split in with_gaps:
                raw[split] = raw[split].filter(
                    keep, batched=True, desc="Skipping rows without text", **map_opts
                )
        after = sum(len(raw[s]) for s in present)
        if not after:
            raise _no_text_error(key, value, column)
        name = value if key == "dataset_name" else Path(value).name
        warnings.append(f"skipped {before - after:,} of {before:,} rows of {name} with an "
                        f"empty or null {column!r}")
    return raw, warnings


def _count(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None  # streaming


def _fmt(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _map(
    datasets: Any, fn: Callable[..., Any], *, streaming: bool, remove: list[str], **opts: Any
) -> Any:
    if streaming:
        # IterableDataset.map has no cache, workers or progress bar.
        return datasets.map(fn, batched=True, remove_columns=remove)
    return datasets.map(fn, batched=True, remove_columns=remove, **opts)


def _total_tokens(dataset: Any) -> int:
    return sum(len(ids) for ids in dataset["input_ids"])


def _no_block_error(
    cfg: RunConfig, split: str, tokenized: Any, block_size: int, carved: int | None
) -> tuple[TrainingSetupError, bool]:
    """Why a split makes no block, and whether the validation split is the cause (the
    data as a whole would make a block, but ``validation_split_percentage`` cut it)."""
    settings = cfg.settings
    packing = settings.data.packing
    tokens = _total_tokens(tokenized[split])
    if carved is not None:
        everything = sum(_total_tokens(tokenized[s]) for s in ("train", "validation"))
        if everything >= block_size if packing == "group" else everything > 0:
            if split == "train":
                return TrainingSetupError(
                    f"[data] validation_split_percentage = {carved} leaves {tokens:,} tokens "
                    f"for training, too few for one block of {block_size}",
                    "lower validation_split_percentage, or set [data] validation_file",
                ), True
            return TrainingSetupError(
                f"[data] validation_split_percentage = {carved} holds out {tokens:,} tokens "
                f"for validation, too few for one block of {block_size}",
                "raise validation_split_percentage, set [data] validation_file, or lower "
                "[data] block_size",
            ), True
    key = "validation_file" if split == "validation" else "train_file"
    key = "dataset_name" if settings.data.dataset_name else key
    if packing == "line":
        return TrainingSetupError(f"the {split} data has no non-empty example",
                                  f"check [data] {key}"), False
    if tokens == 0:
        return TrainingSetupError(f"the {split} data holds no text", f"check [data] {key}"), False
    return TrainingSetupError(
        f"[data] block_size = {block_size} is larger than the {split} data can fill "
        f"({tokens:,} tokens, no complete block)",
        f"set [data] block_size to {tokens:,} or less, or add more {split} text",
    ), False


def _packing_function(packing: str, block_size: int, tokenizer: Any) -> tuple[Any, str]:
    """The map function of a packing (a picklable partial) and its progress label."""
    if packing == "group":
        fn = functools.partial(group_texts, block_size=block_size)
        return fn, f"Grouping texts in chunks of {block_size}"
    if tokenizer.pad_token_id is None:
        raise TrainingSetupError(
            "[data] packing = 'line' needs a pad token", "set [model] pad_token"
        )
    fn = functools.partial(pad_lines, block_size=block_size, pad_token_id=tokenizer.pad_token_id)
    return fn, f"Padding lines to {block_size} tokens"


def _quiet_length_warning(tokenizer: Any) -> None:
    # The tokenizer warns about sequences longer than its maximum; here that is expected
    # (blocks are cut afterwards), so mark that warning as already shown.
    shown = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(shown, dict):
        shown["sequence-length-is-longer-than-the-specified-maximum"] = True


def _phase(send: Emit, phase: str, detail: str, progress: float | None = None) -> None:
    send(make_event("phase", phase=phase, progress=progress, detail=detail))


def prepare_datasets(
    cfg: RunConfig,
    tokenizer: Any,
    model_config: Any,
    *,
    emit: Emit | None = None,
    main_process_first: MainProcessFirst | None = None,
    cache_dir: str | None = None,
    check_empty: bool = True,
) -> PreparedData:
    """Load, tokenize, pack and limit the data of a run; emits phase and warning events.

    ``main_process_first`` is ``TrainingArguments.main_process_first`` under
    distributed training so rank 0 fills the cache and the others read it.
    ``check_empty=False`` (``clmtune preview``) reports a split without a block instead
    of refusing it.
    """
    send: Emit = emit or (lambda event: None)
    first: MainProcessFirst = main_process_first or (lambda desc: nullcontext())
    settings = cfg.settings
    streaming = bool(settings.data.streaming)
    packing = settings.data.packing
    if packing not in PACKINGS:
        raise TrainingSetupError(
            f"[data] packing = {packing!r} is not a packing", "use 'group' or 'line'"
        )
    map_opts: dict[str, Any] = {
        "num_proc": settings.data.preprocessing_num_workers,
        "load_from_cache_file": not bool(settings.data.overwrite_cache),
    }
    timings: dict[str, float] = {}

    _phase(send, "loading_data", "reading data")
    t0 = time.perf_counter()
    raw, warnings, carved = _load_raw(cfg, cache_dir)
    timings["loading_data"] = time.perf_counter() - t0
    counts = {s: _count(raw[s]) for s in ("train", "validation") if s in raw}
    _phase(
        send, "loading_data", ", ".join(f"{s}: {_fmt(n)} examples" for s, n in counts.items()), 1.0
    )

    block_size, block_warnings = resolve_block_size(
        settings.data.block_size, model_config, tokenizer
    )
    for message in warnings:
        send(make_event("warning", code="data", message=message))
    for message in block_warnings:
        send(make_event("warning", code="block_size", message=message))

    columns = _column_names(raw["train"])
    column = _text_column(cfg, columns)
    gaps = _splits_with_gaps(cfg, raw, column, carved)
    _check_text_type(raw["train"], column)
    raw, skipped = _skip_empty_rows(cfg, raw, column, gaps, first, map_opts)
    for message in skipped:
        send(make_event("warning", code="data", message=message))
    warnings += skipped
    _quiet_length_warning(tokenizer)
    _phase(send, "tokenizing", f"column {column!r}")
    t0 = time.perf_counter()
    tokenize = functools.partial(tokenize_batch, tokenizer=tokenizer, column=column)
    with first("dataset map tokenization"):
        tokenized = _map(
            raw, tokenize, streaming=streaming, remove=columns,
            desc="Running tokenizer on dataset", **map_opts,
        )  # fmt: skip
    timings["tokenizing"] = time.perf_counter() - t0
    detail = f"{_fmt(counts['train'])} examples in {timings['tokenizing']:.1f} s"
    _phase(send, "tokenizing", detail, 1.0)

    _phase(send, "grouping", f"{packing} packing into blocks of {block_size} tokens")
    t0 = time.perf_counter()
    pack, desc = _packing_function(packing, block_size, tokenizer)
    # Line packing rebuilds every column; group packing keeps what the tokenizer made.
    remove = _column_names(tokenized["train"]) if packing == "line" else []
    with first("grouping texts together"):
        grouped = _map(tokenized, pack, streaming=streaming, remove=remove, desc=desc, **map_opts)
    timings["grouping"] = time.perf_counter() - t0

    train = grouped["train"]
    evaluation = grouped["validation"] if "validation" in grouped else None
    if not streaming:
        for split, blocks in (("train", train), ("validation", evaluation)):
            if blocks is None or _count(blocks) != 0:
                continue
            error, split_caused = _no_block_error(cfg, split, tokenized, block_size, carved)
            if check_empty:
                raise error
            if split_caused:  # a preview reports it: say which setting to change
                send(make_event("warning", code="data", message=str(error)))
                warnings.append(str(error))
    packed = {"train": _count(train),
              "validation": None if evaluation is None else _count(evaluation)}
    train = _limit(train, settings.data.max_train_samples)
    if evaluation is not None:
        evaluation = _limit(evaluation, settings.data.max_eval_samples)
    prepared = PreparedData(
        train_dataset=train,
        eval_dataset=evaluation,
        block_size=block_size,
        warnings=warnings + block_warnings,
        train_samples=_count(train),
        eval_samples=_count(evaluation) if evaluation is not None else None,
        dataset_name=settings.data.dataset_name,
        dataset_config_name=settings.data.dataset_config_name,
        timings=timings,
        tokenized=tokenized,
        text_column=column,
        packed_samples=packed,
    )
    detail = f"train: {_fmt(prepared.train_samples)} blocks of {block_size} tokens"
    if evaluation is not None:
        detail += f", validation: {_fmt(prepared.eval_samples)}"
    _phase(send, "grouping", detail, 1.0)
    return prepared


def _limit(dataset: Any, limit: int | None) -> Any:
    """The first ``limit`` blocks (after grouping, as run_clm does)."""
    if limit is None:
        return dataset
    n = _count(dataset)
    if n is None:
        return dataset.take(int(limit))
    return dataset.select(range(min(n, int(limit))))
