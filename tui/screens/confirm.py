"""Reusable questions: yes/no (``ConfirmScreen``) and one of a few choices (``ChoiceScreen``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

SETTINGS_HEADING = "These settings changed since the checkpoint:"


def resume_body(run_name: str, plan: Any) -> str:
    """The text of the resume question for a ``backend.resume_plan.RunPlan``.

    The settings that changed since the checkpoint come under their heading (only when
    there are some); the checkpoints after the one resumed from, which the launcher moves
    to ``superseded/``, are not a setting: they get a paragraph of their own.
    """
    from clmtune.backend.resume_plan import SUPERSEDED_DIR

    checkpoint = Path(plan.checkpoint).name
    later = [Path(p).name for p in getattr(plan, "superseded", ()) or ()]
    names = ", ".join(later)
    # resume_plan words the move as one more warning ("<names> come(s) after …; moved to
    # superseded/"): that one is set apart.
    def is_move(warning: str) -> bool:
        return bool(later) and f"{SUPERSEDED_DIR}/" in warning and all(
            name in warning for name in later)

    settings = [w for w in plan.warnings if not is_move(w)]
    body = f"Resume {run_name} from {checkpoint}."
    if settings:
        body += f"\n\n{SETTINGS_HEADING}\n" + "\n".join(f"• {w}" for w in settings)
    if later:
        which = "checkpoint" if len(later) == 1 else "checkpoints"
        body += (f"\n\nLater {which} (the history this resume leaves): {names}. Moved to "
                 f"{SUPERSEDED_DIR}/, nothing is deleted.")
    return body


class ConfirmScreen(ModalScreen[bool]):
    """Ask one question; ``y``/Yes dismisses with True, ``n``/``escape``/Cancel with False.

    The "no" button has the initial focus so a stray ``enter`` never confirms a
    destructive action.
    """

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen > #confirm-dialog {
        width: 60;
        max-width: 90%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen #confirm-title {
        text-style: bold;
        width: 1fr;
        margin-bottom: 1;
    }
    ConfirmScreen #confirm-body {
        width: 1fr;
        margin-bottom: 1;
    }
    ConfirmScreen #confirm-buttons {
        height: auto;
        width: 1fr;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 2;
        min-width: 10;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, body: str, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self.question_title = title
        self.body = body
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self.question_title, id="confirm-title", markup=False)
            yield Static(self.body, id="confirm-body", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="warning", id="confirm-yes")
                yield Button(f"{self.no_label} (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        """Dismiss with ``answer``."""
        self.dismiss(answer)


class ChoiceScreen(ModalScreen["str | None"]):
    """Ask which of a few ways to go on; dismisses with the chosen id (None: cancel).

    ``choices`` are ``(id, key, label)``: each is a button and a one-letter key.
    The last choice has the initial focus (put the safe one there).
    """

    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; background: $background 60%; }
    ChoiceScreen > #choice-dialog {
        width: 72; max-width: 95%; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    ChoiceScreen #choice-title { text-style: bold; width: 1fr; margin-bottom: 1; }
    ChoiceScreen #choice-body { width: 1fr; margin-bottom: 1; }
    ChoiceScreen #choice-buttons { height: auto; width: 1fr; align-horizontal: right; }
    ChoiceScreen Button { margin-left: 1; min-width: 8; }
    """

    BINDINGS = [Binding("escape", "choose('')", "Cancel")]

    def __init__(self, title: str, body: str, choices: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.question_title = title
        self.body = body
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-dialog"):
            yield Static(self.question_title, id="choice-title", markup=False)
            yield Static(self.body, id="choice-body", markup=False)
            with Horizontal(id="choice-buttons"):
                for ident, key, label in self.choices:
                    yield Button(f"{label} ({key})", id=f"choice-{ident}", compact=True)

    def on_mount(self) -> None:
        self.query(Button).last().focus()

    def on_key(self, event: events.Key) -> None:
        for ident, key, _ in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(ident)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(str(event.button.id).removeprefix("choice-"))

    def action_choose(self, ident: str) -> None:
        """Dismiss with ``ident`` (empty: cancelled)."""
        self.dismiss(ident or None)
