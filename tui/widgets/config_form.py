"""The settings form, generated from the backend's schema.

One collapsible group per section (``[model]``, ``[data]``, ``[training]``,
``[launch]``); the common fields of a section come first and every other field
sits in an "Advanced" collapsible whose rows are mounted only when it is first
opened (``[training]`` alone has about a hundred of them).

The form keeps the *document* — ``{section: {key: value}}`` holding only what
the user set, the same shape as the TOML file — and validates it with
``backend.settings.validate.validate_document`` a moment after the last keystroke.
An emptied field is unset: the schema default shows as its placeholder.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Collapsible, Input, Label, Select, Static, Switch

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SECTION_ORDER = ("model", "data", "training", "launch")


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


class ParseError(ValueError):
    """The text of a field cannot be read as its kind; the message says what to type."""


def _toml_literal(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


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


def parse_text(text: str, kind: str) -> Any:
    """Read a field's text as a value of ``kind``; empty text is :data:`UNSET`."""
    text = text.strip()
    if not text:
        return UNSET
    if kind == "int":
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ParseError("not a whole number (e.g. 8)") from None
    if kind == "float":
        try:
            return float(text.replace("_", ""))
        except ValueError:
            raise ParseError("not a number (e.g. 5e-5)") from None
    if kind == "list":
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                try:
                    value = _toml_literal(text)
                except tomllib.TOMLDecodeError:
                    raise ParseError('not a list: write a, b, c or ["a", "b"]') from None
            if not isinstance(value, list):
                raise ParseError('not a list: write a, b, c or ["a", "b"]')
            return value
        return [_list_item(item.strip()) for item in text.split(",") if item.strip()]
    if kind == "dict":
        value: Any = None
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = _toml_literal(text)
            except tomllib.TOMLDecodeError:
                pass
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


# --------------------------------------------------------------------------- one field


