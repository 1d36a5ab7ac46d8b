"""Run dirs and checkpoint health on hand-made directories (no training, no torch)."""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from backend.events import EventWriter, make_event
from backend.runs import (
    COMPLETE_MARKER,
    RUN_JSON,
    RunError,
    classify_checkpoint,
    delete_run,
    is_run_dir,
    list_checkpoints,
    list_runs,
    read_run,
    resolve_resume,
)

# ------------------------------------------------------------------ builders


def _safetensors(path: Path, torn: bool = False) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    blob = struct.pack("<Q", len(header)) + header + b"\0" * 16
    path.write_bytes(blob[:-5] if torn else blob)


def _torch_zip(path: Path, torn: bool = False) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"x" * 200)
    if torn:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def make_checkpoint(
    run_dir: Path,
    step: int,
    *,
    files: tuple[str, ...] = ("weights", "config", "optimizer", "scheduler", "rng", "state"),
    marker: bool = True,
    torn: tuple[str, ...] = (),
    eval_loss: float | None = None,
) -> Path:
    ckpt = run_dir / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if "weights" in files:
        _safetensors(ckpt / "model.safetensors", torn="weights" in torn)
    if "config" in files:
        (ckpt / "config.json").write_text('{"model_type": "gpt2"}')
    if "optimizer" in files:
        _torch_zip(ckpt / "optimizer.pt", torn="optimizer" in torn)
    if "scheduler" in files:
        _torch_zip(ckpt / "scheduler.pt")
    if "rng" in files:
        _torch_zip(ckpt / "rng_state.pth")
    if "state" in files:
        history = [{"step": step, "loss": 1.0}]
        if eval_loss is not None:
            history.append({"step": step, "eval_loss": eval_loss})
        (ckpt / "trainer_state.json").write_text(
            json.dumps(
                {
                    "global_step": step,
                    "max_steps": 100,
                    "log_history": history,
                    "train_batch_size": 4,
                }
            )  # fmt: skip
        )
    if marker:
        (ckpt / COMPLETE_MARKER).write_text(json.dumps({"step": step, "world_size": 1}))
    return ckpt


def make_run(path: Path, status: str = "completed", **fields) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    info = {
        "status": status,
        "pid": fields.pop("pid", None),
        "worker_pid": fields.pop("worker_pid", None),
        "host": fields.pop("host", socket.gethostname()),
        "start_time": fields.pop("start_time", time.time() - 60),
        "world_size": 1,
        **fields,
    }
    (path / RUN_JSON).write_text(json.dumps(info))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------ classification


def test_complete_checkpoint_needs_marker_and_files(tmp_path):
    run = make_run(tmp_path / "run")
    assert classify_checkpoint(make_checkpoint(run, 2)).state == "complete"
    unmarked = classify_checkpoint(make_checkpoint(run, 4, marker=False))
    assert unmarked.state == "weights-only"
    assert "marker" in unmarked.reason


def test_missing_optimizer_is_weights_only(tmp_path):
    run = make_run(tmp_path / "run")
    info = classify_checkpoint(
        make_checkpoint(run, 2, files=("weights", "config", "state", "rng", "scheduler"))
    )
    assert info.state == "weights-only"
    assert "optimizer" in info.reason
    assert not info.resumable


@pytest.mark.parametrize(
    ("files", "torn"),
    [
        (("config",), ()),  # killed before the weights
        (("weights", "config"), ("weights",)),  # killed while writing the weights
        (("weights",), ()),  # no config.json: cannot even start a new run from it
    ],
)
def test_partial_checkpoints(tmp_path, files, torn):
    run = make_run(tmp_path / "run")
    info = classify_checkpoint(make_checkpoint(run, 2, files=files, torn=torn, marker=False))
    assert info.state == "partial"
    assert not info.resumable


def test_torn_optimizer_is_never_complete_even_with_a_marker(tmp_path):
    run = make_run(tmp_path / "run")
    info = classify_checkpoint(make_checkpoint(run, 2, torn=("optimizer",)))
    assert info.state == "weights-only"
    assert "torn" in info.reason


