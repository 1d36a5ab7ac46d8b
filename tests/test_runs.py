"""Run dirs and checkpoint health on hand-made directories (no training, no torch)."""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from clmtune.backend.events import EventWriter, make_event
from clmtune.backend.rundir import cache as cache_mod
from clmtune.backend.rundir import checkpoints as checkpoints_mod
from clmtune.backend.rundir import summary as summary_mod
from clmtune.backend.rundir.cache import clear_caches
from clmtune.backend.rundir.checkpoints import classify_checkpoint, list_checkpoints, resolve_resume
from clmtune.backend.rundir.layout import COMPLETE_MARKER, RUN_JSON, RunError, is_run_dir
from clmtune.backend.rundir.listing import list_runs
from clmtune.backend.rundir.summary import delete_run, read_run

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


# ------------------------------------------------------------------ the per-process cache
#
# read_run / list_runs cache what they derive from files (see backend.rundir). Each test
# runs twice: with the "racy" re-check window (files written within RACY_NS of being read
# are verified again: what tests, which write and read at once, normally exercise) and
# with it off, where only the stat keys decide.


@pytest.fixture(params=["racy-window", "stat-only"])
def cache_mode(request, monkeypatch):
    if request.param == "stat-only":
        monkeypatch.setattr(cache_mod, "RACY_NS", -(10**18))
    return request.param


def fresh(run_dir: Path) -> dict:
    """The summary computed from scratch (cache emptied), minus the wall-clock duration."""
    clear_caches()
    return comparable(read_run(run_dir))


def comparable(summary) -> dict:
    data = summary.to_json()
    data.pop("duration")
    return data


def write_events(path: Path, *events: dict) -> None:
    with EventWriter(path) as writer:
        for event in events:
            writer.emit(event)


def train(step: int, loss: float) -> dict:
    return make_event("train_log", step=step, loss=loss, learning_rate=1e-3, grad_norm=1.0)


def test_cached_summary_follows_a_growing_events_file(tmp_path, cache_mode):
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=time.time())
    events = run / "events.jsonl"
    write_events(events, make_event("run_started", max_steps=100), train(1, 3.0))
    assert (read_run(run).global_step, read_run(run).last_loss) == (1, 3.0)
    write_events(
        events,
        train(2, 2.5),
        make_event("eval", step=2, metrics={"eval_loss": 2.75, "perplexity": 15.6}),
        train(3, 2.0),
    )
    summary = read_run(run)
    assert (summary.global_step, summary.last_loss, summary.best_eval_loss) == (3, 2.0, 2.75)
    assert summary.perplexity == pytest.approx(15.6)
    assert comparable(summary) == fresh(run)


def test_growth_is_read_from_the_last_offset(tmp_path, monkeypatch, cache_mode):
    run = make_run(tmp_path / "run")
    events = run / "events.jsonl"
    write_events(events, make_event("run_started", max_steps=10), train(1, 3.0))
    starts: list[int] = []
    original = summary_mod._Tailer.read_new

    def spy(self):
        starts.append(self.offset)
        return original(self)

    monkeypatch.setattr(summary_mod._Tailer, "read_new", spy)
    read_run(run)
    size = events.stat().st_size
    assert starts == [0]
    if cache_mode == "stat-only":
        read_run(run)  # nothing changed: nothing read
        assert starts == [0]
    write_events(events, train(2, 2.0))
    assert read_run(run).last_loss == 2.0
    assert starts[-1] == size  # only the appended bytes were read


def test_cached_status_follows_run_json(tmp_path, cache_mode):
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=time.time())
    write_events(run / "events.jsonl", make_event("run_started", max_steps=4), train(1, 2.0))
    assert read_run(run).status == "running"
    make_run(run, status="stopped", pid=os.getpid(), end_time=time.time())
    assert read_run(run).status == "stopped"
    make_run(run, status="running", pid=dead_pid())  # the worker died without a word
    assert read_run(run).status == "crashed"


def test_cached_checkpoints_follow_the_disk(tmp_path, cache_mode):
    run = make_run(tmp_path / "run")
    write_events(run / "events.jsonl", make_event("run_started", max_steps=8), train(4, 2.0))
    make_checkpoint(run, 4)
    assert [(c.step, c.state) for c in read_run(run).checkpoints] == [(4, "complete")]
    # A save in progress (no marker yet), then its marker: partial -> complete.
    ckpt = make_checkpoint(run, 8, marker=False)
    assert [(c.step, c.state) for c in list_runs(tmp_path)[0].checkpoints] == [
        (4, "complete"),
        (8, "weights-only"),
    ]
    (ckpt / COMPLETE_MARKER).write_text(json.dumps({"step": 8, "world_size": 1}))
    assert [c.state for c in read_run(run).checkpoints] == ["complete", "complete"]
    # A file torn in place (same name, new size) is noticed too.
    _torch_zip(ckpt / "optimizer.pt", torn=True)
    assert [c.state for c in read_run(run).checkpoints] == ["complete", "weights-only"]
    for path in (run / "checkpoint-4").iterdir():
        path.unlink()
    (run / "checkpoint-4").rmdir()
    assert [c.step for c in read_run(run).checkpoints] == [8]
    assert comparable(read_run(run)) == fresh(run)


