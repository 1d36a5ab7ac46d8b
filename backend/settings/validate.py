"""Validation of a settings document: per-field errors with the fix, and warnings.

``validate_document`` is pure Python given a schema (a hub-cache lookup aside), so the
TUI runs it as the user types. It checks, in order: the structure and each value
against its ``FieldSpec`` (unknown keys get the closest valid name), tokens, the
cross-field rules (model vs model_type, data sources, schedule, launch), data files,
model/tokenizer references and other paths. Hardware checks live in ``hardware``.
"""

from __future__ import annotations

import codecs
import difflib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clmtune.backend.settings.hardware import hardware_problems
from clmtune.backend.settings.integrations import check_report_to
from clmtune.backend.settings.problems import FieldError
from clmtune.backend.settings.run_config import (
    REF_FIELDS,
    RunConfig,
    Settings,
    absolute_path,
    holds_token,
    looks_like_path,
    probe,
)
from clmtune.backend.settings.schema import (
    EXCLUDED_TRAINING,
    SECTIONS,
    STEPS_OR_RATIO,
    TOKEN_KEYS,
    FieldSpec,
    Schema,
)
from clmtune.backend.settings.schema_cache import active_schema
from clmtune.backend.settings.validate_peft import check_peft

_TOKEN_MESSAGE = "tokens are read from HF_TOKEN or `hf auth login`, never from the file; remove it"

#: Names from transformers 4, run_clm or habit, mapped to (section, key or None, note).
ALIASES: dict[str, tuple[str | None, str | None, str]] = {
    "evaluation_strategy": ("training", "eval_strategy", "renamed in transformers 5"),
    "torch_dtype": ("model", "dtype", "renamed in transformers 5"),
    "overwrite_output_dir": (None, None,
                             "removed in transformers 5; each clmtune run gets its own run folder "
                             "(use --run-dir to choose it, --resume to continue one)"),
    "logging_dir": (None, None,
                    "removed in transformers 5; TensorBoard logs go under output_dir, or set the "
                    "TENSORBOARD_LOGGING_DIR environment variable"),
    "tokenizer": ("model", "tokenizer_name",
                  "clmtune passes the tokenizer to Trainer as processing_class itself"),
    "processing_class": ("model", "tokenizer_name",
                         "clmtune passes the tokenizer to Trainer as processing_class itself"),
    "warmup_ratio": ("training", "warmup_steps",
                     "removed in transformers 5: a warmup_steps value below 1 is a ratio"),
    "per_gpu_train_batch_size": ("training", "per_device_train_batch_size", "renamed"),
    "per_gpu_eval_batch_size": ("training", "per_device_eval_batch_size", "renamed"),
    "no_cuda": ("training", "use_cpu", "renamed"),
    "use_mps_device": (None, None, "removed; Apple GPUs are used automatically"),
    "include_inputs_for_metrics": ("training", "include_for_metrics",
                                   'renamed; write include_for_metrics = ["inputs"]'),
    "save_safetensors": (None, None,
                         "removed in transformers 5; checkpoints are always safetensors"),
    "group_by_length": ("training", "train_sampling_strategy",
                        'replaced by train_sampling_strategy = "group_by_length"'),
    "push_to_hub_model_id": ("training", "hub_model_id", "renamed"),
    "push_to_hub_organization": ("training", "hub_model_id", 'write hub_model_id = "org/name"'),
    "fp16_backend": (None, None, "removed; mixed precision is handled by accelerate"),
    "half_precision_backend": (None, None, "removed; mixed precision is handled by accelerate"),
    "fp16_opt_level": (None, None, "removed with apex support in transformers 5"),
    "torchdynamo": ("training", "torch_compile_backend", "renamed"),
    "adafactor": ("training", "optim", 'write optim = "adafactor"'),
    "max_seq_length": ("data", "block_size", "clmtune calls it block_size, as run_clm does"),
    "max_length": ("data", "block_size", "clmtune calls it block_size, as run_clm does"),
    "seq_len": ("data", "block_size", "clmtune calls it block_size, as run_clm does"),
    "model_name": ("model", "model_name_or_path", "the Hugging Face name"),
    "model_id": ("model", "model_name_or_path", "the Hugging Face name"),
    "dataset": ("data", "dataset_name", "the Hugging Face name"),
    "epochs": ("training", "num_train_epochs", "the Hugging Face name"),
    "batch_size": ("training", "per_device_train_batch_size", "the Hugging Face name"),
    "lr": ("training", "learning_rate", "the Hugging Face name"),
}

