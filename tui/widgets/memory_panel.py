"""Memory per GPU (allocated / reserved / peak, device used / total, short history).

Without a GPU it shows the worker process RSS and the system memory instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from clmtune.backend.events import to_float
from clmtune.tui import fmt
from clmtune.tui.widgets.label_text import set_label

HISTORY = 120  # samples in the sparkline


def device_lines(sample: dict[str, Any]) -> list[tuple[str, str]]:
    """``(headline, detail)`` per device of one memory event (CPU only: one pair)."""
    rows: list[tuple[str, str]] = []
    for dev in sample.get("devices") or []:
        name = str(dev.get("name") or "").removeprefix("NVIDIA ")
        head = (
            f"GPU{dev.get('index', len(rows))} {name} "
            f"{fmt.human_bytes(to_float(dev.get('used')))}"
            f"/{fmt.human_bytes(to_float(dev.get('total')))}"
        )
        detail = (
            f"alloc {fmt.human_bytes(to_float(dev.get('allocated')))}"
            f" resv {fmt.human_bytes(to_float(dev.get('reserved')))}"
            f" peak {fmt.human_bytes(to_float(dev.get('peak_allocated')))}"
        )
        rows.append((head, detail))
    if not rows:
        rows.append(
            (
                "CPU (no GPU)",
                f"rss {fmt.human_bytes(to_float(sample.get('process_rss')))}"
                f" · sys {fmt.human_bytes(to_float(sample.get('system_used')))}"
                f"/{fmt.human_bytes(to_float(sample.get('system_total')))}",
            )
        )
    return rows


def history(samples: Sequence[dict[str, Any]], index: int) -> list[float]:
    """The series drawn for device ``index``: allocated bytes (process RSS without GPU)."""
    out: list[float] = []
    for sample in samples[-HISTORY:]:
        devices = sample.get("devices") or []
        if devices:
            value = to_float(devices[index].get("allocated")) if index < len(devices) else None
        else:
            value = to_float(sample.get("process_rss"))
        if value is not None:
            out.append(value)
    return out


class MemoryPanel(Vertical):
    """One headline, one detail line and a sparkline per device."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._built = 0  # device rows mounted (or being mounted)
        self._latest: tuple[Sequence[dict[str, Any]], list[tuple[str, str]]] | None = None

    def compose(self) -> ComposeResult:
        # Fits the narrow side panel (32 cells); longer notes wrap (themes/live.tcss).
        yield Label("memory: waiting for a sample", classes="memory-empty", markup=False)

    def no_samples(self, text: str) -> None:
        """Replace the waiting line when no sample will come (an ended or foreign run)."""
        for label in self.query(".memory-empty").results(Label):
            set_label(label, text)

    def update_memory(self, samples: Sequence[dict[str, Any]]) -> None:
        if not samples:
            return
        rows = device_lines(samples[-1])
        self._latest = (samples, rows)
        if self._built != len(rows):
            # Counted here, not queried: a second batch before the mount lands must not
            # rebuild again (the fill then found no rows and ended the app).
            self._built = len(rows)
            self.remove_children()
            widgets: list[Any] = []
            for i in range(len(rows)):
                widgets += [
                    Label(classes="memory-head", id=f"mem-head-{i}", markup=False),
                    Label(classes="memory-detail", id=f"mem-detail-{i}", markup=False),
                    Sparkline([], id=f"mem-spark-{i}"),
                ]
            self.mount_all(widgets)
            self.call_after_refresh(self._fill_latest)
        else:
            self._fill(samples, rows)

    def _fill_latest(self) -> None:
        if self._latest is not None:
            self._fill(*self._latest)

    def _fill(self, samples: Sequence[dict[str, Any]], rows: list[tuple[str, str]]) -> None:
        for i, (head, detail) in enumerate(rows):
            found = self.query(f"#mem-head-{i}")
            if not found:
                return  # not mounted (yet, or any more): the next fill shows them
            set_label(found.first(Label), head)
            set_label(self.query_one(f"#mem-detail-{i}", Label), detail)
            self.query_one(f"#mem-spark-{i}", Sparkline).data = history(samples, i)
