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

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Collapsible, Static

from clmtune.tui.widgets.field_row import FieldRow
from clmtune.tui.widgets.field_values import (  # noqa: F401 - the form's public names
    SECTION_ORDER,
    UNSET,
    Document,
    ParseError,
    _spec_attr,
    format_default,
    format_value,
    group_schema,
    parse_text,
    resolve_path,
    spec_key,
    uses_switch,
)

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
        except NoMatches:
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
            except NoMatches:
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
                except NoMatches:
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
