"""Build the recorded event files under tests/tui/data/ (run: python -m tests.tui.make_recordings).

Each recording is a realistic event sequence of one run, built with
``backend.events.make_event`` and stamped with fixed times from ``T0`` so screens and
snapshots that derive times from events are stable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from clmtune.backend.events import EventWriter, make_event

DATA = Path(__file__).with_name("data")
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
GIB = 1024**3
MIB = 1024**2

RECORDINGS = ("completed", "running_gpu", "failed", "tokenizing", "resumed", "crashed", "nan",
              "gpu_telemetry")
RESUME_GAP = 1000.0  # seconds between the stop and the resume of "resumed"


class Recorder:
    """Events with a fake clock: ``tick(seconds)`` advances the time stamped on the next ones."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.events: list[dict[str, Any]] = []

    def tick(self, seconds: float) -> None:
        self.now += seconds

    def emit(self, type_: str, **fields: Any) -> None:
        event = make_event(type_, **fields)
        event["time"] = round(self.now, 3)
        self.events.append(event)


def loss_at(step: int) -> float:
    """A plausible decaying loss with a little deterministic noise."""
    return 2.2 + 8.5 * math.exp(-step / 18.0) + 0.08 * math.sin(step * 1.7)


def _start(rec: Recorder, run_dir: str, max_steps: int, world: int, devices: list[str],
           resume_step: int | None = None) -> None:
    rec.emit(
        "run_started", run_dir=run_dir, pid=4242, host="gpu-box", world_size=world,
        devices=devices, num_params=1_234_567, trainable_params=1_234_567, max_steps=max_steps,
        num_train_epochs=3.0, train_samples=480, eval_samples=48, block_size=64,
        resumed_from=f"{run_dir}/checkpoint-{resume_step}" if resume_step else None,
        resume_step=resume_step,
        settings={"model": "tiny-gpt2", "data": "demo.txt", "packing": "group",
                  "block_size": 64, "learning_rate": 5e-4, "per_device_train_batch_size": 8,
                  "gradient_accumulation_steps": 1, "max_steps": max_steps, "seed": 42},
    )


def _prep(rec: Recorder, tokenize_until: float = 1.0) -> None:
    for phase in ("loading_model", "loading_data"):
        rec.emit("phase", phase=phase, progress=None, detail="")
        rec.tick(0.5)
    for i in range(1, 5):
        progress = min(i / 4, tokenize_until)
        rec.emit("phase", phase="tokenizing", progress=progress,
                 detail=f"{int(progress * 528)}/528 examples")
        rec.tick(0.4)
        if tokenize_until < 1.0 and progress >= tokenize_until:
            return  # a run caught mid-tokenizing
    rec.emit("phase", phase="grouping", progress=1.0, detail="block_size 64")
    rec.tick(0.3)
    rec.emit("phase", phase="training", progress=None, detail="")


def _memory(rec: Recorder, step: int, gpus: int) -> None:
    devices = [
        {"index": i, "name": "NVIDIA A100-SXM4-80GB",
         "allocated": int((3.1 + 0.01 * step + 0.2 * i) * GIB),
         "reserved": int(4.0 * GIB), "peak_allocated": int((3.5 + 0.012 * step) * GIB),
         "used": int((5.2 + 0.2 * i) * GIB), "total": 80 * GIB}
        for i in range(gpus)
    ]
    rec.emit("memory", step=step, devices=devices,
             process_rss=int((900 + 3 * step) * MIB), system_used=int(9.5 * GIB),
             system_total=16 * GIB)


def _train(rec: Recorder, steps: range, max_steps: int, gpus: int,
           eval_every: int, save_every: int, run_dir: str) -> None:
    for step in steps:
        rec.tick(0.25)
        lr = 5e-4 * (1 - step / max_steps)
        rec.emit("train_log", step=step, epoch=round(3 * step / max_steps, 3), loss=loss_at(step),
                 learning_rate=lr, grad_norm=1.5 + 0.5 * math.cos(step / 3),
                 tokens_per_second=8200.0 + 40 * (step % 5), samples_per_second=128.0,
                 eta_seconds=(max_steps - step) * 0.25)
        if step % 5 == 0:
            _memory(rec, step, gpus)
        if step % eval_every == 0:
            rec.tick(0.4)
            eval_loss = loss_at(step) + 0.15
            rec.emit("eval", step=step, epoch=round(3 * step / max_steps, 3),
                     metrics={"eval_loss": eval_loss, "eval_accuracy": 0.1 + step / 200,
                              "perplexity": math.exp(eval_loss), "eval_runtime": 0.4})
        if step % save_every == 0:
            rec.tick(0.2)
            rec.emit("checkpoint", step=step, path=f"{run_dir}/checkpoint-{step}", complete=True)


