"""What is wrong with a settings file: ``FieldError`` (one problem) and ``ConfigError``."""

from __future__ import annotations

from dataclasses import dataclass

from clmtune.backend.errors import SettingsError


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
