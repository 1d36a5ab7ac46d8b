"""Presets: rendered files are commented, only set keys, and load (or fail exactly as expected)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from clmtune.backend import presets as P
from clmtune.backend.settings.problems import ConfigError
from clmtune.backend.settings.schema import schema
from clmtune.backend.settings.toml_io import load_config, read_toml

HAS_DEMO = importlib.util.find_spec("clmtune.backend.demo") is not None


@pytest.fixture(scope="module", autouse=True)
def _schema():
    schema()  # in-process, so load_config does not spawn the schema subprocess


@pytest.fixture(scope="module")
def demo_toml(tmp_path_factory) -> Path:
    """A demo file written by init_file, with tiny assets (built once for the module)."""
    if not HAS_DEMO:
        pytest.skip("backend.demo (the training helper's asset builder) is not there yet")
    path = tmp_path_factory.mktemp("demo") / "demo.toml"
    assert P.init_file(path, "demo", demo_size="tiny") == 0
    return path


@pytest.mark.parametrize("name", sorted(P.PRESETS))
def test_render_comments_every_key_and_writes_only_set_keys(tmp_path, name):
    text = P.render_preset(name, tmp_path / "x.toml")
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^[a-z_0-9]+ = ", line)]
    assert keys, text
    for i in keys:
        assert lines[i - 1].startswith("# "), f"no comment above {lines[i]!r}"
    written = {lines[i].split(" = ")[0] for i in keys}
    expected = {k for items in P.PRESETS[name].settings.values() for k in items}
    assert written == expected
    assert "output_dir" not in written and "token" not in text.replace("tokenizer", "")


def test_demo_file_loads(demo_toml):
    cfg = load_config(demo_toml)
    assets = demo_toml.parent / P.DEMO_DIR_NAME
    assert cfg.model["model_name_or_path"] == str(assets / "model")
    assert Path(cfg.data["train_file"]).is_file() and Path(cfg.data["validation_file"]).is_file()
    assert cfg.training["max_steps"] == P.DEMO_MAX_STEPS
    assert cfg.data["block_size"] == P.DEMO_BLOCK_SIZE
    assert "output_dir" not in cfg.training
    text = demo_toml.read_text(encoding="utf-8")
    assert 'model_name_or_path = "./clmtune-demo/model"' in text


def test_demo_settings_match_the_builders_measured_ones(tmp_path):
    """backend.demo (the bench, the tests) trains exactly what `init --preset demo` writes."""
    from clmtune.backend.demo import DemoAssets

    assets = DemoAssets(tmp_path / "m", tmp_path / "t.txt", tmp_path / "v.txt")
    sections = P.preset_sections("demo", assets)
    ours = P.preset_config("demo", tmp_path / "demo.toml", assets).resolved()
    for section in ("model", "data", "training"):
        assert sections[section] == ours.section(section), section
    assert sections["model"]["model_name_or_path"] == str(tmp_path / "m")
    assert sections["training"]["max_steps"] == P.DEMO_MAX_STEPS
    assert sections["data"]["block_size"] == P.DEMO_BLOCK_SIZE
    with pytest.raises(ValueError, match="demo assets"):
        P.preset_sections("demo")
    assert P.preset_sections("gpt2-text")["model"]["model_name_or_path"] == "gpt2"


def test_preset_config_matches_the_rendered_file(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(P.render_preset("gpt2-text", path), encoding="utf-8")
    doc = read_toml(path)
    cfg = P.preset_config("gpt2-text", path)
    assert {s: cfg.section(s) for s in doc} == doc


def test_gpt2_text_fails_only_on_the_offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "gpt2.toml"
    assert P.init_file(path, "gpt2-text") == 0
    assert not (tmp_path / P.DEMO_DIR_NAME).exists()
    (tmp_path / "train.txt").write_text("some text\n", encoding="utf-8")
    (tmp_path / "val.txt").write_text("more text\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (error,) = info.value.errors
    assert (error.section, error.key) == ("model", "model_name_or_path")
    assert str(error) == (
        f"{path}: [model] model_name_or_path: 'gpt2' is not in the local Hugging Face cache "
        "and the hub is offline (HF_HUB_OFFLINE); download it first (`hf download gpt2`) or "
        "use a local folder"
    )
    doc = read_toml(path)
    assert doc["training"]["eval_strategy"] == "steps"
    assert doc["training"]["learning_rate"] == 5e-5


def test_init_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text("# mine\n", encoding="utf-8")
    assert P.init_file(path, "gpt2-text") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "--force" in err
    assert path.read_text(encoding="utf-8") == "# mine\n"
    assert P.init_file(path, "gpt2-text", force=True) == 0
    assert "[training]" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("force", [False, True])
def test_demo_init_never_touches_a_folder_it_did_not_make(tmp_path, capsys, force):
    # Before: a clmtune-demo folder without the build marker was deleted and rebuilt.
    folder = tmp_path / P.DEMO_DIR_NAME
    folder.mkdir()
    (folder / "train.txt").write_text("my own data\n", encoding="utf-8")
    path = tmp_path / "demo.toml"
    assert P.init_file(path, "demo", force=force, demo_size="tiny") == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"clmtune: error: {folder} already exists and is not a demo folder built by "
                   "clmtune; move it away or write demo.toml in another folder (nothing was "
                   "written)")
    assert (folder / "train.txt").read_text(encoding="utf-8") == "my own data\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [P.DEMO_DIR_NAME]  # no TOML either


def test_demo_init_refuses_a_file_named_like_the_demo_folder(tmp_path, capsys):
    # Before: exit 1, "Not a directory".
    (tmp_path / P.DEMO_DIR_NAME).write_text("x", encoding="utf-8")
    assert P.init_file(tmp_path / "demo.toml", "demo", demo_size="tiny") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exists and is not a folder" in err
    assert not (tmp_path / "demo.toml").exists()


def test_demo_init_reuses_a_complete_demo_folder(demo_toml, capsys):
    # The dashboard's "new run from the demo" runs the same init beside existing assets.
    folder = demo_toml.parent / P.DEMO_DIR_NAME
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    again = demo_toml.with_name("again.toml")
    assert P.init_file(again, "demo", demo_size="tiny") == 0
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert load_config(again).data["train_file"] == load_config(demo_toml).data["train_file"]


def test_init_unknown_preset_lists_presets(tmp_path, capsys):
    assert P.init_file(tmp_path / "x.toml", "gpt3") == 2
    err = capsys.readouterr().err.strip()
    assert "'gpt3'" in err and "demo" in err and "gpt2-text" in err
    assert not (tmp_path / "x.toml").exists()


def test_init_into_a_missing_folder(tmp_path, capsys):
    assert P.init_file(tmp_path / "no" / "x.toml", "gpt2-text") == 2
    assert "does not exist" in capsys.readouterr().err


def test_presets_module_is_light():
    import subprocess
    import sys

    code = ("import sys, backend.presets\n"
            "print(sorted(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


def test_gpu_fast_checks_on_a_cpu_with_only_gpu_warnings(tmp_path, capsys):
    from clmtune.backend.settings.check import check_file

    path = tmp_path / "fast.toml"
    assert P.init_file(path, "gpu-fast", demo_size="tiny") == 0
    text = path.read_text(encoding="utf-8")
    assert "\n# torch_compile = true\n" in text  # an option, commented out
    doc = read_toml(path)
    training = doc["training"]
    assert training["bf16"] is True and training["tf32"] is True
    assert training["optim"] == "adamw_torch_fused"
    assert training["dataloader_num_workers"] == 4 and training["dataloader_pin_memory"]
    assert doc["data"]["packing"] == "group" and "torch_compile" not in training
    capsys.readouterr()
    assert check_file(path) == 0
    err = capsys.readouterr().err
    warned = {line.split("[training] ")[1].split(":")[0] for line in err.splitlines()
              if line.startswith("warning:")}
    assert warned <= {"bf16", "tf32", "dataloader_pin_memory"}, err
