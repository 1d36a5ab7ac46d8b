"""Checkpoints of a run: step, time, eval loss, health; the cursor picks what to resume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from clmtune.backend.cli_text import fmt_eval_at
from clmtune.tui import fmt

HEALTH_CLASSES = {
    "complete": "checkpoint-table--ok",
    "weights-only": "checkpoint-table--warn",
    "partial": "checkpoint-table--bad",
}


@dataclass
class CheckpointRow:
    """What the table shows of one checkpoint (from backend.rundir.checkpoints or the events)."""

    step: int
    path: Path
    state: str
    time: float | None
    eval_loss: float | None
    eval_step: int | None = None  # where eval_loss was logged, when not at ``step``

    @property
    def eval_text(self) -> str:
        """The eval loss, with its step when it was logged before this checkpoint's."""
        return fmt_eval_at(self.eval_loss, self.eval_step, self.step, sci_digits=2)

    @property
    def resumable(self) -> bool:
        return self.state == "complete"

    @classmethod
    def from_info(cls, info: Any) -> CheckpointRow:
        """From ``backend.rundir.checkpoints.CheckpointInfo``."""
        return cls(int(info.step), Path(info.path), str(info.state), info.mtime, info.eval_loss,
                   info.eval_step)

    @classmethod
    def from_mark(cls, mark: Any, eval_loss: float | None = None) -> CheckpointRow:
        """From a ``backend.rundir.state.CheckpointMark`` (only what the events say)."""
        state = "complete" if mark.complete else "partial"
        return cls(int(mark.step), Path(mark.path), state, mark.time or None, eval_loss)


class CheckpointTable(DataTable):
    """Newest checkpoint first; ``selected`` is the row under the cursor."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | set(HEALTH_CLASSES.values())

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.rows_shown: list[CheckpointRow] = []

    def on_mount(self) -> None:
        self.add_column("Step", key="step", width=8)
        self.add_column("Saved", key="time", width=8)
        self.add_column("Eval loss", key="eval", width=13)
        self.add_column("Health", key="health", width=12)

    @property
    def selected(self) -> CheckpointRow | None:
        if 0 <= self.cursor_row < len(self.rows_shown):
            return self.rows_shown[self.cursor_row]
        return None

    def update_checkpoints(self, rows: Sequence[CheckpointRow]) -> None:
        """Show ``rows`` newest first.

        A cursor on the newest row follows the newest checkpoint (what resume should
        pick by default); a cursor the user moved down stays on its checkpoint.
        """
        selected = self.selected
        keep = selected.path if selected is not None and self.cursor_row > 0 else None
        self.rows_shown = sorted(rows, key=lambda r: r.step, reverse=True)
        self.clear()
        for row in self.rows_shown:
            style = str(self.get_component_rich_style(HEALTH_CLASSES.get(row.state,
                                                      "checkpoint-table--bad"), partial=True))
            self.add_row(
                str(row.step),
                fmt.clock_time(row.time),
                row.eval_text,
                Text(row.state, style=style),
                key=str(row.path),
            )
        index = next((i for i, r in enumerate(self.rows_shown) if r.path == keep), 0)
        self.move_cursor(row=index, animate=False, scroll=False)
