"""Run settings: schema, TOML load / validate / save.

CONTRACT (other modules rely on these names; the config owner fills in the rest):

- ``SECTIONS = ("model", "data", "training", "launch")``
- ``RunConfig``: the settings the user *set* (``model``, ``data``, ``training``,
  ``launch`` dicts; keys are Hugging Face argument names) plus ``source`` (the
  TOML path or None). ``cfg.get(section, key)`` returns the set value or the
  schema default. Relative paths are resolved against the TOML file's folder by
  ``load_config``; ``resolved()`` returns a copy with absolute paths (what the
  frozen ``config.toml`` of a run dir holds).
- ``ConfigError(errors)``: ``errors`` is a list of ``FieldError``; ``str()`` is one
  line per error, each naming the file, ``[section] key`` and how to fix it.
- ``load_config(path, *, for_launch=False) -> RunConfig`` (raises ConfigError),
  ``validate_config(cfg, *, for_launch=False) -> (errors, warnings)``,
  ``save_config(cfg, path)`` (atomic, only set keys, never tokens),
  ``training_arguments_kwargs(cfg, output_dir) -> dict`` (tool defaults applied).

The rest of the module, in reading order: the schema (``FieldSpec``; hand-written
``[model]``, ``[data]``, ``[launch]``; ``[training]`` introspected from the
installed ``transformers.TrainingArguments``), the schema cache the TUI reads
without importing transformers, validation (pure Python given a schema), TOML
I/O, the tool's defaults for the training code, and ``check_file`` for the CLI.

Only the functions whose docstring says so import transformers or torch, and
they do it inside the function: the TUI imports this module and must stay light.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clmtune.backend.errors import SchemaUnavailable, SettingsError

SECTIONS = ("model", "data", "training", "launch")

KINDS = ("bool", "int", "float", "str", "choice", "path", "list", "dict")

#: Bumped when the JSON layout of the schema changes (part of the cache file name).
SCHEMA_FORMAT = 1


@dataclass(frozen=True)
class FieldError:
    """One problem with one setting (or with the file as a whole when key is empty)."""

    section: str
    key: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        if not self.section:
            # A problem with the file itself: the file name is the subject.
            return f"{where}{self.message}" if where else f"config: {self.message}"
        name = f"[{self.section}] {self.key}" if self.key else f"[{self.section}]"
        return f"{where}{name}: {self.message}"


class ConfigError(SettingsError):
    """Raised when settings are invalid; carries every per-field error (``FieldError``)."""


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One setting: its type, default, help and limits; the TUI form is generated from these.

    ``kind`` is one of KINDS. ``default`` is the value clmtune uses when the key is
    unset (None: unset, i.e. the Hugging Face behaviour). ``accepts`` lists other
    kinds the value may also take (``report_to`` is a list or a single string).
    """

    section: str
    name: str
    kind: str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    common: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    nullable: bool = True
    accepts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["choices"] = list(self.choices) if self.choices is not None else None
        out["accepts"] = list(self.accepts)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldSpec:
        """Inverse of ``to_json``."""
        data = dict(data)
        if data.get("choices") is not None:
            data["choices"] = tuple(data["choices"])
        data["accepts"] = tuple(data.get("accepts") or ())
        return cls(**data)


def _spec(section: str, name: str, kind: str, default: Any = None, help: str = "", **kw: Any):
    return FieldSpec(section, name, kind, default, help, nullable=default is None, **kw)


_MODEL_SPECS = (
    _spec("model", "model_name_or_path", "str", None,
          "Hub id (e.g. `gpt2`) or local folder of the model to fine-tune. "
          "Leave unset to train a new model from scratch with `model_type`.", common=True),
    _spec("model", "model_type", "str", None,
          "Architecture of a new model trained from scratch (e.g. `gpt2`); "
          "only used when `model_name_or_path` is unset."),
    _spec("model", "config_overrides", "str", None,
          "Overrides for a model trained from scratch, as `key=value` pairs separated by commas "
          "(e.g. `n_embd=256,n_layer=4`). Needs `model_type`."),
    _spec("model", "config_name", "str", None,
          "Hub id or local path of a model config to use instead of the model's own."),
    _spec("model", "tokenizer_name", "str", None,
          "Hub id or local folder of a tokenizer to use instead of the model's own. "
          "Required when training from scratch."),
    _spec("model", "cache_dir", "path", None,
          "Folder for files downloaded from the hub (default: the Hugging Face cache)."),
    _spec("model", "model_revision", "str", "main",
          "Branch, tag or commit of the hub model to use."),
    _spec("model", "trust_remote_code", "bool", False,
          "Run custom modelling code from the model's repository. Enable only for repositories "
          "you trust: the code runs on this machine."),
    _spec("model", "dtype", "choice", "auto",
          "Weight dtype when loading: `auto` uses the dtype the checkpoint was saved in.",
          choices=("auto", "bfloat16", "float16", "float32"), common=True),
    _spec("model", "use_fast_tokenizer", "bool", True,
          "Use the fast (Rust `tokenizers`) tokenizer when the model has one."),
    _spec("model", "pad_token", "choice", "eos",
          "What to pad with when the tokenizer has no pad token: `eos` reuses the end-of-text "
          "token; `add` adds a `<pad>` token and resizes the embeddings.",
          choices=("eos", "add")),
)

_DATA_SPECS = (
    _spec("data", "dataset_name", "str", None,
          "Hub id (or local folder) of a dataset to load with `datasets.load_dataset`. "
          "Use either this or `train_file`.", common=True),
    _spec("data", "dataset_config_name", "str", None,
          "Configuration (subset) of `dataset_name`, e.g. `wikitext-2-raw-v1`."),
    _spec("data", "train_file", "path", None,
          "Training data: a .txt (one example per line), .json/.jsonl or .csv file. "
          "Relative paths are relative to this TOML file.", common=True),
    _spec("data", "validation_file", "path", None,
          "Validation data, the same kind of file as `train_file`. When unset, "
          "`validation_split_percentage` of the training data is held out.", common=True),
    _spec("data", "validation_split_percentage", "int", 5,
          "Percent of the training data held out for validation when there is no validation "
          "file or split (1-99).", minimum=1, maximum=99),
    _spec("data", "streaming", "bool", False,
          "Stream the dataset instead of downloading and caching it all; needs `max_steps`."),
    _spec("data", "keep_linebreaks", "bool", True,
          "Keep the line breaks of .txt files in the text."),
    _spec("data", "preprocessing_num_workers", "int", None,
          "Processes used to tokenize and group the data (default: one).", minimum=1),
    _spec("data", "overwrite_cache", "bool", False,
          "Tokenize again instead of reusing the cached tokenized data."),
    _spec("data", "block_size", "int", None,
          "Length of the training sequences in tokens (default: the model's maximum, at most "
          "1024).", minimum=1, common=True),
    _spec("data", "max_train_samples", "int", None,
          "Keep only the first N training sequences (for quick runs and debugging).", minimum=1),
    _spec("data", "max_eval_samples", "int", None,
          "Keep only the first N validation sequences.", minimum=1),
    _spec("data", "text_column", "str", "text",
          "Column holding the text in json/csv data (falls back to the first column)."),
    _spec("data", "packing", "choice", "group",
          "`group` concatenates all texts and cuts them into `block_size` chunks (run_clm); "
          "`line` keeps one example per sequence, padded, and never learns the padding.",
          choices=("group", "line")),
)

