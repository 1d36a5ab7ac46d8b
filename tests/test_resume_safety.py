"""Saved work is never damaged: complete runs, ``--resume auto``, foreign folders, settings.

Real CLI (``clmtune`` in a subprocess, or ``main()`` for the quick refusals) and a real worker on
the tiny fixture. Refusals are checked with a hash of every file in the run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from clmtune.backend.cli import main
from clmtune.backend.errors import RunDirError
from clmtune.backend.events import read_events
from clmtune.backend.resume_plan import RunComplete, plan_run
from clmtune.backend.rundir.checkpoints import list_checkpoints
from clmtune.backend.rundir.layout import read_run_json, write_json_atomic
from clmtune.backend.settings.run_config import RunConfig
from tests.fixtures import make_tiny_config
from tests.run_helpers import (
    DRILL_HOOKS,
    cli_env,
    clmtune,
    events_of,
    losses_by_step,
    wait_for,
    worker_pgid,
    write_config,
)
from tests.test_runs import make_checkpoint, make_run

# A run of 8 steps whose checkpoints rotate, as in the report (save_total_limit deleting one).
COMPLETE = dict(max_steps=8, save_steps=4, eval_steps=4, logging_steps=1, save_total_limit=2)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (run.json and events.jsonl included); folders too."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory, tiny_assets) -> Path:
    """One real run trained to its end (checkpoint-4, checkpoint-8), shared read-only."""
    root = tmp_path_factory.mktemp("complete")
    config = write_config(root / "tiny.toml", tiny_assets, **COMPLETE)
    result = clmtune("train", str(config), "--run-dir", "run", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


@pytest.fixture
def run_copy(complete_run, tmp_path) -> Path:
    """A private copy of the complete run (tests may try to damage it)."""
    dest = tmp_path / "run"
    shutil.copytree(complete_run, dest)
    return dest


# ------------------------------------------------------------------ a complete run


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        ("--resume", "last"),
        ("FILE", "--resume", "last"),
        ("FILE", "--resume", "auto"),
        ("--resume", "checkpoint-4"),
    ],
    ids=["last", "file-last", "file-auto", "older-checkpoint"],
)
def test_resuming_a_complete_run_refuses_and_changes_no_byte(run_copy, tiny_assets, extra):
    config = write_config(run_copy.parent / "tiny.toml", tiny_assets, **COMPLETE)
    before = tree_hashes(run_copy)
    assert {"run.json", "events.jsonl", "checkpoint-8/trainer_state.json"} <= set(before)
    argv = [str(config) if a == "FILE" else a for a in extra]
    result = clmtune("train", *argv, "--run-dir", str(run_copy), cwd=run_copy.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result.stderr)
    assert "the run is complete (step 8, max_steps = 8)" in line
    assert "raise [training] max_steps" in line and "start a new run" in line
    assert tree_hashes(run_copy) == before
    assert not (run_copy / "checkpoint-9").exists()


@pytest.mark.parametrize("spec", ["last", "checkpoint-4"])
def test_a_worker_started_by_hand_applies_the_same_rule(run_copy, spec):
    """``python -m clmtune.backend.worker RUN --resume …`` on a complete run refuses like
    ``clmtune train``: one line, exit 2, not a byte changed."""
    import subprocess
    import sys

    before = tree_hashes(run_copy)
    result = subprocess.run(
        [sys.executable, "-m", "clmtune.backend.worker", str(run_copy), "--resume", spec],
        capture_output=True, text=True, timeout=120, env=cli_env(),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result.stderr)
    assert "the run is complete" in line and "Traceback" not in result.stderr
    assert tree_hashes(run_copy) == before


@pytest.mark.slow
def test_train_further_continues_from_the_last_checkpoint_and_records_it(run_copy, tiny_assets):
    more = write_config(run_copy.parent / "more.toml", tiny_assets, **{**COMPLETE,
                        "max_steps": 12, "logging_steps": 2})  # fmt: skip
    result = clmtune("train", str(more), "--run-dir", str(run_copy), "--resume", "last",
                     cwd=run_copy.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "loading checkpoint-8" in result.stdout
    info = read_run_json(run_copy)
    assert info["status"] == "completed" and info["global_step"] == 12
    assert info["resumed_from"].endswith("checkpoint-8")
    assert "[training] max_steps: 8 → 12" in info["settings_changes"]
    assert "[training] logging_steps: 1 → 2" in info["settings_changes"]
    previous = info["attempts"][-1]
    assert previous["status"] == "completed" and previous["global_step"] == 8
    changed = [e for e in events_of(run_copy) if e.get("code") == "settings_changed"]
    assert len(changed) == 1 and "max_steps: 8 → 12" in changed[0]["message"]
    steps = sorted(losses_by_step(events_of(run_copy)))  # the logs of the last attempt
    assert steps[0] > 8 and steps[-1] == 12, steps  # continued after step 8, not from 0
    assert [c.step for c in list_checkpoints(run_copy)] == [8, 12]
    # Complete again at the new max_steps: the same command is refused now.
    again = clmtune("train", str(more), "--run-dir", str(run_copy), "--resume", "last",
                    cwd=run_copy.parent)  # fmt: skip
    assert again.returncode == 2 and "complete (step 12, max_steps = 12)" in again.stderr
    # The summary the second attempt left is its own (the first attempt's was removed).
    assert_left_summary_is_a_full_read(run_copy)


@pytest.mark.slow
def test_resuming_an_earlier_checkpoint_sets_the_later_ones_aside(run_copy):
    # A stopped run resumed from checkpoint-4 starts another history: the old checkpoint-8
    # must neither list as resumable nor survive the rotation in place of the new one.
    info = read_run_json(run_copy)
    write_json_atomic(run_copy / "run.json", {**info, "status": "stopped"})
    old = (run_copy / "checkpoint-8" / "trainer_state.json").read_bytes()
    result = clmtune("train", "--run-dir", str(run_copy), "--resume", "checkpoint-4",
                     cwd=run_copy.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "checkpoint-8 comes after checkpoint-4" in result.stderr + result.stdout
    (aside,) = (run_copy / "superseded").iterdir()
    assert aside.name.endswith("-after-checkpoint-4")
    assert (aside / "checkpoint-8" / "trainer_state.json").read_bytes() == old  # moved, whole
    assert [(c.step, c.state) for c in list_checkpoints(run_copy)] == [(4, "complete"),
                                                                       (8, "complete")]
    assert read_run_json(run_copy)["status"] == "completed"
    from clmtune.backend.rundir.summary import read_run

    summary = read_run(run_copy)
    assert [c.step for c in summary.checkpoints] == [4, 8]
    marks = summary.state.checkpoints
    assert sorted(m.step for m in marks) == [4, 8] and len(marks) == 2  # the new 8 only


def assert_left_summary_is_a_full_read(run_dir: Path) -> None:
    """The worker left its summary at the end; it gives exactly what a full read gives."""
    from clmtune.backend.rundir.cache import clear_caches
    from clmtune.backend.rundir.listing import left_summary
    from clmtune.backend.rundir.summary import read_run

    clear_caches()
    left = left_summary(run_dir)
    assert left is not None, "no usable .clmtune-summary.json"
    assert left.to_json() == read_run(run_dir).to_json()


def test_a_finished_run_leaves_its_summary_for_listings(complete_run):
    assert_left_summary_is_a_full_read(complete_run)
    assert read_run_json(complete_run)["global_step"] == 8


# ------------------------------------------------------------------ --resume auto


@pytest.mark.slow
def test_resume_auto_starts_resumes_then_refuses_with_one_command_line(tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets, **COMPLETE)
    command = ("train", str(config), "--run-dir", "run", "--resume", "auto")
    run_dir = tmp_path / "run"
    # 1. No run folder yet: a fresh start; the job is "preempted" (kill -9) after checkpoint-4.
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="5")
    first = clmtune(*command, "--detach", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "starting from the beginning" in first.stdout
    wait_for(lambda: (run_dir / "drill.paused").exists(), what="the worker to reach step 5")
    os.killpg(worker_pgid(run_dir), signal.SIGKILL)
    assert [(c.step, c.state) for c in list_checkpoints(run_dir)] == [(4, "complete")]
    # 2. The requeued job: same command line, resumes from the last complete checkpoint.
    second = clmtune(*command, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "loading checkpoint-4" in second.stdout
    info = read_run_json(run_dir)
    assert info["status"] == "completed" and info["resumed_from"].endswith("checkpoint-4")
    # The killed attempt is on record as crashed, not as still running.
    assert [a["status"] for a in info["attempts"]] == ["crashed"]
    # 3. Requeued once more after it finished: refused, nothing touched.
    before = tree_hashes(run_dir)
    third = clmtune(*command, cwd=tmp_path)
    assert third.returncode == 2 and "the run is complete" in one_line(third.stderr)
    assert tree_hashes(run_dir) == before


def test_resume_auto_without_a_complete_checkpoint_starts_fresh(tmp_path, tiny_assets):
    # A folder of ours whose job died during its first save: nothing to resume, start again.
    run = make_run(tmp_path / "run", status="crashed")
    make_checkpoint(run, 4, marker=False)
    cfg = make_tiny_config(tiny_assets)
    plan = plan_run(run, cfg, "auto")
    assert plan.action == "fresh" and plan.checkpoint is None
    assert plan_run(tmp_path / "new", cfg, "auto").action == "fresh"
    make_checkpoint(run, 6)
    plan = plan_run(run, cfg, "auto")
    assert plan.action == "resume" and plan.checkpoint.name == "checkpoint-6"


def test_resume_auto_needs_a_fixed_folder(capsys, tmp_path, tiny_assets):
    config = write_config(tmp_path / "tiny.toml", tiny_assets)
    code, _, err = cli(capsys, "train", str(config), "--resume", "auto")
    assert code == 2 and "--resume auto needs a fixed run folder" in one_line(err)
    assert not (tmp_path / "runs").exists()


def test_a_run_dir_the_os_cannot_create_is_one_line(capsys, tmp_path, tiny_assets,
                                                    monkeypatch):
    config = write_config(tmp_path / "tiny.toml", tiny_assets)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "train", str(config), "--run-dir", "runs/" + "é" * 200)
    line = one_line(err)
    assert code == 2 and line.startswith("clmtune: error: --run-dir has a folder name of 400")
    assert not (tmp_path / "runs").exists()


def test_resume_last_without_a_run_folder_says_which_folder_is_needed(capsys, tmp_path,
                                                                       tiny_assets):
    # Not "runs/tiny-<now> does not exist": the user meant the run they trained before.
    config = write_config(tmp_path / "tiny.toml", tiny_assets)
    code, _, err = cli(capsys, "train", str(config), "--resume", "last")
    line = one_line(err)
    assert code == 2 and "--resume last needs the folder of the run to resume" in line
    assert "--run-dir" in line and "does not exist" not in line
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ "complete" from the records


def _state(path: Path, **fields) -> None:
    (path / "trainer_state.json").write_text(json.dumps(fields))


def test_complete_is_read_from_run_json_and_trainer_state(tmp_path, tiny_assets):
    run = make_run(tmp_path / "run", status="completed", global_step=8)
    ckpt = make_checkpoint(run, 8)
    _state(run, global_step=8, max_steps=8, epoch=0.5)
    _state(ckpt, global_step=8, max_steps=8, epoch=0.5)
    with pytest.raises(RunComplete, match="step 8, max_steps = 8"):
        plan_run(run, make_tiny_config(tiny_assets, max_steps=8), "last")
    assert plan_run(run, make_tiny_config(tiny_assets, max_steps=9), "last").action == "resume"
    # Epochs instead of max_steps: the epoch reached decides.
    epochs = make_tiny_config(tiny_assets, max_steps=-1, num_train_epochs=0.5)
    with pytest.raises(RunComplete, match="num_train_epochs = 0.5"):
        plan_run(run, epochs, "last")
    more = make_tiny_config(tiny_assets, max_steps=-1, num_train_epochs=1.0)
    assert plan_run(run, more, "last").checkpoint == ckpt.resolve()
    # A stopped run whose last checkpoint already reached max_steps has nothing left either.
    stopped = make_run(tmp_path / "stopped", status="stopped")
    _state(make_checkpoint(stopped, 8), global_step=8, max_steps=8, epoch=0.5)
    with pytest.raises(RunComplete):
        plan_run(stopped, make_tiny_config(tiny_assets, max_steps=8), "last")


# ------------------------------------------------------------------ folders that are not ours


@pytest.mark.slow
def test_output_dir_into_a_checkpoint_is_refused_and_nothing_written(run_copy, tiny_assets):
    target = run_copy / "checkpoint-4"
    config = write_config(run_copy.parent / "into.toml", tiny_assets, output_dir=str(target))
    before = tree_hashes(run_copy)
    result = clmtune("train", str(config), cwd=run_copy.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is a checkpoint of the run" in one_line(result.stderr)
    assert tree_hashes(run_copy) == before


@pytest.mark.parametrize("where", ["hf-state", "hf-model", "inside-run", "inside-hf", "ours"])
def test_folders_holding_a_run_or_hf_outputs_are_refused(capsys, tmp_path, tiny_assets, where):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "trainer_state.json").write_text('{"global_step": 30, "log_history": []}')
    model = tmp_path / "model"
    shutil.copytree(tiny_assets.model_dir, model)
    ours = make_run(tmp_path / "ours", status="stopped")
    make_checkpoint(ours, 4)
    target, expected = {
        "hf-state": (hf, "holds Hugging Face training outputs (trainer_state.json"),
        "hf-model": (model, "holds Hugging Face training outputs (model.safetensors"),
        "inside-run": (ours / "logs" / "new", "is inside the run folder"),
        "inside-hf": (hf / "sub", "is inside the run folder"),
        "ours": (ours, "already holds a run"),
    }[where]
    config = write_config(tmp_path / "tiny.toml", tiny_assets)
    before = tree_hashes(tmp_path)
    code, _, err = cli(capsys, "train", str(config), "--run-dir", str(target))
    assert code == 2 and expected in one_line(err)
    assert tree_hashes(tmp_path) == before  # nothing written, no folder created


def test_a_plain_hugging_face_folder_is_not_resumed(capsys, tmp_path, tiny_assets):
    hf = tmp_path / "hf"
    make_checkpoint(hf, 4, marker=False)
    config = write_config(tmp_path / "tiny.toml", tiny_assets)
    before = tree_hashes(hf)
    code, _, err = cli(capsys, "train", str(config), "--run-dir", str(hf), "--resume", "last")
    assert code == 2 and "Hugging Face training outputs" in one_line(err)
    assert tree_hashes(hf) == before


# ------------------------------------------------------------------ incompatible settings


@pytest.mark.slow
@pytest.mark.parametrize("change", ["block_size", "model", "tokenizer"])
def test_resume_with_incompatible_settings_refuses_with_the_reason(
    capsys, run_copy, tiny_assets, change
):
    cfg = make_tiny_config(tiny_assets, **{**COMPLETE, "max_steps": 12})
    if change == "block_size":
        cfg.data["block_size"] = 16
        expected = "[data] block_size was 32, now 16"
    elif change == "model":
        other = run_copy.parent / "other-model"
        shutil.copytree(tiny_assets.model_dir, other)
        cfg.model["model_name_or_path"] = str(other)
        expected = "[model] model_name_or_path was"
    else:
        other = run_copy.parent / "other-tokenizer"
        shutil.copytree(tiny_assets.model_dir, other)
        cfg.model["tokenizer_name"] = str(other)
        expected = "[model] tokenizer_name was None"
    from clmtune.backend.settings.toml_io import save_config

    config = run_copy.parent / "changed.toml"
    save_config(cfg, config)
    before = tree_hashes(run_copy)
    code, _, err = cli(capsys, "train", str(config), "--run-dir", str(run_copy), "--resume", "last")
    line = one_line(err)
    assert code == 2 and expected in line and "cannot resume with these settings" in line
    assert tree_hashes(run_copy) == before


@pytest.mark.slow
def test_compatible_changes_are_listed_in_the_plan(run_copy, tiny_assets):
    cfg = make_tiny_config(tiny_assets, **{**COMPLETE, "max_steps": 12, "learning_rate": 5e-4})
    plan = plan_run(run_copy, cfg, "last")
    assert plan.action == "resume" and plan.checkpoint.name == "checkpoint-8"
    assert "[training] learning_rate: 0.001 → 0.0005" in plan.changes
    assert any("learning_rate" in w for w in plan.warnings)
    with pytest.raises(RunDirError):
        plan_run(run_copy, RunConfig(model=cfg.model, data={**cfg.data, "block_size": 64},
                                     training=cfg.training), "last")  # fmt: skip


@pytest.mark.slow
def test_events_of_a_refused_resume_are_untouched(run_copy):
    count = len(read_events(run_copy / "events.jsonl"))
    assert main(["train", "--run-dir", str(run_copy), "--resume", "last"]) == 2
    assert len(read_events(run_copy / "events.jsonl")) == count


def test_a_start_that_died_before_the_worker_leaves_a_folder_that_can_start_again(
    tmp_path, tiny_assets
):
    from clmtune.backend.launch import prepare_run_dir

    cfg = make_tiny_config(tiny_assets)
    folder = prepare_run_dir(cfg, tmp_path / "run")  # config.toml and logs/, nothing else
    assert plan_run(folder, cfg).action == "fresh"
    assert prepare_run_dir(cfg, folder) == folder.resolve()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="holds other files"):
        plan_run(folder, cfg)
