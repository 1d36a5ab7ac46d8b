"""The summary a finished run leaves in its folder (``.clmtune-summary.json``).

The first listing of a folder of finished runs reads that one file per run instead of
the run's events, checkpoints and results. It must give exactly what a full read gives,
for copies of the run too, and must never be used once anything it was made from
changed. Hand-made run dirs here; tests/test_resume_safety.py checks the file a real
worker leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from clmtune.backend.events import EventWriter, make_event
from clmtune.backend.rundir import listing as listing_mod
from clmtune.backend.rundir import summary as summary_mod
from clmtune.backend.rundir.cache import clear_caches
from clmtune.backend.rundir.layout import RUN_JSON, SUMMARY_FILE
from clmtune.backend.rundir.listing import left_summary, list_runs, list_runs_json, store_summary
from clmtune.tui.listing import RunsLister
from tests.test_runs import make_checkpoint, make_run


def finished_run(run_dir: Path, *, status: str = "completed", age: float = 0.0) -> Path:
    """A finished run with events, two checkpoints and results files, ``age`` seconds old."""
    start = time.time() - 600
    make_run(run_dir, status=status, start_time=start, end_time=start + 60, global_step=8)
    (run_dir / "config.toml").write_text('[model]\nmodel_name_or_path = "gpt2"\n')
    with EventWriter(run_dir / "events.jsonl") as writer:
        writer.emit({**make_event("run_started", max_steps=8, world_size=1), "time": start})
        for step in range(1, 9):
            writer.emit({**make_event("train_log", step=step, loss=3.0 - step / 10,
                                      learning_rate=1e-3), "time": start + step})  # fmt: skip
        writer.emit(make_event("eval", step=8, metrics={"eval_loss": 2.5, "perplexity": 12.2}))
        writer.emit(make_event("run_finished", status=status, error=None, hint=None))
    (run_dir / "all_results.json").write_text(json.dumps({"eval_loss": 2.5, "train_loss": 2.6}))
    make_checkpoint(run_dir, 4, eval_loss=2.7)
    make_checkpoint(run_dir, 8, files=("weights", "config"), marker=False)
    if age:
        stamp = time.time() - age
        for path in [run_dir, *run_dir.rglob("*")]:
            os.utime(path, (stamp, stamp))
    return run_dir


@pytest.fixture
def cold(monkeypatch, tmp_path):
    """A listing as a new process on a new machine does it: no cache of any kind."""
    count = [0]

    def listing(root: Path) -> list[str]:
        count[0] += 1
        monkeypatch.setenv("CLMTUNE_CACHE", str(tmp_path / f"cache-{count[0]}"))
        clear_caches()
        return list_runs_json(root)

    return listing


def without_left_summary(cold, root: Path) -> list[str]:
    """The listing from full reads: every run's summary file moved away meanwhile."""
    moved = []
    for run in root.iterdir():
        if (run / SUMMARY_FILE).exists():
            os.rename(run / SUMMARY_FILE, run.parent.parent / f"{run.name}.left")
            moved.append(run)
    try:
        return cold(root)
    finally:
        for run in moved:
            os.rename(run.parent.parent / f"{run.name}.left", run / SUMMARY_FILE)


@pytest.mark.parametrize("status", ["completed", "stopped", "failed"])
def test_the_first_listing_reads_the_left_summary_and_it_equals_a_full_read(
    tmp_path, cold, reads, status
):
    root = tmp_path / "runs"
    run = finished_run(root / "run", status=status)  # files just written: the racy case
    assert store_summary(run)
    full = without_left_summary(cold, root)
    reads.clear()
    assert cold(root) == full
    assert reads == []
    assert json.loads(full[0])["status"] == status
    assert json.loads(full[0])["checkpoints"][1]["state"] == "weights-only"
    summary = left_summary(run)
    assert summary is not None and summary.to_json() == json.loads(full[0])
    assert [r.to_json() for r in list_runs(root)] == [json.loads(full[0])]