_LAUNCH_SPECS = (
    _spec("launch", "nproc_per_node", "int", 1,
          "Training processes on this machine, usually one per GPU; more than 1 runs torchrun.",
          minimum=1, common=True),
    _spec("launch", "nnodes", "int", 1,
          "Number of machines taking part in the run.", minimum=1),
    _spec("launch", "node_rank", "int", 0,
          "Index of this machine among `nnodes` (0 is the main one).", minimum=0),
    _spec("launch", "master_addr", "str", None,
          "Address of the main machine (node_rank 0) for multi-machine runs."),
    _spec("launch", "master_port", "int", None,
          "Free TCP port on the main machine for multi-machine runs (torchrun's default: 29500).",
          minimum=1, maximum=65535),
)

_HAND_SPECS: dict[str, tuple[FieldSpec, ...]] = {
    "model": _MODEL_SPECS,
    "data": _DATA_SPECS,
    "launch": _LAUNCH_SPECS,
}

#: The TrainingArguments fields shown first in the form (the ones most runs touch).
COMMON_TRAINING = (
    "output_dir", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "logging_steps", "eval_strategy",
    "eval_steps", "save_strategy", "save_steps", "save_total_limit", "seed", "bf16", "fp16",
    "gradient_checkpointing", "push_to_hub", "hub_model_id", "report_to",
)

#: Defaults this tool uses instead of Hugging Face's (user values always win).
TOOL_TRAINING_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 10,  # a live loss curve needs points early
    "logging_first_step": True,
    "logging_nan_inf_filter": False,  # NaN losses must reach the dashboard
    "eval_strategy": "steps",  # "no" when there is no validation set
    "save_strategy": "steps",
}

#: TrainingArguments fields that make no sense in the file, with what to use instead.
EXCLUDED_TRAINING: dict[str, str] = {
    "local_rank": "set by torchrun for each process; set [launch] nproc_per_node instead",
    "resume_from_checkpoint": (
        "resume with `clmtune train FILE --resume last` (or a checkpoint path), "
        "or the TUI's resume key, instead"
    ),
    "do_train": "clmtune always trains; remove this key",
    "do_eval": (
        "clmtune evaluates whenever there is a validation set; "
        'set eval_strategy = "no" to skip evaluation'
    ),
    "do_predict": "clmtune has no prediction step; remove this key",
    "parallelism_config": (
        "takes a Python object and cannot be set from a TOML file; use fsdp / fsdp_config or "
        "deepspeed instead"
    ),
}

_TOKEN_MESSAGE = "tokens are read from HF_TOKEN or `hf auth login`, never from the file; remove it"
TOKEN_KEYS = frozenset({
    "hub_token", "token", "use_auth_token", "hf_token", "auth_token", "push_to_hub_token",
    "access_token", "api_token", "hub_api_token",
})
_TOKEN_VALUE = re.compile(r"^hf_[A-Za-z0-9]{20,}$")

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
}

#: Ranges that TrainingArguments does not encode in its types.
_TRAINING_LIMITS: dict[str, dict[str, float]] = {
    "learning_rate": {"exclusive_minimum": 0},
    "per_device_train_batch_size": {"minimum": 1},
    "per_device_eval_batch_size": {"minimum": 1},
    "gradient_accumulation_steps": {"minimum": 1},
    "max_steps": {"minimum": -1},
    "warmup_steps": {"minimum": 0},
    "weight_decay": {"minimum": 0},
    "max_grad_norm": {"minimum": 0},
    "adam_beta1": {"minimum": 0, "exclusive_maximum": 1},
    "adam_beta2": {"minimum": 0, "exclusive_maximum": 1},
    "adam_epsilon": {"exclusive_minimum": 0},
    "label_smoothing_factor": {"minimum": 0, "exclusive_maximum": 1},
    "logging_steps": {"exclusive_minimum": 0},
    "eval_steps": {"exclusive_minimum": 0},
    "save_steps": {"exclusive_minimum": 0},
    "save_total_limit": {"minimum": 1},
    "seed": {"minimum": 0, "maximum": 2**32 - 1},
    "data_seed": {"minimum": 0, "maximum": 2**32 - 1},
    "dataloader_num_workers": {"minimum": 0},
    "dataloader_prefetch_factor": {"minimum": 1},
    "eval_accumulation_steps": {"minimum": 1},
    "torch_empty_cache_steps": {"minimum": 1},
    "ddp_timeout": {"minimum": 1},
    "eval_delay": {"minimum": 0},
    "neftune_noise_alpha": {"exclusive_minimum": 0},
}

#: Step counts that may also be a ratio of the total steps when below 1.
_STEPS_OR_RATIO = ("warmup_steps", "logging_steps", "eval_steps", "save_steps")

# Fields holding a local path, resolved against the TOML file's folder.
_PATH_FIELDS = {("model", "cache_dir"), ("data", "train_file"), ("data", "validation_file"),
                ("training", "output_dir")}
# Fields holding a hub id *or* a local path (resolved only when the value looks like a path).
_REF_FIELDS = {("model", "model_name_or_path"): ("config.json",),
               ("model", "config_name"): ("config.json",),
               ("model", "tokenizer_name"): ("tokenizer_config.json", "tokenizer.json",
                                             "config.json")}
# TrainingArguments fields that take a dict or a path to a JSON file.
_JSON_PATH_FIELDS = {("training", "deepspeed"), ("training", "fsdp_config"),
                     ("training", "accelerator_config")}

_SCHEMA_CACHE: dict[str, dict[str, FieldSpec]] | None = None


