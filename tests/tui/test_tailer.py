"""RunFollower: replays, follows, tolerates torn lines, tails worker.err, detects crashes."""

from __future__ import annotations

import json
from pathlib import Path

from clmtune.backend.events import EventWriter, make_event
from clmtune.tui.messages import EventsArrived, RunStatusChanged
from clmtune.tui.tailer import MAX_BATCH, RunFollower, TextTailer
from tests.tui.conftest import dead_pid, recorded_run


def _follower(run_dir: Path, posted: list, **kwargs) -> RunFollower:
    return RunFollower(run_dir, posted.append, **kwargs)


def _events(posted: list) -> list[dict]:
    return [e for m in posted if isinstance(m, EventsArrived) for e in m.events]


def test_replays_whole_file_then_follows_new_lines(runs_root: Path):
    run_dir = recorded_run(runs_root, "r", "completed")
    posted: list = []
    follower = _follower(run_dir, posted)
    follower.poll_once()
    n = len(_events(posted))
    assert n == sum(1 for _ in open(run_dir / "events.jsonl"))
    with open(run_dir / "events.jsonl", "a") as fh:
        fh.write(json.dumps(make_event("log", message="hello")) + "\n")
        fh.write('{"type": "log", "mess')  # torn: not posted until completed
    follower.poll_once()
    new = _events(posted)[n:]
    assert [e["message"] for e in new] == ["hello"]


def test_large_replay_is_split_into_batches(tmp_path: Path):
    with EventWriter(tmp_path / "events.jsonl") as writer:
        for step in range(MAX_BATCH + 10):
            writer.emit(make_event("train_log", step=step, loss=1.0))
    posted: list = []
    _follower(tmp_path, posted).poll_once()
    sizes = [len(m.events) for m in posted if isinstance(m, EventsArrived)]
    assert sizes == [MAX_BATCH, 10]


def test_worker_err_lines_arrive_as_log_events(runs_root: Path):
    run_dir = recorded_run(runs_root, "r", "tokenizing", err="first\nsecond\npart")
    posted: list = []
    follower = _follower(run_dir, posted)
    follower.poll_once()
    logs = [e for e in _events(posted) if e.get("source") == "worker.err"]
    assert [e["message"] for e in logs] == ["first", "second"]
    with open(run_dir / "logs" / "worker.err", "a") as fh:
        fh.write("ial line\n")
    follower.poll_once()
    logs = [e for e in _events(posted) if e.get("source") == "worker.err"]
    assert logs[-1]["message"] == "partial line"


def test_text_tailer_starts_near_the_end_of_a_long_file(tmp_path: Path):
    path = tmp_path / "err"
    path.write_text("".join(f"line {i}\n" for i in range(10_000)))
    lines = TextTailer(path, replay_bytes=100).read_new()
    assert lines[-1] == "line 9999" and len(lines) < 20
    assert all(line.startswith("line ") for line in lines)  # no torn first line


def test_status_from_run_json_and_crash_detection(runs_root: Path):
    running = recorded_run(runs_root, "alive", "running_gpu", status="running")
    crashed = recorded_run(runs_root, "gone", "running_gpu", status="running", pid=dead_pid())
    for run_dir, want in ((running, "running"), (crashed, "crashed")):
        posted: list = []
        _follower(run_dir, posted).poll_once()
        statuses = [m.status for m in posted if isinstance(m, RunStatusChanged)]
        assert statuses == [want]


def test_status_posted_only_on_change(runs_root: Path):
    run_dir = recorded_run(runs_root, "alive", "running_gpu", status="running")
    posted: list = []
    follower = _follower(run_dir, posted, status_every_s=0.0)
    follower.poll_once()
    follower.poll_once()
    assert sum(isinstance(m, RunStatusChanged) for m in posted) == 1


def test_run_stops_when_cancelled(runs_root: Path):
    run_dir = recorded_run(runs_root, "r", "tokenizing")
    posted: list = []
    polls = []

    def cancelled() -> bool:
        return len(polls) >= 3

    _follower(run_dir, posted).run(cancelled, sleep=lambda s: polls.append(s))
    assert len(polls) == 3
