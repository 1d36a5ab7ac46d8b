"""Warnings and the worker's log tail in one scrolling view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from clmtune.tui import fmt


class LogView(RichLog):
    """Appends ``warning`` and ``log`` events (including worker.err lines) as they arrive."""

    COMPONENT_CLASSES = RichLog.COMPONENT_CLASSES | {
        "log-view--warning",
        "log-view--stderr",
        "log-view--error",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=1000, wrap=False, markup=False, highlight=False, **kwargs)
        self.warning_count = 0

    def _style(self, component: str) -> str:
        return str(self.get_component_rich_style(component, partial=True))

    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Append the log-like events of a batch; other types are ignored."""
        for event in events:
            kind = event.get("type")
            if kind == "warning":
                self.warning_count += 1
                stamp = fmt.clock_time(event.get("time")) if event.get("time") else ""
                text = Text(f"{stamp} ! ", style=self._style("log-view--warning"))
                text.append(str(event.get("message", "")))
                self.write(text)
            elif kind == "log":
                line = str(event.get("message", ""))
                if event.get("source") == "worker.err":
                    self.write(Text(line, style=self._style("log-view--stderr")))
                else:
                    self.write(Text(line))
            elif kind == "run_finished" and event.get("error"):
                text = Text(f"error: {event['error']}", style=self._style("log-view--error"))
                self.write(text)
