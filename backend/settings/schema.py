"""The settings schema: the typed sections and the field specs derived from them.

``[model]``, ``[data]`` and ``[launch]`` are written here as frozen dataclasses
(``ModelSettings``, ``DataSettings``, ``LaunchSettings``): each field carries its
default and its help in ``metadata``, like run_clm's argument groups. Everything
else (the editor form, ``clmtune check``, the README tables) reads the ``FieldSpec``
objects ``hand_written_schema()`` derives from those dataclasses, so a setting is
declared exactly once.

``[training]`` is every init field of the installed ``transformers.TrainingArguments``,
introspected at run time by ``schema()`` (which imports transformers: seconds). The TUI
reads the same specs from a JSON cache instead (``schema_cache``).

Pure Python at import time: the TUI imports this module.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

SECTIONS = ("model", "data", "training", "launch", "samples", "notify", "peft")

KINDS = ("bool", "int", "float", "str", "choice", "path", "list", "dict")

#: Bumped when the JSON layout of the schema changes (part of the cache file name).
SCHEMA_FORMAT = 1


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


Schema = dict[str, dict[str, FieldSpec]]


def unknown_attribute_message(section: str, name: str, known: Iterable[str]) -> str:
    """``[section] has no setting 'x'; did you mean 'y'?`` for a misspelled attribute."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"[{section}] has no setting '{name}'{hint}"


def setting(default: Any, help: str, *, kind: str | None = None,
            choices: tuple[str, ...] | None = None, common: bool = False,
            minimum: float | None = None, maximum: float | None = None,
            accepts: tuple[str, ...] = ()) -> Any:
    """A typed-section field: its default plus what the form, checker and docs need."""
    meta = {"help": help, "kind": kind, "choices": choices, "common": common,
            "minimum": minimum, "maximum": maximum, "accepts": accepts}
    return field(default=default, metadata=meta)