def test_resume_last_never_trusts_the_cache(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    make_checkpoint(run, 4)
    assert [c.state for c in list_checkpoints(run)] == ["complete"]
    monkeypatch.setattr(checkpoints_mod, "_classify_cached", lambda *a: pytest.fail("cache used"))
    assert resolve_resume(run, "last") == (run / "checkpoint-4").resolve()


def test_cached_checkpoints_are_copies(tmp_path, cache_mode):
    run = make_run(tmp_path / "run")
    make_checkpoint(run, 4)
    first = read_run(run)
    first.checkpoints[0].state = "partial"
    first.settings["edited"] = True
    second = read_run(run)
    assert second.checkpoints[0].state == "complete"
    assert "edited" not in second.settings


def test_rewritten_events_file_is_read_again(tmp_path, cache_mode):
    run = make_run(tmp_path / "run")
    events = run / "events.jsonl"
    write_events(events, make_event("run_started", max_steps=8), train(5, 1.25))
    assert read_run(run).last_loss == 1.25
    # Same size, new content. Rewritten in place within the racy window (the stat may not
    # change within one timestamp tick): caught by the head and tail samples. Replaced by
    # another file: caught by the new inode, racy or not.
    text = events.read_text().replace('"loss":1.25', '"loss":2.25')
    if cache_mode == "racy-window":
        events.write_text(text)
    else:
        tmp = events.with_name("events.new")
        tmp.write_text(text)
        tmp.replace(events)
    assert read_run(run).last_loss == 2.25
    # Truncated and shorter: read from the start.
    events.write_text('{"v":1,"type":"train_log","time":1.0,"step":1,"loss":9.0}\n')
    assert (read_run(run).global_step, read_run(run).last_loss) == (1, 9.0)


def test_deleted_and_recreated_run_is_not_served_from_the_cache(tmp_path, cache_mode):
    run = make_run(tmp_path / "run")
    write_events(run / "events.jsonl", make_event("run_started", max_steps=8), train(3, 1.5))
    make_checkpoint(run, 3)
    assert read_run(run).global_step == 3
    delete_run(run)
    make_run(run)  # same name, new run (the inode may well be reused)
    write_events(run / "events.jsonl", make_event("run_started", max_steps=8), train(6, 0.5))
    summary = read_run(run)
    assert (summary.global_step, summary.last_loss, summary.checkpoints) == (6, 0.5, [])


def test_unterminated_last_line_counts_once(tmp_path, cache_mode):
    run = make_run(tmp_path / "run")
    events = run / "events.jsonl"
    write_events(events, make_event("run_started", max_steps=8), train(1, 3.0))
    with open(events, "a") as fh:  # a complete event still missing its newline
        fh.write(json.dumps(train(2, 2.0)))
    assert (read_run(run).global_step, read_run(run).last_loss) == (2, 2.0)
    with open(events, "a") as fh:
        fh.write("\n" + json.dumps(train(3, 1.0))[:-10])  # then a torn one
    assert (read_run(run).global_step, read_run(run).last_loss) == (2, 2.0)
    with open(events, "a") as fh:  # a resumed writer appends after the torn line
        fh.write(json.dumps(train(4, 0.5)) + "\n")
    summary = read_run(run)
    assert summary.last_loss == 2.0  # the glued line is unreadable, as for a fresh reader
    assert comparable(summary) == fresh(run)


def test_incremental_reads_match_a_fresh_read_at_every_point(tmp_path, cache_mode):
    """Fold a run event by event (resume truncation, evals, finish) and compare each time."""
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=time.time())
    script = [
        make_event("run_started", max_steps=6, pid=os.getpid()),
        train(1, 3.0),
        train(2, 2.0),
        make_event("eval", step=2, metrics={"eval_loss": 2.5, "perplexity": 12.2}),
        make_event("memory", step=2, devices=[], process_rss=1, system_used=1, system_total=2),
        make_event("checkpoint", step=2, path=str(run / "checkpoint-2"), complete=True),
        train(3, float("nan")),
        make_event("warning", code="nan_loss", message="nan", step=3),
        make_event("eval", step=4, metrics={"eval_loss": 1.5, "perplexity": 4.5}),
        make_event("run_finished", status="failed", error="boom", hint="smaller batch"),
        # resumed from checkpoint-2: steps 3 and 4 are dropped again
        make_event("run_started", max_steps=6, resume_step=2, pid=os.getpid()),
        make_event("phase", phase="training", progress=0.3, detail="step 2"),
        train(3, 1.75),
        make_event("final_metrics", split="eval", metrics={"perplexity": 5.0}),
        make_event("run_finished", status="completed", error=None, hint=None),
    ]
    for event in script:
        write_events(run / "events.jsonl", event)
        cached = comparable(read_run(run))
        assert cached == fresh(run)
        read_run(run)  # re-prime the cache for the next step
    assert (cached["last_loss"], cached["best_eval_loss"], cached["perplexity"]) == (
        1.75,
        2.5,
        5.0,
    )