def test_ddp_marker_requires_every_rank_rng_state(tmp_path):
    run = make_run(tmp_path / "run")
    ckpt = make_checkpoint(run, 2, files=("weights", "config", "optimizer", "scheduler", "state"))
    (ckpt / COMPLETE_MARKER).write_text(json.dumps({"step": 2, "world_size": 2}))
    _torch_zip(ckpt / "rng_state_0.pth")
    assert classify_checkpoint(ckpt).state == "weights-only"
    _torch_zip(ckpt / "rng_state_1.pth")
    assert classify_checkpoint(ckpt).state == "complete"


def test_plain_hugging_face_dir_needs_no_marker(tmp_path):
    hf = tmp_path / "hf-out"
    make_checkpoint(hf, 10, marker=False, eval_loss=2.5)
    make_checkpoint(hf, 20, marker=False, files=("weights", "config"))
    checkpoints = list_checkpoints(hf)
    assert [(c.step, c.state) for c in checkpoints] == [(10, "complete"), (20, "weights-only")]
    assert checkpoints[0].eval_loss == 2.5
    assert checkpoints[0].size_bytes > 0


# ------------------------------------------------------------------ resume


def test_resume_last_picks_newest_complete_never_partial(tmp_path):
    run = make_run(tmp_path / "run")
    make_checkpoint(run, 4)
    make_checkpoint(run, 8)
    make_checkpoint(run, 12, marker=False, files=("weights", "config", "optimizer"))  # killed
    make_checkpoint(run, 16, marker=False, files=("config",))
    assert resolve_resume(run, "last") == (run / "checkpoint-8").resolve()


def test_resume_last_without_a_complete_checkpoint_is_a_one_line_error(tmp_path):
    run = make_run(tmp_path / "run")
    make_checkpoint(run, 4, marker=False, files=("config",))
    with pytest.raises(RunError) as err:
        resolve_resume(run, "last")
    assert "no complete checkpoint" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(RunError, match="no checkpoint"):
        resolve_resume(make_run(tmp_path / "empty"), "last")


def test_resume_from_a_given_path(tmp_path):
    run = make_run(tmp_path / "run")
    good = make_checkpoint(run, 4)
    bad = make_checkpoint(run, 8, marker=False, files=("weights", "config"))
    assert resolve_resume(run, str(good)) == good.resolve()
    assert resolve_resume(run, "checkpoint-4") == good.resolve()  # relative to the run dir
    with pytest.raises(RunError, match="weights-only"):
        resolve_resume(run, str(bad))
    with pytest.raises(RunError, match="no such directory"):
        resolve_resume(run, str(run / "checkpoint-99"))


# ------------------------------------------------------------------ status


def test_running_run_whose_process_is_gone_reads_as_crashed(tmp_path):
    run = make_run(tmp_path / "run", status="running", pid=dead_pid())
    assert read_run(run).status == "crashed"


def test_running_run_with_live_process_reads_as_running(tmp_path):
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=time.time())
    assert read_run(run).status == "running"


def test_reused_pid_reads_as_crashed(tmp_path):
    # Our pid is alive but was born long after this (fake) run started: not its worker.
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=1000.0)
    assert read_run(run).status == "crashed"


def test_running_run_on_another_host_is_left_alone(tmp_path):
    run = make_run(tmp_path / "run", status="running", pid=dead_pid(), host="elsewhere")
    assert read_run(run).status == "running"


def test_events_only_run_uses_the_pid_from_run_started(tmp_path):
    run = tmp_path / "run"
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("run_started", pid=dead_pid(), host=socket.gethostname(),
                               max_steps=10))  # fmt: skip
        writer.emit(make_event("train_log", step=3, loss=2.0))
    summary = read_run(run)
    assert summary.status == "crashed"
    assert summary.global_step == 3
    assert summary.max_steps == 10