def completed() -> list[dict[str, Any]]:
    rec = Recorder()
    run_dir = "runs/demo-completed"
    _start(rec, run_dir, 60, 1, ["cpu"])
    _prep(rec)
    rec.emit("warning", code="no_gpu", message="No GPU found: training on the CPU is slow.")
    _train(rec, range(1, 61), 60, 0, eval_every=20, save_every=20, run_dir=run_dir)
    rec.emit("final_metrics", split="train",
             metrics={"train_loss": 3.61, "train_runtime": 15.2, "train_samples": 480,
                      "train_samples_per_second": 94.7, "train_steps_per_second": 3.95,
                      "epoch": 3.0})
    rec.emit("final_metrics", split="eval",
             metrics={"eval_loss": 2.41, "eval_accuracy": 0.412, "perplexity": math.exp(2.41),
                      "eval_samples": 48, "eval_runtime": 0.41,
                      "eval_samples_per_second": 117.0, "eval_steps_per_second": 14.6,
                      "epoch": 3.0})
    rec.emit("phase", phase="finished", progress=None, detail="")
    rec.emit("run_finished", status="completed", error=None, hint=None)
    return rec.events


def running_gpu() -> list[dict[str, Any]]:
    rec = Recorder()
    run_dir = "runs/gpt2-live"
    _start(rec, run_dir, 100, 2, ["cuda:0", "cuda:1"])
    _prep(rec)
    rec.emit("log", message="`loss_type=None` was set in the config but it is unrecognised.")
    _train(rec, range(1, 36), 100, 2, eval_every=25, save_every=30, run_dir=run_dir)
    rec.emit("warning", code="grad_spike", message="grad norm 41.2 at step 33 (10x the median)")
    return rec.events


def failed() -> list[dict[str, Any]]:
    rec = Recorder()
    run_dir = "runs/big-oom"
    _start(rec, run_dir, 200, 1, ["cuda:0"])
    _prep(rec)
    _train(rec, range(1, 8), 200, 1, eval_every=100, save_every=100, run_dir=run_dir)
    rec.emit("run_finished", status="failed",
             error="CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)",
             hint="lower per_device_train_batch_size or block_size, or enable "
                  "gradient_checkpointing")
    return rec.events


def tokenizing() -> list[dict[str, Any]]:
    rec = Recorder()
    _start(rec, "runs/fresh", 500, 1, ["cpu"])
    _prep(rec, tokenize_until=0.5)
    return rec.events


def resumed() -> list[dict[str, Any]]:
    """Stopped at step 25 (checkpoint 20), resumed RESUME_GAP s later, completed at 60.

    The second attempt has the real worker's order: loading phases, then run_started.
    """
    rec = Recorder()
    run_dir = "runs/resumed"
    _start(rec, run_dir, 60, 1, ["cpu"])
    _prep(rec)
    _train(rec, range(1, 26), 60, 0, eval_every=20, save_every=20, run_dir=run_dir)
    rec.tick(0.3)
    rec.emit("checkpoint", step=25, path=f"{run_dir}/checkpoint-25", complete=False)
    rec.emit("final_metrics", split="train",
             metrics={"train_loss": 4.9, "train_runtime": 6.5, "train_samples": 480,
                      "train_samples_per_second": 60.0, "epoch": 1.25})
    rec.emit("run_finished", status="stopped", error=None, hint=None)
    rec.tick(RESUME_GAP)
    rec.emit("phase", phase="loading_model", progress=None, detail="loading")
    rec.tick(0.5)
    rec.emit("phase", phase="loading_model", progress=1.0, detail="tiny-gpt2")
    rec.tick(0.5)
    _start(rec, run_dir, 60, 1, ["cpu"], resume_step=20)
    rec.emit("phase", phase="training", progress=None, detail="")
    _train(rec, range(21, 61), 60, 0, eval_every=20, save_every=20, run_dir=run_dir)
    # Trainer's own figure: the whole run's samples over the second attempt's runtime.
    rec.emit("final_metrics", split="train",
             metrics={"train_loss": 3.2, "train_runtime": 11.0, "train_samples": 480,
                      "train_samples_per_second": 43.6, "epoch": 3.0})
    rec.emit("final_metrics", split="eval",
             metrics={"eval_loss": 2.45, "eval_accuracy": 0.4, "perplexity": math.exp(2.45),
                      "eval_samples": 48, "epoch": 3.0})
    rec.emit("phase", phase="finished", progress=None, detail="")
    rec.emit("run_finished", status="completed", error=None, hint=None)
    return rec.events