SECTION_ALIASES = {
    "training_args": "training", "trainingarguments": "training", "trainer": "training",
    "train": "training", "model_args": "model", "modelarguments": "model",
    "data_args": "data", "datatrainingarguments": "data", "dataset": "data",
    "distributed": "launch", "torchrun": "launch",
    "lora": "peft", "qlora": "peft", "adapter": "peft",
}

_KIND_WORDS = {
    "bool": "true or false", "int": "a whole number", "float": "a number",
    "str": "a string in quotes", "choice": "one of the listed strings", "path": "a path string",
    "list": "an array of strings", "dict": "a table",
}
DATA_EXTENSIONS = {"txt": "text", "json": "json", "jsonl": "json", "csv": "csv"}
_LISTED_KEYS = 20  # an unknown key's message lists a section's settings up to this many
_DECODE_BYTES = 2 * 1024 * 1024  # enough to catch a binary or mis-encoded file, fast per keystroke
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set to a true value."""
    return any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@dataclass
class _Ctx:
    schema: Schema
    base_dir: Path
    for_launch: bool
    file: str | None
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # well-typed values only

    def error(self, section: str, key: str, message: str) -> None:
        self.errors.append(FieldError(section, key, message, self.file))

    def warn(self, section: str, key: str, message: str) -> None:
        self.warnings.append(FieldError(section, key, message, self.file))

    def soft(self, section: str, key: str, message: str) -> None:
        """A warning while editing, an error when launching."""
        (self.error if self.for_launch else self.warn)(section, key, message)

    @property
    def settings(self) -> Settings:
        """The well-typed values seen so far as typed settings (defaults from ``schema``)."""
        return Settings.from_sections(self.values, self.schema.get("training", {}))


def validate_document(
    doc: dict[str, Any],
    schema: Schema,
    *,
    base_dir: Path | None = None,
    for_launch: bool = False,
    source: str | Path | None = None,
) -> tuple[list[FieldError], list[str]]:
    """Check a parsed TOML document against a schema: (errors, warnings).

    Pure Python apart from a hub-cache lookup when offline (huggingface_hub, no
    transformers), so the TUI can call it as the user types. ``base_dir`` is the
    folder relative paths are relative to (default: the cwd). Hardware checks are
    not done here: see ``hardware_checks``.
    """
    ctx = _Ctx(schema, (base_dir or Path.cwd()).absolute(), for_launch,
               str(source) if source is not None else None)
    _check_structure(doc, ctx)
    _check_tokens(doc, ctx)
    _check_cross_fields(ctx, ctx.settings)
    settings = ctx.settings
    _check_data_files(ctx, settings)
    _check_references(ctx, settings)
    _check_other_paths(ctx, settings)
    return ctx.errors, [str(w) for w in ctx.warnings]


def _check_structure(doc: dict[str, Any], ctx: _Ctx) -> None:
    for top, content in doc.items():
        if top in SECTIONS:
            if not isinstance(content, dict):
                ctx.error(top, "", f"must be a table: write [{top}] on its own line, then keys")
                continue
            ctx.values[top] = {}
            for key, value in content.items():
                _check_key(ctx, top, key, value)
        elif isinstance(content, dict):
            ctx.error(top, "", _unknown_section_message(top))
        else:
            home = _home_section(ctx.schema, top)
            hint = f"put it under [{home}]" if home else "settings go under [model], [data], " \
                "[training] or [launch]"
            if top in TOKEN_KEYS:
                continue  # reported by _check_tokens
            ctx.error("", "", f"top-level key '{top}': {hint}")


def _unknown_section_message(name: str) -> str:
    target = SECTION_ALIASES.get(name.lower().replace("-", "_"))
    if not target:
        close = difflib.get_close_matches(name.lower(), SECTIONS, n=1)
        target = close[0] if close else None
    choices = ", ".join(f"[{s}]" for s in SECTIONS)
    if target:
        return f"unknown section; did you mean [{target}]? (sections: {choices})"
    return f"unknown section; the sections are {choices}"


def _home_section(sch: Schema, key: str) -> str | None:
    for section in SECTIONS:
        if key in sch.get(section, {}):
            return section
    return None


def _check_key(ctx: _Ctx, section: str, key: str, value: Any) -> None:
    if key in TOKEN_KEYS:
        return  # reported by _check_tokens (any section)
    if value is None:
        return  # a form's cleared field: unset
    spec = ctx.schema.get(section, {}).get(key)
    if spec is None:
        ctx.error(section, key, _unknown_key_message(ctx.schema, section, key))
        return
    problem = _check_value(spec, value)
    if problem:
        ctx.error(section, key, problem)
        return
    ctx.values[section][key] = value


def _unknown_key_message(sch: Schema, section: str, key: str) -> str:
    if section == "training" and key in EXCLUDED_TRAINING:
        return f"not settable here: {EXCLUDED_TRAINING[key]}"
    if key in ALIASES:
        target_section, target, note = ALIASES[key]
        if target is None:
            return f"unknown key: {note}"
        where = target if target_section == section else f"[{target_section}] {target}"
        return f"unknown key; did you mean {where}? ({note})"
    home = _home_section(sch, key)
    if home and home != section:
        return f"belongs in [{home}], not [{section}]; move it there"
    known = list(sch.get(section, {}))
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    if len(known) <= _LISTED_KEYS:
        return f"unknown key: not a setting of [{section}], whose settings are {', '.join(known)}"
    nor = " (nor a TrainingArguments field of the installed transformers)" \
        if section == "training" else ""
    return (f"unknown key: not a setting of [{section}]{nor}; "
            "`python -m clmtune.backend.settings --reference` lists every setting")


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _kind_matches(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("str", "choice", "path"):
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "dict":
        return isinstance(value, dict)
    return False


def _check_value(spec: FieldSpec, value: Any) -> str | None:
    """The problem with one value, or None. Checks type, then choices, then range."""
    if isinstance(value, Path):
        value = str(value)
    if not any(_kind_matches(k, value) for k in (spec.kind, *spec.accepts)):
        return _wrong_type_message(spec, value)
    if spec.kind == "choice" and isinstance(value, str):
        if spec.choices and value not in spec.choices:
            close = difflib.get_close_matches(value, spec.choices, n=1)
            mean = f"did you mean '{close[0]}'? " if close else ""
            shown = spec.choices if len(spec.choices) <= 40 else (*spec.choices[:40], "…")
            return f"'{value}' is not a valid choice; {mean}choose one of: {', '.join(shown)}"
    if spec.kind == "path" and isinstance(value, str) and not value.strip():
        return "must not be empty; remove the key to leave it unset"
    if spec.kind == "int" and isinstance(value, float):
        return _wrong_type_message(spec, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _range_problem(spec, value)
    return None


def _wrong_type_message(spec: FieldSpec, value: Any) -> str:
    want = " or ".join(_KIND_WORDS[k] for k in (spec.kind, *spec.accepts))
    name = spec.name
    if isinstance(value, str) and spec.kind in ("int", "float", "bool"):
        text = value.strip()
        if spec.kind == "bool" and text.lower() in ("true", "false"):
            return f"must be {want}, not a string: write {name} = {text.lower()} (no quotes)"
        try:
            number = float(text)
        except ValueError:
            return f"must be {want}, got the string '{value}'"
        if spec.kind == "int" and not number.is_integer():
            return f"must be {want}, got the string '{value}'"
        return f"must be {want}, not a string: write {name} = {text} (no quotes)"
    if spec.kind == "int" and isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return f"must be a whole number: write {name} = {int(value)}"
        return f"must be a whole number, got {value}"
    if spec.kind in ("str", "choice", "path") and isinstance(value, (bool, int, float)):
        shown = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        return f"must be {want}: write {name} = \"{shown}\""
    if spec.kind == "list":
        return f'must be {want}, e.g. {name} = ["a", "b"]; got {_type_name(value)}'
    return f"must be {want}, got {_type_name(value)} {value!r}"


def _range_problem(spec: FieldSpec, value: float) -> str | None:
    limits = (spec.minimum, spec.maximum, spec.exclusive_minimum, spec.exclusive_maximum)
    if isinstance(value, float) and not math.isfinite(value) and any(x is not None for x in limits):
        return f"must be a finite number, got {value}"
    below = (spec.minimum is not None and value < spec.minimum) or (
        spec.exclusive_minimum is not None and value <= spec.exclusive_minimum
    )
    above = (spec.maximum is not None and value > spec.maximum) or (
        spec.exclusive_maximum is not None and value >= spec.exclusive_maximum
    )
    if below or above:
        return f"must be {_bounds(spec)}, got {_num(value)}"
    if spec.name in STEPS_OR_RATIO and value > 1 and not float(value).is_integer():
        return (f"must be a whole number of steps, or a ratio of the total steps below 1; "
                f"got {_num(value)}")
    return None


def _bounds(spec: FieldSpec) -> str:
    """The whole allowed range, e.g. "≥ 1 and ≤ 99", whichever end a value crossed."""
    parts = []
    if spec.minimum is not None:
        parts.append(f"≥ {_num(spec.minimum)}")
    elif spec.exclusive_minimum is not None:
        parts.append(f"> {_num(spec.exclusive_minimum)}")
    if spec.maximum is not None:
        parts.append(f"≤ {_num(spec.maximum)}")
    elif spec.exclusive_maximum is not None:
        parts.append(f"< {_num(spec.exclusive_maximum)}")
    return " and ".join(parts)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _check_tokens(doc: dict[str, Any], ctx: _Ctx) -> None:
    for top, content in doc.items():
        if top in TOKEN_KEYS and not isinstance(content, dict):
            ctx.error("", "", f"top-level key '{top}': {_TOKEN_MESSAGE}")
            continue
        if not isinstance(content, dict):
            continue
        for key, value in content.items():
            if key in TOKEN_KEYS:
                ctx.error(top, key, _TOKEN_MESSAGE)
            elif holds_token(value):
                ctx.error(top, key, "looks like a Hugging Face access token; " + _TOKEN_MESSAGE)
                ctx.values.get(top, {}).pop(key, None)


def _check_cross_fields(ctx: _Ctx, settings: Settings) -> None:
    _check_model_choice(ctx, settings)
    _check_data_choice(ctx, settings)
    _check_schedule(ctx, settings)
    _check_launch(ctx, settings)
    check_peft(ctx, settings)
    check_report_to(ctx, settings)


def _check_model_choice(ctx: _Ctx, settings: Settings) -> None:
    has_path = settings.model.was_set("model_name_or_path")
    has_type = settings.model.was_set("model_type")
    overrides = settings.model.config_overrides
    broken = any(e.section == "model" and e.key in ("model_name_or_path", "model_type")
                 for e in ctx.errors)
    if not has_path and not has_type and not broken and overrides is None:
        ctx.error("model", "model_name_or_path",
                  "not set: give a hub id or local model folder, or set model_type to train "
                  "a new model from scratch")
    if overrides is not None:
        if has_path or settings.model.was_set("config_name"):
            ctx.error("model", "config_overrides",
                      "only applies to a new model built from model_type; remove it, or remove "
                      "model_name_or_path and config_name")
        elif not has_type:
            ctx.error("model", "config_overrides", "needs model_type (the architecture to build)")
        bad = [p for p in overrides.split(",") if p.strip() and "=" not in p]
        if bad or not overrides.strip():
            ctx.error("model", "config_overrides",
                      f"expected key=value pairs separated by commas (e.g. n_embd=256,n_layer=4), "
                      f"got '{overrides}'")
    if has_type and not has_path and not settings.model.was_set("tokenizer_name"):
        ctx.error("model", "tokenizer_name",
                  "a model trained from scratch needs an existing tokenizer: set tokenizer_name "
                  "to a hub id or local tokenizer folder")
    if has_type and has_path:
        ctx.warn("model", "model_type",
                 "ignored because model_name_or_path is set (the model's own config decides)")


def _check_data_choice(ctx: _Ctx, settings: Settings) -> None:
    if any(e.section == "data" and e.key in ("dataset_name", "train_file") for e in ctx.errors):
        return
    has_dataset = settings.data.was_set("dataset_name")
    has_train = settings.data.was_set("train_file")
    if not has_dataset and not has_train:
        ctx.error("data", "train_file",
                  "no training data: set train_file (.txt, .json, .jsonl or .csv) or dataset_name")
    elif has_dataset and has_train:
        ctx.error("data", "dataset_name",
                  "set either dataset_name or train_file, not both; remove one of them")
    if has_dataset and settings.data.was_set("validation_file") and not has_train:
        ctx.error("data", "validation_file",
                  "only used with train_file; remove it (the dataset's validation split is used)")
    if settings.data.was_set("dataset_config_name") and not has_dataset:
        ctx.warn("data", "dataset_config_name", "ignored without dataset_name")
    if has_dataset and settings.data.was_set("keep_linebreaks") and settings.data.keep_linebreaks:
        ctx.warn("data", "keep_linebreaks", "ignored with dataset_name, as in run_clm (it applies"
                 " to a .txt train_file): a folder of .txt files loads without line breaks")
    max_steps = settings.training.max_steps
    if settings.data.streaming and isinstance(max_steps, int) and max_steps <= 0:
        ctx.error("training", "max_steps",
                  "streaming = true needs max_steps > 0 (a streamed dataset has no length)")


def _check_schedule(ctx: _Ctx, settings: Settings) -> None:
    training = settings.training
    epochs, max_steps = training.num_train_epochs, training.max_steps
    if isinstance(epochs, (int, float)) and isinstance(max_steps, int) and epochs <= 0 \
            and max_steps <= 0:
        ctx.error("training", "num_train_epochs",
                  f"must be > 0 unless max_steps > 0 (got {_num(epochs)}); set a number of "
                  "epochs or max_steps")
    if settings.training.fp16 and settings.training.bf16:
        ctx.error("training", "fp16", "fp16 and bf16 cannot both be true; keep one of them")
    if settings.training.fp16_full_eval and settings.training.bf16_full_eval:
        ctx.error("training", "fp16_full_eval",
                  "fp16_full_eval and bf16_full_eval cannot both be true; keep one of them")
    eval_strategy = settings.training.eval_strategy
    save_strategy = settings.training.save_strategy
    best_at_end = settings.training.load_best_model_at_end
    if best_at_end and save_strategy != "best" and eval_strategy != save_strategy:
        ctx.error("training", "load_best_model_at_end",
                  f"needs save_strategy equal to eval_strategy (got '{save_strategy}' and "
                  f"'{eval_strategy}'), or save_strategy = \"best\"")
    elif best_at_end and eval_strategy == "steps" and training.was_set("eval_steps"):
        save_steps, eval_steps = settings.training.save_steps, settings.training.eval_steps
        if save_steps >= 1 and eval_steps >= 1 and save_steps % eval_steps:
            ctx.error("training", "save_steps",
                      f"load_best_model_at_end needs save_steps ({_num(save_steps)}) to be a "
                      f"multiple of eval_steps ({_num(eval_steps)})")
    scheduler = settings.training.lr_scheduler_type
    if scheduler in ("reduce_lr_on_plateau", "greedy") and eval_strategy == "no":
        ctx.error("training", "lr_scheduler_type",
                  f"'{scheduler}' needs evaluation; set eval_strategy to \"steps\" or \"epoch\"")
    if training.was_set("dataloader_prefetch_factor") \
            and not settings.training.dataloader_num_workers:
        ctx.error("training", "dataloader_prefetch_factor",
                  "only works with dataloader_num_workers > 0; set that too or remove this")
    if training.was_set("logging_nan_inf_filter") and settings.training.logging_nan_inf_filter:
        ctx.warn("training", "logging_nan_inf_filter",
                 "ignored: clmtune always reports NaN/Inf losses so a diverging run is visible")
    if "activation_checkpointing" in ctx.schema.get("training", {}) \
            and training.was_set("gradient_checkpointing"):
        ctx.warn("training", "gradient_checkpointing",
                 "deprecated alias in this transformers; prefer activation_checkpointing")
    if settings.training.push_to_hub and hub_offline():
        ctx.soft("training", "push_to_hub",
                 "the hub is offline (HF_HUB_OFFLINE); unset it or set push_to_hub = false")


def _check_launch(ctx: _Ctx, settings: Settings) -> None:
    nnodes, rank = settings.launch.nnodes, settings.launch.node_rank
    if isinstance(nnodes, int) and isinstance(rank, int) and rank >= nnodes:
        ctx.error("launch", "node_rank", f"must be below nnodes ({nnodes}), got {rank}")
    if isinstance(nnodes, int) and nnodes > 1 and not settings.launch.was_set("master_addr") \
            and not settings.launch.was_set("rdzv_endpoint"):
        ctx.soft("launch", "master_addr",
                 "a multi-machine run needs the address of the node_rank 0 machine"
                 " (or set rdzv_endpoint)")
    _check_notify(ctx, settings)


def _check_notify(ctx: _Ctx, settings: Settings) -> None:
    from clmtune.backend.settings.schema import NOTIFY_EVENTS

    events = settings.notify.events
    if isinstance(events, (list, tuple)):
        for name in events:
            if name not in NOTIFY_EVENTS:
                close = difflib.get_close_matches(str(name), NOTIFY_EVENTS, n=1)
                mean = f"did you mean '{close[0]}'? " if close else ""
                ctx.error("notify", "events", f"'{name}' is not an event; {mean}choose from: "
                          + ", ".join(NOTIFY_EVENTS))


def _check_data_files(ctx: _Ctx, settings: Settings) -> None:
    train_file, validation_file = settings.data.train_file, settings.data.validation_file
    families: dict[str, str] = {}
    for key, value in (("train_file", train_file), ("validation_file", validation_file)):
        if value is None:
            continue
        family = _check_data_file(ctx, key, str(value))
        if family:
            families[key] = family
    if len(families) == 2 and families["train_file"] != families["validation_file"]:
        train_ext = Path(str(train_file)).suffix
        val_ext = Path(str(validation_file)).suffix
        ctx.error("data", "validation_file",
                  f"is a {val_ext} file but train_file is {train_ext}; use the same kind of file "
                  "(txt, json/jsonl or csv) for both")


def _check_data_file(ctx: _Ctx, key: str, value: str) -> str | None:
    """Checks one data file; returns its family (text/json/csv) when it can be used."""
    path = absolute_path(value, ctx.base_dir)
    try:
        is_dir = path.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if is_dir:  # before the extension: "." or "data" has none, and is still a folder
        ctx.error("data", key, f"{path} is a folder; give the path of a .txt, .json, .jsonl "
                  "or .csv file")
        return None
    ext = Path(value).suffix.lower().lstrip(".")
    if ext not in DATA_EXTENSIONS:
        shown = f".{ext} files are" if ext else "files without an extension are"
        ctx.error("data", key, f"{shown} not supported ('{value}'); use a .txt, .json, .jsonl "
                  "or .csv file")
        return None
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:
        ctx.error("data", key, f"unusable path '{value}': {exc}")
        return None
    if not exists:
        ctx.error("data", key, f"no such file: {path} (relative paths start at the TOML "
                  "file's folder)")
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(_DECODE_BYTES)
    except OSError as exc:
        ctx.error("data", key, f"cannot read {path}: {exc.strerror or exc}")
        return None
    if not head:
        kind = "validation" if key == "validation_file" else "training"
        ctx.error("data", key, f"{path} is empty; give a file with {kind} text")
        return None
    try:
        # final=False: the read may stop inside a multi-byte character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        ctx.error("data", key, f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
                  "convert it, e.g. with `iconv -t UTF-8`")
        return None
    return DATA_EXTENSIONS[ext]


def _check_references(ctx: _Ctx, settings: Settings) -> None:
    cache_dir = settings.model.cache_dir
    cache = str(absolute_path(cache_dir, ctx.base_dir)) if cache_dir else None
    revision = settings.model.model_revision
    references = (("model_name_or_path", settings.model.model_name_or_path),
                  ("config_name", settings.model.config_name),
                  ("tokenizer_name", settings.model.tokenizer_name))
    for key, value in references:
        section, files = "model", REF_FIELDS[("model", key)]
        if value is None:
            continue
        if looks_like_path(value, ctx.base_dir):
            path = absolute_path(value, ctx.base_dir)
            if not probe(path):
                ctx.error(section, key, f"local path {path} does not exist (a hub id looks like "
                          "`name` or `org/name`)")
            elif key == "model_name_or_path" and probe(path, "is_dir") \
                    and not probe(path / "config.json", "is_file"):
                ctx.error(section, key, f"{path} has no config.json; give a folder written by "
                          "save_pretrained")
            continue
        if not _HUB_ID.match(value):
            ctx.error(section, key, f"'{value}' is neither an existing local path nor a hub id "
                      "like `org/name`")
            continue
        if hub_offline() and not _hub_cached(value, files, cache, revision):
            ctx.error(section, key, f"'{value}' is not in the local Hugging Face cache and the "
                      "hub is offline (HF_HUB_OFFLINE); download it first (`hf download "
                      f"{value}`) or use a local folder")
    dataset = settings.data.dataset_name
    if dataset is not None:
        if looks_like_path(dataset, ctx.base_dir):
            if not probe(absolute_path(dataset, ctx.base_dir)):
                ctx.error("data", "dataset_name",
                          f"local path {absolute_path(dataset, ctx.base_dir)} does not exist")
        elif hub_offline():
            ctx.warn("data", "dataset_name", f"the hub is offline: '{dataset}' loads only if "
                     "an earlier run cached it")


def _hub_cached(repo: str, files: tuple[str, ...], cache_dir: str | None,
                revision: str | None) -> bool:
    # huggingface_hub, not transformers: a fraction of a second to import, and the TUI may.
    from huggingface_hub import try_to_load_from_cache

    for name in files:
        try:
            found = try_to_load_from_cache(repo, name, cache_dir=cache_dir, revision=revision)
        except Exception:  # noqa: BLE001 - an invalid id is simply "not cached"
            return False
        if isinstance(found, str):
            return True
    return False


NAME_MAX_BYTES = 255  # one file or folder name, in bytes (ext4, xfs, btrfs, APFS, NTFS)
PATH_MAX_BYTES = 4096  # a whole path (Linux PATH_MAX)


def name_problem(path: Path) -> str | None:
    """Why the OS would refuse to create ``path``, before trying, and what to do: a NUL byte,
    one name over 255 bytes, or a path over 4096 bytes. None when it can be made."""
    text = str(path)
    if "\0" in text:
        return "contains a NUL character; remove it"
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > PATH_MAX_BYTES:
        return f"is {size} bytes long; a path can be at most {PATH_MAX_BYTES}: give a shorter one"
    for part in path.parts:
        length = len(part.encode("utf-8", "surrogateescape"))
        if length > NAME_MAX_BYTES:
            shown = part[:20] + "…"
            return (f"has a folder name of {length} bytes ({shown}); a name can be at most "
                    f"{NAME_MAX_BYTES} bytes (a letter outside ASCII takes 2 to 4): give a "
                    "shorter folder name")
    return None


def _check_other_paths(ctx: _Ctx, settings: Settings) -> None:
    out = settings.training.output_dir
    if out is not None:
        problem = name_problem(absolute_path(out, ctx.base_dir))
        if problem is not None:
            ctx.error("training", "output_dir", problem)
        elif probe(absolute_path(out, ctx.base_dir), "is_file"):
            ctx.error("training", "output_dir", f"{absolute_path(out, ctx.base_dir)} is a file; "
                      "give a folder")
    cache_dir = settings.model.cache_dir
    if cache_dir is not None and probe(absolute_path(cache_dir, ctx.base_dir), "is_file"):
        ctx.error("model", "cache_dir", f"{absolute_path(cache_dir, ctx.base_dir)} is a file; give "
                  "a folder")
    json_fields = (("accelerator_config", settings.training.accelerator_config),
                   ("deepspeed", settings.training.deepspeed),
                   ("fsdp_config", settings.training.fsdp_config))
    for key, value in json_fields:
        section = "training"
        if not isinstance(value, str):
            continue
        if value.lstrip().startswith("{"):
            try:
                json.loads(value)
            except ValueError as exc:
                ctx.error(section, key, f"is not valid JSON ({exc}); write a TOML table instead")
        elif not probe(absolute_path(value, ctx.base_dir), "is_file"):
            ctx.error(section, key, f"no such file: {absolute_path(value, ctx.base_dir)}; give a "
                      "JSON file or a TOML table")


def validate_config(
    cfg: RunConfig,
    schema: Schema | None = None,
    *,
    for_launch: bool = False,
    hardware: bool | None = None,
) -> tuple[list[FieldError], list[str]]:
    """Validate a RunConfig: (errors, warnings).

    ``hardware`` (default: ``for_launch``) adds ``hardware_checks`` (imports torch): as
    errors when ``for_launch``, else as warnings. Never call with hardware from the TUI.
    """
    sch = schema or active_schema()
    errors, warnings = validate_document(cfg.document(), sch, base_dir=cfg.base_dir(),
                                         for_launch=for_launch, source=cfg.source)
    if hardware if hardware is not None else for_launch:
        problems = hardware_problems(cfg)
        if for_launch:
            errors = errors + problems
        else:
            warnings = warnings + [str(p) for p in problems]
    return errors, warnings


