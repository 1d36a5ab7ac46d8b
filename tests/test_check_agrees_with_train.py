"""`clmtune check` refuses what `clmtune train` refuses on this machine: integrations and extras
whose package is missing, QLoRA without a CUDA GPU. Precision flags on a CPU only warn (the
gpu-fast preset checks on a laptop; see test_config)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clmtune.backend.settings.check import check_file
from clmtune.backend.settings.problems import ConfigError
from clmtune.backend.settings.schema import schema
from clmtune.backend.settings.toml_io import load_config, read_toml
from clmtune.backend.settings.validate import validate_document

BASE = """
[model]
model_name_or_path = "./model"

[data]
train_file = "train.txt"

[training]
max_steps = 10
"""


@pytest.fixture(scope="module", autouse=True)
def _schema():
    schema()  # in-process, so load_config does not spawn the schema subprocess


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "train.txt").write_text("hello world\nsecond line\n", encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    return tmp_path


def _file(ws: Path, training: str = "", extra: str = "") -> Path:
    path = ws / "run.toml"
    path.write_text(BASE + training + "\n" + extra, encoding="utf-8")
    return path


def _block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` not importable here (find_spec answers None), as if not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _check(path: Path, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = check_file(path)
    return code, capsys.readouterr().err.strip().splitlines()


def _launch_errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, for_launch=True)
    return [str(e) for e in info.value.errors]


def test_report_to_an_integration_that_is_not_installed(ws, monkeypatch, capsys):
    _block(monkeypatch, "wandb")
    path = _file(ws, 'report_to = "wandb"')
    code, err = _check(path, capsys)
    line = (f'{path}: [training] report_to: \'wandb\' needs the wandb package (pip install wandb),'
            ' or set report_to = "none"')
    assert (code, err) == (2, [line])
    assert _launch_errors(path) == [line]  # what train says, before anything loads
    # While editing (the TUI), the file may be meant for another machine: a warning.
    _, warnings = validate_document(read_toml(path), schema(), base_dir=ws, source=path)
    assert line.removeprefix(f"{path}: ") in [w.removeprefix(f"{path}: ") for w in warnings]


def test_report_to_a_list_names_the_missing_one(ws, monkeypatch, capsys):
    _block(monkeypatch, "tensorboard", "tensorboardX", "mlflow")
    code, err = _check(_file(ws, 'report_to = ["tensorboard", "mlflow"]'), capsys)
    assert code == 2 and len(err) == 2
    assert err[0].endswith("'tensorboard' needs the tensorboard package (pip install "
                           "tensorboard), or remove 'tensorboard' from report_to")
    assert "'mlflow' needs the mlflow package" in err[1]


@pytest.mark.parametrize("value", ['"none"', '"all"', '["none"]', "[]"])
def test_report_to_none_or_all_needs_nothing(ws, monkeypatch, capsys, value):
    _block(monkeypatch, "wandb", "tensorboard", "tensorboardX", "mlflow")
    code, err = _check(_file(ws, f"report_to = {value}"), capsys)
    assert (code, err) == (0, [])


def test_report_to_an_unknown_name_warns_with_the_closest(ws, monkeypatch, capsys):
    code, err = _check(_file(ws, 'report_to = "wandbb"'), capsys)
    assert code == 0 and len(err) == 1
    assert err[0].startswith("warning: ") and "did you mean 'wandb'?" in err[0]


def test_lora_without_peft_is_an_error_for_check_as_for_train(ws, monkeypatch, capsys):
    _block(monkeypatch, "peft")
    path = _file(ws, extra='[peft]\nmethod = "lora"\n')
    code, err = _check(path, capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"{path}: [peft] method: 'lora' needs the peft package")
    assert "pip install 'clmtune-tui[lora]'" in err[0]
    assert _launch_errors(path) == err


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_qlora_without_cuda_is_an_error_for_check_as_for_train(ws, monkeypatch, capsys):
    if _cuda():
        pytest.skip("this machine has CUDA: 4-bit loading may work here")
    # A stand-in bitsandbytes, so that the missing GPU is the only problem.
    fake = ws / "site"
    (fake / "bitsandbytes").mkdir(parents=True)
    (fake / "bitsandbytes" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(fake))
    path = ws / "q.toml"
    path.write_text(BASE.replace("[model]\n", "[model]\nload_in_4bit = true\n")
                    + '[peft]\nmethod = "lora"\n', encoding="utf-8")
    code, err = _check(path, capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"{path}: [model] load_in_4bit: load_in_4bit = true needs a CUDA GPU")
    assert _launch_errors(path) == err


@pytest.mark.parametrize("name", ["é" * 200, "x" * 256])
def test_an_output_dir_the_os_cannot_create_is_an_error_before_training(ws, capsys, name):
    # 200 accented letters are 400 bytes: over the 255 a folder name may have.
    path = _file(ws, f'output_dir = "runs/{name}"')
    code, lines = _check(path, capsys)
    assert code == 2 and len(lines) == 1
    assert "[training] output_dir" in lines[0] and "at most 255 bytes" in lines[0]
    assert any("output_dir" in e for e in _launch_errors(path))
    assert not (ws / "runs").exists()


def test_an_output_dir_of_255_bytes_is_fine(ws, capsys):
    code, _ = _check(_file(ws, f'output_dir = "runs/{"x" * 255}"'), capsys)
    assert code == 0


def test_the_editor_warns_about_precision_as_check_does_without_torch(ws, monkeypatch, capsys):
    from clmtune.backend.settings.hardware import precision_notes

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, whatever the machine
    code, lines = _check(_file(ws, "bf16 = true\ntf32 = true"), capsys)
    assert code == 0 and any("bf16 = true needs a CUDA GPU" in line for line in lines)
    notes = precision_notes({"bf16": True, "tf32": True, "fp16": False})
    assert [n.split(":")[0] for n in notes] == ["[training] bf16", "[training] tf32"]
    # CPU bfloat16 is fine with use_cpu, as for check and train.
    assert precision_notes({"bf16": True, "use_cpu": True}) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr("clmtune.backend.settings.hardware.Path.glob",
                        lambda self, pattern: iter([Path("/dev/nvidia0")]))
    assert precision_notes({"bf16": True}) == []  # a GPU is there: nothing to say
    # WSL2 (/dev/dxg) and ROCm (/dev/kfd) have a GPU torch sees without /dev/nvidiaN.
    monkeypatch.setattr("clmtune.backend.settings.hardware.Path.glob",
                        lambda self, pattern: iter([]))
    monkeypatch.setattr("clmtune.backend.settings.hardware.Path.exists",
                        lambda self: str(self) == "/dev/dxg")
    assert precision_notes({"bf16": True}) == []


def test_an_output_dir_with_a_nul_says_to_remove_it(ws, capsys):
    code, lines = _check(_file(ws, 'output_dir = "runs/a\\u0000b"'), capsys)
    assert code == 2 and lines[0].endswith("output_dir: contains a NUL character; remove it")