def hand_written_schema() -> dict[str, dict[str, FieldSpec]]:
    """The ``[model]``, ``[data]`` and ``[launch]`` sections (no imports needed)."""
    return {s: {f.name: f for f in specs} for s, specs in _HAND_SPECS.items()}


def _first_sentences(text: str, count: int = 2, limit: int = 400) -> str:
    text = " ".join(str(text).split()).replace("%%", "%")
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    out = " ".join(parts[:count])
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def _jsonable(value: Any) -> Any:
    import enum

    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _kind_from_hint(hint: Any) -> tuple[str | None, tuple[str, ...], bool, tuple[str, ...] | None]:
    """(kind, also-accepted kinds, nullable, choices) for a TrainingArguments type hint."""
    import enum
    import typing

    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _union_type()) else ()
    members = list(args) if args else [hint]
    nullable = type(None) in members
    kinds: list[str] = []
    choices: tuple[str, ...] | None = None
    for member in members:
        if member is type(None):
            continue
        origin = typing.get_origin(member)
        if origin is typing.Literal:
            lits = typing.get_args(member)
            kinds.append("bool" if all(isinstance(x, bool) for x in lits) else "str")
        elif origin in (list, tuple) or member in (list, tuple):
            kinds.append("list")
        elif origin is dict or member is dict:
            kinds.append("dict")
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            kinds.append("choice")
            choices = tuple(str(e.value) for e in member)
        elif member is bool:
            kinds.append("bool")
        elif member is int:
            kinds.append("int")
        elif member is float:
            kinds.append("float")
        elif member is str:
            kinds.append("str")
        else:
            kinds.append("object")
    if "object" in kinds or not kinds:
        return None, (), nullable, None
    for primary in ("choice", "list", "dict", "float", "int", "str", "bool"):
        if primary in kinds:
            break
    accepts = tuple(k for k in dict.fromkeys(kinds) if k != primary and not
                    (primary == "choice" and k == "str"))
    return primary, accepts, nullable, choices


def _union_type() -> Any:
    import types

    return getattr(types, "UnionType", None)


def _training_specs() -> dict[str, FieldSpec]:
    # Imported here, not at module top: transformers takes seconds to import and the TUI
    # imports this module; the TUI gets the same schema from the JSON cache instead.
    import typing

    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    common = set(COMMON_TRAINING)
    if "activation_checkpointing" in names:
        # gradient_checkpointing is a deprecated alias there: show the new name first.
        common = (common - {"gradient_checkpointing"}) | {"activation_checkpointing"}
    specs: dict[str, FieldSpec] = {}
    for f in dataclasses.fields(TrainingArguments):
        if not f.init or f.name in EXCLUDED_TRAINING or f.name in TOKEN_KEYS:
            continue
        kind, accepts, nullable, choices = _kind_from_hint(hints[f.name])
        if kind is None:
            continue
        if "choices" in f.metadata and kind == "str":
            kind, choices = "choice", tuple(str(c) for c in f.metadata["choices"])
        if "const" in f.metadata and kind != "bool" and "bool" not in accepts:
            accepts = (*accepts, "bool")  # `fsdp = true` style switches
        if f.name == "output_dir":
            kind = "path"
        if f.default is not dataclasses.MISSING:
            hf_default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            hf_default = f.default_factory()
        else:
            hf_default = None
        hf_default = _jsonable(hf_default)
        help_text = _first_sentences(f.metadata.get("help", ""))
        default = hf_default
        if f.name in TOOL_TRAINING_DEFAULTS:
            default = TOOL_TRAINING_DEFAULTS[f.name]
            help_text += f" (clmtune default: {json.dumps(default)}; Hugging Face: "
            help_text += f"{json.dumps(hf_default)})"
        specs[f.name] = FieldSpec(
            "training", f.name, kind, default, help_text, choices=choices,
            common=f.name in common, nullable=nullable or default is None, accepts=accepts,
            **_TRAINING_LIMITS.get(f.name, {}),
        )
    return specs


def _model_type_choices() -> tuple[str, ...]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return tuple(sorted(CONFIG_MAPPING_NAMES))


def schema() -> dict[str, dict[str, FieldSpec]]:
    """The full schema, by section, in form order. Imports transformers (seconds).

    ``[training]`` is every init field of the installed ``TrainingArguments``;
    ``[model] model_type`` gets the installed architectures as choices. The
    result is cached for the process; do not mutate it.
    """
    global _SCHEMA_CACHE
    if _SCHEMA_CACHE is not None:
        return _SCHEMA_CACHE
    result = hand_written_schema()
    model_type = result["model"]["model_type"]
    result["model"]["model_type"] = dataclasses.replace(
        model_type, kind="choice", choices=_model_type_choices())
    result["training"] = _training_specs()
    _SCHEMA_CACHE = {s: result[s] for s in SECTIONS}
    return _SCHEMA_CACHE


def schema_to_json(sch: dict[str, dict[str, FieldSpec]]) -> str:
    """The schema as JSON text (what the cache file holds)."""
    return json.dumps({
        "format": SCHEMA_FORMAT,
        "transformers": _transformers_version(),
        "sections": {s: [spec.to_json() for spec in fields.values()] for s, fields in sch.items()},
    })


def schema_from_json(data: str | dict[str, Any]) -> dict[str, dict[str, FieldSpec]]:
    """Inverse of ``schema_to_json`` (accepts the text or the parsed dict)."""
    if isinstance(data, str):
        data = json.loads(data)
    if data.get("format") != SCHEMA_FORMAT:
        raise ValueError(f"schema format {data.get('format')!r}, expected {SCHEMA_FORMAT}")
    return {s: {d["name"]: FieldSpec.from_json(d) for d in fields}
            for s, fields in data["sections"].items()}


def _transformers_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "missing"


def schema_cache_path() -> Path:
    """Where ``load_schema_for_ui`` keeps the schema of the installed transformers."""
    root = Path(os.environ.get("CLMTUNE_CACHE") or "~/.cache/clmtune").expanduser()
    # This file's hash is in the name so an upgraded clmtune never reads a stale schema.
    fingerprint = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:10]
    return root / f"schema-transformers-{_transformers_version()}-{fingerprint}.json"


def load_schema_for_ui() -> dict[str, dict[str, FieldSpec]]:
    """The schema without importing transformers in this process (what the TUI calls).

    Reads the JSON cache; when it is missing, runs ``python -m clmtune.backend.config
    --dump-schema`` once (a few seconds: call it from a worker thread) and writes
    the cache atomically. Raises SchemaUnavailable when that fails.
    """
    global _SCHEMA_CACHE
    if _SCHEMA_CACHE is not None:
        return _SCHEMA_CACHE
    sch = _read_schema_cache()
    if sch is None:
        text = _dump_schema_in_subprocess()
        sch = schema_from_json(text)
        _write_schema_cache(text)
    _SCHEMA_CACHE = sch
    return sch


