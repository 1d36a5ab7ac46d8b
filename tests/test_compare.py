"""``clmtune compare``: real runs (the tiny model) compared through the real CLI; smoothing."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest

from clmtune.backend.tools.compare import TABLE_COLUMNS, curve_of, ema, load_runs
from tests.run_helpers import clmtune, write_config
from tests.test_cli import run_cli

RECORDINGS = Path(__file__).parent / "tui" / "data"
LEARNING_RATES = {"lr-hi": 1e-3, "lr-lo": 5e-4}


@pytest.fixture(scope="module")
def runs_dir(tiny_assets, tmp_path_factory) -> Path:
    """Two real runs of the tiny model that differ only in their learning rate."""
    root = tmp_path_factory.mktemp("compare")
    runs = root / "runs"
    for name, lr in LEARNING_RATES.items():
        config = write_config(root / f"{name}.toml", tiny_assets, learning_rate=lr)
        done = clmtune("train", str(config), "--run-dir", str(runs / name), cwd=root)
        assert done.returncode == 0, done.stderr
    return runs


def _trainer_best_eval(run: Path) -> tuple[float, int]:
    """The best eval loss as Hugging Face itself recorded it (trainer_state.json)."""
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    evals = [(h["eval_loss"], h["step"]) for h in history if "eval_loss" in h]
    return min(evals, key=lambda pair: (pair[0], pair[1]))


def _setting_keys(run: Path) -> set[str]:
    """Every ``section.key`` of a run's frozen config.toml that compare looks at."""
    import tomllib

    from clmtune.backend.tools.compare import NOT_SETTINGS, flat_settings

    return set(flat_settings(tomllib.loads((run / "config.toml").read_text()))) - NOT_SETTINGS


def _hf_copy(run: Path, dest: Path) -> Path:
    """What a plain Hugging Face script leaves: trainer_state.json and the results files."""
    dest.mkdir()
    for name in ("trainer_state.json", "train_results.json", "eval_results.json",
                 "all_results.json"):  # fmt: skip
        shutil.copy(run / name, dest / name)
    return dest


@pytest.mark.slow
def test_json_shape_best_step_and_only_the_differing_setting(capsys, runs_dir):
    code, out, err = run_cli(capsys, "compare", "lr-hi", "lr-lo", "--runs-dir", str(runs_dir),
                             "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"runs", "config_diff"}
    # Two runs differ in one setting only (output_dir says where a run is, not how it trained).
    assert data["config_diff"] == {"training.learning_rate": {"lr-hi": 1e-3, "lr-lo": 5e-4}}
    assert [r["name"] for r in data["runs"]] == ["lr-hi", "lr-lo"]
    for run in data["runs"]:
        assert set(run) == {"name", "path", "status", "steps", "final", "best"}  # the issue's
        assert run["status"] == "completed" and run["steps"] == 8
        assert Path(run["path"]) == runs_dir / run["name"]
        value, step = _trainer_best_eval(runs_dir / run["name"])
        assert run["best"]["eval_loss"] == {"value": pytest.approx(value), "step": step}
        results = json.loads((runs_dir / run["name"] / "all_results.json").read_text())
        for key in ("train_loss", "eval_loss", "perplexity", "train_runtime"):
            assert run["final"][key] == pytest.approx(results[key])
    losses = [r["final"]["train_loss"] for r in data["runs"]]
    assert losses[0] != losses[1]  # really two different runs


@pytest.mark.slow
def test_table_and_csv(capsys, runs_dir):
    code, out, err = run_cli(capsys, "compare", "lr-hi", str(runs_dir / "lr-lo"),
                             "--runs-dir", str(runs_dir))  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if "best eval_loss" in line)
    assert header.split()[:3] == ["name", "status", "steps"]
    assert any(line.split()[:3] == ["lr-hi", "completed", "8"] for line in lines)
    assert "settings that differ" in out
    row = next(line for line in lines if line.strip().startswith("training.learning_rate"))
    assert row.split()[1:] == ["0.001", "0.0005"]

    code, out, err = run_cli(capsys, "compare", "lr-hi", "lr-lo", "--runs-dir", str(runs_dir),
                             "--csv")  # fmt: skip
    assert code == 0, err
    table = list(csv.reader(io.StringIO(out)))
    assert table[0][: len(TABLE_COLUMNS)] == list(TABLE_COLUMNS)
    assert [r[0] for r in table[1:]] == ["lr-hi", "lr-lo"]
    rows = [dict(zip(table[0], r, strict=True)) for r in table[1:]]
    assert all(r["steps"] == "8" and r["status"] == "completed" for r in rows)
    value, step = _trainer_best_eval(runs_dir / "lr-lo")
    assert float(rows[1]["best_eval_loss"]) == pytest.approx(value)
    assert int(rows[1]["best_eval_step"]) == step
    # --metric reaches the CSV as it reaches the table and --json.
    code, out, err = run_cli(capsys, "compare", "lr-hi", "lr-lo", "--runs-dir", str(runs_dir),
                             "--csv", "--metric", "train_loss")  # fmt: skip
    assert code == 0, err
    table = list(csv.reader(io.StringIO(out)))
    at = table[0].index("best_eval_step") + 1
    assert table[0][at:at + 2] == ["best_train_loss", "best_train_loss_step"]
    code, out, _ = run_cli(capsys, "compare", "lr-hi", "lr-lo", "--runs-dir", str(runs_dir),
                           "--json", "--metric", "train_loss")  # fmt: skip
    best = {r["name"]: r["best"]["train_loss"] for r in json.loads(out)["runs"]}
    for row in table[1:]:
        cells = dict(zip(table[0], row, strict=True))
        assert float(cells["best_train_loss"]) == pytest.approx(best[cells["name"]]["value"])
        assert int(cells["best_train_loss_step"]) == best[cells["name"]]["step"]