def crashed() -> list[dict[str, Any]]:
    """A worker killed at step 18 of 100: no run_finished (run.json still says running)."""
    rec = Recorder()
    run_dir = "runs/crashed"
    _start(rec, run_dir, 100, 1, ["cpu"])
    _prep(rec)
    _train(rec, range(1, 19), 100, 0, eval_every=10, save_every=10, run_dir=run_dir)
    return rec.events


def nan() -> list[dict[str, Any]]:
    """The loss becomes NaN at step 12 (then inf once); the worker warns, the run completes."""
    rec = Recorder()
    run_dir = "runs/nan"
    _start(rec, run_dir, 30, 1, ["cpu"])
    _prep(rec)
    for step in range(1, 31):
        rec.tick(0.25)
        loss = loss_at(step) if step < 12 else (math.inf if step == 12 else math.nan)
        rec.emit("train_log", step=step, epoch=step / 10, loss=loss, learning_rate=5e-3,
                 grad_norm=math.nan if step >= 12 else 2.0, tokens_per_second=8000.0,
                 samples_per_second=125.0, eta_seconds=(30 - step) * 0.25)
        if step == 12:
            rec.emit("warning", code="nan_loss", step=12,
                     message="the training loss is inf at step 12: lower the learning rate, "
                     "enable max_grad_norm, or use bf16 instead of fp16")
    rec.emit("final_metrics", split="train",
             metrics={"train_loss": math.nan, "train_runtime": 7.5, "train_samples": 480,
                      "epoch": 3.0})
    rec.emit("phase", phase="finished", progress=None, detail="")
    rec.emit("run_finished", status="completed", error=None, hint=None)
    return rec.events


def _gpu(rec: Recorder, step: int, gpus: int) -> None:
    """A ``gpu`` event (backend.telemetry): two H100s, utilisation rising with the step."""
    devices = [
        {"index": i, "name": "NVIDIA H100 80GB HBM3", "util": 70.0 + step % 20 + i,
         "util_max": 99.0, "mem_used": int((61.5 + i) * GIB), "mem_used_max": int(63 * GIB),
         "mem_total": int(79.6 * GIB), "power": 612.0 + i, "power_max": 690.0,
         "power_limit": 700.0, "temp": 71.0 + i, "temp_max": 74.0, "sm_clock": 1980.0,
         "throttle": ["power-cap"] if i == 1 else []}
        for i in range(gpus)
    ]
    rec.emit("gpu", step=step, interval=10.0, samples=10, devices=devices)


def gpu_telemetry() -> list[dict[str, Any]]:
    """A running bf16 run on two H100s with NVML telemetry and the MFU fields."""
    rec = Recorder()
    run_dir = "runs/gpu-fast"
    _start(rec, run_dir, 100, 2, ["cuda:0 NVIDIA H100 80GB HBM3", "cuda:1 NVIDIA H100 80GB HBM3"])
    started = rec.events[-1]
    # GPT-2 small at block 1024 (tests/test_mfu.py has the hand computation).
    started.update(flops_per_token=855_166_464, peak_flops=989.5e12, precision="bf16",
                   gpu_name="NVIDIA H100 80GB HBM3")
    _prep(rec)
    for step in range(1, 41):
        rec.tick(0.25)
        rec.emit("train_log", step=step, epoch=round(step / 100, 3), loss=loss_at(step),
                 learning_rate=6e-4, grad_norm=1.2, tokens_per_second=800_000.0,
                 samples_per_second=781.25, eta_seconds=(100 - step) * 0.25)
        if step % 10 == 0:
            _gpu(rec, step, 2)
            _memory(rec, step, 2)
    return rec.events


def build(name: str) -> list[dict[str, Any]]:
    """The events of recording ``name`` (one of RECORDINGS)."""
    return {"completed": completed, "running_gpu": running_gpu, "failed": failed,
            "tokenizing": tokenizing, "resumed": resumed, "crashed": crashed,
            "nan": nan, "gpu_telemetry": gpu_telemetry}[name]()


def write(name: str, path: Path) -> Path:
    """Write recording ``name`` as an events.jsonl at ``path`` through the real writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with EventWriter(path) as writer:
        for event in build(name):
            writer.emit(event)
    return path


def main() -> None:
    for name in RECORDINGS:
        out = write(name, DATA / f"{name}.jsonl")
        print(f"{out}: {sum(1 for _ in out.open())} events")
    # keep json import used for ad-hoc inspection: a manifest of what is recorded
    (DATA / "MANIFEST.json").write_text(json.dumps({"t0": T0, "recordings": RECORDINGS}) + "\n")


if __name__ == "__main__":
    main()
