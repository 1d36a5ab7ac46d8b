"""One row of the settings form: the field's name, its editor, a hint and its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from clmtune.tui.widgets.field_values import (
    OUTPUT_PATHS,
    UNSET,
    ParseError,
    _same,
    _spec_attr,
    format_default,
    format_value,
    parse_text,
    resolve_path,
    spec_key,
    uses_switch,
)
from clmtune.tui.widgets.text_input import TextInput


class FieldInput(TextInput):
    """A settings text field. ``?`` is the help key, never a typed character: no setting
    holds one, and Textual drops every binding of a key an Input consumes (the editor
    binds ``?`` with priority; this lets that binding through)."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return character != "?" and super().check_consume_key(key, character)


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

    def __init__(self, spec: Any, value: Any = UNSET, base_dir: Path = Path(".")) -> None:
        section, name = spec_key(spec)
        super().__init__(id=f"f-{section}-{name}")
        self.spec = spec
        self.section = section
        self.key = name
        self.value: Any = value
        # The value as the file held it, and its text: showing it is not an edit, even
        # when the text does not parse (a bad value from a file keeps the file's value,
        # and the validation says what is wrong with it).
        self.initial = value
        self.initial_text = format_value(value, spec.kind) if value is not UNSET else None
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
        # A plain text field for numbers too: Textual's integer/number inputs drop
        # the characters they do not allow ("2.0" became 20, "1e3" 13), so what was
        # typed was not what was used. parse_text reads the text and says what is wrong.
        return FieldInput(
            format_value(value, kind),
            placeholder=format_default(spec),
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
        if self.initial_text is not None and event.value == self.initial_text:
            self._set_value(self.initial, None)
            return
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
            elif (self.section, self.key) in OUTPUT_PATHS:
                text = "will be created"  # an output: not being there yet is normal
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
        if lines and self.has_focus_within:
            # The field being typed in keeps its message in view (at 80x24 the last
            # visible row's message opened below the fold).
            self.call_after_refresh(self.scroll_visible, animate=False)

    def focus_editor(self) -> None:
        self.query_one(f"#{self.editor_id}").focus()