@pytest.mark.slow
def test_a_plain_hugging_face_folder_is_compared(capsys, runs_dir, tmp_path):
    hf = _hf_copy(runs_dir / "lr-hi", tmp_path / "hf-only")
    code, out, err = run_cli(capsys, "compare", "lr-hi", "lr-lo", str(hf),
                             "--runs-dir", str(runs_dir), "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    ours, _, plain = data["runs"]
    assert plain["name"] == "hf-only" and plain["status"] == "completed"
    assert plain["steps"] == 8
    assert plain["best"] == ours["best"]  # the same history, through the same reducer
    assert plain["final"]["train_loss"] == ours["final"]["train_loss"]
    # No config.toml: its values show as missing, for every setting the other runs have.
    diff = data["config_diff"]
    assert diff["training.learning_rate"] == {"lr-hi": 1e-3, "lr-lo": 5e-4, "hf-only": None}
    assert set(diff) == _setting_keys(runs_dir / "lr-lo")
    assert all(values["hf-only"] is None for values in diff.values())
    runs = load_runs([runs_dir / "lr-hi", hf])
    assert curve_of(runs[1], "train_loss").y.tolist() == curve_of(runs[0], "train_loss").y.tolist()
    # No batch settings: its speed is Trainer's, and `show` says the same as compare.
    trainer_speed = json.loads((hf / "train_results.json").read_text())[
        "train_samples_per_second"]
    code, out, err = run_cli(capsys, "show", str(hf), "--json")
    assert code == 0, err
    assert json.loads(out)["samples_per_second"] == trainer_speed
    code, out, err = run_cli(capsys, "compare", str(hf), "lr-hi", "--runs-dir", str(runs_dir),
                             "--csv", "--metric", "samples_per_second")  # fmt: skip
    assert code == 0, err
    assert str(trainer_speed) in out
    assert list(curve_of(runs[1], "train_loss", "time").x) == []  # no clock in HF files


@pytest.mark.slow
def test_a_run_without_readable_settings_shows_every_setting_as_missing(capsys, runs_dir,
                                                                       tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runs_dir / "lr-hi", broken)
    (broken / "config.toml").write_text("[training\nlearning_rate = 1e-3\n")
    keys = _setting_keys(runs_dir / "lr-lo")
    args = ("compare", str(broken), "lr-lo", "--runs-dir", str(runs_dir))

    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0
    assert len(err.splitlines()) == 1 and err.startswith("clmtune: warning: ")
    assert "broken" in err and "config.toml could not be read" in err
    diff = json.loads(out)["config_diff"]
    assert set(diff) == keys and all(v["broken"] is None for v in diff.values())
    assert diff["training.learning_rate"]["lr-lo"] == 5e-4

    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "config.toml could not be read" in err
    assert "no differences" not in out
    row = next(line for line in out.splitlines()
               if line.strip().startswith("training.learning_rate"))
    assert row.split()[1:] == ["-", "0.0005"]

    code, out, err = run_cli(capsys, *args, "--csv")
    assert code == 0 and "config.toml could not be read" in err
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert set(header) >= keys
    cells = [dict(zip(header, r, strict=True)) for r in rows]
    assert all(cells[0][k] == "" for k in keys)  # missing: an empty cell
    assert cells[1]["training.learning_rate"] == "0.0005"


@pytest.mark.slow
def test_one_run_against_a_plain_folder_is_not_no_differences(capsys, runs_dir, tmp_path):
    hf = _hf_copy(runs_dir / "lr-hi", tmp_path / "hf-only")
    code, out, err = run_cli(capsys, "compare", str(hf), "lr-lo", "--runs-dir", str(runs_dir))
    assert code == 0 and err == ""  # no settings file is normal for a plain folder
    assert "no differences" not in out and "settings that differ" in out
    row = next(line for line in out.splitlines()
               if line.strip().startswith("training.learning_rate"))
    assert row.split()[1:] == ["-", "0.0005"]


def test_bad_names_and_folders_exit_2_with_one_line_each(capsys, tmp_path):
    runs = tmp_path / "runs"
    for name in ("completed", "resumed"):
        (runs / name).mkdir(parents=True)
        shutil.copy(RECORDINGS / f"{name}.jsonl", runs / name / "events.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(capsys, "compare", "completd", "resumed", str(empty), "nope",
                             "--runs-dir", str(runs))  # fmt: skip
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err
    assert "completd" in lines[0] and "closest: completed" in lines[0]
    assert str(empty) in lines[1] and "not a run directory" in lines[1]
    assert "nope" in lines[2]
    code, _, err = run_cli(capsys, "compare", "completed", "--runs-dir", str(runs))
    assert code == 2 and len(err.splitlines()) == 1 and "two or more runs" in err
    code, _, err = run_cli(capsys, "compare", "completed", "resumed", "--runs-dir", str(runs),
                           "--metric", "bogus")  # fmt: skip
    assert code == 2 and len(err.splitlines()) == 1 and "--metric bogus" in err


def test_recorded_runs_compare_without_settings(capsys, tmp_path):
    runs = tmp_path / "runs"
    for name in ("completed", "resumed"):
        (runs / name).mkdir(parents=True)
        shutil.copy(RECORDINGS / f"{name}.jsonl", runs / name / "events.jsonl")
    code, out, _ = run_cli(capsys, "compare", "completed", "resumed", "--runs-dir", str(runs),
                           "--json", "--metric", "eval_accuracy")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["config_diff"] == {}
    first = data["runs"][0]
    assert set(first["best"]) == {"eval_loss", "eval_accuracy"}
    compared = load_runs([runs / "completed"])[0]
    accuracy = curve_of(compared, "eval_accuracy")
    top = max(accuracy.y.tolist())
    assert first["best"]["eval_accuracy"] == {
        "value": top, "step": int(accuracy.x[accuracy.y.tolist().index(top)])}


def test_curves_against_step_epoch_and_time(tmp_path):
    folder = tmp_path / "completed"
    folder.mkdir()
    shutil.copy(RECORDINGS / "completed.jsonl", folder / "events.jsonl")
    run = load_runs([folder])[0]
    state = run.state
    by_step = curve_of(run, "loss", "step")
    assert by_step.x.tolist() == state.train_steps and by_step.y.tolist() == state.train_loss
    by_time = curve_of(run, "train_loss", "time")
    assert len(by_time.x) == len(state.train_loss)
    assert by_time.x[0] >= 0 and all(
        b >= a for a, b in zip(by_time.x, by_time.x[1:], strict=False))
    lr = curve_of(run, "learning_rate", "epoch")
    assert len(lr.x) == len(state.learning_rate) and lr.x[-1] == pytest.approx(3.0)
    assert curve_of(run, "eval_loss", "epoch").y.tolist() == state.eval_loss
    assert curve_of(run, "eval_loss", "epoch") is curve_of(run, "eval_loss", "epoch")  # cached


# ------------------------------------------------------------------ smoothing


def _reference_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased EMA, written out step by step."""
    out, last, seen = [], 0.0, 0
    for x in values:
        if not math.isfinite(x):
            out.append(x)
            continue
        seen += 1
        last = last * weight + (1 - weight) * x
        out.append(last / (1 - weight**seen))
    return out


def test_ema_is_debiased_at_the_start():
    # By hand, w = 0.5: s1 = 0.5·1 = 0.5 → 0.5 / 0.5 = 1;
    # s2 = 0.25 + 0.5·2 = 1.25 → 1.25 / 0.75; s3 = 0.625 + 0.5·4 = 2.625 → 2.625 / 0.875 = 3.
    assert ema([1.0, 2.0, 4.0], 0.5) == pytest.approx([1.0, 1.25 / 0.75, 3.0])
    assert ema([1.0, 2.0, 4.0], 0.0) == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("weight", [0.3, 0.9, 0.99])
def test_ema_matches_the_reference_formula_on_a_long_series(weight):
    values = [math.sin(i / 7) + (i % 13) / 5 for i in range(20_000)]
    values[5] = float("nan")  # passes through, does not move the average
    got = ema(values, weight)
    want = _reference_ema(values, weight)
    assert math.isnan(got[5])
    assert all(a == pytest.approx(b, rel=1e-9, abs=1e-12) for a, b in zip(got, want, strict=True)
               if math.isfinite(b))  # fmt: skip


def test_ema_keeps_a_constant_series_and_rejects_bad_weights():
    assert ema([0.1] * 1000, 0.99) == [0.1] * 1000
    with pytest.raises(ValueError):
        ema([1.0], 1.0)


def test_whole_floats_of_the_frozen_settings_show_as_integers():
    from clmtune.backend.tools.compare import setting_text

    assert [setting_text(v) for v in (20.0, 0.1, 5e-05, None, "cosine", True, 3)] == [
        "20", "0.1", "5e-05", "-", "cosine", "True", "3"]
