"""``RunConfig`` (what the user set) and ``Settings`` (the typed view code reads).

``RunConfig`` keeps the keys a user set, by section, because that is what is saved
(TOML has no null; only set keys are written). Code never looks keys up in it by
string: it reads ``cfg.settings.model.model_name_or_path``,
``cfg.settings.data.block_size`` or ``cfg.settings.training.learning_rate``, which
fill in defaults from the schema and raise AttributeError (naming the closest
setting) for a name that is not one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clmtune.backend.settings.schema import (
    EXCLUDED_TRAINING,
    SECTIONS,
    TOKEN_KEYS,
    DataSettings,
    FieldSpec,
    LaunchSettings,
    ModelSettings,
    NotifySettings,
    PeftSettings,
    SamplesSettings,
    unknown_attribute_message,
)

# Fields holding a local path, resolved against the TOML file's folder.
PATH_FIELDS = {("model", "cache_dir"), ("data", "train_file"), ("data", "validation_file"),
               ("training", "output_dir")}
# Fields holding a hub id *or* a local path (resolved only when the value looks like a path),
# with the files that show the id is in the hub cache.
REF_FIELDS = {("model", "model_name_or_path"): ("config.json",),
              ("model", "config_name"): ("config.json",),
              ("model", "tokenizer_name"): ("tokenizer_config.json", "tokenizer.json",
                                            "config.json")}
# TrainingArguments fields that take a dict or a path to a JSON file.
JSON_PATH_FIELDS = {("training", "deepspeed"), ("training", "fsdp_config"),
                    ("training", "accelerator_config")}


class TrainingSettings:
    """``[training]``: typed attribute access to any field of the installed TrainingArguments.

    ``settings.training.learning_rate`` is the value the user set, else the schema's
    default (the tool's default where it has one). A name that is not a field raises
    AttributeError with the closest field name. ``specs`` defaults to the active schema,
    looked up on first use, so building a ``Settings`` never loads it by itself.
    """

    __slots__ = ("_values", "_specs")

    def __init__(self, values: Mapping[str, Any],
                 specs: Mapping[str, FieldSpec] | None = None) -> None:
        self._values = dict(values)
        self._specs = specs

    def _schema(self) -> Mapping[str, FieldSpec]:
        if self._specs is None:
            # Imported here: schema_cache runs a subprocess in the TUI; only reads need it.
            from clmtune.backend.settings.schema_cache import active_schema

            self._specs = active_schema()["training"]
        return self._specs

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not slots or methods: the settings themselves.
        # Private names (unset slots while copying or unpickling) never reach the schema.
        if name.startswith("_"):
            raise AttributeError(name)
        specs = self._schema()
        if name in specs:
            value = self._values.get(name)
            return specs[name].default if value is None else value
        if name in EXCLUDED_TRAINING:
            raise AttributeError(f"[training] {name} is not a setting: {EXCLUDED_TRAINING[name]}")
        raise AttributeError(unknown_attribute_message("training", name, specs))

    def was_set(self, name: str) -> bool:
        """Whether the user set ``name`` (AttributeError for a name that is not a setting)."""
        getattr(self, name)
        return self._values.get(name) is not None

    def set_values(self) -> dict[str, Any]:
        """The fields the user set (for the TrainingArguments mapping), None values dropped."""
        return {k: v for k, v in self._values.items() if v is not None}


@dataclass(frozen=True)
class Settings:
    """The typed settings of a run: one object per section, defaults filled in."""

    model: ModelSettings
    data: DataSettings
    training: TrainingSettings
    launch: LaunchSettings
    samples: SamplesSettings = field(default_factory=lambda: SamplesSettings.from_values({}))
    notify: NotifySettings = NotifySettings.from_values({})
    peft: PeftSettings = PeftSettings()

    @classmethod
    def from_sections(cls, sections: Mapping[str, Mapping[str, Any]],
                      training_specs: Mapping[str, FieldSpec] | None = None) -> Settings:
        """Typed settings from set values by section (``training_specs``: default schema)."""
        return cls(
            model=ModelSettings.from_values(dict(sections.get("model") or {})),
            data=DataSettings.from_values(dict(sections.get("data") or {})),
            training=TrainingSettings(sections.get("training") or {}, training_specs),
            launch=LaunchSettings.from_values(dict(sections.get("launch") or {})),
            samples=SamplesSettings.from_values(dict(sections.get("samples") or {})),
            notify=NotifySettings.from_values(dict(sections.get("notify") or {})),
            peft=PeftSettings.from_values(dict(sections.get("peft") or {})),
        )


@dataclass
class RunConfig:
    """The settings a user set, by section. Unset keys are absent (TOML has no null).

    Read values through ``settings`` (typed, defaults filled, paths absolute); the
    section dicts are the raw storage that saving writes. ``warnings`` holds what
    ``load_config`` found worth telling (not part of equality).
    """

    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)
    notify: dict[str, Any] = field(default_factory=dict)
    peft: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    warnings: list[str] = field(default_factory=list, compare=False)

    def section(self, name: str) -> dict[str, Any]:
        """The dict of set values of one section (KeyError for an unknown section)."""
        if name not in SECTIONS:
            raise KeyError(name)
        return getattr(self, name)

    @property
    def settings(self) -> Settings:
        """The typed settings, local paths absolute (computed on each access: keep it)."""
        resolved = self.resolved()
        return Settings.from_sections({s: resolved.section(s) for s in SECTIONS})

    def base_dir(self) -> Path:
        """The folder relative paths are relative to: the TOML's folder, else the cwd."""
        return (self.source.parent if self.source else Path.cwd()).absolute()

    def document(self, *, strip_secrets: bool = False) -> dict[str, dict[str, Any]]:
        """The set values as a TOML-ready dict (None dropped, paths as strings)."""
        doc: dict[str, dict[str, Any]] = {}
        for section in SECTIONS:
            values = {}
            for key, value in self.section(section).items():
                if value is None:
                    continue
                if strip_secrets and (key in TOKEN_KEYS or holds_token(value)):
                    continue
                values[key] = str(value) if isinstance(value, Path) else value
            if values:
                doc[section] = values
        return doc

    def resolved(self) -> RunConfig:
        """A copy with every local path absolute (relative ones taken from ``base_dir()``)."""
        base = self.base_dir()
        out = RunConfig(source=self.source, warnings=list(self.warnings))
        for section in SECTIONS:
            values = dict(self.section(section))
            for key, value in values.items():
                if isinstance(value, Path):
                    value = str(value)
                if isinstance(value, str) and value and _is_local_path(section, key, value, base):
                    value = str(absolute_path(value, base))
                values[key] = value
            setattr(out, section, values)
        return out


def _is_local_path(section: str, key: str, value: str, base: Path) -> bool:
    if (section, key) in PATH_FIELDS:
        return True
    if (section, key) in JSON_PATH_FIELDS:
        return not value.lstrip().startswith("{")
    if (section, key) in REF_FIELDS or (section, key) == ("data", "dataset_name"):
        return looks_like_path(value, base)
    return False


def holds_token(value: Any) -> bool:
    """Whether a value (or anything inside it) looks like a Hugging Face access token."""
    import re

    if isinstance(value, str):
        return bool(re.match(r"^hf_[A-Za-z0-9]{20,}$", value.strip()))
    if isinstance(value, list):
        return any(holds_token(v) for v in value)
    if isinstance(value, dict):
        return any(k in TOKEN_KEYS or holds_token(v) for k, v in value.items())
    return False


def absolute_path(value: str | Path, base: Path) -> Path:
    """``value`` with ``~`` expanded, made absolute against ``base``, normalised."""
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = base / p
    return Path(os.path.normpath(p))


def probe(path: Path, test: str = "exists") -> bool:
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
