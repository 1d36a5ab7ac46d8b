"""GPU telemetry: nothing without NVML; with a fake NVML at the edge, values flow to events
and RunState (in process and through a real worker)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

from clmtune.backend import telemetry as T
from clmtune.backend.rundir.state import fold
from tests.run_helpers import cli_env, clmtune, events_of, wait_for, write_config

FAKE_DIR = Path(__file__).parent / "fake_nvml"
GIB = 1024**3


@pytest.fixture
def fake_nvml(monkeypatch):
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_DIR / "pynvml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("CLMTUNE_NO_GPU_TELEMETRY", raising=False)
    return module


def test_without_pynvml_no_thread_and_one_debug_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails like a missing extra
    emitted: list[dict] = []
    with caplog.at_level(logging.DEBUG, logger=T.__name__):
        assert T.start_gpu_thread(emitted.append) is None
    assert emitted == []
    lines = [r for r in caplog.records if r.name == T.__name__]
    assert len(lines) == 1 and "pynvml not importable" in lines[0].getMessage()


def test_nvml_init_failure_means_no_thread(fake_nvml, caplog):
    fake_nvml.FAIL_INIT = True
    emitted: list[dict] = []
    with caplog.at_level(logging.DEBUG, logger=T.__name__):
        assert T.start_gpu_thread(emitted.append) is None
    assert emitted == []
    assert "nvmlInit failed (Driver Not Loaded)" in caplog.text


def test_throttle_reasons_decode_to_short_names():
    assert T.decode_throttle(0) == []
    assert T.decode_throttle(0x4 | 0x20 | 0x40) == ["power-cap", "thermal", "hw-thermal"]
    assert T.decode_throttle(0x1) == ["idle"]


def test_devices_follow_cuda_visible_devices_then_local_world_size(fake_nvml):
    def indices(env):
        return [i for i, _ in T.select_devices(fake_nvml, env)]

    assert indices({}) == [0]  # one process: the first GPU
    assert indices({"LOCAL_WORLD_SIZE": "2"}) == [0, 1]
    assert indices({"LOCAL_WORLD_SIZE": "8"}) == [0, 1]  # only 2 GPUs exist
    assert indices({"CUDA_VISIBLE_DEVICES": "1"}) == [1]
    assert indices({"CUDA_VISIBLE_DEVICES": "1,0"}) == [1, 0]
    assert indices({"CUDA_VISIBLE_DEVICES": "0,7,1"}) == [0]  # CUDA stops at a bad entry
    assert indices({"CUDA_VISIBLE_DEVICES": ""}) == []  # no GPU visible
    handles = T.select_devices(fake_nvml, {"CUDA_VISIBLE_DEVICES": "GPU-abc1"})
    assert handles == [(0, ("handle", 1))]


def test_a_window_is_aggregated_into_one_event(fake_nvml):
    sampler = T.GpuSampler(fake_nvml, T.select_devices(fake_nvml, {"LOCAL_WORLD_SIZE": "2"}))
    assert sampler.event() is None  # nothing read yet
    for _ in range(3):
        sampler.sample()
    event = sampler.event(step=7)
    assert event["type"] == "gpu" and event["step"] == 7 and event["samples"] == 3
    gpu0, gpu1 = event["devices"]
    # Per call the fake's utilisation cycles 40, 60, 80: device 0 read 40, 80, 60 and
    # device 1 read 60, 40, 80 (the calls alternate between the devices).
    assert gpu0["util"] == pytest.approx(60.0) and gpu0["util_max"] == 80.0
    assert gpu1["util"] == pytest.approx(60.0) and gpu1["util_max"] == 80.0
    assert gpu0["name"] == "NVIDIA H100 80GB HBM3"
    assert (gpu0["mem_used"], gpu0["mem_total"]) == (40 * GIB, 80 * GIB)
    assert gpu1["mem_used"] == 10 * GIB
    assert (gpu0["power"], gpu0["power_max"], gpu0["power_limit"]) == (650.0, 650.0, 700.0)
    assert (gpu0["temp"], gpu0["temp_max"], gpu0["sm_clock"]) == (71.0, 71.0, 1980.0)
    assert gpu0["throttle"] == ["power-cap", "thermal"]
    assert sampler.event() is None  # the window was consumed


def test_a_failing_counter_is_none_not_an_error(fake_nvml, monkeypatch):
    def broken(handle):
        raise fake_nvml.NVMLError("Not Supported")

    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetPowerUsage", broken)
    reading = T.read_device(fake_nvml, ("handle", 0))
    assert reading["power"] is None and reading["temp"] == 71.0


def test_thread_emits_events_that_fold_into_a_bounded_history(fake_nvml):
    emitted: list[dict] = []
    thread = T.start_gpu_thread(emitted.append, step=lambda: 3, sample_every=0.01,
                                emit_every=0.02)
    assert thread is not None
    wait_for(lambda: len(emitted) >= 3, timeout=30, what="three gpu events")
    thread.stop()
    assert fake_nvml._calls["shutdown"] == 1
    assert all(e["type"] == "gpu" and e["step"] == 3 for e in emitted)
    state = fold([{"type": "run_started", "time": 1.0}, *emitted])
    assert state.gpu == emitted
    state.max_gpu_samples = 2
    state.apply(emitted[-1])
    assert len(state.gpu) == 2
    assert fold(emitted, compact=True).gpu == []  # the listing keeps no samples


@pytest.mark.slow
def test_a_worker_with_nvml_writes_gpu_events(tmp_path, tiny_assets):
    """A real `clmtune train` whose worker imports the fake NVML (first on PYTHONPATH)."""
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=4,
                          eval_strategy="no", save_strategy="no")
    env = cli_env(PYTHONPATH=f"{FAKE_DIR}:{cli_env().get('PYTHONPATH', '')}",
                  CUDA_VISIBLE_DEVICES="1,0")
    env.pop("CLMTUNE_NO_GPU_TELEMETRY", None)
    result = clmtune("train", str(config), "--run-dir", "run", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    events = events_of(tmp_path / "run")
    gpu = [e for e in events if e["type"] == "gpu"]
    assert gpu, "no gpu event"
    assert [d["index"] for d in gpu[-1]["devices"]] == [1, 0]
    assert gpu[-1]["devices"][0]["mem_used"] == 10 * GIB
    assert gpu[-1]["devices"][1]["throttle"] == ["power-cap", "thermal"]
    state = fold(events)
    assert state.gpu[-1]["devices"][0]["power_limit"] == 700.0
    # CUDA_VISIBLE_DEVICES names GPUs, but torch sees none here: tokens/s, no MFU.
    assert state.tokens_per_second and state.mfu is None
