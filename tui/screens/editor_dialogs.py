"""The settings editor's dialogs: a file path prompt and the preset picker."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from clmtune.tui.widgets.text_input import TextInput


class PathPrompt(ModalScreen["Path | None"]):
    """Ask for a file path (enter accepts, escape cancels)."""

    DEFAULT_CSS = """
    PathPrompt { align: center middle; background: $background 60%; }
    PathPrompt > Vertical {
        width: 70; max-width: 95%; height: auto;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    PathPrompt Label { width: 1fr; margin-bottom: 1; }
    PathPrompt #prompt-hint { color: $text-muted; margin-top: 1; margin-bottom: 0; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        value: str = "",
        suggestions: list[str] | None = None,
        hint: str = "enter: OK · escape: cancel",
    ) -> None:
        super().__init__()
        self.prompt_title = title
        self.initial = value
        self.suggestions = suggestions or []
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt_title, markup=False)
            yield TextInput(
                self.initial,
                id="prompt-input",
                suggester=SuggestFromList(self.suggestions) if self.suggestions else None,
            )
            yield Label(self.hint, id="prompt-hint", markup=False)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        self.dismiss(Path(text).expanduser() if text else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PresetPicker(ModalScreen["str | None"]):
    """Choose a preset from a list."""

    DEFAULT_CSS = """
    PresetPicker { align: center middle; background: $background 60%; }
    PresetPicker > Vertical {
        width: 70; max-width: 95%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    PresetPicker OptionList { height: auto; max-height: 12; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, presets: list[tuple[str, str]]) -> None:
        super().__init__()
        self.presets = presets

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Start from a preset (enter picks, escape cancels)")
            yield OptionList(
                *[
                    Option(Content.assemble((name, "bold"), f"  {desc}" if desc else ""), id=name)
                    for name, desc in self.presets
                ],
                id="preset-list",
            )

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
