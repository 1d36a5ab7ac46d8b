"""Memory samples for the dashboard: per CUDA device, else process and system memory.

A sample never initialises CUDA (that would create a context, hundreds of MB
on each GPU) and never talks to NVIDIA's management library: it reads only the
devices this process already uses, through torch's allocator counters and
``torch.cuda.mem_get_info``. Without a GPU (or without torch imported) the
sample holds the process RSS and the system's memory from psutil. Nothing here
prints or raises: a missing piece is reported as None.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from clmtune.backend.events import Emit, make_event


def _cuda_module() -> Any | None:
    """torch.cuda when this process has already initialised CUDA, else None."""
    torch = sys.modules.get("torch")  # never import torch just to sample memory
    if torch is None:
        return None
    try:
        cuda = torch.cuda
        if cuda.is_initialized() and cuda.is_available():
            return cuda
    except Exception:  # noqa: BLE001 - no driver, broken install: no GPU numbers
        return None
    return None


_process: Any = None  # psutil.Process of this process, made once (it costs as much as a read)


def _this_process() -> Any:
    global _process
    import psutil

    if _process is None or _process.pid != os.getpid():  # new after a fork
        _process = psutil.Process()
    return _process


def _host_memory() -> dict[str, int | None]:
    import psutil  # a dependency (pyproject.toml)

    try:
        vm = psutil.virtual_memory()
        rss = _this_process().memory_info().rss
        return {
            "process_rss": int(rss),
            "system_used": int(vm.total - vm.available),
            "system_total": int(vm.total),
        }
    except (OSError, psutil.Error):  # /proc unreadable (containers), or the process is gone
        return {"process_rss": None, "system_used": None, "system_total": None}


class MemorySampler:
    """Takes memory samples for a fixed set of CUDA devices (or none).

    ``device_indices`` must be decided on the training thread (the current CUDA
    device is per thread); :meth:`set_devices` lets the callback fill them in
    once training starts. ``sample`` is safe to call from several threads: the
    peak counters are read and reset under one lock, so every interval's peak
    is reported exactly once.
    """

    def __init__(self, device_indices: list[int] | None = None) -> None:
        self._devices = list(device_indices or [])
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()
        self.last_sample_time = 0.0

    def set_devices(self, device_indices: list[int]) -> None:
        with self._lock:
            self._devices = list(device_indices)

    def _device_sample(self, cuda: Any, index: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": index}
        try:
            if index not in self._names:
                self._names[index] = str(cuda.get_device_name(index))
            entry["name"] = self._names[index]
            entry["allocated"] = int(cuda.memory_allocated(index))
            entry["reserved"] = int(cuda.memory_reserved(index))
            entry["peak_allocated"] = int(cuda.max_memory_allocated(index))
            # Peaks are per interval: reset so the next sample shows the next interval's peak.
            cuda.reset_peak_memory_stats(index)
            free, total = cuda.mem_get_info(index)
            entry["used"] = int(total - free)
            entry["total"] = int(total)
        except Exception:  # noqa: BLE001 - report what we have
            pass
        return entry

    def sample(self, step: int | None = None) -> dict[str, Any]:
        """One ``memory`` event (built with :func:`make_event`)."""
        with self._lock:
            cuda = _cuda_module() if self._devices else None
            devices = [self._device_sample(cuda, i) for i in self._devices] if cuda else []
            self.last_sample_time = time.monotonic()
        return make_event("memory", step=step, devices=devices, **_host_memory())


class MonitorThread:
    """A daemon thread that watches the run beside training until :meth:`stop`.

    Subclasses give ``_run`` (loop until ``self._stop`` is set, waiting on it) and may
    extend :meth:`stop` to write what they hold.
    """

    name = "clmtune-monitor"

    def __init__(self, emit: Emit, step: Callable[[], int | None]) -> None:
        self.emit = emit
        self.step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        raise NotImplementedError


class MemoryThread(MonitorThread):
    """A daemon thread that emits a memory sample whenever none was taken for ``interval`` s.

    The callback samples at every log; this thread covers the gaps (a long
    evaluation, tokenizing, a slow step) so the panel never goes stale.
    """

    name = "clmtune-memory"

    def __init__(
        self,
        sampler: MemorySampler,
        emit: Emit,
        *,
        interval: float = 5.0,
        step: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.sampler = sampler
        self.interval = interval
        super().__init__(emit, step)

    def _run(self) -> None:
        while not self._stop.is_set():
            since = time.monotonic() - self.sampler.last_sample_time
            if since >= self.interval:
                try:
                    self.emit(self.sampler.sample(self.step()))
                except Exception:  # noqa: BLE001 - a monitor must never kill the run
                    pass
                since = 0.0
            self._stop.wait(max(0.05, self.interval - since))
