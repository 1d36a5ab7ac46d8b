"""LoRA / QLoRA (issue 14): settings checks, adapter training, resume, inference, export.

One real LoRA run of the tiny demo model through the CLI (module fixture), one killed and
resumed copy of it, and ``clmtune export`` on the result. QLoRA needs CUDA + bitsandbytes and
is skipped on CPU.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest

from clmtune.backend.cli import main
from clmtune.backend.rundir.checkpoints import list_checkpoints
from clmtune.backend.rundir.state import fold
from clmtune.backend.settings import validate_peft
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.schema_cache import active_schema
from clmtune.backend.settings.toml_io import save_config
from clmtune.backend.settings.validate import validate_document
from tests.fixtures import make_tiny_config
from tests.run_helpers import (
    DRILL_HOOKS,
    cli_env,
    clmtune,
    events_of,
    losses_by_step,
    wait_for,
    worker_pgid,
)

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

STEPS = dict(max_steps=8, save_steps=4, eval_steps=4, logging_steps=1)
PEFT = {"method": "lora", "r": 4, "lora_alpha": 8}


def lora_config(assets, dest: Path, **peft) -> Path:
    cfg = make_tiny_config(assets, **STEPS)
    cfg.peft = {**PEFT, **peft}
    save_config(cfg, dest)
    return dest


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_assets) -> Path:
    """One LoRA run trained to its end (checkpoint-4, checkpoint-8), shared read-only."""
    root = tmp_path_factory.mktemp("lora")
    config = lora_config(tiny_assets, root / "lora.toml")
    result = clmtune("train", str(config), "--run-dir", "run", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


def _base_name(name: str) -> str:
    return name.removeprefix("base_model.model.").replace(".base_layer", "")


# ------------------------------------------------------------------ settings


def _messages(doc: dict, **kw) -> tuple[list[str], list[str]]:
    errors, warnings = validate_document(doc, active_schema(), **kw)
    return [str(e) for e in errors], warnings


def _doc(tiny_assets, model: dict | None = None, **peft) -> dict:
    doc = make_tiny_config(tiny_assets).document()
    doc["model"].update(model or {})
    if peft:
        doc["peft"] = peft
    return doc


def test_lora_without_peft_names_the_pip_command(tiny_assets, monkeypatch):
    monkeypatch.setattr(validate_peft, "installed", lambda name: name != "peft")
    errors, warnings = _messages(_doc(tiny_assets, method="lora"), for_launch=True)
    assert errors == ["[peft] method: 'lora' needs the peft package, which is not installed; "
                      "run: pip install 'clmtune-tui[lora]'"]
    errors, warnings = _messages(_doc(tiny_assets, method="lora"))
    assert not errors and any("pip install 'clmtune-tui[lora]'" in w for w in warnings)


@pytest.mark.parametrize(("model", "peft", "expected"), [
    ({"load_in_4bit": True, "load_in_8bit": True}, {"method": "lora"},
     "[model] load_in_8bit: load_in_4bit and load_in_8bit cannot both be true"),
    ({"load_in_4bit": True}, {}, "[model] load_in_4bit: a quantised model cannot be fine-tuned"),
    ({}, {"method": "lora", "target_modules": "all"}, "[peft] target_modules: must be \"auto\""),
    ({}, {"method": "qlora"}, "[peft] method: 'qlora' is not a valid choice; did you mean "
     "'lora'? choose one of: none, lora"),
    ({}, {"method": "lora", "r": 0}, "[peft] r: must be ≥ 1, got 0"),
])
def test_peft_setting_errors_are_one_line(tiny_assets, monkeypatch, model, peft, expected):
    monkeypatch.setattr(validate_peft, "installed", lambda name: True)
    errors, _ = _messages(_doc(tiny_assets, model, **peft))
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_quantised_loading_without_bitsandbytes_or_cuda_is_refused_before_loading(
        tiny_assets, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(validate_peft, "installed", lambda name: name != "bitsandbytes")
    errors, _ = _messages(_doc(tiny_assets, {"load_in_4bit": True}, method="lora"),
                          for_launch=True)
    assert errors == ["[model] load_in_4bit: needs the bitsandbytes package, which is not "
                      "installed; run: pip install 'clmtune-tui[lora]'"]
    if torch.cuda.is_available():
        return
    cfg = make_tiny_config(tiny_assets)
    cfg.model["load_in_4bit"] = True
    cfg.peft = dict(PEFT)
    problems = validate_peft.peft_hardware_problems(cfg)
    assert [str(p) for p in problems] == [
        "[model] load_in_4bit: load_in_4bit = true needs a CUDA GPU (bitsandbytes) and none is "
        "visible here; set load_in_4bit = false"]
    # `clmtune train` refuses it in one line, before any model is loaded.
    path = tmp_path / "q.toml"
    save_config(cfg, path)
    monkeypatch.setattr(validate_peft, "installed", lambda name: True)  # only the GPU missing
    code, _, err = cli(capsys, "train", str(path), "--run-dir", str(tmp_path / "q"))
    assert code == 2 and "load_in_4bit = true needs a CUDA GPU" in one_line(err)
    assert not (tmp_path / "q" / "events.jsonl").exists()


def test_peft_settings_without_method_lora_are_flagged_as_ignored(tiny_assets):
    errors, warnings = _messages(_doc(tiny_assets, r=16))
    assert not errors and any("[peft] r: ignored while method = \"none\"" in w for w in warnings)


def test_auto_targets_are_the_attention_and_mlp_linears(tiny_assets):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from clmtune.backend.lora import find_target_modules

    gpt2 = AutoModelForCausalLM.from_pretrained(tiny_assets.model_dir)
    assert find_target_modules(gpt2) == ["c_attn", "c_fc", "c_proj"]
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1))
    assert find_target_modules(llama) == ["down_proj", "gate_proj", "k_proj", "o_proj",
                                          "q_proj", "up_proj", "v_proj"]
    # clmtune preview's estimate of the trainable count is exact for a Llama shape.
    from clmtune.backend.estimate import shape_from_config
    from clmtune.backend.lora import estimated_lora_params, wrap_model

    settings = RunConfig(peft={"method": "lora", "r": 4}).settings
    wrapped, _ = wrap_model(llama, settings)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert estimated_lora_params(shape_from_config(llama.config), settings) == trainable
    assert estimated_lora_params(shape_from_config(llama.config),
                                 RunConfig().settings) is None


@pytest.mark.parametrize("peft", [{}, {"target_modules": ["c_attn"], "r": 2},
                                  {"modules_to_save": ["lm_head"]}])
@pytest.mark.parametrize("pad_token", ["eos", "add"])
def test_preview_counts_what_the_run_trains(tiny_assets, tmp_path, peft, pad_token):
    # preview wraps a weightless (meta) copy with the worker's own wrap_model: the trainable
    # and total counts are the run's (base + adapter), e.g. 24,576 of 359,040 for the demo.
    from clmtune.backend.model import load_model_and_tokenizer
    from clmtune.backend.settings.toml_io import load_config
    from clmtune.backend.tools.preview import preview
    from clmtune.backend.tools.preview_text import report_lines

    cfg = make_tiny_config(tiny_assets, **STEPS)
    cfg.peft = {**PEFT, **peft}
    cfg.model["pad_token"] = pad_token
    path = tmp_path / "lora.toml"
    save_config(cfg, path)
    _, _, info = load_model_and_tokenizer(load_config(path).resolved())  # what the worker logs
    report = preview(path, samples=0)
    model, memory = report["estimate"]["model"], report["estimate"]["memory"]
    assert memory["trainable_params"] == info.trainable_params
    assert memory["params"] == model["params"] == info.num_params
    assert model["base_params"] + model["adapter_params"] == info.num_params
    assert model["lora_counted"] is True
    line = next(x for x in report_lines(report) if x.startswith("model "))
    share = 100.0 * info.trainable_params / info.num_params
    assert f"trainable {info.trainable_params:,} of {info.num_params:,} parameters " \
           f"({share:.2f}%): base {model['base_params']:,} + LoRA adapter" in line


# ------------------------------------------------------------------ the trained run


@pytest.mark.slow
def test_lora_run_saves_adapters_only_and_reports_trainable_share(lora_run):
    from safetensors import safe_open

    assert not (lora_run / "model.safetensors").exists()
    checkpoints = list_checkpoints(lora_run)
    assert [(c.step, c.state) for c in checkpoints] == [(4, "complete"), (8, "complete")]
    for folder in (lora_run, *(c.path for c in checkpoints)):
        assert (folder / "adapter_model.safetensors").is_file(), folder
        assert not (folder / "model.safetensors").exists()
    with safe_open(lora_run / "adapter_model.safetensors", "pt") as fh:
        keys = list(fh.keys())
        saved = sum(fh.get_tensor(k).numel() for k in keys)
    assert keys and all("lora_" in k for k in keys)
    state = fold(events_of(lora_run))
    started = state.started
    assert started["peft"]["target_modules"] == ["c_attn", "c_fc", "c_proj"]
    assert started["trainable_params"] == saved  # every trainable weight is in the adapter
    share = 100.0 * saved / started["num_params"]
    assert f"({share:.2f}%)" in state.trainable and "LoRA r=4" in state.trainable
    assert state.trainable_badge == f"LoRA r=4 · {share:.2f}% trainable"
    logs = [e["message"] for e in events_of(lora_run) if e.get("type") == "log"]
    assert any(m.startswith("LoRA r=4 alpha=8 on c_attn, c_fc, c_proj: trainable") for m in logs)
    # The loading line counts the base model, then the adapter (not their sum as the model's).
    loaded = [e["detail"] for e in events_of(lora_run)
              if e.get("type") == "phase" and e.get("phase") == "loading_model" and e["detail"]]
    base = started["num_params"] - saved
    assert loaded[-1].endswith(f": {base:,} parameters + LoRA adapter {saved:,}")


@pytest.mark.slow
def test_only_adapter_weights_change_and_inference_loads_base_plus_adapter(lora_run, tiny_assets):
    from transformers import AutoModelForCausalLM

    from clmtune.backend.lora import load_peft_for_inference

    base = AutoModelForCausalLM.from_pretrained(tiny_assets.model_dir, dtype=torch.float32)
    model = load_peft_for_inference(lora_run, dtype=torch.float32, device="cpu")
    assert not model.training
    base_weights = dict(base.named_parameters())
    lora_b = 0
    for name, param in model.named_parameters():
        if "lora_" in name:
            lora_b += int("lora_B" in name and bool(param.abs().sum() > 0))
            continue
        assert torch.equal(param, base_weights[_base_name(name)]), name
    assert lora_b > 0  # lora_B starts at zero: trained adapters moved away from it
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        tuned, plain = model(input_ids=ids).logits, base(input_ids=ids).logits
        out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False)
    assert not torch.allclose(tuned, plain)
    assert out.shape == (1, 8)


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_curve(lora_run, tiny_assets, tmp_path):
    config = lora_config(tiny_assets, tmp_path / "lora.toml")
    run_dir = tmp_path / "run"
    env = cli_env(CLMTUNE_TEST_CALLBACKS=DRILL_HOOKS, DRILL_PAUSE_AT="5")
    first = clmtune("train", str(config), "--run-dir", "run", "--detach", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    wait_for(lambda: (run_dir / "drill.paused").exists(), what="the worker to reach step 5")
    os.killpg(worker_pgid(run_dir), signal.SIGKILL)
    assert [(c.step, c.state) for c in list_checkpoints(run_dir)] == [(4, "complete")]
    second = clmtune("train", "--run-dir", str(run_dir), "--resume", "last", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    resumed = losses_by_step(events_of(run_dir))
    reference = losses_by_step(events_of(lora_run))
    assert sorted(resumed) == [5, 6, 7, 8]
    for step, loss in resumed.items():
        assert loss == pytest.approx(reference[step], abs=1e-5), step


# ------------------------------------------------------------------ export


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_export_merge_loads_with_plain_transformers_and_matches_the_peft_logits(
        lora_run, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from clmtune.backend.lora import load_peft_for_inference

    out = tmp_path / "merged"
    code, stdout, err = cli(capsys, "export", str(lora_run), str(out), "--merge",
                            "--dtype", "float32")
    assert code == 0, err
    assert "export: merging the adapter into the base weights" in err
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert not names & {"adapter_config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
    card = (out / "README.md").read_text()
    assert "base model:" in card and "final eval loss: 5." in card and "perplexity:" in card
    assert "clmtune 0." in card and "`[peft] r` = `4`" in card
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    peft_model = load_peft_for_inference(lora_run, dtype="float32", device="cpu")
    ids = torch.arange(1, 17).reshape(2, 8)
    with torch.no_grad():
        diff = (merged(input_ids=ids).logits - peft_model(input_ids=ids).logits).abs().max()
    assert float(diff) <= 1e-4


@pytest.mark.slow
def test_export_adapter_of_a_checkpoint_copies_no_training_state(lora_run, tmp_path, capsys):
    out = tmp_path / "adapter"
    out.mkdir()  # an empty folder is fine
    code, stdout, err = cli(capsys, "export", str(lora_run), str(out), "--checkpoint", "4")
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
            "README.md"} <= names
    assert not names & {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                        "training_args.bin"}


@pytest.mark.slow
def test_export_refuses_a_non_empty_out_and_a_missing_checkpoint(lora_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = cli(capsys, "export", str(lora_run), str(out), "--merge")
    assert code == 2 and "exists and is not empty" in one_line(err)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    code, _, err = cli(capsys, "export", str(lora_run), str(tmp_path / "new"), "--checkpoint",
                       "5")
    assert code == 2 and "no usable checkpoint-5 (checkpoints: 4, 8)" in one_line(err)
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if ".export-" in p.name]  # no half folders


# ------------------------------------------------------------------ QLoRA (GPU only)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="QLoRA (load_in_4bit) needs a CUDA GPU; this machine has none")
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                    reason="QLoRA needs bitsandbytes: pip install 'clmtune-tui[lora]'")
def test_qlora_trains_a_4bit_base_on_the_gpu(tiny_assets, tmp_path):
    from clmtune.backend.lora import load_peft_for_inference
    from clmtune.backend.train import run_training

    cfg = make_tiny_config(tiny_assets, max_steps=4, save_steps=4, eval_steps=4)
    cfg.model["load_in_4bit"] = True
    cfg.peft = dict(PEFT)
    events: list[dict] = []
    outcome = run_training(cfg, tmp_path / "run", emit=events.append)
    assert outcome.status == "completed"
    started = next(e for e in events if e["type"] == "run_started")
    assert started["peft"]["quantization"] == "4bit"
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
    model = load_peft_for_inference(tmp_path / "run", dtype="float32", device="cuda")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3]], device="cuda")).logits
    assert torch.isfinite(logits).all()


# ------------------------------------------------------------------ dashboard export


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.slow
@pytest.mark.anyio
async def test_runs_list_x_exports_a_finished_run_with_progress(lora_run, tmp_path, monkeypatch):
    from textual.widgets import Log

    from clmtune.tui.app import ClmtuneApp
    from clmtune.tui.screens.export import ExportScreen
    from tests.tui.conftest import frozen_clock, wait_until

    monkeypatch.setenv("CLMTUNE_CONFIG_DIR", str(tmp_path / "config"))
    out = tmp_path / "exported"
    app = ClmtuneApp(lora_run.parent, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.selected is not None, timeout=30)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen))
        dialog = app.screen
        assert dialog.query_one("#export-merge").value is True  # a LoRA run: merge offered
        dialog.query_one("#export-out").value = str(out)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: dialog.process is None and dialog.done is not None
                         or "failed" in str(dialog.query_one("#export-status").render()),
                         timeout=120)
        assert dialog.done == out, str(dialog.query_one("#export-status").render())
        lines = dialog.query_one("#export-log", Log).lines
        assert any("merging the adapter" in line for line in lines), lines
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ExportScreen))
        # The live view: x exports the checkpoint selected in its Checkpoints tab.
        app.open_live(lora_run)
        await wait_until(pilot, lambda: len(app.screen.query("CheckpointTable")) == 1
                         and app.screen.query_one("CheckpointTable").selected is not None,
                         timeout=30)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen))
        assert app.screen.checkpoint == 8  # newest first
        assert "checkpoint-8" in str(app.screen.query_one("#export-title").render())
        await pilot.press("escape")
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