def _read_schema_cache() -> dict[str, dict[str, FieldSpec]] | None:
    try:
        return schema_from_json(schema_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_schema_cache(text: str) -> None:
    path = schema_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError:
        pass  # the cache only saves time; the schema itself is fine


def _dump_schema_in_subprocess() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "clmtune.backend.config", "--dump-schema"],
        capture_output=True, text=True, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SchemaUnavailable(f"could not read the TrainingArguments schema: {last}")
    return lines[-1]


def active_schema() -> dict[str, dict[str, FieldSpec]]:
    """The schema, as cheaply as this process allows.

    Already loaded → that; transformers already imported → ``schema()``; a cache file
    → read it (milliseconds); inside the TUI (textual loaded) → ``load_schema_for_ui()``;
    otherwise (CLI, worker: they import transformers anyway) → ``schema()`` in-process,
    and the cache is written for next time.
    """
    global _SCHEMA_CACHE
    if _SCHEMA_CACHE is not None:
        return _SCHEMA_CACHE
    if "transformers" in sys.modules:
        return schema()
    cached = _read_schema_cache()
    if cached is not None:
        _SCHEMA_CACHE = cached
        return cached
    if "textual" in sys.modules:
        return load_schema_for_ui()
    try:
        sch = schema()
    except ImportError as exc:
        raise SchemaUnavailable(f"could not import transformers: {exc}") from None
    _write_schema_cache(schema_to_json(sch))
    return sch


