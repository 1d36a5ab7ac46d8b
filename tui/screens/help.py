"""``?``: what the current screen is for and every key that works on it.

Textual's own help panel lists the focused widget's cursor keys first and cuts the
app's keys off at 80×24; this dialog shows the screen's purpose and its actions,
then the keys every screen shares.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KeyRow = tuple[str, str]


class HelpScreen(ModalScreen[None]):
    """A scrollable dialog: an intro paragraph, then the screen's keys and the app's keys."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > #help-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #help-body {
        height: auto;
        max-height: 100%;
    }
    HelpScreen .help-intro {
        margin-bottom: 1;
    }
    """

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(
        self, title: str, intro: str, keys: Sequence[KeyRow], common: Sequence[KeyRow]
    ) -> None:
        super().__init__()
        self.help_title = title
        self.intro = intro
        self.keys = list(keys)
        self.common = list(common)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog") as dialog:
            dialog.border_title = self.help_title
            dialog.border_subtitle = "esc or ? closes"
            with VerticalScroll(id="help-body"):
                if self.intro:
                    yield Static(self.intro, classes="help-intro", markup=False)
                yield Static(_key_table(self.keys, self.common))

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)


def _key_table(keys: Sequence[KeyRow], common: Sequence[KeyRow]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", no_wrap=True)
    table.add_column()
    for key, description in keys:
        table.add_row(Text(key), Text(description))  # plain text: "[data]" stays
    if keys and common:
        table.add_row("", "")
    for key, description in common:
        table.add_row(Text(key), Text(description))
    return table