class Section:
    """Base of the typed sections: unknown attributes fail loudly, naming the closest one.

    Built with ``from_values`` (defaults filled in for unset keys), which also records
    which keys the user set (``was_set``).
    """

    section: ClassVar[str] = ""

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for a name that is not a setting.
        if name.startswith("__") or name == "_set_keys":
            raise AttributeError(name)
        known = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        raise AttributeError(unknown_attribute_message(self.section, name, known))

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Any:
        """The section from the keys a user set (None and missing keys take the default)."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        kwargs = {f.name: values[f.name] for f in fields if values.get(f.name) is not None}
        obj = cls(**kwargs)
        object.__setattr__(obj, "_set_keys", frozenset(kwargs))
        return obj

    def was_set(self, name: str) -> bool:
        """Whether the user set ``name`` (AttributeError for a name that is not a setting)."""
        getattr(self, name)
        return name in getattr(self, "_set_keys", frozenset())


@dataclass(frozen=True)
class ModelSettings(Section):
    """``[model]`` (run_clm's ModelArguments), local paths absolute once resolved."""

    section: ClassVar[str] = "model"

    model_name_or_path: str | None = setting(
        None, "Hub id (e.g. `gpt2`) or local folder of the model to fine-tune. "
        "Leave unset to train a new model from scratch with `model_type`.", common=True)
    model_type: str | None = setting(
        None, "Architecture of a new model trained from scratch (e.g. `gpt2`); "
        "only used when `model_name_or_path` is unset.")
    config_overrides: str | None = setting(
        None, "Overrides for a model trained from scratch, as `key=value` pairs separated by "
        "commas (e.g. `n_embd=256,n_layer=4`). Needs `model_type`.")
    config_name: str | None = setting(
        None, "Hub id or local path of a model config to use instead of the model's own.")
    tokenizer_name: str | None = setting(
        None, "Hub id or local folder of a tokenizer to use instead of the model's own. "
        "Required when training from scratch.")
    cache_dir: str | None = setting(
        None, "Folder for files downloaded from the hub (default: the Hugging Face cache).",
        kind="path")
    model_revision: str = setting("main", "Branch, tag or commit of the hub model to use.")
    trust_remote_code: bool = setting(
        False, "Run custom modelling code from the model's repository. Enable only for "
        "repositories you trust: the code runs on this machine.")
    dtype: str = setting(
        "auto", "Weight dtype when loading: `auto` uses the dtype the checkpoint was saved in.",
        choices=("auto", "bfloat16", "float16", "float32"), common=True)
    use_fast_tokenizer: bool = setting(
        True, "Use the fast (Rust `tokenizers`) tokenizer when the model has one.")
    pad_token: str = setting(
        "eos", "What to pad with when the tokenizer has no pad token: `eos` reuses the "
        "end-of-text token; `add` adds a `<pad>` token and resizes the embeddings.",
        choices=("eos", "add"))
    load_in_4bit: bool = setting(
        False, "QLoRA: load the base model quantised to 4 bits (bitsandbytes NF4, double "
        "quantisation, compute dtype from `bf16`/`fp16`). Needs a CUDA GPU, bitsandbytes and "
        "[peft] method = `lora`.")
    load_in_8bit: bool = setting(
        False, "Load the base model quantised to 8 bits (bitsandbytes). Needs a CUDA GPU, "
        "bitsandbytes and [peft] method = `lora`.")

    def config_overrides_dict(self) -> dict[str, str]:
        """``config_overrides`` as a dict of strings (the model code parses the values)."""
        if not self.config_overrides:
            return {}
        pairs = (p.split("=", 1) for p in self.config_overrides.split(",") if p.strip())
        return {k.strip(): v.strip() for k, v in pairs}


@dataclass(frozen=True)
class DataSettings(Section):
    """``[data]`` (run_clm's DataTrainingArguments), local paths absolute once resolved."""

    section: ClassVar[str] = "data"

    dataset_name: str | None = setting(
        None, "Hub id (or local folder) of a dataset to load with `datasets.load_dataset`. "
        "Use either this or `train_file`.", common=True)
    dataset_config_name: str | None = setting(
        None, "Configuration (subset) of `dataset_name`, e.g. `wikitext-2-raw-v1`.")
    train_file: str | None = setting(
        None, "Training data: a .txt (one example per line), .json/.jsonl or .csv file. "
        "Relative paths are relative to this TOML file.", kind="path", common=True)
    validation_file: str | None = setting(
        None, "Validation data, the same kind of file as `train_file`. When unset, "
        "`validation_split_percentage` of the training data is held out.", kind="path",
        common=True)
    validation_split_percentage: int = setting(
        5, "Percent of the training data held out for validation when there is no validation "
        "file or split (1-99).", minimum=1, maximum=99)
    streaming: bool = setting(
        False, "Stream the dataset instead of downloading and caching it all; needs `max_steps`.")
    keep_linebreaks: bool = setting(True, "Keep the line breaks of .txt files in the text.")
    preprocessing_num_workers: int | None = setting(
        None, "Processes used to tokenize and group the data (default: one).", minimum=1)
    overwrite_cache: bool = setting(
        False, "Tokenize again instead of reusing the cached tokenized data.")
    block_size: int | None = setting(
        None, "Length of the training sequences in tokens (default: the model's maximum, at "
        "most 1024).", minimum=1, common=True)
    max_train_samples: int | None = setting(
        None, "Keep only the first N training sequences (for quick runs and debugging).",
        minimum=1)
    max_eval_samples: int | None = setting(
        None, "Keep only the first N validation sequences.", minimum=1)
    text_column: str = setting(
        "text", "Column holding the text in json/csv data (falls back to the first column).")
    packing: str = setting(
        "group", "`group` concatenates all texts and cuts them into `block_size` chunks "
        "(run_clm); `line` keeps one example per sequence, padded, and never learns the "
        "padding.", choices=("group", "line"))


@dataclass(frozen=True)
class LaunchSettings(Section):
    """``[launch]``: how many processes on how many machines (torchrun's options)."""

    section: ClassVar[str] = "launch"

    nproc_per_node: int = setting(
        1, "Training processes on this machine, usually one per GPU; more than 1 runs torchrun.",
        minimum=1, common=True)
    nnodes: int = setting(1, "Number of machines taking part in the run.", minimum=1)
    node_rank: int = setting(
        0, "Index of this machine among `nnodes` (0 is the main one).", minimum=0)
    master_addr: str | None = setting(
        None, "Address of the main machine (node_rank 0) for multi-machine runs.")
    master_port: int | None = setting(
        None, "Free TCP port on the main machine for multi-machine runs (torchrun's default: "
        "29500).", minimum=1, maximum=65535)
    peak_tflops: float | None = setting(
        None, "Dense peak TFLOP/s of one GPU in the run's precision, for MFU. Unset: taken "
        "from a table of common GPUs (A100, H100, H200, L4, L40S, A10G, RTX 3090/4090, V100, "
        "T4); set it for another GPU.", minimum=0)
    rdzv_endpoint: str | None = setting(
        None, "`host:port` of a torchrun rendezvous (c10d) for multi-machine runs; used "
        "instead of `master_addr`/`master_port` when set (e.g. on a cluster).")

    @property
    def distributed(self) -> bool:
        """True when the run needs torchrun."""
        return self.nproc_per_node > 1 or self.nnodes > 1


@dataclass(frozen=True)
class SamplesSettings(Section):
    """``[samples]``: completions the worker generates after evaluations (off when empty)."""

    section: ClassVar[str] = "samples"

    prompts: list[str] | None = setting(
        None, "Prompts to complete with the current weights after evaluations (greedy), "
        "written to samples.jsonl and shown in the live view; unset or empty: off.",
        kind="list", common=True)
    every_n_evals: int = setting(
        1, "Generate after every N-th evaluation (1: after each one).", minimum=1)
    max_new_tokens: int = setting(
        32, "New tokens generated per prompt.", minimum=1, maximum=4096)


#: The events ``[notify] command`` can run on (all of them by default).
NOTIFY_EVENTS = ("finished", "failed", "stopped", "eval", "stalled", "nan")


@dataclass(frozen=True)
class NotifySettings(Section):
    """``[notify]``: a command run on run events (like a git hook), for alerts."""

    section: ClassVar[str] = "notify"

    command: str | None = setting(
        None, "Shell command run (in the background, `sh -c`) on the events below, with "
        "CLMTUNE_EVENT, CLMTUNE_RUN_DIR, CLMTUNE_STEP and CLMTUNE_MESSAGE set; e.g. "
        "`notify-send \"$CLMTUNE_EVENT\" \"$CLMTUNE_MESSAGE\"`. A failing command is logged "
        "and never affects training.", common=True)
    events: list[str] | None = setting(
        None, "Events that run the command (unset: all of them): finished, failed, stopped, "
        "eval (a new best eval loss), stalled (no step for `stalled_minutes`), nan (NaN/inf "
        "loss).", kind="list")
    stalled_minutes: float = setting(
        30.0, "Minutes without a training step before `stalled` is sent.", minimum=0.01)
    on_nan: str = setting(
        "continue", "On a NaN/inf training loss: `continue`, or `stop` (save a checkpoint, "
        "then stop the run).", choices=("continue", "stop"))


@dataclass(frozen=True)
class PeftSettings(Section):
    """``[peft]``: parameter-efficient fine-tuning with the `peft` library (LoRA, QLoRA)."""

    section: ClassVar[str] = "peft"

    method: str = setting(
        "none", "`none` fine-tunes every weight; `lora` trains a low-rank adapter instead "
        "(needs `pip install 'clmtune-tui[lora]'`).", choices=("none", "lora"), common=True)
    r: int = setting(8, "LoRA rank: size of the low-rank update matrices.", minimum=1,
                     common=True)
    lora_alpha: float = setting(
        16, "LoRA scaling numerator: the update is scaled by `lora_alpha / r` "
        "(`lora_alpha / sqrt(r)` with `use_rslora`).", minimum=0, common=True)
    lora_dropout: float = setting(
        0.05, "Dropout on the LoRA branch's input (0-1).", minimum=0, maximum=1)
    target_modules: list[str] | str = setting(
        "auto", "Modules that get an adapter: `auto` (the attention and MLP linear layers "
        "found in the model, listed in the log) or an array of module names, e.g. "
        '`["q_proj", "v_proj"]`.', kind="list", accepts=("str",), common=True)
    modules_to_save: list[str] | None = setting(
        None, "Modules trained in full and saved with the adapter, e.g. `[\"lm_head\"]`.",
        kind="list")
    bias: str = setting(
        "none", "Which biases are trained: `none`, `all`, or `lora_only` (those of adapted "
        "modules).", choices=("none", "all", "lora_only"))
    use_rslora: bool = setting(False, "Rank-stabilised LoRA: scale by `lora_alpha / sqrt(r)`.")
    use_dora: bool = setting(False, "DoRA: weight-decomposed LoRA (slower, sometimes better).")


#: The typed class of each hand-written section.
TYPED_SECTIONS: dict[str, type[Section]] = {
    "model": ModelSettings, "data": DataSettings, "launch": LaunchSettings,
    "samples": SamplesSettings,
    "notify": NotifySettings,
    "peft": PeftSettings,
}


def _kind_of(f: dataclasses.Field) -> str:
    if f.metadata.get("choices"):
        return "choice"
    if f.metadata.get("kind"):
        return str(f.metadata["kind"])
    # Annotations are strings here (postponed evaluation): "int | None" -> "int".
    return str(f.type).split("|")[0].strip()


def _specs_of(cls: type[Section]) -> dict[str, FieldSpec]:
    out = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        meta = f.metadata
        out[f.name] = FieldSpec(
            cls.section, f.name, _kind_of(f), f.default, meta["help"], choices=meta["choices"],
            common=meta["common"], minimum=meta["minimum"], maximum=meta["maximum"],
            nullable=f.default is None, accepts=tuple(meta.get("accepts") or ()),
        )
    return out


def hand_written_schema() -> Schema:
    """The ``[model]``, ``[data]``, ``[launch]`` and ``[peft]`` sections (no imports needed)."""
    return {s: _specs_of(cls) for s, cls in TYPED_SECTIONS.items()}


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

#: Keys that would hold a hub token: never read from, never written to a file.
TOKEN_KEYS = frozenset({
    "hub_token", "token", "use_auth_token", "hf_token", "auth_token", "push_to_hub_token",
    "access_token", "api_token", "hub_api_token",
})

#: Ranges that TrainingArguments does not encode in its types.
TRAINING_LIMITS: dict[str, dict[str, float]] = {
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
STEPS_OR_RATIO = ("warmup_steps", "logging_steps", "eval_steps", "save_steps")


# ---------------------------------------------------------------------------------------------
# [training], introspected from the installed TrainingArguments
# ---------------------------------------------------------------------------------------------

# The schema of this process once known (filled by schema() or by the cache reader).
_LOADED: dict[str, Schema] = {}


def loaded_schema() -> Schema | None:
    """The schema this process already has, if any (no work done)."""
    return _LOADED.get("schema")


def remember_schema(sch: Schema) -> Schema:
    """Keep ``sch`` as this process's schema (the cache reader calls this)."""
    _LOADED["schema"] = sch
    return sch


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


def _union_type() -> Any:
    import types

    return getattr(types, "UnionType", None)


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
        elif member in (bool, int, float, str):
            kinds.append(member.__name__)
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
            **TRAINING_LIMITS.get(f.name, {}),
        )
    return specs


def _model_type_choices() -> tuple[str, ...]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return tuple(sorted(CONFIG_MAPPING_NAMES))


def schema() -> Schema:
    """The full schema, by section, in form order. Imports transformers (seconds).

    ``[training]`` is every init field of the installed ``TrainingArguments``;
    ``[model] model_type`` gets the installed architectures as choices. The
    result is kept for the process; do not mutate it.
    """
    known = loaded_schema()
    if known is not None:
        return known
    result = hand_written_schema()
    model_type = result["model"]["model_type"]
    result["model"]["model_type"] = dataclasses.replace(
        model_type, kind="choice", choices=_model_type_choices())
    result["training"] = _training_specs()
    return remember_schema({s: result[s] for s in SECTIONS})
