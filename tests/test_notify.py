"""[notify]: the alert command gets the right variables for each event; a failing command
never affects the run; on_nan = "stop" saves a checkpoint and stops (issue 15).

Three real tiny runs (workers started by `clmtune train --detach`, all at once): one that
completes (eval, stalled while the drill pauses it at step 2, finished; the command fails on
some events), one whose weights the drill poisons with NaN (nan, stopped), one that dies of
an injected OOM (failed).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from clmtune.backend.notify import Notifier, StallWatchdog
from clmtune.backend.rundir.checkpoints import list_checkpoints
from clmtune.backend.rundir.layout import read_run_json, run_process_alive
from clmtune.backend.rundir.summary import read_run
from clmtune.backend.settings.toml_io import save_config
from tests.fixtures import make_tiny_config
from tests.run_helpers import DRILL_HOOKS, cli_env, events_of, wait_finished, wait_for

# Each call appends EVENT|RUN_DIR|STEP|MESSAGE to notify.log in the run dir (the command's
# cwd); eval fails (exit 3) after writing, stalled runs a command that does not exist.
COMMAND = (
    'printf "%s|%s|%s|%s\\n" "$CLMTUNE_EVENT" "$CLMTUNE_RUN_DIR" "$CLMTUNE_STEP" '
    '"$CLMTUNE_MESSAGE" >> notify.log; '
    'if [ "$CLMTUNE_EVENT" = eval ]; then echo eval-went-wrong; exit 3; fi; '
    'if [ "$CLMTUNE_EVENT" = stalled ]; then exec clmtune-no-such-command-xyz; fi; echo sent'
)


def _lines(run_dir: Path) -> list[list[str]]:
    path = run_dir / "notify.log"
    text = path.read_text() if path.exists() else ""
    return [line.split("|", 3) for line in text.splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_assets) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("notify")
    plans = {
        "ok": ({"stalled_minutes": 0.01}, {"DRILL_PAUSE_AT": "2"}),  # stalls at step 2
        "nan": ({"on_nan": "stop"}, {"DRILL_NAN_AT": "2"}),
        "oom": ({}, {"DRILL_OOM_AT": "0"}),
    }
    starts = []
    for name, (notify, drill) in plans.items():
        cfg = make_tiny_config(tiny_assets, logging_steps=1)
        cfg.notify = {"command": COMMAND, **notify}
        save_config(cfg, root / f"{name}.toml")
        env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, OMP_NUM_THREADS="1", **drill)
        starts.append(subprocess.Popen(  # all three at once: most of a run is imports
            [sys.executable, "-m", "clmtune.backend.cli", "train", f"{name}.toml", "--run-dir",
             name, "--detach"], cwd=root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))  # fmt: skip
    for proc in starts:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    # The paused run is stalled: once the alert came, let it go on.
    wait_for(lambda: any(line[0] == "stalled" for line in _lines(root / "ok")), 120, "stalled")
    (root / "ok" / "drill.continue").write_text("go")
    for name in plans:
        wait_finished(root / name, timeout=240)
        # run.json says how the run ended before the worker sends the final alert (and
        # waits for its command): the alert's lines are there once the worker is gone.
        wait_for(lambda d=root / name: run_process_alive(read_run_json(d)) is not True, 60,
                 f"the {name} worker to exit")
    return {name: root / name for name in plans}


def test_completed_run_sends_eval_stalled_finished_with_variables(runs):
    run_dir = runs["ok"]
    assert read_run(run_dir).status == "completed"
    lines = _lines(run_dir)
    events = [line[0] for line in lines]
    assert {"eval", "stalled", "finished"} <= set(events)
    assert events[-1] == "finished" and events.count("finished") == 1
    for _event, where, _step, message in lines:
        assert where == str(run_dir.resolve()) and message
    stalled = [line for line in lines if line[0] == "stalled"]
    assert [s[2] for s in stalled] == ["2"] and "no training step for" in stalled[0][3]
    finished = lines[-1]
    assert finished[2] == "8" and "finished" in finished[3]
    evals = [line for line in lines if line[0] == "eval"]
    assert [e[2] for e in evals] == ["4", "8"][: len(evals)] and evals[0][2] == "4"
    assert "best eval loss" in evals[0][3]


def test_failing_command_is_logged_and_does_not_affect_the_run(runs):
    run_dir = runs["ok"]
    assert read_run(run_dir).status == "completed" and read_run(run_dir).global_step == 8
    failed = [e for e in events_of(run_dir)
              if e["type"] == "warning" and e.get("code") == "notify_failed"]  # fmt: skip
    messages = " / ".join(e["message"] for e in failed)
    assert "on eval: exit code 3: eval-went-wrong" in messages
    assert "on stalled" in messages and "not found" in messages
    logged = [e["message"] for e in events_of(run_dir) if e["type"] == "log"]
    assert "[notify] finished: sent" in logged


def test_nan_stop_saves_a_checkpoint_then_stops(runs):
    run_dir = runs["nan"]
    summary = read_run(run_dir)
    assert summary.status == "stopped" and summary.global_step == 3
    assert [(c.path.name, c.state) for c in list_checkpoints(run_dir)] == [
        ("checkpoint-3", "complete")]
    lines = _lines(run_dir)
    assert [line[0] for line in lines] == ["nan", "stopped"]
    nan = next(line for line in lines if line[0] == "nan")
    assert nan[2] == "3" and "nan" in nan[3]


def test_failed_run_sends_failed_with_the_error(runs):
    run_dir = runs["oom"]
    assert read_run(run_dir).status == "failed"
    lines = _lines(run_dir)
    assert [line[0] for line in lines] == ["failed"]
    assert "out of memory" in lines[0][3]


def test_timeout_kills_the_command_and_warns(tmp_path):
    seen: list[dict] = []
    notifier = Notifier("sleep 30", tmp_path, seen.append, events=["finished"], timeout=0.3)
    assert not notifier.notify("eval", 1, "not wanted")
    started = time.monotonic()
    assert notifier.notify("finished", 1, "done")
    notifier.wait(10)
    assert time.monotonic() - started < 10
    assert seen and seen[0]["code"] == "notify_failed" and "timed out" in seen[0]["message"]


def test_no_command_no_thread_and_stall_fires_once_per_stall(tmp_path):
    assert not Notifier(None, tmp_path, events=["finished"]).notify("finished", 1)
    sent: list[tuple] = []
    notifier = Notifier("true", tmp_path, events=["stalled"])
    notifier.notify = lambda event, step=None, message="": sent.append((event, step)) or True
    step = [5]
    dog = StallWatchdog(notifier, lambda: step[0], minutes=0.001, check_every_s=0.01).start()
    deadline = time.monotonic() + 10
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert sent == [("stalled", 5)]  # once, not at every check
    step[0] = 6
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    dog.stop()
    assert sent[:2] == [("stalled", 5), ("stalled", 6)]