class FieldRow(Widget):
    """One setting: name, the editor for its kind, a hint, and its messages below."""

    DEFAULT_CSS = """
    FieldRow {
        layout: grid;
        grid-size: 3;
        grid-columns: 30 1fr 13;
        grid-rows: auto;
        height: auto;
        width: 1fr;
        max-width: 110;  /* keeps the hint next to its field on wide terminals */
    }
    FieldRow .field-name {
        height: 1;
        color: $text-muted;
        text-overflow: ellipsis;
        text-wrap: nowrap;
    }
    FieldRow.-set .field-name {
        color: $text;
        text-style: bold;
    }
    FieldRow.-error .field-name {
        color: $text-error;
    }
    FieldRow Switch.field-editor {
        width: auto;
        height: 1;
        border: none;
        padding: 0 1;
        &:focus { border: none; background-tint: $foreground 10%; }
    }
    FieldRow .field-hint {
        height: 1;
        margin-left: 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    FieldRow .field-hint.-ok { color: $text-success; }
    FieldRow .field-hint.-bad { color: $text-error; }
    FieldRow .field-message {
        display: none;
        column-span: 3;
        height: auto;
        padding-left: 2;
    }
    FieldRow .field-message.-shown { display: block; }
    """

    class Edited(Message):
        """The row's value (or its parse error) changed."""

        def __init__(self, row: FieldRow) -> None:
            super().__init__()
            self.row = row

        @property
        def control(self) -> FieldRow:
            return self.row

    class Focused(Message):
        """Focus moved into the row (the screen shows its help)."""

        def __init__(self, row: FieldRow) -> None:
            super().__init__()
            self.row = row

        @property
        def control(self) -> FieldRow:
            return self.row

    def __init__(self, spec: Any, value: Any = UNSET, base_dir: Path = Path(".")) -> None:
        section, name = spec_key(spec)
        super().__init__(id=f"f-{section}-{name}")
        self.spec = spec
        self.section = section
        self.key = name
        self.value: Any = value
        self.parse_error: str | None = None
        self.messages: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self.base_dir = base_dir
        self.set_class(value is not UNSET, "-set")

    # -- compose

    @property
    def editor_id(self) -> str:
        return f"in-{self.section}-{self.key}"

    def _help_text(self) -> str:
        help_ = (_spec_attr(self.spec, "help") or "").strip()
        extras = []
        lo, hi = _spec_attr(self.spec, "minimum"), _spec_attr(self.spec, "maximum")
        if lo is not None or hi is not None:
            extras.append(f"range {'' if lo is None else lo}…{'' if hi is None else hi}")
        choices = _spec_attr(self.spec, "choices")
        if choices and self.spec.kind != "choice":
            extras.append("one of " + ", ".join(map(str, choices)))
        extras.append(format_default(self.spec))
        return (help_ + ("\n" if help_ else "") + " · ".join(extras)).strip()

    @property
    def help_text(self) -> str:
        """The schema's help for this field plus its range/default."""
        return self._help_text()

    def _make_editor(self) -> Widget:
        spec, kind, value = self.spec, self.spec.kind, self.value
        tooltip = self._help_text()
        if uses_switch(spec):
            on = bool(spec.default) if value is UNSET else bool(value)
            return Switch(on, id=self.editor_id, classes="field-editor", tooltip=tooltip)
        if kind in ("bool", "choice"):
            if kind == "bool":
                options: list[tuple[str, Any]] = [("true", True), ("false", False)]
            else:
                options = [(str(c), c) for c in (_spec_attr(spec, "choices") or ())]
            if value is not UNSET and all(not _same(value, v) for _, v in options):
                options.append((f"{value} (invalid)", value))
            return Select(
                options,
                prompt=format_default(spec),
                allow_blank=True,
                value=Select.NULL if value is UNSET else value,
                compact=True,
                id=self.editor_id,
                classes="field-editor",
                tooltip=tooltip,
            )
        input_type = {"int": "integer", "float": "number"}.get(kind, "text")
        text = format_value(value, kind)
        if input_type != "text" and not re.fullmatch(r"[-+0-9._eE]*", text):
            input_type = "text"  # a bad value from a file must still show, not be filtered
        return Input(
            text,
            placeholder=format_default(spec),
            type=input_type,  # type: ignore[arg-type]
            valid_empty=True,
            compact=True,
            select_on_focus=False,
            id=self.editor_id,
            classes="field-editor",
            tooltip=tooltip,
        )

    def compose(self) -> ComposeResult:
        yield Label(self.key, classes="field-name", markup=False)
        yield self._make_editor()
        yield Static("", classes="field-hint", markup=False)
        yield Static("", classes="field-message")

    def on_mount(self) -> None:
        self._mounted = True
        self._update_hint()

    # -- value handling

    def _set_value(self, value: Any, error: str | None) -> None:
        if _same(value, self.value) and error == self.parse_error:
            return
        self.value = value
        self.parse_error = error
        self.set_class(value is not UNSET or error is not None, "-set")
        self._update_hint()
        self.post_message(self.Edited(self))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        try:
            value = parse_text(event.value, self.spec.kind)
        except ParseError as exc:
            self._set_value(UNSET, str(exc))
        else:
            self._set_value(value, None)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        # A switch back at its default means "not set": only what differs is written.
        value = UNSET if event.value == self.spec.default else event.value
        self._set_value(value, None)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._set_value(UNSET if event.value is Select.NULL else event.value, None)

    def on_descendant_focus(self) -> None:
        self.post_message(self.Focused(self))

    def _update_hint(self) -> None:
        if not getattr(self, "_mounted", False):
            return
        hint = self.query_one(".field-hint", Static)
        hint.remove_class("-ok", "-bad")
        text = ""
        if self.spec.kind == "path" and isinstance(self.value, str) and self.value:
            if resolve_path(self.value, self.base_dir).exists():
                text = "✓ exists"
                hint.add_class("-ok")
            else:
                text = "✗ not found"
                hint.add_class("-bad")
        elif uses_switch(self.spec):
            text = "on" if self.current_bool else "off"
        hint.update(text)

    @property
    def current_bool(self) -> bool:
        return bool(self.spec.default) if self.value is UNSET else bool(self.value)

    def show_messages(self, errors: list[str], warnings: list[str]) -> None:
        """Show validation messages under the field (empty lists hide them)."""
        shown = (tuple(errors), tuple(warnings))
        if shown == self.messages:
            return  # unchanged: no restyle, no relayout
        self.messages = shown
        lines = [Content.styled(f"✗ {m}", "$text-error") for m in errors]
        lines += [Content.styled(f"⚠ {m}", "$text-warning") for m in warnings]
        message = self.query_one(".field-message", Static)
        message.update(Content("\n").join(lines))
        message.set_class(bool(lines), "-shown")
        self.set_class(bool(errors), "-error")

    def focus_editor(self) -> None:
        self.query_one(f"#{self.editor_id}").focus()


# --------------------------------------------------------------------------- the form