def test_copies_of_a_run_list_their_own_paths(tmp_path, cold, reads):
    source = finished_run(tmp_path / "source", age=30)
    assert store_summary(source)
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(source, root / "linked", copy_function=os.link)
    shutil.copytree(source, root / "copied")  # copy2: the files' times kept
    reads.clear()
    listed = cold(root)
    assert reads == []
    assert listed == without_left_summary(cold, root)
    paths = {json.loads(text)["name"]: json.loads(text) for text in listed}
    assert set(paths) == {"linked", "copied"}
    for name, data in paths.items():
        assert data["path"] == str(root / name)
        assert [c["path"] for c in data["checkpoints"]] == [
            str(root / name / "checkpoint-4"), str(root / name / "checkpoint-8")]


def append_event(run: Path) -> None:
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(make_event("warning", code="late", message="after the end")) + "\n")


def rewrite_run_json(run: Path) -> None:
    info = json.loads((run / RUN_JSON).read_text())
    (run / RUN_JSON).write_text(json.dumps({**info, "status": "stopped"}))


def same_size_results(run: Path) -> None:
    path = run / "all_results.json"
    path.write_text(path.read_text().replace("2.5", "2.4"))


CHANGES = {
    "events appended": append_event,
    "run.json rewritten": rewrite_run_json,
    "results edited in place, same size": same_size_results,
    "checkpoint deleted": lambda run: shutil.rmtree(run / "checkpoint-4"),
    "checkpoint added": lambda run: make_checkpoint(run, 12),
    "file added": lambda run: (run / "notes.txt").write_text("x"),
    "config.toml edited": lambda run: (run / "config.toml").write_text(
        '[model]\nmodel_name_or_path = "gpt3"\n'),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_after_the_summary_was_left_is_read_in_full(tmp_path, cold, reads, change):
    root = tmp_path / "runs"
    run = finished_run(root / "run", age=30)
    assert store_summary(run)
    before = cold(root)
    CHANGES[change](run)
    reads.clear()
    after = cold(root)
    assert reads == ["run"]
    assert after == without_left_summary(cold, root)
    assert left_summary(run) is None
    assert after != before or change == "file added"


def test_generating_samples_after_the_run_keeps_the_left_summary(tmp_path, cold, reads):
    root = tmp_path / "runs"
    run = finished_run(root / "run", age=30)
    assert store_summary(run)
    (run / "samples.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (run / "logs").mkdir()
    reads.clear()
    listed = cold(root)
    assert reads == []
    assert listed == without_left_summary(cold, root)


def test_a_summary_no_newer_than_the_files_is_not_trusted(tmp_path, cold, reads):
    """Written in the same time-stamp tick as a file, a later change could hide (racy)."""
    root = tmp_path / "runs"
    run = finished_run(root / "run", age=30)
    assert store_summary(run)
    newest = max(p.stat().st_mtime_ns for p in (run / "events.jsonl", run / RUN_JSON))
    os.utime(run / SUMMARY_FILE, ns=(newest, newest))
    reads.clear()
    cold(root)
    assert reads == ["run"]
    assert left_summary(run) is None


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}', '{"version": 1, "sig": []}',
                                     "[]", ""])  # fmt: skip
def test_a_damaged_summary_file_is_ignored(tmp_path, cold, reads, content):
    root = tmp_path / "runs"
    run = finished_run(root / "run", age=30)
    expected = cold(root)
    (run / SUMMARY_FILE).write_text(content)
    reads.clear()
    assert cold(root) == expected
    assert reads == ["run"]


def test_a_damaged_body_with_the_right_signature_is_ignored(tmp_path, cold, reads):
    root = tmp_path / "runs"
    run = finished_run(root / "run", age=30)
    assert store_summary(run)
    data = json.loads((run / SUMMARY_FILE).read_text())
    data["summary"]["checkpoints"] = "nope"
    stamp = (run / SUMMARY_FILE).stat().st_mtime_ns
    (run / SUMMARY_FILE).write_text(json.dumps(data))
    os.utime(run / SUMMARY_FILE, ns=(stamp, stamp))
    reads.clear()
    listed = cold(root)
    assert reads == ["run"]
    assert listed == without_left_summary(cold, root)


