"""Field values of the settings form: the unset marker, schema helpers, text <-> value.

Pure functions (no widgets) so the rules of what a typed text means are tested alone.
A whole-number field accepts exactly what a TOML file may hold there: ``2.0`` or
``1e3`` is refused with the same advice loading the file gives, never silently
turned into 20 or 13.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clmtune.backend.errors import ClmtuneError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SECTION_ORDER = ("model", "data", "training", "launch", "samples", "peft")
# Path settings the run writes (created when missing), as opposed to inputs it reads.
OUTPUT_PATHS = frozenset({("training", "output_dir"), ("training", "logging_dir")})


class _Unset:
    """The value of a field the user did not set (the schema default applies)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()

Document = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- schema helpers


def spec_key(spec: Any) -> tuple[str, str]:
    """``(section, name)`` of a field spec."""
    return str(spec.section), str(spec.name)


def group_schema(schema: Any) -> dict[str, list[Any]]:
    """Field specs by section, in schema order, whatever container the backend returns.

    Accepts a flat iterable of specs, ``{section: [spec, ...]}``,
    ``{section: {name: spec}}`` or ``{(section, name): spec}``.
    """
    specs: list[Any] = []
    if isinstance(schema, Mapping):
        for value in schema.values():
            if isinstance(value, Mapping):
                specs.extend(value.values())
            elif isinstance(value, (list, tuple)):
                specs.extend(value)
            else:
                specs.append(value)
    else:
        specs = list(schema)
    grouped: dict[str, list[Any]] = {}
    for spec in specs:
        grouped.setdefault(str(spec.section), []).append(spec)
    ordered = {s: grouped.pop(s) for s in SECTION_ORDER if s in grouped}
    ordered.update(grouped)
    return ordered


def _spec_attr(spec: Any, name: str, default: Any = None) -> Any:
    return getattr(spec, name, default)


def uses_switch(spec: Any) -> bool:
    """A plain on/off bool: a Switch. Bools whose default is None need a third state."""
    return spec.kind == "bool" and isinstance(spec.default, bool)


# --------------------------------------------------------------------------- text <-> value


def format_value(value: Any, kind: str) -> str:
    """How a value is written in its text field."""
    if value is UNSET or value is None:
        return ""
    if kind == "list" and isinstance(value, (list, tuple)):
        items = [_format_scalar(v) for v in value]
        if any("," in item or not item for item in items):
            return json.dumps(list(value))
        return ", ".join(items)
    if kind == "dict" or isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return _format_scalar(value)


def _format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def format_default(spec: Any) -> str:
    """Placeholder text for an unset field: its default."""
    default = spec.default
    if default is None or default is UNSET:
        return "default: none"
    if isinstance(default, str) and not default:
        return 'default: ""'
    text = format_value(default, spec.kind)
    return f"default: {text}" if text else "default: empty"


class ParseError(ClmtuneError, ValueError):
    """The text of a field cannot be read as its kind; the message says what to type.

    One of the family (``ClmtuneError``), and still a ``ValueError`` for parsers that
    raise it from value conversions.
    """



def _toml_literal(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def _json_or_toml(text: str) -> Any:
    """A JSON value, else a TOML inline value, else None (the caller says what was wanted)."""
    try:
        return json.loads(text)
    except ValueError:
        try:
            return _toml_literal(text)
        except tomllib.TOMLDecodeError:
            return None


def _list_item(text: str) -> Any:
    # Numbers stay numbers ("1, 2" -> [1, 2]); everything else is a string.
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _parse_int(text: str) -> int:
    """A whole number written as TOML writes one (``8``, ``1_000``, ``0x10``).

    What a TOML file may not hold in a whole-number field is refused with the advice
    loading the file gives (``2.0``: write 2), never read digit by digit.
    """
    try:
        value = _toml_literal(text)
    except tomllib.TOMLDecodeError:
        value = None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            raise ParseError(f"must be a whole number: write {int(value)}")
        raise ParseError(f"must be a whole number, got {text}")
    raise ParseError("not a whole number (e.g. 8)")


_WHOLE = re.compile(r"[+-]?\d+(_\d+)*")


def parse_text(text: str, kind: str) -> Any:
    """Read a field's text as a value of ``kind``; empty text is :data:`UNSET`."""
    text = text.strip()
    if not text:
        return UNSET
    if kind == "int":
        return _parse_int(text)
    if kind == "float":
        if _WHOLE.fullmatch(text):  # eval_steps = 20 stays 20 in the file, not 20.0
            return int(text.replace("_", ""))
        try:
            return float(text.replace("_", ""))
        except ValueError:
            raise ParseError("not a number (e.g. 5e-5)") from None
    if kind == "list":
        if text.startswith("["):
            value = _json_or_toml(text)
            if not isinstance(value, list):
                raise ParseError('not a list: write a, b, c or ["a", "b"]')
            return value
        return [_list_item(item.strip()) for item in text.split(",") if item.strip()]
    if kind == "dict":
        value = _json_or_toml(text)
        if not isinstance(value, dict):
            raise ParseError('not a table: write JSON such as {"key": 1}')
        return value
    if kind == "toml":
        # Keys the schema does not know: the raw TOML literal the file held.
        try:
            return _toml_literal(text)
        except tomllib.TOMLDecodeError:
            return text
    return text


def resolve_path(text: str, base_dir: Path) -> Path:
    """A path as the backend resolves it: relative paths against the TOML's folder."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


def _same(a: Any, b: Any) -> bool:
    if a is UNSET or b is UNSET:
        return a is b
    return (
        type(a) is type(b)
        and a == b
        or (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and not isinstance(a, bool)
            and not isinstance(b, bool)
            and a == b
        )
    )
