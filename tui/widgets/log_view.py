"""Warnings and the worker's log tail in one scrolling view.

The worker's stderr holds tqdm progress bars (datasets' ``Map: 40%|████ | 400/1000``),
redrawn with carriage returns and ANSI codes. Shown raw they are noise; the view keeps
the last state of each bar in plain text, and one line per bar per batch of events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from clmtune.tui import fmt

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# tqdm: "label: 40%|████      | 400/1000 [00:01<00:02, 300.0ex/s]"
PROGRESS = re.compile(r"^(?P<label>.*?)(?P<pct>\d{1,3})%\|[^|]*\|(?P<rest>.*)$")


def clean_line(raw: str) -> str:
    """A log line as a reader wants it: the last carriage-return redraw, no ANSI codes,
    a progress bar's blocks dropped (``Map: 40% 400/1000 [...]``)."""
    parts = [p for p in ANSI.sub("", raw).split("\r") if p.strip()]
    line = parts[-1] if parts else ""
    match = PROGRESS.match(line)
    if match:
        line = f"{match['label']}{match['pct']}%{match['rest']}"
    return "".join(ch for ch in line if ch == "\t" or ch.isprintable()).rstrip()


def progress_label(line: str) -> str | None:
    """The label of a cleaned progress line ('Map: '), None when it is no progress line."""
    match = re.match(r"^(.*?)\d{1,3}%", line)
    return match.group(1) if match and "%" in line else None


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

    def on_show(self) -> None:
        # Its tab was opened: the scroll keys (up/down, page up/down, home/end) move the
        # log then, not whatever had the focus before (the chart pans on the same keys).
        if self.screen.is_current:
            self.focus()

    def _style(self, component: str) -> str:
        return str(self.get_component_rich_style(component, partial=True))

    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Append the log-like events of a batch; other types are ignored.

        Successive states of one progress bar in a batch show as its last state only.
        """
        held: tuple[str, Text] | None = None  # (label, line) of a progress bar
        for event in events:
            kind = event.get("type")
            if kind == "log":
                line = clean_line(str(event.get("message", "")))
                if not line:
                    continue
                style = self._style("log-view--stderr") if event.get(
                    "source") == "worker.err" else ""
                label = progress_label(line)
                if label is not None:
                    if held is not None and held[0] != label:
                        self.write(held[1])
                    held = (label, Text(line, style=style))
                    continue
                if held is not None:
                    self.write(held[1])
                    held = None
                self.write(Text(line, style=style))
                continue
            if held is not None:
                self.write(held[1])
                held = None
            if kind == "warning":
                self.warning_count += 1
                stamp = fmt.clock_time(event.get("time")) if event.get("time") else ""
                text = Text(f"{stamp} ! ", style=self._style("log-view--warning"))
                text.append(clean_line(str(event.get("message", ""))))
                self.write(text)
            elif kind == "run_finished" and event.get("error"):
                text = Text(f"error: {event['error']}", style=self._style("log-view--error"))
                self.write(text)
        if held is not None:
            self.write(held[1])