def test_hugging_face_trainer_state_changes_are_seen(tmp_path, cache_mode):
    hf = tmp_path / "hf"
    hf.mkdir()

    def state(step: int, loss: float) -> None:
        history = [{"step": step, "loss": loss}]
        data = {"global_step": step, "max_steps": 30, "log_history": history}
        (hf / "trainer_state.json").write_text(json.dumps(data))

    state(10, 3.0)
    assert (read_run(hf).global_step, read_run(hf).last_loss) == (10, 3.0)
    state(20, 2.0)
    assert (read_run(hf).global_step, read_run(hf).last_loss) == (20, 2.0)


def test_readers_in_threads_agree_with_a_fresh_read(tmp_path):
    """The TUI lists from a worker thread while a live view or the CLI reads too."""
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=time.time())
    write_events(run / "events.jsonl", make_event("run_started", max_steps=2000))
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                for summary in list_runs(tmp_path):
                    assert summary.status == "running"
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    with EventWriter(run / "events.jsonl") as writer:
        for step in range(1, 2001):
            writer.emit(train(step, 1.0 + 1.0 / step))
    done.set()
    for thread in threads:
        thread.join()
    assert errors == []
    summary = read_run(run)
    assert (summary.global_step, summary.last_loss) == (2000, 1.0 + 1.0 / 2000)
    assert comparable(summary) == fresh(run)


# ---------------------------------------------------- the listing cache across processes


def test_listing_never_reads_an_unchanged_finished_run_again(tmp_path, monkeypatch, reads):
    monkeypatch.setattr(cache_mod, "RACY_NS", -(10**18))  # files just written count as old
    root = tmp_path / "runs"
    for name in ("a", "b"):
        run = make_run(root / name, status="completed", end_time=time.time())
        with EventWriter(run / "events.jsonl") as writer:
            writer.emit(make_event("run_started", max_steps=4, resume_step=None))
            writer.emit(make_event("train_log", step=4, loss=1.5))
    live = make_run(root / "live", status="running", pid=os.getpid())
    first = [r.to_json() for r in list_runs(root)]
    clear_caches()  # a new process: only the cache on disk is left
    reads.clear()
    again = [r.to_json() for r in list_runs(root)]
    assert reads == ["live"]  # a running run is always read; finished ones come from the cache
    assert [r["path"] for r in again] == [r["path"] for r in first]
    assert [r["loss"] for r in again] == [r["loss"] for r in first]
    info = json.loads((root / "a" / RUN_JSON).read_text())
    (root / "a" / RUN_JSON).write_text(json.dumps({**info, "status": "stopped"}))
    reads.clear()
    listed = {Path(r.path).name: r for r in list_runs(root)}
    assert sorted(reads) == ["a", "live"] and listed["a"].status == "stopped"
    assert live.exists()


def _attempt(writer: EventWriter, at: float, steps: range, status: str, **final: float) -> None:
    writer.emit({**make_event("run_started", max_steps=steps.stop - 1, resume_step=None,
                              resumed_from=None), "time": at})
    for step in steps:
        writer.emit({**make_event("train_log", step=step, loss=5.0 - step / 10), "time": at + step})
    if final:
        writer.emit({**make_event("final_metrics", split="train", metrics=final), "time": at + 50})
    writer.emit({**make_event("run_finished", status=status, error=None, hint=None),
                 "time": at + 60})


@pytest.mark.parametrize("second", ["stopped", "completed"])
def test_results_files_of_an_earlier_attempt_are_not_the_runs_results(tmp_path, second):
    """Trained further then stopped: the first attempt's train_results.json is not shown as
    the run's results (the files stay); a completed second attempt's files are."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first, again = time.time() - 1000, time.time() - 500
    with EventWriter(run_dir / "events.jsonl") as writer:
        _attempt(writer, first, range(1, 5), "completed", train_loss=4.7)
        _attempt(writer, again, range(5, 9), second,
                 **({"train_loss": 4.3} if second == "completed" else {}))
    results = run_dir / "train_results.json"
    results.write_text(json.dumps({"train_loss": 4.7 if second == "stopped" else 4.3}))
    stamp = first + 70 if second == "stopped" else again + 70
    os.utime(results, (stamp, stamp))
    clear_caches()
    summary = read_run(run_dir)
    assert results.exists()
    if second == "stopped":
        assert "train" not in summary.metrics
    else:
        assert summary.metrics["train"] == {"train_loss": 4.3}