def test_damaged_dir_never_raises(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_JSON).write_text('{"status": "runn')  # torn (never happens: atomic write)
    (run / "events.jsonl").write_text('{"v":1,"type":"train_log","step":2,"loss":1.0}\n{"v":')
    (run / "config.toml").write_text("[model\n")
    (run / "checkpoint-3").mkdir()
    summary = read_run(run)
    assert summary.global_step == 2
    assert summary.checkpoints[0].state == "partial"
    json.dumps(summary.to_json())


def test_summary_of_a_finished_run(tmp_path):
    run = make_run(tmp_path / "run", status="completed", end_time=time.time())
    (run / "config.toml").write_text('[model]\nmodel_name_or_path = "gpt2"\n')
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("run_started", max_steps=8, world_size=1))
        writer.emit(make_event("train_log", step=8, loss=1.25))
        writer.emit(make_event("eval", step=8, metrics={"eval_loss": 1.5, "perplexity": 4.48}))
        writer.emit(make_event("run_finished", status="completed", error=None, hint=None))
    (run / "all_results.json").write_text(json.dumps({"eval_loss": 1.5, "perplexity": 4.48}))
    (run / "eval_results.json").write_text(json.dumps({"eval_loss": 1.5, "perplexity": 4.48}))
    make_checkpoint(run, 8)
    summary = read_run(run)
    assert summary.status == "completed"
    assert (summary.model, summary.global_step, summary.max_steps) == ("gpt2", 8, 8)
    assert summary.last_loss == 1.25 and summary.best_eval_loss == 1.5
    assert summary.perplexity == pytest.approx(4.48)
    assert summary.metrics["eval"]["eval_loss"] == 1.5
    assert summary.settings == {"model": {"model_name_or_path": "gpt2"}}
    assert summary.duration is not None and summary.duration >= 0
    data = summary.to_json()
    assert data["checkpoints"][0]["state"] == "complete"
    assert data["checkpoints"][0]["path"].endswith("checkpoint-8")


def test_hugging_face_only_dir(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "trainer_state.json").write_text(
        json.dumps(
            {
                "global_step": 30,
                "max_steps": 30,
                "log_history": [
                    {"step": 10, "loss": 3.0},
                    {"step": 10, "eval_loss": 2.9},
                    {"step": 30, "loss": 2.0},
                    {"step": 30, "eval_loss": 2.2},
                ],
            }
        )
    )
    (hf / "all_results.json").write_text(json.dumps({"eval_loss": 2.2, "train_loss": 2.4}))
    make_checkpoint(hf, 30, marker=False)
    summary = read_run(hf)
    assert summary.source == "huggingface"
    assert summary.status == "completed"
    assert (summary.global_step, summary.max_steps, summary.last_loss) == (30, 30, 2.0)
    assert summary.best_eval_loss == 2.2
    assert summary.perplexity == pytest.approx(math.exp(2.2))
    assert summary.checkpoints[0].resumable


def test_nan_values_are_json_safe(tmp_path):
    run = make_run(tmp_path / "run")
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("train_log", step=1, loss=float("nan")))
    text = json.dumps(read_run(run).to_json(), allow_nan=False)
    assert '"nan"' in text


# ------------------------------------------------------------------ listing / delete


def test_list_runs_newest_first_and_missing_root(tmp_path):
    assert list_runs(tmp_path / "nope") == []
    make_run(tmp_path / "old", start_time=1000.0)
    make_run(tmp_path / "new", start_time=2000.0)
    (tmp_path / "not-a-run").mkdir()
    assert [r.name for r in list_runs(tmp_path)] == ["new", "old"]
    assert is_run_dir(tmp_path / "old") and not is_run_dir(tmp_path / "not-a-run")


def test_delete_refuses_a_running_run(tmp_path):
    live = make_run(tmp_path / "live", status="running", pid=os.getpid(), start_time=time.time())
    with pytest.raises(RunError, match="still running"):
        delete_run(live)
    done = make_run(tmp_path / "done")
    delete_run(done)
    assert not done.exists()
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a run directory"):
        delete_run(tmp_path / "plain")
