"""GPU telemetry through NVML (``pynvml`` from ``nvidia-ml-py``, the optional ``[gpu]`` extra).

Per GPU: utilisation, memory used/total (all processes, not only this one), power
draw and limit, temperature, SM clock and the clock throttle reasons (short names).
:class:`GpuThread` samples every second in a daemon thread of the worker (rank 0) and
writes one ``gpu`` event per window (``GPU_EVENT_EVERY_S``): means and maxima over the
window, the latest memory figures, the union of the throttle reasons seen.

Which GPUs: the ones listed in ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-…`` UUIDs),
else the first ``LOCAL_WORLD_SIZE`` (torchrun's processes on this machine; 1 without
torchrun). Indices are NVML's (PCI bus order), which matches CUDA's when
``CUDA_DEVICE_ORDER=PCI_BUS_ID``.

Nothing here may fail a run: no ``pynvml``, no driver, no GPU or any NVML error when
starting means no thread and one debug log line; an error while sampling skips that
sample.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from clmtune.backend.events import Emit, make_event
from clmtune.backend.memory import MonitorThread

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 1.0
GPU_EVENT_EVERY_S = 10.0

# NVML clock throttle reason bits (nvmlClocksThrottleReason*) → short names.
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x1, "idle"),
    (0x2, "app-clocks"),
    (0x4, "power-cap"),
    (0x8, "hw-slowdown"),
    (0x10, "sync-boost"),
    (0x20, "thermal"),  # software thermal slowdown
    (0x40, "hw-thermal"),
    (0x80, "power-brake"),
    (0x100, "display-clock"),
)


def decode_throttle(mask: int) -> list[str]:
    """Short names of the reasons set in an NVML throttle bit mask."""
    return [name for bit, name in THROTTLE_REASONS if int(mask) & bit]


def load_nvml() -> Any | None:
    """The ``pynvml`` module, initialised; None (and a debug line) when NVML is unusable."""
    try:
        import pynvml
    except ImportError as exc:  # the optional [gpu] extra is not installed
        log.debug("GPU telemetry off: pynvml not importable (%s)", exc)
        return None
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as exc:  # no driver / no GPU
        log.debug("GPU telemetry off: nvmlInit failed (%s)", exc)
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def select_devices(nvml: Any, env: dict[str, str] | None = None) -> list[tuple[int, Any]]:
    """``(index, handle)`` of the GPUs this job uses (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    count = int(nvml.nvmlDeviceGetCount())
    visible = env.get("CUDA_VISIBLE_DEVICES")
    out: list[tuple[int, Any]] = []
    if visible is not None:
        for i, entry in enumerate(e.strip() for e in visible.split(",")):
            if entry.isdigit() and int(entry) < count:
                out.append((int(entry), nvml.nvmlDeviceGetHandleByIndex(int(entry))))
            elif entry.startswith(("GPU-", "MIG-")):
                out.append((i, nvml.nvmlDeviceGetHandleByUUID(entry)))
            else:
                break  # CUDA ignores everything after the first invalid entry
        return out
    try:
        wanted = max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        wanted = 1
    return [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(min(wanted, count))]


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - one counter missing on this GPU: report the rest
        return None


def read_device(nvml: Any, handle: Any) -> dict[str, Any]:
    """One instantaneous reading of one GPU (a missing counter is None)."""
    util = _call(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    mem = _call(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    power = _call(lambda: nvml.nvmlDeviceGetPowerUsage(handle))  # mW
    limit = _call(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))  # mW
    reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
    mask = _call(lambda: reasons(handle)) if reasons else None
    return {
        "util": float(util.gpu) if util is not None else None,
        "mem_used": int(mem.used) if mem is not None else None,
        "mem_total": int(mem.total) if mem is not None else None,
        "power": power / 1000.0 if power is not None else None,
        "power_limit": limit / 1000.0 if limit is not None else None,
        "temp": _call(lambda: float(nvml.nvmlDeviceGetTemperature(
            handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)))),
        "sm_clock": _call(lambda: float(nvml.nvmlDeviceGetClockInfo(
            handle, getattr(nvml, "NVML_CLOCK_SM", 1)))),
        "throttle": decode_throttle(mask) if mask is not None else [],
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(index: int, name: str, readings: list[dict[str, Any]]) -> dict[str, Any]:
    """One device entry of a ``gpu`` event from the readings of a window."""
    def series(key: str) -> list[float]:
        return [r[key] for r in readings if r.get(key) is not None]

    last = readings[-1] if readings else {}
    util, power, temp, clock = series("util"), series("power"), series("temp"), series("sm_clock")
    throttle: list[str] = []
    for r in readings:
        throttle += [t for t in r.get("throttle") or [] if t not in throttle]
    mem = series("mem_used")
    return {
        "index": index,
        "name": name,
        "util": _mean(util),
        "util_max": max(util) if util else None,
        "mem_used": last.get("mem_used"),
        "mem_used_max": max(mem) if mem else None,
        "mem_total": last.get("mem_total"),
        "power": _mean(power),
        "power_max": max(power) if power else None,
        "power_limit": last.get("power_limit"),
        "temp": last.get("temp"),
        "temp_max": max(temp) if temp else None,
        "sm_clock": _mean(clock),
        "throttle": throttle,
    }


class GpuSampler:
    """Readings of the selected GPUs, folded into one ``gpu`` event per window."""

    def __init__(self, nvml: Any, devices: list[tuple[int, Any]]) -> None:
        self.nvml = nvml
        self.devices = devices
        self.names = {i: _text(_call(lambda h=h: nvml.nvmlDeviceGetName(h)) or f"GPU{i}")
                      for i, h in devices}
        self._window: dict[int, list[dict[str, Any]]] = {i: [] for i, _ in devices}
        self._window_start = time.monotonic()
        self._lock = threading.Lock()

    def sample(self) -> None:
        """Take one reading of every device."""
        readings = [(i, read_device(self.nvml, h)) for i, h in self.devices]
        with self._lock:
            for i, reading in readings:
                self._window[i].append(reading)

    def event(self, step: int | None = None) -> dict[str, Any] | None:
        """The ``gpu`` event of the window so far (None when it holds no reading)."""
        with self._lock:
            window, self._window = self._window, {i: [] for i, _ in self.devices}
            start, self._window_start = self._window_start, time.monotonic()
        if not any(window.values()):
            return None
        devices = [aggregate(i, self.names[i], window[i]) for i, _ in self.devices if window[i]]
        return make_event("gpu", step=step, interval=round(time.monotonic() - start, 3),
                          samples=max(len(v) for v in window.values()), devices=devices)


class GpuThread(MonitorThread):
    """Samples every ``sample_every`` s; emits a ``gpu`` event every ``emit_every`` s.

    The first event goes out after the first reading, so the panel appears at once.
    """

    name = "clmtune-gpu"

    def __init__(self, sampler: GpuSampler, emit: Emit, *, sample_every: float = SAMPLE_EVERY_S,
                 emit_every: float = GPU_EVENT_EVERY_S,
                 step: Callable[[], int | None] = lambda: None) -> None:
        self.sampler = sampler
        self.sample_every = sample_every
        self.emit_every = emit_every
        super().__init__(emit, step)

    def stop(self) -> None:
        """Stop sampling and write what the last window holds."""
        super().stop()
        self._flush()
        try:
            self.sampler.nvml.nvmlShutdown()
        except self.sampler.nvml.NVMLError:
            pass

    def _flush(self) -> None:
        try:
            event = self.sampler.event(self.step())
            if event is not None:
                self.emit(event)
        except OSError:  # a full disk ends the events, not the run
            pass

    def _run(self) -> None:
        last_emit: float | None = None
        while not self._stop.is_set():
            self.sampler.sample()  # every NVML call is guarded (read_device)
            now = time.monotonic()
            if last_emit is None or now - last_emit >= self.emit_every:
                self._flush()
                last_emit = now
            self._stop.wait(self.sample_every)


def start_gpu_thread(emit: Emit, step: Callable[[], int | None] = lambda: None,
                     **kwargs: Any) -> GpuThread | None:
    """Start GPU telemetry in the worker; None (nothing started) without a usable NVML."""
    if os.environ.get("CLMTUNE_NO_GPU_TELEMETRY"):
        return None
    nvml = load_nvml()
    if nvml is None:
        return None
    try:
        devices = select_devices(nvml)
        if not devices:
            raise RuntimeError("no GPU selected")
        sampler = GpuSampler(nvml, devices)
    except (nvml.NVMLError, RuntimeError) as exc:  # a bad CUDA_VISIBLE_DEVICES entry
        log.debug("GPU telemetry off: %s", exc)
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
        return None
    return GpuThread(sampler, emit, step=step, **kwargs).start()

