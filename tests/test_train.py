"""A real Trainer run on the tiny offline model: outputs, events, resume, stop; and metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from clmtune.backend.metrics import (
    make_compute_metrics,
    perplexity,
    preprocess_logits_for_metrics,
    shifted_pairs,
)
from clmtune.backend.model import TrainingSetupError
from clmtune.backend.train import TrainOutcome, run_training
from tests.fixtures import make_tiny_config

pytestmark = pytest.mark.slow

# ------------------------------------------------------------------ metrics (fast)


def test_accuracy_compares_each_prediction_with_the_next_label():
    preds = np.array([[2, 3, 9, 7], [5, 1, 1, 1]])
    labels = np.array([[1, 2, 3, 4], [0, 5, -100, -100]])
    # row 0: 2→2 ok, 3→3 ok, 9→4 wrong; row 1: 5→5 ok, then ignored labels
    predictions, references = shifted_pairs(preds, labels)
    assert predictions.tolist() == [2, 3, 9, 5]
    assert references.tolist() == [2, 3, 4, 5]
    assert make_compute_metrics()((preds, labels)) == {"accuracy": 0.75}


def test_preprocess_logits_keeps_only_argmax_ids():
    logits = torch.tensor([[[0.1, 0.9, 0.0], [2.0, 1.0, 0.0]]])
    assert preprocess_logits_for_metrics(logits, None).tolist() == [[1, 0]]
    assert preprocess_logits_for_metrics((logits, "past"), None).tolist() == [[1, 0]]


def test_perplexity_is_exp_and_inf_on_overflow():
    assert perplexity(0.0) == 1.0
    assert perplexity(2.0) == pytest.approx(math.e**2)
    assert perplexity(1e6) == math.inf


# ------------------------------------------------------------------ a full run


@pytest.fixture(scope="module")
def finished_run(tiny_assets, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "run"
    events: list[dict] = []
    outcome = run_training(make_tiny_config(tiny_assets), run_dir, emit=events.append)
    return run_dir, events, outcome


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_run_completes_and_writes_every_output(finished_run, tiny_assets):
    run_dir, _, outcome = finished_run
    assert outcome.status == "completed" and outcome.global_step == 8
    state = _json(run_dir / "trainer_state.json")
    assert state["global_step"] == 8
    assert [h["step"] for h in state["log_history"] if "loss" in h][-1] == 8
    train = _json(run_dir / "train_results.json")
    assert train["train_samples"] > 0 and "train_loss" in train
    evaluation = _json(run_dir / "eval_results.json")
    assert evaluation["eval_samples"] == 16
    assert evaluation["perplexity"] == pytest.approx(math.exp(evaluation["eval_loss"]))
    assert 0.0 <= evaluation["eval_accuracy"] <= 1.0
    combined = _json(run_dir / "all_results.json")
    assert {"perplexity", "train_samples", "eval_samples", "eval_loss"} <= set(combined)
    card = (run_dir / "README.md").read_text(encoding="utf-8")
    assert f"base_model: {tiny_assets.model_dir}" in card
    assert "generated_from_trainer" in card
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    assert outcome.eval_metrics["perplexity"] == evaluation["perplexity"]


def test_final_model_and_tokenizer_reload(finished_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, _, _ = finished_run
    model = AutoModelForCausalLM.from_pretrained(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    assert tokenizer.pad_token == tokenizer.eos_token
    batch = tokenizer(["import os\n"], return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)


def test_events_describe_the_run(finished_run):
    _, events, outcome = finished_run
    started = [e for e in events if e["type"] == "run_started"]
    assert len(started) == 1
    start = started[0]
    assert start["max_steps"] == 8 and start["block_size"] == 32
    assert (
        start["eval_samples"] == 16
        and start["train_samples"] == outcome.train_metrics["train_samples"]
    )
    assert start["num_params"] > 0 and start["world_size"] == 1 and start["devices"]
    assert start["resumed_from"] is None and start["resume_step"] is None
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    order = ["loading_model", "loading_data", "tokenizing", "grouping", "training", "evaluating"]
    assert [p for p in dict.fromkeys(phases) if p in order] == order
    finals = {e["split"]: e["metrics"] for e in events if e["type"] == "final_metrics"}
    assert finals["eval"]["perplexity"] == outcome.eval_metrics["perplexity"]
    assert finals["train"]["train_samples"] == outcome.train_metrics["train_samples"]


def test_resume_from_a_checkpoint_path(finished_run, tmp_path, tiny_assets):
    import shutil

    run_dir, _, _ = finished_run
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(run_dir / "checkpoint-4", resumed_dir / "checkpoint-4")
    events: list[dict] = []
    outcome = run_training(
        make_tiny_config(tiny_assets),
        resumed_dir,
        emit=events.append,
        resume_from=str(resumed_dir / "checkpoint-4"),
    )
    assert outcome.status == "completed" and outcome.global_step == 8
    start = next(e for e in events if e["type"] == "run_started")
    assert start["resume_step"] == 4
    assert start["resumed_from"] == str(resumed_dir / "checkpoint-4")
    state = _json(resumed_dir / "trainer_state.json")
    logged = [h["step"] for h in state["log_history"] if "loss" in h]
    assert logged[-1] == 8 and 6 in logged
    original = _json(run_dir / "trainer_state.json")
    # same data order and RNG state: the resumed run reaches the same loss
    assert state["log_history"][-1]["train_loss"] != 0
    last = [h["loss"] for h in state["log_history"] if h.get("step") == 8 and "loss" in h]
    first = [h["loss"] for h in original["log_history"] if h.get("step") == 8 and "loss" in h]
    assert last == pytest.approx(first, rel=1e-4)


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


def test_a_callback_stop_ends_the_run_as_stopped(tiny_assets, tmp_path):
    events: list[dict] = []
    outcome = run_training(
        make_tiny_config(tiny_assets), tmp_path, emit=events.append, callbacks=[_StopAt(3)]
    )
    assert outcome == TrainOutcome("stopped", outcome.train_metrics, {}, 3)
    assert (tmp_path / "checkpoint-3").is_dir()
    assert not (tmp_path / "eval_results.json").exists()
    assert "evaluating" not in [e.get("phase") for e in events]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_fp16_on_a_cpu_machine_is_a_one_line_error(tiny_assets, tmp_path):
    with pytest.raises(TrainingSetupError) as info:
        run_training(make_tiny_config(tiny_assets, fp16=True), tmp_path, emit=lambda e: None)
    assert "[training] fp16" in str(info.value) and "\n" not in str(info.value)


def test_streaming_without_max_steps_is_a_one_line_error(tiny_assets, tmp_path):
    cfg = make_tiny_config(tiny_assets, max_steps=-1)
    cfg.data["streaming"] = True
    with pytest.raises(TrainingSetupError, match=r"\[training\] max_steps .*streaming"):
        run_training(cfg, tmp_path, emit=lambda e: None)
