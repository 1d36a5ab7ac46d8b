"""``clmtune preview FILE.toml``: what a run's data makes, before the first step.

The tokenizer and data go through the very functions training uses
(:func:`clmtune.backend.model.load_tokenizer` + ``apply_pad_policy``,
:func:`clmtune.backend.data.prepare_datasets`), with the same ``datasets`` cache, so the
numbers are the run's (``train_blocks`` / ``eval_blocks`` are the ``train_samples`` /
``eval_samples`` the run logs) and a preview fills the cache the first training start
reads. The model's weights are never loaded: its config only (and a weightless copy on
torch's ``meta`` device to count parameters). ``--measure`` is the exception: it loads the
model and times a few forward/backward passes on the device training would use.

Also runnable as ``python -m clmtune.backend.tools.preview FILE [--json] …`` (the
dashboard's Preview tab runs that in a subprocess).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.errors import UsageError
from clmtune.backend.estimate import (
    estimate_memory,
    plan_steps,
    shape_from_config,
    time_estimate,
)
from clmtune.backend.lora import estimated_lora_params, is_lora, wrap_model

if TYPE_CHECKING:
    from clmtune.backend.data import PreparedData
    from clmtune.backend.settings.run_config import RunConfig

#: Marks where one original example ends and the next begins inside a decoded block.
BOUNDARY = " <||> "
#: The keys of ``clmtune preview --json`` (the issue's names; more keys follow them).
KEYS = ("train_rows", "eval_rows", "train_tokens", "eval_tokens", "train_blocks", "eval_blocks",
        "lengths", "dropped_tokens", "padded_tokens", "steps_per_epoch", "total_steps",
        "tokens_per_step", "samples", "warnings", "estimate")  # fmt: skip
#: More than this share of examples longer than a block is worth a warning.
LONG_SHARE = 0.10
MAP_BATCH = 1000  # datasets' default map batch size: group packing drops a remainder per batch


# ------------------------------------------------------------------ figures


def _lengths(split: Any) -> list[int]:
    """Token count of every example of a tokenized split (read from arrow, not Python rows)."""
    if getattr(split, "_indices", None) is None:  # no select() mapping: the table is the rows
        try:
            column = split.data.column("input_ids")
            return [int(n) for chunk in column.chunks
                    for n in chunk.value_lengths().to_numpy(zero_copy_only=False)]
        except (AttributeError, KeyError, TypeError):
            pass
    return [len(ids) for ids in split["input_ids"]]


def distribution(lengths: list[int]) -> dict[str, float | int | None]:
    """min, p50, p90, p99, max and mean (nearest-rank percentiles) of example lengths."""
    if not lengths:
        return {k: None for k in ("min", "p50", "p90", "p99", "max", "mean")}
    ordered = sorted(lengths)

    def rank(p: float) -> int:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"min": ordered[0], "p50": rank(50), "p90": rank(90), "p99": rank(99),
            "max": ordered[-1], "mean": round(sum(ordered) / len(ordered), 2)}  # fmt: skip


def steps(cfg: RunConfig, train_blocks: int) -> dict[str, Any]:
    """Steps per epoch and in all, as Trainer counts them (per process batches, accumulation)."""
    from clmtune.backend.resume_plan import world_size

    t = cfg.settings.training
    return plan_steps(train_blocks, batch_size=int(t.per_device_train_batch_size),
                      accumulation=int(t.gradient_accumulation_steps),
                      world_size=world_size(cfg), drop_last=bool(t.dataloader_drop_last),
                      max_steps=int(t.max_steps or -1),
                      num_train_epochs=float(t.num_train_epochs))


def _shards(rows: int, num_proc: int | None) -> list[tuple[int, int]]:
    """The contiguous shards ``datasets.map(num_proc=…)`` splits a split into."""
    procs = max(1, min(int(num_proc or 1), rows or 1))
    div, mod = divmod(rows, procs)
    out, start = [], 0
    for i in range(procs):
        end = start + div + (1 if i < mod else 0)
        out.append((start, end))
        start = end
    return out


def _group_segments(lengths: list[int], block: int, k: int,
                    num_proc: int | None) -> list[list[int]]:
    """Per block (the first ``k``), the lengths of the example pieces it is made of."""
    blocks: list[list[int]] = []
    for start, end in _shards(len(lengths), num_proc):
        for b0 in range(start, end, MAP_BATCH):
            pieces: list[int] = []
            room = block
            full = sum(lengths[b0:min(b0 + MAP_BATCH, end)]) // block
            made = 0
            for n in lengths[b0:min(b0 + MAP_BATCH, end)]:
                while n > 0 and made < full:
                    take = min(n, room)
                    pieces.append(take)
                    n -= take
                    room -= take
                    if room == 0:
                        blocks.append(pieces)
                        made += 1
                        if len(blocks) >= k:
                            return blocks
                        pieces, room = [], block
                if made >= full:
                    break
    return blocks


def sample_blocks(data: PreparedData, tokenizer: Any, packing: str, k: int,
                  num_proc: int | None) -> list[dict[str, Any]]:
    """The first ``k`` training blocks decoded, example boundaries marked with :data:`BOUNDARY`."""
    train = data.train_dataset
    k = min(k, len(train))
    if k <= 0:
        return []
    lengths = _lengths(data.tokenized["train"])
    out = []
    if packing == "group":
        pieces = _group_segments(lengths, data.block_size, k, num_proc)
    else:
        pieces = [[min(n, data.block_size)] for n in lengths if n > 0][:k]
    for i in range(k):
        row = train[i]
        ids = list(row["input_ids"])
        real = sum(row["attention_mask"]) if packing == "line" else len(ids)
        split = pieces[i] if i < len(pieces) and sum(pieces[i]) == real else [real]
        segments, pos = [], 0
        for n in split:
            segments.append(tokenizer.decode(ids[pos:pos + n], clean_up_tokenization_spaces=False))
            pos += n
        text = BOUNDARY.join(segments)
        if len(ids) > real:
            text += f" [pad x{len(ids) - real}]"
        out.append({"index": i, "tokens": real, "padding": len(ids) - real,
                    "boundaries": _cumulative(split)[:-1], "segments": segments, "text": text})
    return out


def _cumulative(pieces: list[int]) -> list[int]:
    total, out = 0, []
    for n in pieces:
        total += n
        out.append(total)
    return out


def text_column_warnings(cfg: RunConfig, raw: Any, column: str | None) -> list[str]:
    """A text column picked by default that is not named text, or that holds numbers or ids."""
    warnings: list[str] = []
    if column is None or "train" not in raw:
        return warnings
    data = cfg.settings.data
    split = raw["train"]
    columns = list(split.features)
    if not data.was_set("text_column") and column != data.text_column and len(columns) > 1:
        warnings.append(f"[data] text_column is not set and the data has no {data.text_column!r}"
                        f" column: using the first column {column!r} (of "
                        f"{', '.join(map(repr, columns))})")
    values = [v for v in split.select(range(min(len(split), 1000)))[column] if isinstance(v, str)]
    values = [v.strip() for v in values if v.strip()]
    if values:
        numeric = sum(1 for v in values if _looks_numeric(v)) / len(values)
        short = sum(1 for v in values if " " not in v) / len(values)
        if numeric >= 0.5 or (short >= 0.9 and len(columns) > 1):
            warnings.append(f"the text column {column!r} holds numbers or single words (e.g. "
                            f"{values[0][:30]!r}), not text: set [data] text_column to the "
                            f"column with the text")
    return warnings


def _looks_numeric(value: str) -> bool:
    try:
        float(value.replace(",", ""))
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ the report


def data_report(cfg: RunConfig, *, samples: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the report, extras for the estimate): everything ``clmtune preview`` prints but the
    memory and time estimate. ``cfg`` must be resolved (absolute paths)."""
    from clmtune.backend.data import load_raw_datasets, prepare_datasets
    from clmtune.backend.hub_check import check_hub_models
    from clmtune.backend.model import apply_pad_policy, load_config, load_tokenizer

    settings = cfg.settings
    if settings.data.streaming:
        raise UsageError("[data] streaming = true: a preview needs the data's length; "
                         "set streaming = false to preview, or train with max_steps")
    check_hub_models(cfg.model)
    model_config = load_config(cfg)
    tokenizer = load_tokenizer(cfg)
    apply_pad_policy(tokenizer, settings.model.pad_token)  # as training does: same cache
    events: list[dict[str, Any]] = []
    data = _prepare(cfg, lambda: prepare_datasets(
        cfg, tokenizer, model_config, emit=events.append, cache_dir=settings.model.cache_dir,
        check_empty=False))
    raw, _ = load_raw_datasets(cfg, cache_dir=settings.model.cache_dir)  # cached by now
    block = data.block_size
    packing = settings.data.packing
    tokenized = data.tokenized
    train_lengths = _lengths(tokenized["train"])
    eval_lengths = _lengths(tokenized["validation"]) if "validation" in tokenized else []
    train_tokens, eval_tokens = sum(train_lengths), sum(eval_lengths)
    packed_train = data.packed_samples.get("train") or 0
    packed_eval = data.packed_samples.get("validation")
    report: dict[str, Any] = {
        "file": str(cfg.source) if getattr(cfg, "source", None) else None,
        "packing": packing,
        "block_size": block,
        "text_column": data.text_column,
        "train_rows": len(train_lengths),
        "eval_rows": len(eval_lengths) if "validation" in tokenized else None,
        "train_tokens": train_tokens,
        "eval_tokens": eval_tokens if "validation" in tokenized else None,
        "train_blocks": data.train_samples,
        "eval_blocks": data.eval_samples,
        "train_blocks_before_limit": packed_train,
        "eval_blocks_before_limit": packed_eval,
        "lengths": distribution(train_lengths),
        "eval_lengths": distribution(eval_lengths),
        "longer_than_block": sum(1 for n in train_lengths if n > block),
    }
    if packing == "group":
        report["dropped_tokens"] = train_tokens - packed_train * block
        report["padded_tokens"] = 0
        report["truncated_tokens"] = 0
    else:
        kept = sum(min(n, block) for n in train_lengths)
        report["dropped_tokens"] = 0
        report["padded_tokens"] = packed_train * block - kept
        report["truncated_tokens"] = train_tokens - kept
    plan = steps(cfg, data.train_samples or 0)
    report.update(plan)
    report["tokens_per_step"] = plan["total_train_batch_size"] * block
    report["samples"] = sample_blocks(data, tokenizer, packing, samples,
                                      settings.data.preprocessing_num_workers)
    report["warnings"] = list(data.warnings) + text_column_warnings(cfg, raw, data.text_column)
    report["warnings"] += data_warnings(report, plan)
    extras = {"model_config": model_config, "tokenizer": tokenizer, "data": data}
    return report, extras


