"""Train a complete run further: ask for the new ``max_steps`` (a small modal).

A complete run is never resumed as it is (Trainer would train one step more and rotate its
checkpoints away); this dialog is what the dashboard offers instead. It dismisses with the new
``max_steps`` (a whole number above the step the run reached) or None.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from clmtune.tui.widgets.text_input import TextInput


def parse_max_steps(text: str, reached: int) -> tuple[int | None, str]:
    """(the new max_steps, "") or (None, why not): a whole number above ``reached``."""
    text = text.strip()
    if not text.isdigit():
        return None, "a whole number of steps, e.g. " + str(max(reached, 1) * 2)
    value = int(text)
    if value <= reached:
        return None, f"more than {reached}, the step the run reached"
    return value, ""


class TrainFurtherScreen(ModalScreen[int | None]):
    """Ask for the new ``max_steps`` of a complete run; enter confirms, escape cancels."""

    DEFAULT_CSS = """
    TrainFurtherScreen {
        align: center middle;
        background: $background 60%;
    }
    TrainFurtherScreen > #further-dialog {
        width: 64;
        max-width: 95%;
        height: auto;
        max-height: 95%;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    TrainFurtherScreen #further-title {
        text-style: bold;
        margin-bottom: 1;
    }
    TrainFurtherScreen #further-body, TrainFurtherScreen #further-error {
        width: 1fr;
        margin-bottom: 1;
    }
    TrainFurtherScreen #further-error {
        color: $error;
        margin-bottom: 0;
    }
    TrainFurtherScreen #further-buttons {
        height: auto;
        align-horizontal: right;
    }
    TrainFurtherScreen Button {
        margin-left: 2;
        min-width: 10;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_name: str, reached: int, max_steps: int | None,
                 checkpoint: str | None) -> None:  # fmt: skip
        super().__init__()
        self.run_name = run_name
        self.reached = reached
        self.max_steps = max_steps
        self.checkpoint = checkpoint

    def compose(self) -> ComposeResult:
        goal = f"max_steps = {self.max_steps}" if self.max_steps else "its epochs"
        start = f" from {self.checkpoint}" if self.checkpoint else ""
        body = (
            f"{self.run_name} is complete: step {self.reached} ({goal}). It continues{start} "
            "up to the new max_steps. The learning-rate schedule is rebuilt for the new "
            "length and resumed at the step reached (see the README, Resuming)."
        )
        with Vertical(id="further-dialog"):
            yield Static("Train further", id="further-title", markup=False)
            yield Static(body, id="further-body", markup=False)
            yield Static("New max_steps:", id="further-label", markup=False)
            # Not type="integer": it drops "." and "e" as they are typed ("120.0" -> 1200);
            # parse_max_steps refuses what is not a whole number instead.
            yield TextInput(value=str(max(self.reached, 1) * 2),
                            id="further-steps", placeholder="new max_steps")  # fmt: skip
            yield Static("", id="further-error", markup=False)
            with Horizontal(id="further-buttons"):
                yield Button("Train further (enter)", variant="warning", id="further-yes")
                yield Button("Cancel (esc)", variant="primary", id="further-no")

    def on_mount(self) -> None:
        self.query_one("#further-steps", Input).focus()

    def _submit(self) -> None:
        value, problem = parse_max_steps(self.query_one("#further-steps", Input).value,
                                         self.reached)  # fmt: skip
        if value is None:
            self.query_one("#further-error", Static).update(f"max_steps: {problem}")
            return
        self.dismiss(value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "further-yes":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without training."""
        self.dismiss(None)
