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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = ("model", "data", "training", "launch")


@dataclass(frozen=True)
class FieldError:
    """One problem with one setting (or with the file as a whole when key is empty)."""

    section: str
    key: str
    message: str
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        name = f"[{self.section}] {self.key}" if self.key else f"[{self.section}]"
        if not self.section:
            name = "config"
        return f"{where}{name}: {self.message}"


class ConfigError(Exception):
    """Raised when settings are invalid; carries every per-field error."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class RunConfig:
    """The settings a user set, by section. Unset keys are absent (TOML has no null)."""

    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def section(self, name: str) -> dict[str, Any]:
        if name not in SECTIONS:
            raise KeyError(name)
        return getattr(self, name)