@dataclass
class Problems:
    """Validation result mapped onto the form."""

    by_field: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    warnings_by_field: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    by_section: dict[str, list[str]] = field(default_factory=dict)
    general_warnings: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(len(v) for v in self.by_field.values()) + sum(
            len(v) for v in self.by_section.values()
        )

    @property
    def warning_count(self) -> int:
        return sum(len(v) for v in self.warnings_by_field.values()) + len(self.general_warnings)

    def all_errors(self) -> list[str]:
        out = [f"[{s}] {k}: {m}" for (s, k), msgs in self.by_field.items() for m in msgs]
        out += [f"[{s}] {m}" if s else m for s, msgs in self.by_section.items() for m in msgs]
        return out

    def all_warnings(self) -> list[str]:
        out = [f"[{s}] {k}: {m}" for (s, k), msgs in self.warnings_by_field.items() for m in msgs]
        return out + list(self.general_warnings)


_WARNING_FIELD = re.compile(r"\[(\w+)\]\s*(\w+)\s*:\s*(.*)", re.S)


def _default_validator(doc: Document, schema: Any, base_dir: Path, source: Path | None):
    # Imported here: backend.settings is light, but keep the form importable without it.
    from clmtune.backend.settings.validate import validate_document

    return validate_document(doc, schema, base_dir=base_dir, for_launch=False, source=source)


