"""The worker process end to end through ``clmtune train`` (real Trainer, tiny model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from clmtune.backend.rundir.checkpoints import list_checkpoints
from clmtune.backend.rundir.layout import pid_alive, read_run_json, write_json_atomic
from clmtune.backend.rundir.summary import read_run
from clmtune.backend.settings.problems import ConfigError, FieldError
from clmtune.backend.worker import classify_error
from tests.run_helpers import (
    DRILL_HOOKS,
    cli_env,
    clmtune,
    events_of,
    wait_finished,
    wait_for,
    write_config,
)

# ------------------------------------------------------------------ error → hint


def test_out_of_memory_gets_the_batch_size_hint():
    import torch

    error, hint = classify_error(torch.OutOfMemoryError("CUDA out of memory. Tried 2 GiB"))
    assert error.startswith("out of memory")
    assert "per_device_train_batch_size" in hint
    assert "gradient_accumulation_steps" in hint and "gradient_checkpointing" in hint
    error, _ = classify_error(RuntimeError("CUDA error: out of memory\nmore lines"))
    assert error.startswith("out of memory") and "\n" not in error


def test_missing_file_and_config_errors_are_one_line():
    error, hint = classify_error(FileNotFoundError(2, "No such file", "/data/train.txt"))
    assert error == "missing file: /data/train.txt" and hint
    exc = ConfigError([FieldError("training", "a", "bad"), FieldError("data", "b", "worse")])
    error, _ = classify_error(exc)
    assert "\n" not in error and "[training] a" in error and "[data] b" in error


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_train_foreground_writes_run_json_and_every_event(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=8)
    result = clmtune("train", str(config), "--run-dir", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "run"
    info = read_run_json(run_dir)
    assert info["status"] == "completed"
    assert info["host"] and isinstance(info["pid"], int) and info["world_size"] == 1
    assert info["command"][1:3] == ["-m", "clmtune.backend.worker"]
    assert info["versions"]["torch"] and info["versions"]["transformers"]
    assert info["end_time"] >= info["start_time"]
    kinds = {e["type"] for e in events_of(run_dir)}
    assert {
        "run_started", "phase", "train_log", "eval", "memory", "checkpoint",
        "final_metrics", "run_finished",
    } <= kinds  # fmt: skip
    logs = [e for e in events_of(run_dir) if e["type"] == "train_log"]
    assert logs[-1]["step"] == 8 and logs[-1]["tokens_per_second"] > 0
    evals = [e for e in events_of(run_dir) if e["type"] == "eval"]
    assert evals[0]["metrics"]["perplexity"] > 1
    # Only the evaluation after training is marked final (the reducer keeps the curve's).
    assert [e.get("final", False) for e in evals] == [False] * (len(evals) - 1) + [True]
    assert [c.state for c in list_checkpoints(run_dir)] == ["complete", "complete"]
    assert "completed" in result.stdout and "eval_loss" in result.stdout
    # The frozen config sits next to the run and holds absolute paths.
    assert "/" in (run_dir / "config.toml").read_text().split("train_file = ")[1][:3]


@pytest.mark.slow
def test_injected_out_of_memory_fails_with_the_hint(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=8, save_steps=2)
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_OOM_AT="3")
    result = clmtune("train", str(config), "--run-dir", "run", cwd=tmp_path, env=env)
    assert result.returncode == 1
    run_dir = tmp_path / "run"
    info = read_run_json(run_dir)
    assert info["status"] == "failed"
    assert info["error"].startswith("out of memory") and "\n" not in info["error"]
    assert "per_device_train_batch_size" in info["hint"]
    assert "Traceback" not in json.dumps(info)
    assert "Traceback" in (run_dir / "logs" / "worker.err").read_text()
    finished = [e for e in events_of(run_dir) if e["type"] == "run_finished"]
    assert finished[-1]["status"] == "failed" and finished[-1]["hint"] == info["hint"]
    # Nothing else lost: the checkpoint saved before the failure is intact and resumable.
    assert [(c.step, c.state) for c in list_checkpoints(run_dir)] == [(2, "complete")]
    assert "per_device_train_batch_size" in result.stderr


@pytest.mark.slow
def test_nan_loss_is_visible_and_flagged(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=6, logging_steps=1)
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_NAN_AT="3")
    result = clmtune("train", str(config), "--run-dir", "run", cwd=tmp_path, env=env)
    events = events_of(tmp_path / "run")
    losses = {e["step"]: e["loss"] for e in events if e["type"] == "train_log"}
    assert losses[4] == "nan"  # in the curve, not replaced by an average
    warnings = [e for e in events if e["type"] == "warning" and e["code"] == "nan_loss"]
    assert warnings and warnings[0]["step"] == 4
    assert result.returncode in (0, 1)  # NaN need not be fatal; it must be flagged


@pytest.mark.slow
def test_worker_survives_the_hangup_of_the_terminal_that_started_it(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=6, save_steps=3)
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="2")
    # A foreground `clmtune train` in its own session stands in for an SSH login shell.
    cli = subprocess.Popen(
        [sys.executable, "-m", "clmtune.backend.cli", "train", str(config), "--run-dir", "run"],
        cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run_dir = tmp_path / "run"
    try:
        wait_for(lambda: (run_dir / "drill.paused").exists(), what="the worker to pause")
        worker = read_run_json(run_dir)["worker_pid"]
        os.killpg(cli.pid, signal.SIGHUP)  # the terminal goes away
        assert cli.wait(timeout=30) != 0
        os.kill(worker, signal.SIGHUP)  # even sent to the worker itself
        assert read_run(run_dir).status == "running"
        (run_dir / "drill.continue").write_text("go")
        assert wait_finished(run_dir) == "completed"
    finally:
        if cli.poll() is None:
            cli.kill()
    assert wait_for(lambda: not os.path.exists(f"/proc/{worker}") or _zombie(worker), 30)


def _zombie(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_missing_data_file_fails_with_its_name(tmp_path, tiny_assets):
    from clmtune.backend.launch import prepare_run_dir
    from tests.fixtures import make_tiny_config

    run_dir = prepare_run_dir(make_tiny_config(tiny_assets, max_steps=4), tmp_path / "run")
    # The data file disappears between launch-time validation and the worker reading it.
    train_file = tiny_assets.train_file
    moved = train_file.with_suffix(".moved")
    train_file.rename(moved)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "clmtune.backend.worker", str(run_dir)],
            env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        moved.rename(train_file)
    assert result.returncode == 2  # bad input, found by the worker: the exit code says so
    info = read_run_json(run_dir)
    assert info["status"] == "failed" and info["bad_input"] is True
    assert str(train_file) in info["error"] and "\n" not in info["error"]
    # The user's to fix: the worker's log says it in one line, no traceback (the Log tab
    # shows this file); crashes inside training keep theirs (the OOM drill above).
    assert "Traceback" not in result.stderr and "Traceback" not in info["error"]
    assert str(train_file) in result.stderr


def test_worker_refuses_a_dir_without_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "clmtune.backend.worker", str(tmp_path / "nowhere")],
        env=cli_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "no config.toml" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def _foreground(config, tmp_path, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "clmtune.backend.cli", "train", str(config), "--run-dir", "run"],
        cwd=tmp_path, env=env, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _ctrl_c(cli: subprocess.Popen, ready, what: str) -> tuple[str, str]:
    """Press Ctrl-C once ``ready()`` holds; the command's output once it has exited."""
    try:
        wait_for(ready, what=what)
        cli.send_signal(signal.SIGINT)
        return cli.communicate(timeout=180)
    finally:
        if cli.poll() is None:
            cli.kill()


