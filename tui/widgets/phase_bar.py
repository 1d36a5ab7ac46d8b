"""One line: phase, progress bar, step / max, throughput, ETA and elapsed time."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from clmtune.tui import fmt

PHASE_LABELS = {
    "starting": "starting",
    "loading_model": "loading model",
    "loading_data": "loading data",
    "tokenizing": "tokenizing",
    "grouping": "grouping",
    "training": "training",
    "evaluating": "evaluating",
    "saving": "saving",
    "finished": "finished",
}


def progress_fraction(view: Any) -> float | None:
    """Progress of the current phase: the phase's own (tokenizing…) or step / max_steps."""
    if view.phase in ("tokenizing", "grouping", "loading_data") and view.phase_progress is not None:
        return view.phase_progress
    if view.max_steps:
        return min(view.step / view.max_steps, 1.0)
    return view.phase_progress


class PhaseBar(Static):
    """Phase and progress of a run, as text (stable in every terminal and snapshot)."""

    COMPONENT_CLASSES = {"phase-bar--phase", "phase-bar--bar", "phase-bar--dim"}

    def show(self, view: Any, now: float, status: str | None = None) -> None:
        """Draw ``view`` (a ``RunState``); ``status`` is the one shown (``crashed`` included).

        Elapsed time and ETA come from the state: every attempt counted, no ETA unless
        the run is running, and a crashed run's elapsed time stops at its last event.
        """
        status = status or view.status
        self._last = (view, now, status)
        fraction = progress_fraction(view)
        phase = PHASE_LABELS.get(view.phase, view.phase)
        if status == "crashed" or (
            view.phase in ("finished", None) and status not in ("running", "unknown")
        ):
            phase = status  # "stopped" says more than "finished"
        dim = self._style("phase-bar--dim")
        head = Text()
        head.append(f"{phase} ", style=self._style("phase-bar--phase"))
        head.append(fmt.bar(fraction, 10), style=self._style("phase-bar--bar"))
        head.append(f" {fraction * 100:3.0f}%" if fraction is not None else "")
        steps = f"{view.step}/{view.max_steps}" if view.max_steps else str(view.step)
        head.append(f" · step {steps}")
        # (priority, text): at a narrow width the lowest priorities go first.
        parts: list[tuple[int, Text]] = []
        # A resumed worker has no speed until it logs (the reducer forgets the previous
        # worker's), and its epoch is that of the step it resumed from.
        if view.epoch is not None:
            parts.append((0, Text(f" ep {view.epoch:.2f}", style=dim)))
        if view.tokens_per_second is not None:
            parts.append((3, Text(f" · {fmt.si(view.tokens_per_second)} tok/s")))
        elif view.samples_per_second is not None:
            parts.append((3, Text(f" · {fmt.si(view.samples_per_second)} samp/s")))
        if getattr(view, "mfu", None) is not None:  # a GPU with a known peak (backend.mfu)
            parts.append((3, Text(f" · MFU {view.mfu * 100:.0f}%")))
        eta = view.eta(status)
        if eta is not None:
            parts.append((4, Text(f" · ETA {fmt.duration(eta)}")))
        parts.append((2, Text(f" · {fmt.duration(view.elapsed(now, status))} elapsed", style=dim)))
        if view.phase_detail and view.phase != "training" and status == "running":
            parts.append((1, Text(f"  {view.phase_detail}", style=dim)))
        width = self.content_size.width
        while width and parts and head.cell_len + sum(t.cell_len for _, t in parts) > width:
            parts.remove(min(parts, key=lambda part: part[0]))
        for _, part in parts:
            head.append_text(part)
        # One line, full width (CSS): new text never changes the size, so no reflow.
        self.update(head, layout=False)

    def on_resize(self) -> None:
        if getattr(self, "_last", None) is not None:
            self.show(*self._last)

    def _style(self, component: str) -> str:
        return str(self.get_component_rich_style(component, partial=True))