class ConfigForm(VerticalScroll, can_focus=False):
    """Every setting of a run, editable; holds the document of set values.

    ``document`` is what a save writes. ``problems`` holds the latest
    validation; :class:`ConfigForm.Validated` is posted after each validation and
    :class:`ConfigForm.Changed` after each edit.
    """

    DEFAULT_CSS = """
    ConfigForm {
        height: 1fr;
        width: 1fr;
        scrollbar-size-vertical: 1;
    }
    ConfigForm > Collapsible {
        padding-bottom: 0;
        padding-left: 0;
    }
    ConfigForm Collapsible > Contents {
        padding: 0 0 0 1;
    }
    ConfigForm Collapsible.advanced {
        background: $surface;
        border-top: none;
        padding: 0;
    }
    ConfigForm .section-message {
        display: none;
        height: auto;
        color: $text-error;
    }
    ConfigForm .section-message.-shown { display: block; }
    ConfigForm .section-empty {
        color: $text-muted;
    }
    """

    debounce: float = 0.3
    """Seconds without an edit before the document is validated again."""

    class Changed(Message):
        """The document changed (an edit in some field)."""

        def __init__(self, form: ConfigForm) -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> ConfigForm:
            return self.form

    class Validated(Message):
        """A validation finished; ``form.problems`` holds the result."""

        def __init__(self, form: ConfigForm) -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> ConfigForm:
            return self.form

    class FieldFocused(Message):
        """A field got the focus; ``row.help_text`` describes it."""

        def __init__(self, form: ConfigForm, row: FieldRow) -> None:
            super().__init__()
            self.form = form
            self.row = row

        @property
        def control(self) -> ConfigForm:
            return self.form

    error_count: reactive[int] = reactive(0)
    warning_count: reactive[int] = reactive(0)

    def __init__(
        self,
        schema: Any,
        document: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        base_dir: Path = Path("."),
        source: Path | None = None,
        validator: Any = None,
        expanded: Iterable[str] = SECTION_ORDER,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.schema = schema
        self.sections = group_schema(schema)
        self.base_dir = base_dir
        self.source = source
        self._validator = validator or _default_validator
        self._expanded = set(expanded)
        self._doc: Document = {s: dict((document or {}).get(s, {})) for s in self.sections}
        for section, values in (document or {}).items():
            self._doc.setdefault(str(section), dict(values))
        self._parse_errors: dict[tuple[str, str], str] = {}
        self.problems = Problems()
        self._timer: Timer | None = None
        self._populated: set[str] = set()
        self.validations = 0  # how many validations ran (tests and the screen read it)

    # -- structure

    def _is_common(self, spec: Any) -> bool:
        return bool(_spec_attr(spec, "common", False))

    def _unknown_keys(self, section: str) -> list[str]:
        known = {spec.name for spec in self.sections.get(section, [])}
        return [k for k in self._doc.get(section, {}) if k not in known]

    def _row(self, spec: Any) -> FieldRow:
        value = self._doc.get(spec.section, {}).get(spec.name, UNSET)
        return FieldRow(spec, value, self.base_dir)

    def _unknown_row(self, section: str, key: str) -> FieldRow:
        spec = _LooseSpec(
            section=section,
            name=key,
            kind="toml",
            default=None,
            help="Not a setting of this section; empty the field to remove it.",
        )
        return FieldRow(spec, self._doc[section][key], self.base_dir)

    def compose(self) -> ComposeResult:
        for section, specs in self.sections.items():
            common = [s for s in specs if self._is_common(s)]
            advanced = [s for s in specs if not self._is_common(s)]
            set_advanced = sum(1 for s in advanced if s.name in self._doc.get(section, {}))
            with Collapsible(
                title=Content(f"[{section}]"),  # type: ignore[arg-type]  # not markup
                collapsed=section not in self._expanded,
                id=f"section-{section}",
                classes="section",
            ):
                yield Static("", id=f"msg-{section}", classes="section-message", markup=False)
                for key in self._unknown_keys(section):
                    yield self._unknown_row(section, key)
                for spec in common:
                    yield self._row(spec)
                if not specs:
                    yield Static("(no settings)", classes="section-empty")
                if advanced:
                    yield Collapsible(
                        title=self._advanced_title(len(advanced), set_advanced, 0),
                        collapsed=True,
                        id=f"advanced-{section}",
                        classes="advanced",
                    )

    def _advanced_title(self, total: int, set_count: int, errors: int) -> str:
        parts = [f"Advanced ({total} more"]
        if set_count:
            parts.append(f", {set_count} set")
        if errors:
            parts.append(f", {errors} error{'s' if errors != 1 else ''}")
        return "".join(parts) + ")"

    @on(Collapsible.Expanded)
    async def _expand(self, event: Collapsible.Expanded) -> None:
        collapsible = event.collapsible
        if collapsible.id and collapsible.id.startswith("advanced-"):
            event.stop()
            await self.populate_advanced(collapsible.id.removeprefix("advanced-"))

    async def populate_advanced(self, section: str) -> None:
        """Mount the advanced rows of ``section`` (once)."""
        if section in self._populated:
            return
        self._populated.add(section)
        specs = [s for s in self.sections.get(section, []) if not self._is_common(s)]
        collapsible = self.query_one(f"#advanced-{section}", Collapsible)
        contents = collapsible.query_one(Collapsible.Contents)
        with self.app.batch_update():
            await contents.mount_all([self._row(spec) for spec in specs])
        self._show_problems()

    def on_mount(self) -> None:
        self.validate_now()

    # -- document

    @property
    def document(self) -> Document:
        """The set values by section (a copy; sections with nothing set are omitted)."""
        return {s: dict(v) for s, v in self._doc.items() if v}

    def value(self, section: str, key: str) -> Any:
        """The set value of a field, or :data:`UNSET`."""
        return self._doc.get(section, {}).get(key, UNSET)

    def rows(self) -> list[FieldRow]:
        """The mounted rows."""
        return list(self.query(FieldRow))

    def row(self, section: str, key: str) -> FieldRow | None:
        """The mounted row of a field, or None (advanced and not yet opened)."""
        try:
            return self.query_one(f"#f-{section}-{key}", FieldRow)
        except Exception:
            return None

    @on(FieldRow.Edited)
    def _edited(self, event: FieldRow.Edited) -> None:
        event.stop()
        row = event.row
        section = self._doc.setdefault(row.section, {})
        if row.value is UNSET:
            section.pop(row.key, None)
        else:
            section[row.key] = row.value
        where = (row.section, row.key)
        if row.parse_error:
            self._parse_errors[where] = row.parse_error
        else:
            self._parse_errors.pop(where, None)
        # The parse error shows at once; the full validation waits for a pause in typing.
        row.show_messages(
            [row.parse_error] if row.parse_error else self.problems.by_field.get(where, []),
            self.problems.warnings_by_field.get(where, []),
        )
        self.post_message(self.Changed(self))
        self.schedule_validation()

    @on(FieldRow.Focused)
    def _focused(self, event: FieldRow.Focused) -> None:
        event.stop()
        self.post_message(self.FieldFocused(self, event.row))

    @property
    def validation_pending(self) -> bool:
        """An edit is waiting for its (debounced) validation."""
        return self._timer is not None

    def schedule_validation(self) -> None:
        """Validate after :attr:`debounce` seconds without another edit."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.debounce, self.validate_now)

    def validate_now(self) -> Problems:
        """Validate the document, show the messages, post :class:`Validated`."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        problems = Problems()
        try:
            errors, warnings = self._validator(
                self.document, self.schema, self.base_dir, self.source
            )
        except Exception as exc:  # a validator bug must not take the editor down
            errors, warnings = [], []
            problems.by_section.setdefault("", []).append(f"validation failed: {exc}")
        known = {spec_key(s) for specs in self.sections.values() for s in specs}
        known |= {(s, k) for s in self._doc for k in self._unknown_keys(s)}
        for err in errors:
            where = (str(getattr(err, "section", "")), str(getattr(err, "key", "")))
            message = str(getattr(err, "message", err))
            if where in known:
                problems.by_field.setdefault(where, []).append(message)
            else:
                label = f"{where[1]}: {message}" if where[1] else message
                problems.by_section.setdefault(where[0], []).append(label)
        for where, message in self._parse_errors.items():
            problems.by_field[where] = [message]
        for warning in warnings:
            text = str(warning)
            match = _WARNING_FIELD.search(text)
            if match and (match.group(1), match.group(2)) in known:
                where = (match.group(1), match.group(2))
                problems.warnings_by_field.setdefault(where, []).append(match.group(3) or text)
            else:
                problems.general_warnings.append(text)
        self.problems = problems
        self.validations += 1
        self._show_problems()
        self.post_message(self.Validated(self))
        return problems

    def _show_problems(self) -> None:
        problems = self.problems
        for row in self.query(FieldRow):
            where = (row.section, row.key)
            row.show_messages(
                problems.by_field.get(where, []), problems.warnings_by_field.get(where, [])
            )
        for section, specs in self.sections.items():
            try:
                msg = self.query_one(f"#msg-{section}", Static)
            except Exception:
                continue
            lines = problems.by_section.get(section, [])
            msg.update("\n".join(f"✗ {m}" for m in lines))
            msg.set_class(bool(lines), "-shown")
            advanced = [s for s in specs if not self._is_common(s)]
            if advanced:
                names = {s.name for s in advanced}
                errors = sum(1 for (s, k) in problems.by_field if s == section and k in names)
                set_count = sum(1 for k in self._doc.get(section, {}) if k in names)
                try:
                    collapsible = self.query_one(f"#advanced-{section}", Collapsible)
                except Exception:
                    continue
                collapsible.title = self._advanced_title(len(advanced), set_count, errors)
        self.error_count = problems.error_count
        self.warning_count = problems.warning_count

    # -- navigation

    def error_fields(self) -> list[tuple[str, str]]:
        """Fields with an error, in form order."""
        order = [spec_key(s) for specs in self.sections.values() for s in specs]
        order = [(s, k) for s in self._doc for k in self._unknown_keys(s)] + order
        return [w for w in order if w in self.problems.by_field]

    async def focus_field(self, section: str, key: str) -> bool:
        """Open the field's groups, scroll to it and focus it. False if there is no such field."""
        row = self.row(section, key)
        if row is None:
            specs = self.sections.get(section, [])
            if not any(s.name == key for s in specs):
                return False
            self.query_one(f"#section-{section}", Collapsible).collapsed = False
            advanced = self.query_one(f"#advanced-{section}", Collapsible)
            advanced.collapsed = False
            await self.populate_advanced(section)
            row = self.row(section, key)
            if row is None:
                return False
        self.query_one(f"#section-{section}", Collapsible).collapsed = False
        if row.parent is not None and row.parent.parent is not None:
            parent = row.parent.parent
            if isinstance(parent, Collapsible):
                parent.collapsed = False
        row.focus_editor()
        self.call_after_refresh(row.scroll_visible)
        return True


@dataclass
class _LooseSpec:
    """A stand-in spec for a key the schema does not know (shown so it can be removed)."""

    section: str
    name: str
    kind: str
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    common: bool = True
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = True


def summary_text(error_count: int, warning_count: int) -> Content:
    """'✓ valid' or '✗ 2 errors · ⚠ 1 warning' with the theme's colours."""
    if not error_count and not warning_count:
        return Content.styled("✓ valid", "$text-success")
    parts: list[Content] = []
    if error_count:
        parts.append(
            Content.styled(f"✗ {error_count} error{'s' if error_count != 1 else ''}", "$text-error")
        )
    if warning_count:
        parts.append(
            Content.styled(
                f"⚠ {warning_count} warning{'s' if warning_count != 1 else ''}", "$text-warning"
            )
        )
    return Content(" · ").join(parts)