def test_a_running_run_leaves_no_summary(tmp_path):
    run = make_run(tmp_path / "run", status="running", pid=os.getpid(), start_time=time.time())
    assert not store_summary(run)
    assert not (run / SUMMARY_FILE).exists()
    listing_mod.forget_summary(run)  # nothing to remove: no error


def test_the_dashboard_lister_reads_the_left_summary(tmp_path, reads):
    root = tmp_path / "runs"
    for name in ("a", "b"):
        assert store_summary(finished_run(root / name, age=30))
    lister = RunsLister(root)
    listed: list = []
    reads.clear()
    assert lister.refresh(listed.append)
    assert reads == []
    clear_caches()
    got = sorted((r.to_json() for r in listed[-1]), key=lambda data: data["name"])
    assert got == [summary_mod.read_run(root / name).to_json() for name in "ab"]


def test_a_run_without_a_start_time_is_ordered_by_its_folder_now(tmp_path, monkeypatch):
    """Plain HF folders with results only: their folder's time orders them, read each time
    (a new samples.jsonl changes it but not what the listing cache keys on)."""
    monkeypatch.setenv("CLMTUNE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "runs"
    old = time.time() - 3600
    for i, name in enumerate(("hf-a", "hf-b")):
        (root / name).mkdir(parents=True)
        (root / name / "all_results.json").write_text(json.dumps({"train_loss": 1.0 + i}))
        os.utime(root / name / "all_results.json", (old, old))
        os.utime(root / name, (old + i, old + i))
    assert [json.loads(t)["name"] for t in list_runs_json(root)] == ["hf-b", "hf-a"]
    (root / "hf-a" / "samples.jsonl").write_text('{"prompt": "a"}\n')  # hf-a is newer now
    clear_caches()
    assert [json.loads(t)["name"] for t in list_runs_json(root)] == ["hf-a", "hf-b"]


def test_the_listing_cache_keeps_the_form_of_the_root_given(tmp_path, monkeypatch):
    monkeypatch.setenv("CLMTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    finished_run(tmp_path / "runs" / "a", age=30)
    for root in ("runs", str(tmp_path / "runs"), "runs", "./runs/"):
        clear_caches()
        listed = json.loads(list_runs_json(Path(root))[0])
        assert listed["path"] == str(Path(root) / "a")
        assert listed["checkpoints"][0]["path"] == str(Path(root) / "a" / "checkpoint-4")


def test_a_summary_left_by_another_version_is_not_used(tmp_path, cold, reads):
    root = tmp_path / "runs"
    run = finished_run(root / "run", age=30)
    assert store_summary(run)
    data = json.loads((run / SUMMARY_FILE).read_text())
    stamp = (run / SUMMARY_FILE).stat().st_mtime_ns
    (run / SUMMARY_FILE).write_text(json.dumps({**data, "clmtune": "0.0.1"}))
    os.utime(run / SUMMARY_FILE, ns=(stamp, stamp))
    reads.clear()
    cold(root)
    assert reads == ["run"]


def test_the_summary_is_made_once_the_newest_file_is_a_tick_old(tmp_path, monkeypatch):
    """A write in the same time-stamp tick as a file's last one would not show in its stat:
    the run is read only once that tick has passed (then any change shows)."""
    run = finished_run(tmp_path / "run")
    read_at: list[int] = []
    real = summary_mod.read_run

    def spy(path, **kw):
        read_at.append(time.time_ns())
        return real(path, **kw)

    monkeypatch.setattr(summary_mod, "read_run", spy)
    assert store_summary(run)
    newest = max(p.stat().st_mtime_ns for p in run.iterdir() if p.name != SUMMARY_FILE)
    assert read_at and read_at[0] >= newest + listing_mod._tick_ns([["x", 1, newest]])
    assert (run / SUMMARY_FILE).stat().st_mtime_ns > newest
