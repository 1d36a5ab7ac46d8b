"""EventCallback, StopControl and memory sampling with hand-built Trainer state."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from clmtune.backend.callback import EventCallback, StopControl, perplexity
from clmtune.backend.memory import MemorySampler, MemoryThread
from clmtune.backend.rundir.layout import COMPLETE_MARKER, STOP_FILE


class Sink:
    """An emit function that keeps the events."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


def make_args(tmp_path: Path, **kw) -> SimpleNamespace:
    values = dict(
        output_dir=str(tmp_path),
        world_size=1,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    values.update(kw)
    return SimpleNamespace(**values)


def make_state(max_steps: int = 100, step: int = 0, main: bool = True) -> TrainerState:
    state = TrainerState(max_steps=max_steps, global_step=step, epoch=0.0)
    state.is_world_process_zero = main
    return state


def started(tmp_path, block_size=32, **kw):
    sink = Sink()
    stop = StopControl(tmp_path, check_every_s=0.0)
    cb = EventCallback(sink, stop, block_size=block_size, memory=MemorySampler(), **kw)
    args, state, control = make_args(tmp_path), make_state(), TrainerControl()
    cb.on_train_begin(args, state, control)
    return cb, sink, args, state, control


def test_train_begin_announces_training_with_max_steps(tmp_path):
    _, sink, *_ = started(tmp_path)
    (phase,) = sink.of("phase")
    assert phase["phase"] == "training"
    assert phase["detail"] == "step 0 of 100" and phase["progress"] == 0


def test_train_log_carries_throughput_and_eta(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    state.global_step, state.epoch = 10, 0.5
    cb.on_log(args, state, control, logs={"loss": 2.5, "learning_rate": 1e-4, "grad_norm": 0.7})
    (log,) = sink.of("train_log")
    assert (log["step"], log["loss"], log["learning_rate"], log["grad_norm"]) == (
        10, 2.5, 1e-4, 0.7,
    )  # fmt: skip
    # 10 steps x 4 per device x 2 accumulation x 1 process x 32 tokens
    assert log["tokens_per_second"] == pytest.approx(log["samples_per_second"] * 32)
    assert log["tokens_per_second"] > 0
    assert log["eta_seconds"] is not None and log["eta_seconds"] >= 0
    (memory,) = sink.of("memory")
    assert memory["step"] == 10 and memory["process_rss"] > 0 and memory["devices"] == []


def test_eval_and_train_end_logs_are_not_train_logs(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    state.global_step = 4
    cb.on_log(args, state, control, logs={"eval_loss": 2.0})
    cb.on_log(args, state, control, logs={"train_runtime": 1.0, "train_loss": 2.0})
    assert sink.of("train_log") == []


def test_nan_loss_is_logged_and_flagged_once_per_episode(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    for step, loss in enumerate([2.0, math.nan, math.inf, 1.0, math.nan], start=1):
        state.global_step = step
        cb.on_log(args, state, control, logs={"loss": loss})
    assert len(sink.of("train_log")) == 5
    assert math.isnan(sink.of("train_log")[1]["loss"])
    warnings = sink.of("warning")
    assert [w["code"] for w in warnings] == ["nan_loss", "nan_loss"]
    assert [w["step"] for w in warnings] == [2, 5]


def test_evaluate_emits_eval_with_perplexity(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    state.global_step = 8
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 2.0, "eval_accuracy": 0.3})
    (ev,) = sink.of("eval")
    assert ev["step"] == 8
    assert ev["metrics"]["perplexity"] == pytest.approx(math.exp(2.0))
    assert perplexity(1e6) == math.inf


def test_on_save_marks_the_checkpoint_complete(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    state.global_step = 4
    ckpt = tmp_path / "checkpoint-4"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"x")
    cb.on_save(args, state, control)
    assert (ckpt / COMPLETE_MARKER).is_file()
    (event,) = sink.of("checkpoint")
    assert event["complete"] and event["path"] == str(ckpt)


def test_on_save_without_the_directory_claims_nothing(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    state.global_step = 6
    cb.on_save(args, state, control)
    assert not (tmp_path / "checkpoint-6").exists()
    assert sink.of("checkpoint")[0]["complete"] is False


def test_stale_marker_is_removed_before_a_checkpoint_is_rewritten(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    ckpt = tmp_path / "checkpoint-5"
    ckpt.mkdir()
    (ckpt / COMPLETE_MARKER).write_text("{}")
    state.global_step = 5
    control.should_save = True
    cb.on_step_end(args, state, control)
    assert not (ckpt / COMPLETE_MARKER).exists()
    assert sink.of("phase")[-1]["phase"] == "saving"


def test_stop_file_stops_at_the_next_step_with_a_save(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    state.global_step = 1
    cb.on_step_end(args, state, control)
    assert not control.should_training_stop
    (tmp_path / STOP_FILE).write_text("stop")
    state.global_step = 2
    cb.on_step_end(args, state, control)
    assert control.should_save and control.should_training_stop
    assert cb.stopped_at == 2
    assert any("stop requested" in e["message"] for e in sink.of("log"))


def test_signal_flag_stops_too(tmp_path):
    cb, _, args, state, control = started(tmp_path)
    cb.stop.request("SIGTERM")
    state.global_step = 3
    cb.on_step_end(args, state, control)
    assert control.should_training_stop and cb.stop.reason == "SIGTERM"


def test_stop_file_is_looked_at_only_every_interval(tmp_path):
    stop = StopControl(tmp_path, check_every_s=3600)
    assert stop.poll() is False  # first look
    (tmp_path / STOP_FILE).write_text("stop")
    assert stop.poll() is False  # not looked at again within the interval
    assert StopControl(tmp_path).poll() is True


def test_other_ranks_emit_nothing_but_still_stop(tmp_path):
    sink = Sink()
    stop = StopControl(tmp_path, check_every_s=0.0)
    cb = EventCallback(sink, stop, block_size=8)
    args, control = make_args(tmp_path), TrainerControl()
    state = make_state(main=False)
    cb.on_train_begin(args, state, control)
    state.global_step = 2
    cb.on_log(args, state, control, logs={"loss": 1.0})
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.0})
    stop.request("SIGTERM")
    cb.on_step_end(args, state, control)
    assert sink.events == []
    assert control.should_training_stop


def test_memory_thread_fills_the_gaps(tmp_path):
    sink = Sink()
    sampler = MemorySampler()
    thread = MemoryThread(sampler, sink, interval=0.05, step=lambda: 7).start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if len(sink.of("memory")) >= 2:
                break
            deadline.wait(0.01)
    finally:
        thread.stop()
    samples = sink.of("memory")
    assert len(samples) >= 2
    assert samples[0]["step"] == 7
    assert samples[0]["system_total"] >= samples[0]["system_used"] > 0


def test_memory_sample_without_cuda_never_touches_the_gpu(tmp_path):
    # Devices are listed, but CUDA is not initialised here: no GPU numbers, no error.
    sample = MemorySampler([0]).sample(3)
    assert sample["devices"] == []
    assert sample["process_rss"] > 0


class FakeCuda:
    """The few torch.cuda calls a sample makes, for a machine without a GPU."""

    def __init__(self) -> None:
        self.peak = 900
        self.resets = 0

    def get_device_name(self, index):
        return f"Fake GPU {index}"

    def memory_allocated(self, index):
        return 100

    def memory_reserved(self, index):
        return 200

    def max_memory_allocated(self, index):
        return self.peak

    def reset_peak_memory_stats(self, index):
        self.resets += 1
        self.peak = 100

    def mem_get_info(self, index):
        return (3_000, 10_000)


def test_cuda_sample_reports_the_peak_of_each_interval_once(monkeypatch):
    import clmtune.backend.memory as memory

    fake = FakeCuda()
    monkeypatch.setattr(memory, "_cuda_module", lambda: fake)
    sampler = MemorySampler([1])
    first = sampler.sample(5)["devices"]
    assert first == [{"index": 1, "name": "Fake GPU 1", "allocated": 100, "reserved": 200,
                      "peak_allocated": 900, "used": 7_000, "total": 10_000}]  # fmt: skip
    assert sampler.sample(6)["devices"][0]["peak_allocated"] == 100  # reset after the first
    assert fake.resets == 2


def test_broken_cuda_call_drops_only_that_number(monkeypatch):
    import clmtune.backend.memory as memory

    fake = FakeCuda()
    fake.mem_get_info = lambda index: (_ for _ in ()).throw(RuntimeError("driver gone"))
    monkeypatch.setattr(memory, "_cuda_module", lambda: fake)
    (device,) = MemorySampler([0]).sample(1)["devices"]
    assert device["allocated"] == 100 and "used" not in device


def test_sampling_on_a_machine_without_a_gpu_prints_nothing():
    import subprocess
    import sys

    from tests.run_helpers import REPO, cli_env

    code = (
        "import torch\n"
        "from clmtune.backend.memory import MemorySampler\n"
        "s = MemorySampler([0, 1])\n"
        "e = s.sample(1)\n"
        "assert e['process_rss'] > 0, e\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(CUDA_VISIBLE_DEVICES=""),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""


def test_memory_is_sampled_at_most_once_a_second_however_often_it_logs(tmp_path):
    cb, sink, args, state, control = started(tmp_path)
    for step in range(1, 6):  # five logs within far less than a second
        state.global_step = step
        cb.on_log(args, state, control, logs={"loss": 2.0})
    assert len(sink.of("train_log")) == 5
    assert [m["step"] for m in sink.of("memory")] == [1]
    cb.memory.last_sample_time -= 1.0  # a second later, the next log samples again
    state.global_step = 6
    cb.on_log(args, state, control, logs={"loss": 2.0})
    assert [m["step"] for m in sink.of("memory")] == [1, 6]


def test_memory_every_log_when_asked(tmp_path):
    cb, sink, args, state, control = started(tmp_path, memory_every_s=0.0)
    for step in range(1, 4):
        state.global_step = step
        cb.on_log(args, state, control, logs={"loss": 2.0})
    assert [m["step"] for m in sink.of("memory")] == [1, 2, 3]