def reference_markdown(sch: dict[str, dict[str, FieldSpec]] | None = None) -> str:
    """A Markdown reference of every setting (for the README), common ones first."""
    sch = sch or active_schema()
    lines: list[str] = []
    for section in SECTIONS:
        lines += [f"### [{section}]", "", "| key | type | default | help |", "|---|---|---|---|"]
        specs = sorted(sch[section].values(), key=lambda s: not s.common)
        for s in specs:
            few = s.choices and len(s.choices) <= 12
            kind = f"one of {', '.join(s.choices)}" if few else s.kind
            default = "" if s.default is None else f"`{json.dumps(s.default)}`"
            lines.append(f"| `{s.name}` | {kind} | {default} | {s.help.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# RunConfig
# ---------------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """The settings a user set, by section. Unset keys are absent (TOML has no null).

    ``warnings`` holds what ``load_config`` found worth telling (not part of equality).
    """

    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    warnings: list[str] = field(default_factory=list, compare=False)

    def section(self, name: str) -> dict[str, Any]:
        if name not in SECTIONS:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, section: str, key: str) -> Any:
        """The value set for ``[section] key``, else the schema default (KeyError if unknown).

        ``[training]`` defaults come from ``active_schema()`` (no transformers import in a
        process that has not imported it).
        """
        values = self.section(section)
        if values.get(key) is not None:
            return values[key]
        specs = hand_written_schema() if section != "training" else active_schema()
        if key not in specs[section]:
            raise KeyError(f"[{section}] {key}")
        return specs[section][key].default

    def base_dir(self) -> Path:
        """The folder relative paths are relative to: the TOML's folder, else the cwd."""
        return (self.source.parent if self.source else Path.cwd()).absolute()

    def resolved(self) -> RunConfig:
        """A copy with every local path absolute (relative ones taken from ``base_dir()``)."""
        base = self.base_dir()
        out = RunConfig(source=self.source, warnings=list(self.warnings))
        for section in SECTIONS:
            values = dict(self.section(section))
            for key, value in values.items():
                if isinstance(value, Path):
                    value = str(value)
                if not isinstance(value, str) or not value:
                    values[key] = value
                    continue
                if (section, key) in _PATH_FIELDS or (
                    (section, key) in _JSON_PATH_FIELDS and not value.lstrip().startswith("{")
                ) or (
                    ((section, key) in _REF_FIELDS or (section, key) == ("data", "dataset_name"))
                    and looks_like_path(value, base)
                ):
                    value = str(_absolute(value, base))
                values[key] = value
            setattr(out, section, values)
        return out


def _absolute(value: str | Path, base: Path) -> Path:
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = base / p
    return Path(os.path.normpath(p))


def _probe(path: Path, test: str = "exists") -> bool:
    """``path.exists()`` / ``is_file()`` / ``is_dir()``, False for a name the OS refuses
    (too long, NUL byte): half-typed values in the TUI must never raise."""
    try:
        return bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


def looks_like_path(value: str, base_dir: Path | None = None) -> bool:
    """Whether a model/tokenizer/dataset reference means a local path rather than a hub id.

    A path starts with ``.``, ``/`` or ``~``, has more than the one slash of ``org/name``,
    or exists (fully, or its first folder) relative to ``base_dir``.
    """
    if value.startswith((".", "/", "~")) or value.count("/") > 1:
        return True
    if os.sep != "/" and os.sep in value:
        return True
    base = base_dir or Path.cwd()
    try:
        if (base / value).exists():
            return True
        return "/" in value and (base / value.split("/", 1)[0]).is_dir()
    except (OSError, ValueError):  # a name too long or with a NUL byte is no hub id either
        return True


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

_KIND_WORDS = {
    "bool": "true or false", "int": "a whole number", "float": "a number",
    "str": "a string in quotes", "choice": "one of the listed strings", "path": "a path string",
    "list": "an array of strings", "dict": "a table",
}
DATA_EXTENSIONS = {"txt": "text", "json": "json", "jsonl": "json", "csv": "csv"}
_DECODE_BYTES = 2 * 1024 * 1024  # enough to catch a binary or mis-encoded file, fast per keystroke
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set to a true value."""
    return any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@dataclass
class _Ctx:
    schema: dict[str, dict[str, FieldSpec]]
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

    def get(self, section: str, key: str) -> Any:
        value = self.values.get(section, {}).get(key)
        if value is not None:
            return value
        spec = self.schema.get(section, {}).get(key)
        return spec.default if spec else None

    def is_set(self, section: str, key: str) -> bool:
        return self.values.get(section, {}).get(key) is not None


def validate_document(
    doc: dict[str, Any],
    schema: dict[str, dict[str, FieldSpec]],
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
    _check_cross_fields(ctx)
    _check_data_files(ctx)
    _check_references(ctx)
    _check_other_paths(ctx)
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


def _home_section(sch: dict[str, dict[str, FieldSpec]], key: str) -> str | None:
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


def _unknown_key_message(sch: dict[str, dict[str, FieldSpec]], section: str, key: str) -> str:
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
    close = difflib.get_close_matches(key, list(sch.get(section, {})), n=1)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key: not a setting of [{section}] (`clmtune check` lists none by this name)"


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
    if spec.name in _STEPS_OR_RATIO and value > 1 and not float(value).is_integer():
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
            elif _holds_token(value):
                ctx.error(top, key, "looks like a Hugging Face access token; " + _TOKEN_MESSAGE)
                ctx.values.get(top, {}).pop(key, None)


def _holds_token(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_TOKEN_VALUE.match(value.strip()))
    if isinstance(value, list):
        return any(_holds_token(v) for v in value)
    if isinstance(value, dict):
        return any(k in TOKEN_KEYS or _holds_token(v) for k, v in value.items())
    return False


def _check_cross_fields(ctx: _Ctx) -> None:
    _check_model_choice(ctx)
    _check_data_choice(ctx)
    _check_schedule(ctx)
    _check_launch(ctx)


def _check_model_choice(ctx: _Ctx) -> None:
    has_path = ctx.is_set("model", "model_name_or_path")
    has_type = ctx.is_set("model", "model_type")
    overrides = ctx.values.get("model", {}).get("config_overrides")
    broken = any(e.section == "model" and e.key in ("model_name_or_path", "model_type")
                 for e in ctx.errors)
    if not has_path and not has_type and not broken and overrides is None:
        ctx.error("model", "model_name_or_path",
                  "not set: give a hub id or local model folder, or set model_type to train "
                  "a new model from scratch")
    if overrides is not None:
        if has_path or ctx.is_set("model", "config_name"):
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
    if has_type and not has_path and not ctx.is_set("model", "tokenizer_name"):
        ctx.error("model", "tokenizer_name",
                  "a model trained from scratch needs an existing tokenizer: set tokenizer_name "
                  "to a hub id or local tokenizer folder")
    if has_type and has_path:
        ctx.warn("model", "model_type",
                 "ignored because model_name_or_path is set (the model's own config decides)")


def _check_data_choice(ctx: _Ctx) -> None:
    if any(e.section == "data" and e.key in ("dataset_name", "train_file") for e in ctx.errors):
        return
    has_dataset = ctx.is_set("data", "dataset_name")
    has_train = ctx.is_set("data", "train_file")
    if not has_dataset and not has_train:
        ctx.error("data", "train_file",
                  "no training data: set train_file (.txt, .json, .jsonl or .csv) or dataset_name")
    elif has_dataset and has_train:
        ctx.error("data", "dataset_name",
                  "set either dataset_name or train_file, not both; remove one of them")
    if has_dataset and ctx.is_set("data", "validation_file") and not has_train:
        ctx.error("data", "validation_file",
                  "only used with train_file; remove it (the dataset's validation split is used)")
    if ctx.is_set("data", "dataset_config_name") and not has_dataset:
        ctx.warn("data", "dataset_config_name", "ignored without dataset_name")
    max_steps = ctx.get("training", "max_steps")
    if ctx.get("data", "streaming") and isinstance(max_steps, int) and max_steps <= 0:
        ctx.error("training", "max_steps",
                  "streaming = true needs max_steps > 0 (a streamed dataset has no length)")


def _check_schedule(ctx: _Ctx) -> None:
    get = ctx.get
    epochs, max_steps = get("training", "num_train_epochs"), get("training", "max_steps")
    if isinstance(epochs, (int, float)) and isinstance(max_steps, int) and epochs <= 0 \
            and max_steps <= 0:
        ctx.error("training", "num_train_epochs",
                  f"must be > 0 unless max_steps > 0 (got {_num(epochs)}); set a number of "
                  "epochs or max_steps")
    if get("training", "fp16") and get("training", "bf16"):
        ctx.error("training", "fp16", "fp16 and bf16 cannot both be true; keep one of them")
    if get("training", "fp16_full_eval") and get("training", "bf16_full_eval"):
        ctx.error("training", "fp16_full_eval",
                  "fp16_full_eval and bf16_full_eval cannot both be true; keep one of them")
    eval_strategy = get("training", "eval_strategy")
    save_strategy = get("training", "save_strategy")
    if get("training", "load_best_model_at_end") and save_strategy != "best" \
            and eval_strategy != save_strategy:
        ctx.error("training", "load_best_model_at_end",
                  f"needs save_strategy equal to eval_strategy (got '{save_strategy}' and "
                  f"'{eval_strategy}'), or save_strategy = \"best\"")
    elif get("training", "load_best_model_at_end") and eval_strategy == "steps" \
            and ctx.is_set("training", "eval_steps"):
        save_steps, eval_steps = get("training", "save_steps"), get("training", "eval_steps")
        if save_steps >= 1 and eval_steps >= 1 and save_steps % eval_steps:
            ctx.error("training", "save_steps",
                      f"load_best_model_at_end needs save_steps ({_num(save_steps)}) to be a "
                      f"multiple of eval_steps ({_num(eval_steps)})")
    if get("training", "lr_scheduler_type") in ("reduce_lr_on_plateau", "greedy") \
            and eval_strategy == "no":
        ctx.error("training", "lr_scheduler_type",
                  f"'{get('training', 'lr_scheduler_type')}' needs evaluation; set eval_strategy "
                  "to \"steps\" or \"epoch\"")
    if ctx.is_set("training", "dataloader_prefetch_factor") \
            and not get("training", "dataloader_num_workers"):
        ctx.error("training", "dataloader_prefetch_factor",
                  "only works with dataloader_num_workers > 0; set that too or remove this")
    if ctx.values.get("training", {}).get("logging_nan_inf_filter"):
        ctx.warn("training", "logging_nan_inf_filter",
                 "ignored: clmtune always reports NaN/Inf losses so a diverging run is visible")
    if "gradient_checkpointing" in ctx.values.get("training", {}) \
            and "activation_checkpointing" in ctx.schema.get("training", {}):
        ctx.warn("training", "gradient_checkpointing",
                 "deprecated alias in this transformers; prefer activation_checkpointing")
    if get("training", "push_to_hub") and hub_offline():
        ctx.soft("training", "push_to_hub",
                 "the hub is offline (HF_HUB_OFFLINE); unset it or set push_to_hub = false")


def _check_launch(ctx: _Ctx) -> None:
    nnodes, rank = ctx.get("launch", "nnodes"), ctx.get("launch", "node_rank")
    if isinstance(nnodes, int) and isinstance(rank, int) and rank >= nnodes:
        ctx.error("launch", "node_rank", f"must be below nnodes ({nnodes}), got {rank}")
    if isinstance(nnodes, int) and nnodes > 1 and not ctx.is_set("launch", "master_addr"):
        ctx.soft("launch", "master_addr",
                 "a multi-machine run needs the address of the node_rank 0 machine")


def _check_data_files(ctx: _Ctx) -> None:
    families: dict[str, str] = {}
    for key in ("train_file", "validation_file"):
        value = ctx.values.get("data", {}).get(key)
        if value is None:
            continue
        family = _check_data_file(ctx, key, str(value))
        if family:
            families[key] = family
    if len(families) == 2 and families["train_file"] != families["validation_file"]:
        train_ext = Path(ctx.values["data"]["train_file"]).suffix
        val_ext = Path(ctx.values["data"]["validation_file"]).suffix
        ctx.error("data", "validation_file",
                  f"is a {val_ext} file but train_file is {train_ext}; use the same kind of file "
                  "(txt, json/jsonl or csv) for both")


def _check_data_file(ctx: _Ctx, key: str, value: str) -> str | None:
    """Checks one data file; returns its family (text/json/csv) when it can be used."""
    ext = Path(value).suffix.lower().lstrip(".")
    if ext not in DATA_EXTENSIONS:
        shown = f".{ext} files are" if ext else "files without an extension are"
        ctx.error("data", key, f"{shown} not supported ('{value}'); use a .txt, .json, .jsonl "
                  "or .csv file")
        return None
    path = _absolute(value, ctx.base_dir)
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:
        ctx.error("data", key, f"unusable path '{value}': {exc}")
        return None
    if not exists:
        ctx.error("data", key, f"no such file: {path} (relative paths start at the TOML "
                  "file's folder)")
        return None
    if path.is_dir():
        ctx.error("data", key, f"{path} is a folder; give a file")
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(_DECODE_BYTES)
    except OSError as exc:
        ctx.error("data", key, f"cannot read {path}: {exc.strerror or exc}")
        return None
    if not head:
        ctx.error("data", key, f"{path} is empty; give a file with training text")
        return None
    try:
        # final=False: the read may stop inside a multi-byte character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        ctx.error("data", key, f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
                  "convert it, e.g. with `iconv -t UTF-8`")
        return None
    return DATA_EXTENSIONS[ext]


def _check_references(ctx: _Ctx) -> None:
    cache_dir = ctx.values.get("model", {}).get("cache_dir")
    cache = str(_absolute(cache_dir, ctx.base_dir)) if cache_dir else None
    revision = ctx.values.get("model", {}).get("model_revision")
    for (section, key), files in _REF_FIELDS.items():
        value = ctx.values.get(section, {}).get(key)
        if value is None:
            continue
        if looks_like_path(value, ctx.base_dir):
            path = _absolute(value, ctx.base_dir)
            if not _probe(path):
                ctx.error(section, key, f"local path {path} does not exist (a hub id looks like "
                          "`name` or `org/name`)")
            elif key == "model_name_or_path" and _probe(path, "is_dir") \
                    and not _probe(path / "config.json", "is_file"):
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
    dataset = ctx.values.get("data", {}).get("dataset_name")
    if dataset is not None:
        if looks_like_path(dataset, ctx.base_dir):
            if not _probe(_absolute(dataset, ctx.base_dir)):
                ctx.error("data", "dataset_name",
                          f"local path {_absolute(dataset, ctx.base_dir)} does not exist")
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


def _check_other_paths(ctx: _Ctx) -> None:
    out = ctx.values.get("training", {}).get("output_dir")
    if out is not None and _probe(_absolute(out, ctx.base_dir), "is_file"):
        ctx.error("training", "output_dir", f"{_absolute(out, ctx.base_dir)} is a file; give a "
                  "folder")
    cache_dir = ctx.values.get("model", {}).get("cache_dir")
    if cache_dir is not None and _probe(_absolute(cache_dir, ctx.base_dir), "is_file"):
        ctx.error("model", "cache_dir", f"{_absolute(cache_dir, ctx.base_dir)} is a file; give "
                  "a folder")
    for section, key in sorted(_JSON_PATH_FIELDS):
        value = ctx.values.get(section, {}).get(key)
        if not isinstance(value, str):
            continue
        if value.lstrip().startswith("{"):
            try:
                json.loads(value)
            except ValueError as exc:
                ctx.error(section, key, f"is not valid JSON ({exc}); write a TOML table instead")
        elif not _probe(_absolute(value, ctx.base_dir), "is_file"):
            ctx.error(section, key, f"no such file: {_absolute(value, ctx.base_dir)}; give a "
                      "JSON file or a TOML table")


def hardware_checks(cfg: RunConfig) -> list[str]:
    """Problems with the requested precision / process count on this machine's hardware.

    Imports torch (seconds) only when a setting needs it. ``clmtune check`` shows them as
    warnings; a launch (``for_launch=True``) refuses them.
    """
    return [str(e) for e in _hardware_problems(cfg)]


def _hardware_problems(cfg: RunConfig) -> list[FieldError]:
    file = str(cfg.source) if cfg.source else None
    training = cfg.training
    wanted = [k for k in ("bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval")
              if training.get(k) is True]
    nproc = cfg.launch.get("nproc_per_node") or 1
    if not wanted and nproc <= 1:
        return []
    import torch  # lazy: seconds to import, and the TUI never may

    problems: list[FieldError] = []
    cuda = torch.cuda.is_available()
    use_cpu = bool(training.get("use_cpu"))
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    for key in wanted:
        message = None
        if key.startswith("bf16") and use_cpu:
            continue  # CPU bfloat16 autocast is supported with use_cpu = true
        if not cuda or use_cpu:
            if mps and not use_cpu and key != "tf32":
                continue
            fix = " (or use_cpu = true for CPU bfloat16)" if key.startswith("bf16") else ""
            message = f"{key} = true needs a CUDA GPU and none is visible here; set {key} = " \
                      f"false{fix}"
        elif key.startswith("bf16") and not torch.cuda.is_bf16_supported():
            message = f"{key} = true: this GPU has no bfloat16 support (Ampere or newer needed); " \
                      "use fp16 = true instead"
        elif key == "tf32" and torch.cuda.get_device_capability(0) < (8, 0):
            message = "tf32 = true needs an Ampere or newer GPU; set tf32 = false"
        if message:
            problems.append(FieldError("training", key, message, file))
    if cuda and not use_cpu and nproc > torch.cuda.device_count():
        problems.append(FieldError(
            "launch", "nproc_per_node",
            f"asks for {nproc} processes but {torch.cuda.device_count()} CUDA device(s) are "
            "visible; use at most one process per GPU", file))
    return problems


def validate_config(
    cfg: RunConfig,
    schema: dict[str, dict[str, FieldSpec]] | None = None,
    *,
    for_launch: bool = False,
    hardware: bool | None = None,
) -> tuple[list[FieldError], list[str]]:
    """Validate a RunConfig: (errors, warnings).

    ``hardware`` (default: ``for_launch``) adds ``hardware_checks`` (imports torch): as
    errors when ``for_launch``, else as warnings. Never call with hardware from the TUI.
    """
    sch = schema or active_schema()
    errors, warnings = validate_document(_document(cfg), sch, base_dir=cfg.base_dir(),
                                         for_launch=for_launch, source=cfg.source)
    if hardware if hardware is not None else for_launch:
        problems = _hardware_problems(cfg)
        if for_launch:
            errors = errors + problems
        else:
            warnings = warnings + [str(p) for p in problems]
    return errors, warnings


# ---------------------------------------------------------------------------------------------
# TOML I/O
# ---------------------------------------------------------------------------------------------


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; every failure is a ConfigError with one line naming the file."""
    path = Path(path)
    file = str(path)

    def fail(message: str, line: int | None = None) -> ConfigError:
        return ConfigError([FieldError("", "", message, file, line)])

    if path.is_dir():
        raise fail("is a folder, not a TOML file; give the path of a .toml file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file; create one with `clmtune init FILE`") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
    tomllib = _toml_module()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            message = message[: match.start()].strip() + f" (column {match.group(2)})"
            raise fail(f"invalid TOML: {message}", int(match.group(1))) from None
        raise fail(f"invalid TOML: {message}") from None


def load_config(path: str | Path, *, for_launch: bool = False,
                resolve_paths: bool = True, hardware: bool | None = None) -> RunConfig:
    """Read and validate a TOML file; raises ConfigError with every problem found.

    Relative paths are taken from the TOML's folder; with ``resolve_paths`` (the default)
    the returned config holds them absolute, ready for training. An editor that saves
    the file back passes ``resolve_paths=False`` to keep the user's relative paths.
    ``for_launch`` makes hardware problems errors. Warnings land in ``cfg.warnings``.
    ``hardware`` (default: ``for_launch``) runs those checks, which import torch: the
    TUI passes False and lets the worker report them.
    """
    path = Path(path)
    doc = read_toml(path)
    source = path.absolute()
    errors, warnings = validate_document(doc, active_schema(), base_dir=source.parent,
                                         for_launch=for_launch, source=path)
    cfg = RunConfig(
        **{s: dict(doc.get(s) or {}) if isinstance(doc.get(s), dict) else {} for s in SECTIONS},
        source=source,
    )
    if not errors and for_launch and (hardware if hardware is not None else True):
        errors = [dataclasses.replace(p, file=str(path)) for p in _hardware_problems(cfg)]
    if errors:
        raise ConfigError(errors)
    cfg.warnings = warnings
    return cfg.resolved() if resolve_paths else cfg


def _document(cfg: RunConfig, *, strip_secrets: bool = False) -> dict[str, dict[str, Any]]:
    doc: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        values = {}
        for key, value in cfg.section(section).items():
            if value is None:
                continue
            if strip_secrets and (key in TOKEN_KEYS or _holds_token(value)):
                continue
            values[key] = str(value) if isinstance(value, Path) else value
        if values:
            doc[section] = values
    return doc


_HEADER = ("# clmtune run settings. Keys are Hugging Face argument names; only set keys are "
           "written.\n# Validate with `clmtune check FILE`; train with `clmtune train FILE`.\n")


def dumps_config(cfg: RunConfig) -> str:
    """The TOML text for a config: set keys only, sections in order, never tokens."""
    import tomli_w

    doc = _document(cfg, strip_secrets=True)
    return _HEADER + "\n" + tomli_w.dumps(doc)


def save_config(cfg: RunConfig, path: str | Path, *, force: bool = False) -> None:
    """Write ``cfg`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    Refuses (ConfigError) to write a config that does not validate, so a good file is
    never replaced by a broken one. ``force=True`` is for the TUI's draft files only:
    it skips validation (tokens are still never written). Relative paths stay relative
    to the file's folder; when saving to another folder they are made absolute.
    """
    path = Path(path)
    target_dir = path.absolute().parent
    if cfg.source is not None and cfg.base_dir() != target_dir:
        cfg = cfg.resolved()
    if not force:
        errors, _ = validate_document(_document(cfg), active_schema(), base_dir=target_dir,
                                      source=path)
        if errors:
            raise ConfigError(errors)
    try:
        atomic_write_text(path, dumps_config(cfg))
    except OSError as exc:
        raise ConfigError([FieldError("", "", f"cannot write: {exc.strerror or exc}",
                                      str(path))]) from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text so readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.absolute().parent, prefix=f".{path.name}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# What the training code reads
# ---------------------------------------------------------------------------------------------


def training_arguments_kwargs(cfg: RunConfig, output_dir: str | Path, *,
                              has_validation: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``TrainingArguments(**kwargs)``: the user's values over this
    tool's defaults, plus what the tool decides: ``output_dir`` (always the given run dir,
    whatever ``[training] output_dir`` says), do_train, do_eval, NaN/Inf logging.

    Raises ConfigError when evaluation is requested but there is no validation set.
    """
    user = dict(cfg.resolved().training)
    kwargs: dict[str, Any] = {
        "report_to": TOOL_TRAINING_DEFAULTS["report_to"],
        "logging_steps": TOOL_TRAINING_DEFAULTS["logging_steps"],
        "logging_first_step": TOOL_TRAINING_DEFAULTS["logging_first_step"],
        "eval_strategy": "steps" if has_validation else "no",
        "save_strategy": TOOL_TRAINING_DEFAULTS["save_strategy"],
    }
    kwargs.update({k: v for k, v in user.items() if v is not None})
    if not has_validation and kwargs["eval_strategy"] != "no":
        raise ConfigError([FieldError(
            "training", "eval_strategy",
            f"'{kwargs['eval_strategy']}' needs a validation set; add validation_file or set "
            'eval_strategy = "no"', str(cfg.source) if cfg.source else None)])
    if kwargs["eval_strategy"] == "steps" and "eval_steps" not in user:
        # Evaluate when a checkpoint is written, not at every log (HF's fallback).
        kwargs["eval_steps"] = kwargs.get("save_steps", 500)
    kwargs.update(
        output_dir=str(output_dir),
        do_train=True,
        do_eval=has_validation,
        logging_nan_inf_filter=False,
    )
    return kwargs


@dataclass(frozen=True)
class ModelSettings:
    """``[model]`` with defaults filled in and local paths absolute."""

    model_name_or_path: str | None
    model_type: str | None
    config_overrides: str | None
    config_name: str | None
    tokenizer_name: str | None
    cache_dir: str | None
    model_revision: str
    trust_remote_code: bool
    dtype: str
    use_fast_tokenizer: bool
    pad_token: str

    def config_overrides_dict(self) -> dict[str, str]:
        """``config_overrides`` as a dict of strings (the model code parses the values)."""
        if not self.config_overrides:
            return {}
        pairs = (p.split("=", 1) for p in self.config_overrides.split(",") if p.strip())
        return {k.strip(): v.strip() for k, v in pairs}


@dataclass(frozen=True)
class DataSettings:
    """``[data]`` with defaults filled in and local paths absolute."""

    dataset_name: str | None
    dataset_config_name: str | None
    train_file: str | None
    validation_file: str | None
    validation_split_percentage: int
    streaming: bool
    keep_linebreaks: bool
    preprocessing_num_workers: int | None
    overwrite_cache: bool
    block_size: int | None
    max_train_samples: int | None
    max_eval_samples: int | None
    text_column: str
    packing: str


@dataclass(frozen=True)
class LaunchSettings:
    """``[launch]`` with defaults filled in."""

    nproc_per_node: int
    nnodes: int
    node_rank: int
    master_addr: str | None
    master_port: int | None

    @property
    def distributed(self) -> bool:
        """True when the run needs torchrun."""
        return self.nproc_per_node > 1 or self.nnodes > 1


def _settings(cls: type, cfg: RunConfig, section: str) -> Any:
    resolved = cfg.resolved()
    specs = _HAND_SPECS[section]
    values = {s.name: resolved.section(section).get(s.name, s.default) for s in specs}
    return cls(**values)


def model_settings(cfg: RunConfig) -> ModelSettings:
    """The ``[model]`` settings the model loader needs, defaults filled in."""
    return _settings(ModelSettings, cfg, "model")


def data_settings(cfg: RunConfig) -> DataSettings:
    """The ``[data]`` settings the data pipeline needs, defaults filled in."""
    return _settings(DataSettings, cfg, "data")


def launch_settings(cfg: RunConfig) -> LaunchSettings:
    """The ``[launch]`` settings, defaults filled in."""
    return _settings(LaunchSettings, cfg, "launch")


def torchrun_argv(cfg: RunConfig, run_dir: str | Path,
                  launcher: list[str] | None = None) -> list[str]:
    """The torchrun command that starts the worker on this node (no shell).

    ``launcher`` defaults to ``["torchrun"]``; a launcher that must use this venv passes
    ``[sys.executable, "-m", "torch.distributed.run"]``.
    """
    launch = launch_settings(cfg)
    argv = list(launcher or ["torchrun"]) + [f"--nproc_per_node={launch.nproc_per_node}"]
    if launch.nnodes > 1 or launch.master_addr or launch.master_port:
        argv += [f"--nnodes={launch.nnodes}", f"--node_rank={launch.node_rank}",
                 f"--master_addr={launch.master_addr or '127.0.0.1'}",
                 f"--master_port={launch.master_port or 29500}"]
    else:
        argv.append("--standalone")  # one machine: torchrun picks a free port itself
    return argv + ["-m", "clmtune.backend.worker", str(run_dir)]


def command_line(cfg: RunConfig, config_path: str | Path,
                 run_dir: str | Path | None = None) -> str:
    """The equivalent shell command(s), for the TUI to show.

    First line: ``clmtune train FILE [--run-dir DIR]``; a second line with the torchrun
    command when the run uses more than one process.
    """
    line = f"clmtune train {shlex.quote(str(config_path))}"
    if run_dir is not None:
        line += f" --run-dir {shlex.quote(str(run_dir))}"
    lines = [line]
    if launch_settings(cfg).distributed:
        lines.append(shlex.join(torchrun_argv(cfg, run_dir if run_dir is not None else "RUN_DIR")))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI entry points
# ---------------------------------------------------------------------------------------------


def summary_line(cfg: RunConfig) -> str:
    """One line describing a valid config (model, data, schedule, processes)."""
    model = cfg.model.get("model_name_or_path") or f"new {cfg.model.get('model_type')}"
    data = cfg.data.get("dataset_name") or Path(str(cfg.data.get("train_file"))).name
    if cfg.data.get("validation_file"):
        data += f" + {Path(str(cfg.data['validation_file'])).name}"
    max_steps = cfg.get("training", "max_steps")
    schedule = f"{max_steps} steps" if max_steps and max_steps > 0 else \
        f"{_num(float(cfg.get('training', 'num_train_epochs')))} epochs"
    batch = cfg.get("training", "per_device_train_batch_size")
    accum = cfg.get("training", "gradient_accumulation_steps")
    procs = launch_settings(cfg).nproc_per_node * launch_settings(cfg).nnodes
    batch_text = f"batch {batch}" + (f"×{accum} accum" if accum != 1 else "")
    batch_text += f"×{procs} processes" if procs > 1 else ""
    return f"model {model}, data {data}, {schedule}, {batch_text}"


def check_file(path: str | Path) -> int:
    """``clmtune check FILE``: errors on stderr one per line, warnings as "warning: …";
    0 and a one-line summary on stdout when the file is valid, else 2."""
    path = Path(path)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        return 2
    except SchemaUnavailable as exc:
        print(f"clmtune: error: {exc}", file=sys.stderr)
        return 2
    warnings = cfg.warnings + [str(p) for p in _hardware_problems(cfg)]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path}: ok ({summary_line(cfg)})")
    return 0


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m clmtune.backend.config")
    parser.add_argument("--dump-schema", action="store_true",
                        help="print the schema of the installed transformers as JSON")
    parser.add_argument("--reference", action="store_true",
                        help="print a Markdown reference of every setting")
    args = parser.parse_args(argv)
    if args.dump_schema:
        print(schema_to_json(schema()))
        return 0
    if args.reference:
        print(reference_markdown(schema()))
        return 0
    parser.print_usage(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
