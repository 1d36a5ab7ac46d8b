"""GPU panel of the live view: per GPU utilisation, memory, power, temperature, clock,
throttling (from the worker's NVML ``gpu`` events) with a utilisation sparkline, and the
run's tokens/s and MFU. Hidden while the run has no ``gpu`` event (no NVML, no GPU).

The text helpers here also serve the metrics screen (mean / max per GPU over the run).
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

HISTORY = 60  # gpu events in the sparkline (10 minutes at one event per 10 s)


def _short_name(name: Any) -> str:
    text = str(name or "").removeprefix("NVIDIA ").removeprefix("Tesla ")
    return text.removeprefix("GeForce ").split(" ")[0]  # "H100 80GB HBM3" -> "H100"


def _pct(value: Any) -> str:
    number = to_float(value)
    return f"{number:.0f}%" if number is not None else "-"


def _watts(value: Any) -> str:
    number = to_float(value)
    return f"{number:.0f}W" if number is not None else "-"


def _temp(value: Any) -> str:
    number = to_float(value)
    return f"{number:.0f}C" if number is not None else "-"


def throttle_text(reasons: Any) -> str:
    """The throttle reasons worth a look ("idle" is not one)."""
    names = [str(r) for r in reasons or [] if r != "idle"]
    return f"throttle {','.join(names)}" if names else ""


def device_lines(event: dict[str, Any]) -> list[tuple[str, str]]:
    """``(headline, detail)`` per GPU of one ``gpu`` event."""
    rows = []
    for dev in event.get("devices") or []:
        head = (f"GPU{dev.get('index', len(rows))} {_short_name(dev.get('name'))} "
                f"{_pct(dev.get('util'))} {_watts(dev.get('power'))}"
                f"/{_watts(dev.get('power_limit'))} {_temp(dev.get('temp'))}")
        clock = to_float(dev.get("sm_clock"))
        parts = [f"{fmt.human_bytes(to_float(dev.get('mem_used')))}"
                 f"/{fmt.human_bytes(to_float(dev.get('mem_total')))}",
                 f"{clock:.0f}MHz" if clock is not None else "",
                 throttle_text(dev.get("throttle"))]
        rows.append((head, " ".join(p for p in parts if p)))
    return rows


def util_history(events: Sequence[dict[str, Any]], position: int) -> list[float]:
    """Mean utilisation of the ``position``-th GPU of each recent event."""
    out: list[float] = []
    for event in events[-HISTORY:]:
        devices = event.get("devices") or []
        value = to_float(devices[position].get("util")) if position < len(devices) else None
        if value is not None:
            out.append(value)
    return out


def efficiency_text(view: Any) -> str:
    """``tokens/s`` and ``MFU`` of a RunState (MFU only when the GPU's peak is known)."""
    parts = []
    if view.tokens_per_second is not None:
        parts.append(f"{fmt.si(view.tokens_per_second)} tok/s")
    if view.mfu is not None:
        parts.append(f"MFU {view.mfu * 100:.1f}%")
    return " · ".join(parts)


def gpu_summary(events: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(label, text)`` per GPU over a whole run: mean / max utilisation, peak memory,
    mean / max power, max temperature, the throttle reasons seen (metrics screen)."""
    by_gpu: dict[Any, list[dict[str, Any]]] = {}
    for event in events:
        for dev in event.get("devices") or []:
            by_gpu.setdefault(dev.get("index"), []).append(dev)
    rows = []
    for index, devs in by_gpu.items():
        def values(key: str, devs: list[dict[str, Any]] = devs) -> list[float]:
            return [v for d in devs if (v := to_float(d.get(key))) is not None]

        util, util_max = values("util"), values("util_max") or values("util")
        power, power_max = values("power"), values("power_max") or values("power")
        mem = values("mem_used_max") or values("mem_used")
        temps = values("temp_max") or values("temp")
        reasons: list[str] = []
        for d in devs:
            reasons += [r for r in d.get("throttle") or [] if r not in reasons]
        total = to_float(devs[-1].get("mem_total"))
        text = (f"{_short_name(devs[-1].get('name'))} util "
                f"{_pct(sum(util) / len(util) if util else None)} mean"
                f" / {_pct(max(util_max) if util_max else None)} max · mem "
                f"{fmt.human_bytes(max(mem) if mem else None)}/{fmt.human_bytes(total)} max · "
                f"{_watts(sum(power) / len(power) if power else None)} mean"
                f" / {_watts(max(power_max) if power_max else None)} max · "
                f"{_temp(max(temps) if temps else None)} max")
        throttle = throttle_text(reasons)
        rows.append((f"gpu{index}", f"{text} · {throttle}" if throttle else text))
    return rows


class GpuPanel(Vertical):
    """Tokens/s and MFU, then per GPU a headline, a detail line and a utilisation sparkline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._built = 0  # device rows mounted (or being mounted)
        self._latest: tuple[Any, list[tuple[str, str]]] | None = None
        self.display = False  # until the first gpu event

    def compose(self) -> ComposeResult:
        yield Label("", classes="gpu-efficiency", id="gpu-efficiency", markup=False)
        yield Vertical(id="gpu-rows")

    def update_gpu(self, view: Any) -> None:
        """Draw a RunState's ``gpu`` history (nothing to show: stay hidden)."""
        if not view.gpu:
            self.display = False
            return
        self.display = True
        rows = device_lines(view.gpu[-1])
        self._latest = (view, rows)
        if self._built != len(rows):
            # Counted here, not queried: a second batch before the mount lands must not
            # rebuild again (as in the memory panel).
            box = self.query_one("#gpu-rows", Vertical)
            box.remove_children()
            self._built = len(rows)
            widgets: list[Any] = []
            for i in range(len(rows)):
                widgets += [
                    Label(classes="gpu-head", id=f"gpu-head-{i}", markup=False),
                    Label(classes="gpu-detail", id=f"gpu-detail-{i}", markup=False),
                    Sparkline([], id=f"gpu-spark-{i}"),
                ]
            box.mount_all(widgets)
            self.call_after_refresh(self._fill_latest)
        else:
            self._fill(view, rows)

    def _fill_latest(self) -> None:
        if self._latest is not None:
            self._fill(*self._latest)

    def _fill(self, view: Any, rows: list[tuple[str, str]]) -> None:
        set_label(self.query_one("#gpu-efficiency", Label), efficiency_text(view))
        for i, (head, detail) in enumerate(rows):
            found = self.query(f"#gpu-head-{i}")
            if not found:
                return  # not mounted (yet, or any more): the next fill shows them
            set_label(found.first(Label), head)
            set_label(self.query_one(f"#gpu-detail-{i}", Label), detail)
            self.query_one(f"#gpu-spark-{i}", Sparkline).data = util_history(view.gpu, i)
