"""The ``clmtune`` command line: bad input, listing, inspecting, launch details."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clmtune import backend
from clmtune.backend.cli import main
from clmtune.backend.launch import (
    default_run_dir,
    prepare_run_dir,
    request_stop,
    resume_warnings,
    worker_command,
)
from clmtune.backend.rundir.layout import STOP_FILE, RunError
from clmtune.backend.settings.run_config import RunConfig
from tests.fixtures import make_tiny_config
from tests.test_runs import make_checkpoint, make_run


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own exits (--version, usage errors)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


# ------------------------------------------------------------------ bad input


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and backend.__version__ in out


@pytest.mark.parametrize(
    "argv",
    [
        ("frobnicate",),
        ("train", "--resume"),
        ("train",),
        ("train", "missing.toml"),
        ("train", "--run-dir", "nowhere"),
        ("show", "nowhere"),
        ("stop", "nowhere"),
        ("check", "missing.toml"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line_error(err)


def test_invalid_settings_exit_2_with_one_line_per_problem(capsys, tmp_path, tiny_assets):
    config = tmp_path / "bad.toml"
    config.write_text(
        f'[model]\nmodel_name_or_path = "{tiny_assets.model_dir}"\n'
        f'[data]\ntrain_file = "{tiny_assets.train_file}"\n'
        '[training]\nlearning_rate = -1.0\nevaluation_strategy = "steps"\n'
    )
    code, _, err = run_cli(capsys, "train", str(config), "--run-dir", str(tmp_path / "run"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert any("learning_rate" in line for line in lines)
    assert any("eval_strategy" in line for line in lines)  # the did-you-mean
    assert not (tmp_path / "run").exists()


def test_resume_without_a_complete_checkpoint_is_bad_input(capsys, tmp_path, tiny_assets):
    run = make_run(tmp_path / "run", status="stopped")
    make_checkpoint(run, 4, marker=False, files=("config",))
    from clmtune.backend.settings.toml_io import save_config

    save_config(make_tiny_config(tiny_assets), run / "config.toml")
    code, _, err = run_cli(capsys, "train", "--run-dir", str(run), "--resume", "last")
    assert code == 2
    assert_one_line_error(err)
    assert "no complete checkpoint" in err


def test_stop_of_a_finished_run_says_so(capsys, tmp_path):
    run = make_run(tmp_path / "run", status="completed")
    code, _, err = run_cli(capsys, "stop", str(run))
    assert code == 2 and "not running (status completed); nothing to stop" in err
    assert_one_line_error(err)
    assert not (run / STOP_FILE).exists()


# ------------------------------------------------------------------ runs / show


def test_runs_json_lists_every_run_with_its_checkpoints(capsys, tmp_path):
    a = make_run(tmp_path / "a", start_time=1000.0)
    make_checkpoint(a, 2)
    make_checkpoint(a, 4, marker=False, files=("config",))
    make_run(tmp_path / "b", status="failed", error="out of memory", start_time=2000.0)
    code, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json")
    assert code == 0
    runs = json.loads(out)
    assert [r["path"] for r in runs] == [str(tmp_path / "b"), str(tmp_path / "a")]
    for run in runs:
        assert {"path", "status", "global_step", "max_steps", "checkpoints"} <= set(run)
    assert [(c["step"], c["state"]) for c in runs[1]["checkpoints"]] == [
        (2, "complete"), (4, "partial"),
    ]  # fmt: skip
    code, out, _ = run_cli(capsys, "runs", str(tmp_path))
    assert code == 0 and "failed" in out and "1/2 ok" in out


def test_runs_of_a_missing_dir(capsys, tmp_path, monkeypatch):
    # Named on the command line, a missing folder is a mistake (exit 2, one line) ...
    code, out, err = run_cli(capsys, "runs", str(tmp_path / "none"))
    assert code == 2 and "none: no such folder" in err and out == ""
    assert_one_line_error(err)
    code, out, err = run_cli(capsys, "runs", "--json", "--runs-dir", str(tmp_path / "none"))
    assert code == 2 and out == ""
    # ... while the default ./runs simply has no runs yet.
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and "no runs" in out
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert json.loads(out) == []


def test_show_and_stop_take_a_run_by_name_under_the_runs_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "runs" / "base-20260101-120000", status="completed", global_step=8)
    make_run(tmp_path / "runs" / "base-20260102-090000", status="stopped")
    make_run(tmp_path / "elsewhere" / "gpt2-20260103-100000", status="stopped")
    code, out, _ = run_cli(capsys, "show", "base-20260101-120000", "--json")
    assert code == 0 and json.loads(out)["name"] == "base-20260101-120000"
    code, out, _ = run_cli(capsys, "show", "gpt2-20260103-100000", "--runs-dir", "elsewhere")
    assert code == 0 and "gpt2-20260103-100000" in out
    code, out, _ = run_cli(capsys, "show", "runs/base-20260102-090000", "--json")  # a path
    assert code == 0 and json.loads(out)["status"] == "stopped"
    code, _, err = run_cli(capsys, "stop", "base-20260101-120000")
    assert code == 2 and "not running (status completed)" in err


def test_an_unknown_run_name_lists_the_closest_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("base-20260101-120000", "base-20260102-090000", "gpt2-20260103-100000"):
        make_run(tmp_path / "runs" / name)
    for command in ("show", "stop"):
        code, _, err = run_cli(capsys, command, "base")
        assert code == 2 and "base: no such run (closest: base-20260101-120000," in err
        assert_one_line_error(err)
    code, _, err = run_cli(capsys, "show", "gtp2-20260103-100000")  # a typo
    assert code == 2 and "closest: gpt2-20260103-100000" in err
    code, _, err = run_cli(capsys, "show", "x", "--runs-dir", "missing")
    assert code == 2 and "missing does not exist" in err


def test_show_reads_a_plain_hugging_face_dir(capsys, tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "trainer_state.json").write_text(
        json.dumps({"global_step": 20, "max_steps": 20,
                    "log_history": [{"step": 20, "loss": 1.5}, {"step": 20, "eval_loss": 1.7}]})
    )  # fmt: skip
    (hf / "all_results.json").write_text(json.dumps({"eval_loss": 1.7, "perplexity": 5.47}))
    (hf / "train_results.json").write_text(json.dumps({"train_loss": 1.6}))
    make_checkpoint(hf, 20, marker=False)
    code, out, _ = run_cli(capsys, "show", str(hf), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["source"] == "huggingface" and data["status"] == "completed"
    assert data["global_step"] == 20 and data["world_size"] == 1
    assert data["metrics"]["train"]["train_loss"] == 1.6
    assert data["checkpoints"][0]["state"] == "complete"
    assert data["controllable"] is False and data["eta"] is None
    assert (data["loss"], data["loss_kind"]) == (1.5, "last train log")
    code, out, _ = run_cli(capsys, "show", str(hf))
    assert code == 0 and "huggingface" in out and "checkpoint" in out.lower()
    assert "loss (last train log)" in out and "nothing to stop or resume" in out


def test_show_says_which_step_a_checkpoints_eval_loss_is_from(capsys, tmp_path, monkeypatch):
    # A stop saved checkpoint-77; its last evaluation was at step 60 (the dashboard shows
    # "5.143 @60"); checkpoint-60 was evaluated itself: no step added.
    monkeypatch.setenv("COLUMNS", "200")
    run = make_run(tmp_path / "stopped", status="stopped")
    make_checkpoint(run, 60, eval_loss=5.143)
    ckpt = make_checkpoint(run, 77)
    history = [{"step": 60, "eval_loss": 5.143}, {"step": 75, "loss": 4.9}]
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 77,
                                                         "log_history": history}))
    code, out, _ = run_cli(capsys, "show", str(run))
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines()
            if line.count("│") > 3 and line.split("│")[1].strip().isdigit()}
    assert "5.143 @60" in rows["77"]
    assert "5.143" in rows["60"] and "@" not in rows["60"]


def test_runs_table_says_which_loss_it_shows(capsys, tmp_path, monkeypatch):
    from clmtune.backend.events import EventWriter, make_event

    monkeypatch.setenv("COLUMNS", "200")
    run = make_run(tmp_path / "evalonly", start_time=1000.0)
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("run_started", max_steps=10, resume_step=None))
        writer.emit(make_event("eval", step=5, metrics={"eval_loss": 3.25}))
    code, out, _ = run_cli(capsys, "runs", str(tmp_path))
    assert code == 0 and "3.25 (last eval)" in out
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("train_log", step=6, loss=float("nan")))
    code, out, _ = run_cli(capsys, "runs", str(tmp_path))
    assert "completed (nan)" in out and "nan (last log)" in out


def test_perplexity_is_said_to_be_the_best_evals_or_the_last_ones(capsys, tmp_path, monkeypatch):
    # An overfitting run: "best eval loss 6.433" sat next to "perplexity 4543", which is
    # exp of the last eval, not of the best.
    import math

    from clmtune.backend.events import EventWriter, make_event

    monkeypatch.setenv("COLUMNS", "200")
    run = make_run(tmp_path / "overfit", status="completed", start_time=1000.0)
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("run_started", max_steps=10, resume_step=None))
        for step, loss in ((5, 6.433), (10, 8.421)):
            writer.emit(make_event("eval", step=step, metrics={
                "eval_loss": loss, "perplexity": math.exp(loss)}))
    code, out, _ = run_cli(capsys, "show", str(run))
    assert code == 0
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in out.splitlines()
             if "  " in line}
    assert lines["best eval loss"] == "6.433" and lines["best perplexity"] == "622"
    assert lines["last eval loss"] == "8.421" and lines["perplexity (last eval)"] == "4541"
    code, out, _ = run_cli(capsys, "runs", str(tmp_path))
    header, row = out.strip().splitlines()[0], out.strip().splitlines()[-1]
    assert "best ppl" in header and " 622 " in row and "4541" not in row


# ------------------------------------------------------------------ init / check


def test_init_and_check_delegate(capsys, tmp_path):
    target = tmp_path / "gpt2.toml"
    code, out, _ = run_cli(capsys, "init", "--preset", "gpt2-text", str(target))
    assert code == 0 and target.is_file()
    code, _, err = run_cli(capsys, "init", "--preset", "gpt2-text", str(target))
    assert code == 2 and "exists" in err
    code, _, err = run_cli(capsys, "init", "--preset", "nope", str(tmp_path / "x.toml"))
    assert code == 2


def test_check_of_a_valid_file(capsys, tmp_path, tiny_assets):
    from clmtune.backend.settings.toml_io import save_config

    path = tmp_path / "ok.toml"
    save_config(make_tiny_config(tiny_assets), path)
    code, out, _ = run_cli(capsys, "check", str(path))
    assert code == 0 and "ok" in out


# ------------------------------------------------------------------ launch details


def test_default_run_dir_names(tmp_path):
    first = default_run_dir(Path("conf/my-run.toml"), tmp_path)
    assert first.parent == tmp_path and first.name.startswith("my-run-")
    assert len(first.name) == len("my-run-20250101-120000")
    first.mkdir()
    second = default_run_dir(Path("conf/my-run.toml"), tmp_path)
    assert second != first and not second.exists()  # "-2" within the same second
    assert default_run_dir(None, tmp_path).name.startswith("run-")


def test_output_dir_is_the_run_dir_unless_given(tmp_path, tiny_assets):
    from clmtune.backend.launch import _choose_run_dir

    cfg = make_tiny_config(tiny_assets, output_dir="out")
    cfg.source = tmp_path / "x.toml"
    assert _choose_run_dir(cfg, cfg.source, None, Path("runs")) == tmp_path / "out"
    assert _choose_run_dir(cfg, cfg.source, tmp_path / "here", Path("runs")) == tmp_path / "here"
    plain = make_tiny_config(tiny_assets)
    chosen = _choose_run_dir(plain, tmp_path / "x.toml", None, tmp_path / "runs")
    assert chosen.parent == tmp_path / "runs" and chosen.name.startswith("x-")


def test_worker_command_single_and_torchrun():
    single = worker_command(RunConfig(), Path("/r"))
    assert single == [sys.executable, "-m", "clmtune.backend.worker", "/r"]
    multi = worker_command(
        RunConfig(launch={"nproc_per_node": 4, "nnodes": 2, "node_rank": 1,
                          "master_addr": "10.0.0.1", "master_port": 29501}),
        Path("/r"), Path("/r/checkpoint-4"),
    )  # fmt: skip
    assert multi[:3] == [sys.executable, "-m", "torch.distributed.run"]
    joined = " ".join(multi)
    for part in ("--nproc_per_node=4", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1",
                 "--master_port=29501"):  # fmt: skip
        assert part in joined
    assert multi[-6:] == ["-m", "clmtune.backend.worker", "/r", "--resume", "/r/checkpoint-4",
                          "--planned"]
    standalone = worker_command(RunConfig(launch={"nproc_per_node": 2}), Path("/r"))
    assert "--standalone" in standalone


def test_resume_warnings_name_what_breaks_exact_continuation(tmp_path, tiny_assets):
    old = make_tiny_config(tiny_assets, per_device_train_batch_size=4)
    run = prepare_run_dir(old, tmp_path / "run")
    ckpt = make_checkpoint(run, 4)
    same = resume_warnings(run, ckpt, make_tiny_config(tiny_assets, per_device_train_batch_size=4))
    assert same == []
    changed = make_tiny_config(tiny_assets, per_device_train_batch_size=8, learning_rate=5e-4)
    changed.launch["nproc_per_node"] = 2
    warnings = resume_warnings(run, ckpt, changed)
    text = "\n".join(warnings)
    assert "per_device_train_batch_size" in text and "learning_rate" in text
    assert "world size was 1" in text


def test_prepare_refuses_a_dir_with_a_running_run(tmp_path, tiny_assets):
    live = make_run(tmp_path / "live", status="running", pid=os.getpid(), start_time=time.time())
    with pytest.raises(RunError, match="still running"):
        prepare_run_dir(make_tiny_config(tiny_assets), live)
    run = prepare_run_dir(make_tiny_config(tiny_assets), tmp_path / "new")
    assert (run / "config.toml").is_file() and (run / "logs").is_dir()
    text = (run / "config.toml").read_text()
    assert str(tiny_assets.train_file) in text  # absolute paths in the frozen copy


def test_request_stop_writes_the_file_and_signals_the_worker(tmp_path):
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        run = make_run(tmp_path / "run", status="running", pid=worker.pid,
                       worker_pid=worker.pid, start_time=time.time())  # fmt: skip
        assert request_stop(run) is True
        assert (run / STOP_FILE).is_file()
        assert worker.wait(timeout=30) == -signal.SIGTERM
    finally:
        if worker.poll() is None:
            worker.kill()
    assert request_stop(run) is False  # its process is gone: crashed, not running


def test_a_fresh_start_never_mixes_into_an_existing_run(capsys, tmp_path, tiny_assets):
    from clmtune.backend.settings.toml_io import save_config

    config = tmp_path / "tiny.toml"
    save_config(make_tiny_config(tiny_assets), config)
    run = make_run(tmp_path / "run", status="stopped")
    make_checkpoint(run, 4)
    code, _, err = run_cli(capsys, "train", str(config), "--run-dir", str(run))
    assert code == 2 and "already holds a run" in err and "--resume last" in err
    # Without a complete checkpoint "last" would fail: the hint is the command that works.
    bare = make_run(tmp_path / "bare", status="failed")
    code, _, err = run_cli(capsys, "train", str(config), "--run-dir", str(bare))
    assert code == 2 and "no complete checkpoint: start it again with --resume auto" in err
    # A complete run: "--resume last" alone is refused (the run is complete); say what works.
    done = make_run(tmp_path / "done", status="completed")
    make_checkpoint(done, 4)
    code, _, err = run_cli(capsys, "train", str(config), "--run-dir", str(done))
    assert code == 2 and "it is complete: to train further, raise max_steps" in err
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    code, _, err = run_cli(capsys, "train", str(config), "--run-dir", str(other))
    assert code == 2 and "holds other files" in err
    assert sorted(p.name for p in other.iterdir()) == ["todo.txt"]


# ------------------------------------------------------------------ terminal output


def _recording_console(width: int = 100, terminal: bool = False):
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None,
                   highlight=False, soft_wrap=True)  # fmt: skip


def test_messages_keep_the_section_names_rich_would_take_for_markup():
    from types import SimpleNamespace

    from clmtune.backend.cli import _print_status, _report_event
    from clmtune.backend.events import make_event

    console = _recording_console()
    message = "[data] block_size = 512 is larger than the tokenizer's maximum length (128)"
    _report_event(console, make_event("warning", code="block_size", message=message))
    _report_event(console, make_event("log", message="[training] seed was 1, now 2"))
    out = console.file.getvalue()
    assert message in out and "[training] seed was 1" in out

    failed = SimpleNamespace(status="failed", error="[training] bf16 = true needs a GPU",
                             hint="set [training] bf16 = false", path=Path("run"),
                             global_step=0, checkpoints=[])  # fmt: skip
    import clmtune.backend.cli as cli

    err = _recording_console()
    original = cli._console
    cli._console = lambda stderr=False: err
    try:
        assert _print_status(failed) == 1
    finally:
        cli._console = original
    text = err.file.getvalue()
    assert "failed: [training] bf16 = true needs a GPU" in text
    assert "hint: set [training] bf16 = false" in text


def test_runs_table_drops_columns_not_names_on_a_narrow_terminal(capsys, tmp_path, monkeypatch):
    import clmtune.backend.cli as cli

    name = "a-rather-long-config-name-20250101-120000"
    make_run(tmp_path / name, start_time=1000.0)
    code, out, _ = run_cli(capsys, "runs", str(tmp_path))  # piped: every column, whole lines
    assert code == 0 and name in out
    assert all(h in out for h in ("model", "best eval", "best ppl", "started", "ckpts"))

    narrow = _recording_console(width=80, terminal=True)
    monkeypatch.setattr(cli, "_console", lambda stderr=False: narrow)
    assert run_cli(capsys, "runs", str(tmp_path))[0] == 0
    out = narrow.file.getvalue()
    assert name in out and "…" not in out
    assert "status" in out and "ckpts" in out and "started" not in out
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("check", "folder"), "folder: is a folder; give the path of a settings file"),
        (("train", "folder"), "folder: is a folder; give the path of a settings file"),
        (("show", "file.toml"), "file.toml: is a file, not a run directory"),
        (("stop", "file.toml"), "file.toml: is a file, not a run directory"),
        (("runs", "file.toml"), "file.toml: is a file; give the folder that holds the runs"),
    ],
)
def test_a_file_for_a_folder_or_back_is_named_as_such(capsys, tmp_path, monkeypatch, argv,
                                                      expected):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.toml").write_text("[model]\n")
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and expected in err
    assert_one_line_error(err)


def test_resume_warnings_ignore_the_stale_batch_size_trainer_keeps_in_its_state(
    tmp_path, tiny_assets
):
    # Trainer copies train_batch_size from the checkpoint it resumes, so a run resumed
    # once with a new batch size keeps the first one in every later trainer_state.json.
    run = prepare_run_dir(make_tiny_config(tiny_assets, per_device_train_batch_size=8),
                          tmp_path / "run")  # fmt: skip
    ckpt = make_checkpoint(run, 4)  # its trainer_state.json says train_batch_size 4
    now = make_tiny_config(tiny_assets, per_device_train_batch_size=8)
    assert resume_warnings(run, ckpt, now) == []
    # A plain Hugging Face dir has only the state to tell: then it counts.
    plain = tmp_path / "hf"
    hf_ckpt = make_checkpoint(plain, 4, marker=False)
    (text,) = resume_warnings(plain, hf_ckpt, now)
    assert "per_device_train_batch_size was 4" in text and "now 8" in text


def test_durations_round_as_the_dashboard_does():
    # 59.6 s read "0:59" in `clmtune show` and "1m00s" in the dashboard.
    from clmtune.backend.cli import _fmt_duration

    assert _fmt_duration(59.6) == "1:00"
    assert _fmt_duration(62.51) == "1:03"
    assert _fmt_duration(3599.5) == "1:00:00"
    assert _fmt_duration(None) == "-"


def test_check_on_a_device_says_it_is_not_a_file(capsys):
    from clmtune.backend.cli import main

    assert main(["check", "/dev/null"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("clmtune: error: /dev/null: is not a regular file (a device, pipe or "
                   "socket); give the path of a settings file (TOML)")


def test_runs_folder_mistakes_are_one_line(capsys, tmp_path, monkeypatch, tiny_config):
    from clmtune.backend.cli import main

    run = tmp_path / "one-run"
    run.mkdir()
    (run / "run.json").write_text('{"status": "completed"}')
    assert main(["runs", str(run)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"clmtune: error: {run}: is a run, not a folder of runs; see it with: clmtune show {run}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    from clmtune.backend.launch import RunError, _choose_run_dir

    with pytest.raises(RunError, match="runs: is a file, not a folder of runs"):
        _choose_run_dir(tiny_config, tmp_path / "x.toml", None, Path("runs"))
