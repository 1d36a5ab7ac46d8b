"""A fake ``pynvml`` (the NVML edge) for tests: two H100s with known readings.

Put this folder first on ``PYTHONPATH`` (a worker subprocess) or insert the module into
``sys.modules`` (in process). Readings are fixed except the utilisation, which cycles
40, 60, 80 % per call so a window's mean and max differ. ``FAIL_INIT`` makes
``nvmlInit`` fail like a machine without a driver.
"""

from __future__ import annotations

from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
FAIL_INIT = False
GIB = 1024**3

_calls = {"util": 0, "init": 0, "shutdown": 0}


class NVMLError(Exception):
    pass


def nvmlInit():
    if FAIL_INIT:
        raise NVMLError("Driver Not Loaded")
    _calls["init"] += 1


def nvmlShutdown():
    _calls["shutdown"] += 1


def nvmlDeviceGetCount():
    return 2


def nvmlDeviceGetHandleByIndex(index):
    if index not in (0, 1):
        raise NVMLError("Invalid Argument")
    return ("handle", index)


def nvmlDeviceGetHandleByUUID(uuid):
    return ("handle", 1 if uuid.endswith("1") else 0)


def nvmlDeviceGetName(handle):
    return b"NVIDIA H100 80GB HBM3"  # old pynvml versions return bytes


def nvmlDeviceGetUtilizationRates(handle):
    value = (40, 60, 80)[_calls["util"] % 3]
    _calls["util"] += 1
    return SimpleNamespace(gpu=value, memory=30)


def nvmlDeviceGetMemoryInfo(handle):
    used = (40 if handle[1] == 0 else 10) * GIB
    return SimpleNamespace(used=used, total=80 * GIB, free=80 * GIB - used)


def nvmlDeviceGetPowerUsage(handle):
    return 650_000  # mW


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return 700_000  # mW


def nvmlDeviceGetTemperature(handle, sensor):
    return 71


def nvmlDeviceGetClockInfo(handle, clock):
    return 1980


def nvmlDeviceGetCurrentClocksThrottleReasons(handle):
    return 0x4 | 0x20  # power cap, software thermal slowdown
