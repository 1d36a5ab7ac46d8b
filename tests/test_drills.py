"""Failure drills: safe stop and exact resume, kill -9 at random moments and mid-save,
two readers on a live run, and two processes under torchrun (gloo on CPU)."""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from clmtune.backend.events import EVENTS_FILE, EventTailer, read_events
from clmtune.backend.rundir.checkpoints import list_checkpoints, resolve_resume
from clmtune.backend.rundir.layout import read_run_json
from clmtune.backend.rundir.summary import read_run
from tests.run_helpers import (
    DRILL_HOOKS,
    cli_env,
    clmtune,
    events_of,
    losses_by_step,
    wait_finished,
    wait_for,
    wait_for_event,
    worker_pgid,
    write_config,
)

pytestmark = pytest.mark.slow

# Every step logged, so losses can be compared step by step across a resume.
EXACT = dict(max_steps=12, logging_steps=1, save_steps=4, eval_steps=4)


def _kill_group(run_dir) -> None:
    os.killpg(worker_pgid(run_dir), signal.SIGKILL)


class TwoReaders:
    """Two tailers polling one live events file from threads, like two dashboards."""

    def __init__(self, run_dir) -> None:
        self.path = run_dir / EVENTS_FILE
        self.seen: list[list[dict]] = [[], []]
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._read, args=(i,)) for i in range(2)]
        for thread in self.threads:
            thread.start()

    def _read(self, index: int) -> None:
        tailer = EventTailer(self.path)
        while not self.done.is_set():
            self.seen[index].extend(tailer.read_new())
            self.done.wait(0.01)
        self.seen[index].extend(tailer.read_final())

    def finish(self) -> list[list[dict]]:
        self.done.set()
        for thread in self.threads:
            thread.join()
        return self.seen


