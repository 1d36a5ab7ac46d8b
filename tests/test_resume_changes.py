"""A resume with new optimizer settings uses them; a resume without changes stays exact.

Trainer builds the optimizer and scheduler from the settings, then loads the checkpoint's
``optimizer.pt`` / ``scheduler.pt`` over them, which brings back the old learning rate (the
param groups' lr and initial_lr, the scheduler's base_lrs), weight decay, betas and epsilon.
``backend/train.py`` puts the settings' values back. Checked here with torch alone (fast),
with the real Trainer on the tiny model (one slow test), and in the launch warnings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback, get_scheduler

from clmtune.backend.callback import EventCallback
from clmtune.backend.launch import plan_warnings
from clmtune.backend.resume_plan import plan_run
from clmtune.backend.rundir.layout import CONFIG_TOML
from clmtune.backend.settings.toml_io import save_config
from clmtune.backend.train import (
    optimizer_settings,
    restore_optimizer_settings,
    run_training,
)
from tests.fixtures import make_tiny_config
from tests.test_runs import make_checkpoint, make_run

# ------------------------------------------------------------------ torch alone


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))


def _groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    # As Trainer.create_optimizer builds them: decayed weights, then biases and norms at 0.
    decay = [model[0].weight]
    rest = [model[0].bias, model[1].weight, model[1].bias]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _build(model, kind="linear", lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
    optimizer = torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
    scheduler = get_scheduler(kind, optimizer, num_warmup_steps=2, num_training_steps=10)
    return optimizer, scheduler


def _saved_after(steps: int, **settings) -> tuple[dict, dict]:
    """optimizer.pt and scheduler.pt contents after ``steps`` steps with ``settings``."""
    model = _model()
    optimizer, scheduler = _build(model, **settings)
    for _ in range(steps):
        model(torch.ones(2, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return optimizer.state_dict(), scheduler.state_dict()


def _resume(saved: tuple[dict, dict], **settings):
    """What a resume does: build from the settings, load the checkpoint, restore."""
    optimizer, scheduler = _build(_model(), **settings)
    fresh = optimizer_settings(optimizer)
    optimizer.load_state_dict(saved[0])
    scheduler.load_state_dict(saved[1])
    return optimizer, scheduler, restore_optimizer_settings(optimizer, scheduler, fresh)


def _factor(step: int, kind: str = "linear") -> float:
    return _build(_model(), kind=kind, lr=1.0)[1].lr_lambdas[0](step)


def test_new_settings_win_over_the_checkpoints_optimizer():
    saved = _saved_after(3, lr=1e-3, weight_decay=0.0)
    optimizer, scheduler, applied = _resume(
        saved, lr=5e-4, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-6
    )
    groups = optimizer.param_groups
    assert applied == {"learning_rate": (1e-3, 5e-4), "weight_decay": (0.0, 0.1),
                       "adam_beta2": (0.999, 0.99), "adam_epsilon": (1e-8, 1e-6)}  # fmt: skip
    # The base rate everywhere, and the rate of the next step: new base × the factor at step 3.
    assert [g["initial_lr"] for g in groups] == [5e-4, 5e-4] == scheduler.base_lrs
    assert [g["lr"] for g in groups] == [5e-4 * _factor(3)] * 2 == scheduler.get_last_lr()
    # Weight decay on the decayed group only, though both held 0.0 in the checkpoint.
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(tuple(g["betas"]) == (0.9, 0.99) and g["eps"] == 1e-6 for g in groups)
    # The moment estimates and the step count stay as saved.
    for index, state in saved[0]["state"].items():
        now = optimizer.state_dict()["state"][index]
        assert all(torch.equal(now[key], value) for key, value in state.items())
    assert scheduler.last_epoch == 3
    # And the schedule goes on from there with the new base.
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [5e-4 * _factor(4)] * 2


def test_the_same_settings_leave_the_loaded_state_untouched():
    saved = _saved_after(3, kind="cosine")
    optimizer, scheduler, applied = _resume(saved, kind="cosine")
    assert applied == {}
    assert optimizer.state_dict()["param_groups"] == saved[0]["param_groups"]
    assert scheduler.get_last_lr() == saved[1]["_last_lr"]


def test_only_keys_the_optimizer_has_and_a_scheduler_without_a_base_rate():
    model = _model()
    sgd = torch.optim.SGD(_groups(model, 0.0), lr=1e-3)  # no betas, no eps
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(sgd)  # no initial_lr to replace
    saved = sgd.state_dict()
    sgd = torch.optim.SGD(_groups(model, 0.01), lr=5e-4)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(sgd)
    fresh = optimizer_settings(sgd)
    sgd.load_state_dict(saved)
    applied = restore_optimizer_settings(sgd, plateau, fresh)
    assert applied == {"weight_decay": (0.0, 0.01)}
    assert [g["lr"] for g in sgd.param_groups] == [1e-3, 1e-3]  # the launch says so


# ------------------------------------------------------------------ the launch's warning


def test_the_launch_warning_says_what_the_resume_does(tmp_path, tiny_assets):
    run = make_run(tmp_path / "run", status="stopped")
    save_config(make_tiny_config(tiny_assets, learning_rate=2e-3), run / CONFIG_TOML)
    make_checkpoint(run, 4)
    cfg = make_tiny_config(tiny_assets, learning_rate=5e-4, weight_decay=0.1, adam_beta2=0.99)
    lines = plan_warnings(plan_run(run, cfg, "last"), cfg)
    assert lines[:3] == [
        "[training] learning_rate was 0.002 at checkpoint-4, now 0.0005: the rest of the"
        " schedule uses 0.0005",
        "[training] weight_decay was 0.0 at checkpoint-4, now 0.1: applied from the next step"
        " (biases and norms keep 0)",
        "[training] adam_beta2 was 0.999 at checkpoint-4, now 0.99: applied from the next step"
        " (by an optimizer that has it); the moment estimates stay as saved",
    ]
    assert not any("the schedule changes" in line or "the optimizer changes" in line
                   for line in lines)  # fmt: skip
    plateau = make_tiny_config(tiny_assets, learning_rate=5e-4,
                               lr_scheduler_type="reduce_lr_on_plateau")  # fmt: skip
    lines = plan_warnings(plan_run(run, plateau, "last"), plateau)
    assert lines[0].endswith("now 0.0005: reduce_lr_on_plateau continues from the checkpoint's"
                             " current rate: not applied")  # fmt: skip


# ------------------------------------------------------------------ the real Trainer

STEPS = dict(max_steps=8, save_steps=4, logging_steps=1, warmup_steps=2, eval_strategy="no",
             learning_rate=1e-3, weight_decay=0.0)  # fmt: skip


class _Optimizer(TrainerCallback):
    """The optimizer as the first resumed step will use it (after Trainer loaded the checkpoint)."""

    def on_train_begin(self, args, state, control, optimizer=None, model=None, **kwargs):
        names = {id(p): n for n, p in model.named_parameters()}
        self.groups = [
            {**{k: v for k, v in g.items() if k != "params"},
             "names": [names[id(p)] for p in g["params"]]}
            for g in optimizer.param_groups
        ]  # fmt: skip
        self.state = {i: {k: v.clone() for k, v in s.items()}  # training changes them in place
                      for i, s in optimizer.state_dict()["state"].items()}  # fmt: skip


def _train(cfg, run_dir: Path, resume: str | None = None):
    events: list[dict] = []
    spy = _Optimizer()
    run_training(cfg, run_dir, emit=events.append, resume_from=resume,
                 callbacks=[EventCallback(events.append), spy])  # fmt: skip
    logs = {e["step"]: e for e in events if e["type"] == "train_log"}
    code = "resume_settings_applied"
    applied = [e for e in events if e["type"] == "warning" and e["code"] == code]
    return logs, applied, spy


def _copy_checkpoint(src: Path, dest: Path) -> str:
    shutil.copytree(src / "checkpoint-4", dest / "checkpoint-4")
    return str(dest / "checkpoint-4")


@pytest.mark.slow
def test_a_resume_trains_with_the_new_learning_rate_and_weight_decay(tiny_assets, tmp_path):
    full, _, _ = _train(make_tiny_config(tiny_assets, **STEPS), tmp_path / "full")
    assert sorted(full) == list(range(1, 9))
    # The schedule's factor per step, from transformers alone: Trainer logs the rate the
    # optimizer step of global step k used, after k - 1 scheduler steps.
    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_scheduler("linear", probe, num_warmup_steps=2, num_training_steps=8)
    factor = {}
    for step in range(1, 9):
        factor[step] = schedule.get_last_lr()[0]
        probe.step()
        schedule.step()
    assert [full[s]["learning_rate"] for s in full] == [1e-3 * factor[s] for s in full]

    # 1. Resumed at step 4 with a new learning rate, weight decay and beta2.
    new = make_tiny_config(tiny_assets, **{**STEPS, "learning_rate": 4e-4, "weight_decay": 0.1,
                                           "adam_beta2": 0.99})  # fmt: skip
    checkpoint = _copy_checkpoint(tmp_path / "full", tmp_path / "changed")
    logs, applied, spy = _train(new, tmp_path / "changed", checkpoint)
    assert sorted(logs) == [5, 6, 7, 8]
    for step in (5, 6, 7, 8):
        assert logs[step]["learning_rate"] == pytest.approx(4e-4 * factor[step], rel=1e-12), step
    assert logs[8]["loss"] != full[8]["loss"]  # it did train differently
    [event] = applied
    assert event["step"] == 4 and event["applied"] == {
        "learning_rate": [1e-3, 4e-4], "weight_decay": [0.0, 0.1], "adam_beta2": [0.999, 0.99]}
    assert "learning_rate 0.001 → 0.0004 (the rest of the schedule uses 0.0004" in event["message"]
    decayed, plain = spy.groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert "transformer.h.0.attn.c_attn.weight" in decayed["names"]
    assert all("bias" in n or "ln_" in n for n in plain["names"])  # biases and LayerNorms
    assert all(tuple(g["betas"]) == (0.9, 0.99) for g in spy.groups)
    saved = torch.load(Path(checkpoint) / "optimizer.pt", weights_only=True)["state"]
    assert all(torch.equal(spy.state[i]["exp_avg_sq"], saved[i]["exp_avg_sq"]) for i in saved)

    # 2. Resumed without a change: the uninterrupted run's rates and losses, nothing applied.
    same = make_tiny_config(tiny_assets, **STEPS)
    checkpoint = _copy_checkpoint(tmp_path / "full", tmp_path / "same")
    logs, applied, _ = _train(same, tmp_path / "same", checkpoint)
    assert applied == []
    assert [logs[s]["learning_rate"] for s in (5, 6, 7, 8)] == [
        full[s]["learning_rate"] for s in (5, 6, 7, 8)]
    assert [logs[s]["loss"] for s in (5, 6, 7, 8)] == pytest.approx(
        [full[s]["loss"] for s in (5, 6, 7, 8)], rel=1e-6)