@pytest.mark.slow
def test_ctrl_c_in_foreground_stops_with_a_checkpoint(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=8, save_steps=100)
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="2")
    cli = _foreground(config, tmp_path, env)
    run_dir = tmp_path / "run"
    out, err = _ctrl_c(cli, lambda: (run_dir / "drill.paused").exists(), "the worker to pause")
    assert cli.returncode == 3, out + err
    assert "stopping" in out and "stopped at step 3" in out, out
    assert read_run(run_dir).status == "stopped"
    assert [(c.step, c.state) for c in list_checkpoints(run_dir)] == [(3, "complete")]


@pytest.mark.slow
def test_ctrl_c_while_the_worker_is_being_started_stops_the_run(tmp_path, tiny_assets):
    # The worker leads its own session: a Ctrl-C raised as KeyboardInterrupt while it was
    # being started left it training with nobody watching.
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=400, save_steps=1000)
    cli = _foreground(config, tmp_path, cli_env())
    run_dir = tmp_path / "run"
    out, err = _ctrl_c(cli, lambda: (run_dir / "run.json").exists(), "the run to be prepared")
    summary = read_run(run_dir)
    assert summary.status == "stopped", out + err
    assert summary.global_step < 400
    assert not pid_alive(int(read_run_json(run_dir)["worker_pid"]))