def test_stop_then_resume_continues_exactly(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, **EXACT)

    # The reference: one uninterrupted run.
    assert clmtune("train", str(config), "--run-dir", "ref", cwd=tmp_path).returncode == 0
    reference = losses_by_step(events_of(tmp_path / "ref"))
    assert sorted(reference) == list(range(1, 13))

    # The same run, detached, stopped from another "terminal" while two readers watch.
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="5")
    run_dir = tmp_path / "run"
    result = clmtune("train", str(config), "--run-dir", "run", "--detach", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert str(run_dir) in result.stdout and "clmtune stop" in result.stdout
    readers = TwoReaders(run_dir)
    wait_for(lambda: (run_dir / "drill.paused").exists(), what="the worker to reach step 5")
    stop = clmtune("stop", "run", "--wait", "--timeout", "120", cwd=tmp_path)
    assert stop.returncode == 3, stop.stdout + stop.stderr  # exit code of a stopped run
    first, second = readers.finish()
    assert first == second == read_events(run_dir / EVENTS_FILE)

    info = read_run_json(run_dir)
    assert info["status"] == "stopped" and info["global_step"] == 6
    assert [(c.step, c.state) for c in list_checkpoints(run_dir)] == [
        (4, "complete"), (6, "complete"),
    ]  # fmt: skip
    assert not (run_dir / "model.safetensors").exists()  # no final outputs for a stopped run

    resumed = clmtune("train", "--run-dir", "run", "--resume", "last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and "checkpoint-6" in resumed.stdout
    info = read_run_json(run_dir)
    assert info["status"] == "completed"
    assert info["resumed_from"].endswith("checkpoint-6")
    assert info["attempts"][-1]["status"] == "stopped"

    after = losses_by_step(events_of(run_dir))
    assert sorted(after) == list(range(7, 13))
    for step, loss in after.items():
        assert loss == pytest.approx(reference[step], rel=1e-6, abs=1e-7), step


def test_kill_during_a_save_leaves_only_complete_checkpoints_offered(tmp_path, tiny_assets):
    config = write_config(
        tmp_path / "tiny.toml", tiny_assets, max_steps=8, save_steps=2, eval_steps=4
    )
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_HANG_IN_SAVE="4")
    run_dir = tmp_path / "run"
    assert clmtune("train", str(config), "--run-dir", "run", "--detach", cwd=tmp_path,
                   env=env).returncode == 0  # fmt: skip
    wait_for(lambda: (run_dir / "drill.in_save").exists(), what="checkpoint-4 half written")
    _kill_group(run_dir)

    assert wait_for(lambda: read_run(run_dir).status == "crashed", 30, "crashed status")
    states = {c.step: c.state for c in list_checkpoints(run_dir)}
    assert states[2] == "complete"
    assert states[4] != "complete"  # model + optimizer written, RNG + state not
    assert (run_dir / "checkpoint-4" / "optimizer.pt").exists()
    assert resolve_resume(run_dir, "last").name == "checkpoint-2"

    shown = clmtune("show", "run", cwd=tmp_path)
    assert "crashed" in shown.stdout and "weights-only" in shown.stdout

    resumed = clmtune("train", "--run-dir", "run", "--resume", "last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "checkpoint-2" in resumed.stdout
    assert read_run(run_dir).status == "completed"
    # The re-written checkpoint-4 is complete now.
    assert {c.step: c.state for c in list_checkpoints(run_dir)}[4] == "complete"


def test_kill_at_a_random_moment_then_resume_last_finishes(tmp_path, tiny_assets):
    config = write_config(
        tmp_path / "tiny.toml", tiny_assets, max_steps=16, save_steps=2, eval_steps=8
    )
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_STEP_DELAY="0.05")
    run_dir = tmp_path / "run"
    assert clmtune("train", str(config), "--run-dir", "run", "--detach", cwd=tmp_path,
                   env=env).returncode == 0  # fmt: skip
    wait_for_event(run_dir, lambda e: e["type"] == "checkpoint", what="a first checkpoint")
    moment = random.Random().uniform(0.0, 0.6)  # seconds into training: any step, any save
    threading.Event().wait(moment)
    _kill_group(run_dir)

    status = wait_for(lambda: read_run(run_dir).status != "running" and read_run(run_dir).status)
    if status == "completed":  # the random moment came after the end
        pytest.skip("the run finished before the kill")
    assert status == "crashed"
    offered = resolve_resume(run_dir, "last")
    assert {c.path.resolve(): c.state for c in list_checkpoints(run_dir)}[offered] == "complete"

    resumed = clmtune("train", "--run-dir", "run", "--resume", "last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_run(run_dir).status == "completed" and read_run(run_dir).global_step == 16


@pytest.mark.timeout(420)
def test_two_processes_under_torchrun_stop_and_resume(tmp_path, tiny_assets):
    config = write_config(
        tmp_path / "tiny.toml", tiny_assets, max_steps=8, save_steps=4, eval_steps=4,
        logging_steps=1,
    )  # fmt: skip
    text = config.read_text() + "\n[launch]\nnproc_per_node = 2\n"
    config.write_text(text)
    env = cli_env(
        CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="1", CLMTUNE_STOP_SYNC_STEPS="2",
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    run_dir = tmp_path / "run"
    started = clmtune("train", str(config), "--run-dir", "run", "--detach", cwd=tmp_path, env=env)
    assert started.returncode == 0, started.stderr
    info = read_run_json(run_dir)
    assert "torch.distributed.run" in info["command"]
    wait_for(lambda: (run_dir / "drill.paused").exists(), 300, "rank 0 to reach step 1")
    assert clmtune("stop", "run", cwd=tmp_path).returncode == 0
    # Rank 0 saw the stop at step 1 and broadcasts it at step 2: both ranks stop there.
    assert wait_finished(run_dir, timeout=180) == "stopped"
    info = read_run_json(run_dir)
    assert info["world_size"] == 2 and info["global_step"] == 2
    ckpt = run_dir / "checkpoint-2"
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in ckpt.iterdir()}
    assert list_checkpoints(run_dir)[-1].state == "complete"

    resumed = clmtune("train", "--run-dir", "run", "--resume", "last", cwd=tmp_path,
                      env=cli_env(OMP_NUM_THREADS="1"), timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = read_run(run_dir)
    assert summary.status == "completed" and summary.global_step == 8
    assert sorted(losses_by_step(events_of(run_dir))) == list(range(3, 9))