def _prepare(cfg: RunConfig, call: Any) -> PreparedData:
    from datasets.exceptions import DatasetGenerationError

    try:
        return call()
    except DatasetGenerationError as exc:
        from clmtune.backend.train import _data_file_error

        raise _data_file_error(cfg, exc) from exc


def data_warnings(report: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """Empty splits, fewer blocks than one batch, block above the model, long examples."""
    warnings = []
    block = report["block_size"]
    if report["eval_rows"] is not None and not report["eval_blocks"]:
        warnings.append(f"empty validation: the validation data makes no block of {block} tokens"
                        f" ({report['eval_tokens'] or 0:,} tokens); training will refuse it: "
                        f"add validation text or lower [data] block_size")
    if not report["train_blocks"]:
        warnings.append(f"the training data makes no block of {block} tokens "
                        f"({report['train_tokens']:,} tokens): lower [data] block_size")
    elif report["train_blocks"] < plan["per_device_train_batch_size"] * plan["world_size"]:
        warnings.append(f"only {report['train_blocks']} training blocks, fewer than one batch "
                        f"({plan['per_device_train_batch_size']} x {plan['world_size']} devices):"
                        f" lower the batch size or add data")
    # A block_size above the model's maximum: resolve_block_size lowers it and its warning
    # is in data.warnings already.
    rows = report["train_rows"]
    # Group packing splits a long example across blocks (nothing lost); line packing cuts it.
    if report["packing"] == "line" and rows and report["longer_than_block"] / rows > LONG_SHARE:
        share = 100 * report["longer_than_block"] / rows
        warnings.append(f"{share:.0f}% of the training examples are longer than block_size "
                        f"{block} and are truncated ({report['truncated_tokens']:,} tokens "
                        f"never trained on): raise [data] block_size or use packing = 'group'")
    return warnings


def _meta_model(model_config: Any, vocab_rows: int) -> Any:
    """The model built on torch's meta device (no memory, no weights), its embeddings resized
    to the tokenizer as training resizes them (the pad token ``pad_token = "add"`` adds)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
        if vocab_rows > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(vocab_rows, mean_resizing=False)  # no values on meta
    return model


def param_counts(model_config: Any, vocab_rows: int, settings: Any) -> dict[str, Any] | None:
    """Exact parameter counts, as the run reports them; None when the model does not build.

    ``params`` is what the run calls its parameters and ``trainable_params`` what it trains.
    For ``[peft] method = "lora"`` the weightless model is wrapped by
    :func:`clmtune.backend.lora.wrap_model`, the call the worker makes after loading, and
    counted as the worker counts (peft's ``get_nb_trainable_parameters``): ``params`` is then
    ``base_params`` + ``adapter_params``. When that wrap fails here (no ``peft``, targets
    that do not exist) ``lora_counted`` is False and the caller estimates the adapter.
    """
    try:
        model = _meta_model(model_config, vocab_rows)
    except Exception:  # noqa: BLE001 - an unusual architecture: the formula stands in
        return None
    base = int(sum(p.numel() for p in model.parameters()))
    counts: dict[str, Any] = {"params": base, "trainable_params": base, "base_params": base}
    if not is_lora(settings):
        return counts
    try:
        import warnings

        import torch

        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # deprecation notes of peft / transformers
            wrapped, _ = wrap_model(model, settings)
        trainable, total = wrapped.get_nb_trainable_parameters()
    except Exception:  # noqa: BLE001 - the run itself reports what is wrong with [peft]
        return counts | {"lora_counted": False}
    return {"params": int(total), "trainable_params": int(trainable), "base_params": base,
            "adapter_params": int(total) - base, "lora_counted": True}


def device_memory() -> tuple[str, int | None]:
    """("cuda:0 NAME", its memory) when a GPU is visible, else ("cpu", host RAM)."""
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return f"cuda:0 {props.name}", int(props.total_memory)
    except Exception:  # noqa: BLE001 - a broken driver reads as no GPU
        pass
    try:
        import psutil

        return "cpu", int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001
        return "cpu", None


def estimate_report(cfg: RunConfig, report: dict[str, Any], extras: dict[str, Any]) -> dict:
    """The ``estimate`` key: model shape, memory by part, fits, the largest batch that fits."""
    model_config, tokenizer = extras["model_config"], extras["tokenizer"]
    vocab_rows = max(int(getattr(model_config, "vocab_size", 0) or 0), len(tokenizer))
    shape = shape_from_config(model_config, vocab_size=vocab_rows)
    counts = param_counts(model_config, vocab_rows, cfg.settings) or {}
    shape.num_params = counts.get("base_params")
    device, memory = device_memory()
    options = estimate_options(cfg, model_config)
    lora: dict[str, Any] = {}
    if is_lora(cfg.settings):  # the run's count: base + adapter, the adapter trainable
        if counts.get("lora_counted"):
            adapter, trainable = counts["adapter_params"], counts["trainable_params"]
        else:  # no peft here: from the model's shape
            adapter = trainable = estimated_lora_params(shape, cfg.settings)
        lora = {"base_params": shape.params, "adapter_params": adapter,
                "lora_counted": bool(counts.get("lora_counted"))}
        shape.num_params = shape.params + adapter
        options["trainable_params"] = trainable
    memory_estimate = estimate_memory(
        shape, batch_size=report["per_device_train_batch_size"], block_size=report["block_size"],
        gradient_accumulation_steps=report["gradient_accumulation_steps"],
        device=device, device_memory=memory, **options)
    out = {"model": shape.__dict__ | {"params": shape.params} | lora, "options": options,
           "memory": memory_estimate.to_json(), "time": time_estimate(None, report["total_steps"])}
    out["time"]["hint"] = "use --measure to time a few steps on this machine"
    return out


def estimate_options(cfg: RunConfig, model_config: Any) -> dict[str, Any]:
    """The settings the estimate depends on besides batch and block."""
    t = cfg.settings.training
    precision = "bf16" if t.bf16 else "fp16" if t.fp16 else "fp32"
    attention = getattr(model_config, "_attn_implementation", None) or "sdpa"
    return {"precision": precision, "param_dtype": str(cfg.settings.model.dtype),
            "optim": str(getattr(t.optim, "value", t.optim) or "adamw_torch"),
            "gradient_checkpointing": bool(t.gradient_checkpointing),
            "attention": str(attention)}  # fmt: skip


def preview(path: str | Path, *, samples: int = 2, measure: bool = False) -> dict[str, Any]:
    """The whole report of a settings file (the ``--json`` object)."""
    from clmtune.backend.settings.toml_io import load_config

    if samples < 0:
        raise UsageError("preview: --samples must be 0 or more")
    loaded = load_config(Path(path))
    cfg = loaded.resolved()
    report, extras = data_report(cfg, samples=samples)
    report["warnings"][:0] = list(loaded.warnings)  # what `clmtune check` warns about
    report["file"] = str(path)
    report["estimate"] = estimate_report(cfg, report, extras)
    if measure:
        from clmtune.backend.tools.preview_measure import measure_step

        measured = measure_step(cfg, extras["data"], report)
        report["estimate"]["measured"] = measured
        report["estimate"]["time"] = time_estimate(measured["seconds_per_step"],
                                                   report["total_steps"])
    return report


if __name__ == "__main__":  # python -m clmtune.backend.tools.preview FILE [--json] …
    import sys

    from clmtune.backend.cli import main

    sys.exit(main(["preview", *sys.argv[1:]]))