def test_a_worker_stopped_before_it_could_catch_the_signal_is_stopped(tmp_path):
    # `clmtune stop` in the first instants of a start: SIGTERM ends the worker before it
    # installs its handler. That is a stop, not a failure with an older attempt's line.
    from clmtune.backend.launch import _wait_for_worker

    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "worker.err").write_text("an earlier attempt's progress 10/3000\n")
    (run_dir / "stop.request").write_text("1 1\n")
    write_json_atomic(run_dir / "run.json", {"status": "running"})
    proc = subprocess.Popen([sys.executable, "-c",
                             "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
    _wait_for_worker(run_dir, proc, time.time(), 30, err_offset=38)
    info = read_run_json(run_dir)
    assert info["status"] == "stopped" and not info.get("error")
    # Without a stop request, the failure quotes this attempt's output only.
    (run_dir / "stop.request").unlink()
    write_json_atomic(run_dir / "run.json", {"status": "running"})
    with open(run_dir / "logs" / "worker.err", "a") as fh:
        fh.write("ImportError: no module named foo\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    _wait_for_worker(run_dir, proc, time.time(), 30, err_offset=38)
    info = read_run_json(run_dir)
    assert info["status"] == "failed"
    assert info["error"] == "the worker exited before starting: ImportError: no module named foo"
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    write_json_atomic(run_dir / "run.json", {"status": "running"})
    _wait_for_worker(run_dir, proc, time.time(), 30, err_offset=(run_dir / "logs" /
                                                                  "worker.err").stat().st_size)
    assert read_run_json(run_dir)["error"] == "the worker exited before starting: exit code 1"


@pytest.mark.slow
def test_second_ctrl_c_aborts_without_waiting_for_the_save(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, max_steps=8, save_steps=100)
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="2", DRILL_HANG_IN_SAVE="3")
    cli = _foreground(config, tmp_path, env)
    run_dir = tmp_path / "run"
    try:
        wait_for(lambda: (run_dir / "drill.paused").exists(), what="the worker to pause")
        cli.send_signal(signal.SIGINT)
        wait_for(lambda: (run_dir / "drill.in_save").exists(), what="the stop's save to begin")
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130, out + err
    assert "aborted" in out
    assert wait_for(lambda: read_run(run_dir).status == "crashed", 30, "crashed status")
    assert [c.state for c in list_checkpoints(run_dir)] != ["complete"]


# ------------------------------------------------------------------ bad input found by the run

_FULL_DISK_WORKER = """
import sys
import time
from clmtune.backend import worker
from clmtune.backend.events import EventWriter

def emit(self, event, _orig=EventWriter.emit):
    if event.get("type") == "run_finished":
        raise OSError(28, "No space left on device")
    _orig(self, event)

EventWriter.emit = emit
sys.exit(worker.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_data_too_small_for_one_block_is_bad_input_and_always_recorded(tmp_path, tiny_assets):
    from clmtune.backend.settings.toml_io import save_config
    from tests.fixtures import make_tiny_config

    small = tmp_path / "small.txt"
    small.write_text("hello world\nfoo bar\n", encoding="utf-8")
    cfg = make_tiny_config(tiny_assets)
    cfg.data.update(train_file=str(small), validation_file=str(small))
    save_config(cfg, tmp_path / "small.toml")
    result = clmtune("train", "small.toml", "--run-dir", "run", cwd=tmp_path)
    # Found only once the data is tokenized, yet still bad input: exit 2, one line that
    # names the setting ("[data]" must survive the terminal markup), no traceback.
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "[data] block_size" in lines[0] and "add more train text" in lines[0]
    run_dir = tmp_path / "run"
    info = read_run_json(run_dir)
    assert info["status"] == "failed" and info["bad_input"] is True

    # The same run again, with an events file that cannot take the last event (disk
    # full): run.json must still end "failed", never stay "running".
    before = info["end_time"]
    worker = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_WORKER, str(run_dir)],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert worker.returncode == 2, worker.stderr
    info = read_run_json(run_dir)
    assert info["status"] == "failed" and info["end_time"] > before
    assert "block_size" in info["error"]


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["train", "validation"])
def test_a_data_file_that_does_not_parse_is_named_with_the_reason(tmp_path, tiny_assets, bad):
    from clmtune.backend.settings.toml_io import save_config
    from tests.fixtures import make_tiny_config

    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": f"line {i} of words"}) + "\n" for i in range(99)))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": not json\n')
    cfg = make_tiny_config(tiny_assets)
    files = {"train": good, "validation": good, bad: broken}
    cfg.data.update(train_file=str(files["train"]), validation_file=str(files["validation"]))
    save_config(cfg, tmp_path / "data.toml")
    result = clmtune("train", "data.toml", "--run-dir", "run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    error = read_run_json(tmp_path / "run")["error"]
    assert f"[data] {bad}_file = '{broken}' cannot be read as jsonl" in error
    assert "JSON parse error" in error and "DatasetGenerationError" not in error
    assert "one JSON object per line" in result.stderr


@pytest.mark.slow
def test_an_unreachable_hub_model_fails_at_once_with_the_offline_hint(tmp_path, tiny_assets):
    from clmtune.backend.settings.toml_io import save_config
    from tests.fixtures import make_tiny_config

    save_config(make_tiny_config(tiny_assets), tmp_path / "hub.toml")
    # Edited as text: saving checks the id against this offline test process's cache.
    text = (tmp_path / "hub.toml").read_text().replace(
        repr(str(tiny_assets.model_dir)).replace("'", '"'), '"clmtune-test/not-cached-anywhere"'
    )
    assert "not-cached-anywhere" in text
    (tmp_path / "hub.toml").write_text(text)
    env = cli_env(HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens there: like no network
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)
    result = clmtune("train", "hub.toml", "--run-dir", "run", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    info = read_run_json(tmp_path / "run")
    assert "'clmtune-test/not-cached-anywhere' is not in the local cache" in info["error"]
    assert "cannot be reached" in info["error"]
    assert "HF_HUB_OFFLINE=1" in info["error"] and "local model folder" in info["error"]
    # Failed before any download attempt: huggingface_hub's retries never started.
    assert "Retrying" not in (tmp_path / "run" / "logs" / "worker.err").read_text()


@pytest.mark.slow
def test_a_cached_hub_model_trains_at_once_when_the_hub_is_unreachable(tmp_path, tiny_assets):
    """Cached, hub down: the worker goes to the cache at once (no half minute of retries)
    and says so in a warning."""
    import shutil

    from clmtune.backend.settings.toml_io import save_config
    from tests.fixtures import make_tiny_config

    commit = "1" * 40
    repo = tmp_path / "hub" / "models--clmtune-test--cached-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_assets.model_dir, repo / "snapshots" / commit)
    save_config(make_tiny_config(tiny_assets, max_steps=2, eval_strategy="no",
                                 save_strategy="no"), tmp_path / "hub.toml")
    text = (tmp_path / "hub.toml").read_text().replace(
        repr(str(tiny_assets.model_dir)).replace("'", '"'), '"clmtune-test/cached-tiny"'
    )
    assert "cached-tiny" in text
    (tmp_path / "hub.toml").write_text(text)
    env = cli_env(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "hub"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)
    result = clmtune("train", "hub.toml", "--run-dir", "run", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    warnings = [e for e in events_of(tmp_path / "run") if e["type"] == "warning"]
    assert any(e.get("code") == "hub_offline" and "clmtune-test/cached-tiny" in e["message"]
               for e in warnings), warnings
    assert "Retrying" not in (tmp_path / "run" / "logs" / "worker.err").read_text()
