"""``clmtune export`` of a full fine-tuning run (the tiny model): the model card describes the
exported weights (a checkpoint's own step and eval), file modes follow the umask, and the
libraries' progress bars stay off stderr when it is not a terminal. LoRA exports:
tests/test_lora.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from clmtune.backend.cli_text import fmt_float
from clmtune.backend.events import perplexity
from tests.run_helpers import clmtune, write_config
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def run(tiny_assets, tmp_path_factory) -> Path:
    """A finished tiny run: evaluations at steps 4 and 8, checkpoint-4 and checkpoint-8."""
    root = tmp_path_factory.mktemp("export")
    config = write_config(root / "full.toml", tiny_assets, max_steps=8, save_steps=4)
    done = clmtune("train", str(config), "--run-dir", str(root / "runs" / "full"), cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "runs" / "full"


def _evals(state_file: Path) -> dict[int, float]:
    history = json.loads(state_file.read_text())["log_history"]
    return {h["step"]: h["eval_loss"] for h in history if "eval_loss" in h}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for one test (restored after)."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.slow
def test_card_of_a_checkpoint_has_its_own_step_and_eval(run, tmp_path, capsys):
    out = tmp_path / "ckpt4"
    code, _, err = run_cli(capsys, "export", str(run), str(out), "--checkpoint", "4")
    assert code == 0, err
    card = (out / "README.md").read_text()
    own = _evals(run / "checkpoint-4" / "trainer_state.json")[4]
    final = _evals(run / "trainer_state.json")[8]
    assert fmt_float(own) != fmt_float(final)  # else the test could not tell them apart
    assert "from `checkpoint-4` (step 4) of run `full`." in card
    assert "- steps trained: 4\n" in card
    assert f"- eval loss (at step 4): {fmt_float(own)}\n" in card
    assert f"- perplexity: {fmt_float(perplexity(own))}\n" in card
    assert "final eval loss" not in card and fmt_float(final) not in card

    out = tmp_path / "final"
    code, _, err = run_cli(capsys, "export", str(run), str(out))
    assert code == 0, err
    card = (out / "README.md").read_text()
    assert "from the final model of run `full`." in card and "`full` of run" not in card
    assert "- steps trained: 8\n" in card and "- final eval loss: " in card


@pytest.mark.slow
def test_card_of_a_checkpoint_without_an_eval_says_none(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    state_file = copy / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"] = [h for h in state["log_history"] if "eval_loss" not in h]
    state_file.write_text(json.dumps(state))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "export", str(copy), str(out), "--checkpoint", "4")
    assert code == 0, err
    card = (out / "README.md").read_text()
    assert "- steps trained: 4\n" in card and "- eval loss: -\n" in card
    assert "- perplexity: -\n" in card


@pytest.mark.slow
def test_export_modes_follow_the_umask_and_keep_an_existing_folder_s(run, tmp_path, capsys,
                                                                     umask):
    umask(0o022)
    out = tmp_path / "new"
    code, _, err = run_cli(capsys, "export", str(run), str(out))
    assert code == 0, err
    assert _mode(out) == 0o755  # not mkdtemp's 0700
    # model.safetensors too (its saver writes a 0600 temporary file and renames it)
    assert (out / "model.safetensors").is_file() and {_mode(p) for p in out.iterdir()} == {0o644}

    umask(0o027)
    out = tmp_path / "stricter"
    code, _, err = run_cli(capsys, "export", str(run), str(out), "--checkpoint", "4")
    assert code == 0, err
    assert _mode(out) == 0o750 and {_mode(p) for p in out.iterdir()} == {0o640}

    umask(0o022)
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chmod(mine, 0o751)  # the user's empty folder keeps its mode
    code, _, err = run_cli(capsys, "export", str(run), str(mine))
    assert code == 0, err
    assert _mode(mine) == 0o751 and (mine / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if ".export-" in p.name]


@pytest.mark.slow
def test_piped_export_prints_only_its_own_lines(run, tmp_path):
    done = clmtune("export", str(run), str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("export: ") for line in lines), done.stderr
    assert "\r" not in done.stderr  # no "Loading weights" / "Writing model shards" frames
