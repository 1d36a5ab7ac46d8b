"""A plain Hugging Face output folder as events: its ``trainer_state.json`` and
``*_results.json`` turned into the events a clmtune worker would have written, so its
figures come from the one reducer (:mod:`clmtune.backend.rundir.state`) too.
"""

from __future__ import annotations

from typing import Any

from clmtune.backend.events import Event
from clmtune.backend.rundir.state import RunState, fold


def events_from_trainer_state(trainer_state: dict[str, Any], results: dict[str, dict],
                              time: float | None = None) -> list[Event]:
    """The events a plain Hugging Face run would have written, from its saved files.

    ``trainer_state``: ``trainer_state.json``; ``results``: ``{"train": ..., "eval":
    ..., "all": ...}`` from the ``*_results.json`` files; ``time``: when it ran (the
    folder's time stamps), stamped on every event.
    """
    events: list[Event] = []

    def event(type_: str, **fields: Any) -> None:
        events.append({"v": 1, "type": type_, "time": time, **fields})

    max_steps = trainer_state.get("max_steps")
    event("run_started", max_steps=max_steps if isinstance(max_steps, int) and max_steps > 0
          else None, resume_step=None, resumed_from=None,
          train_batch_size=trainer_state.get("train_batch_size"))
    history = trainer_state.get("log_history")
    for entry in history if isinstance(history, list) else []:
        if not isinstance(entry, dict):
            continue
        step = entry.get("step")
        if "loss" in entry:
            event("train_log", step=step, epoch=entry.get("epoch"), loss=entry.get("loss"),
                  learning_rate=entry.get("learning_rate"), grad_norm=entry.get("grad_norm"))
        elif "eval_loss" in entry:
            metrics = {k: v for k, v in entry.items() if k.startswith("eval_")}
            event("eval", step=step, epoch=entry.get("epoch"), metrics=metrics)
    step = trainer_state.get("global_step")
    if isinstance(step, int) and step > 0:
        event("checkpoint", step=step, path="", complete=False)
    train = results.get("train") or _split(results.get("all"), "train_")
    evals = results.get("eval") or _split(results.get("all"), "eval_")
    if train:
        event("final_metrics", split="train", metrics=train)
    if evals:
        event("final_metrics", split="eval", metrics=evals)
    done = bool(train) or (isinstance(max_steps, int) and isinstance(step, int)
                           and 0 < max_steps <= step)
    event("run_finished", status="completed" if done else "stopped", error=None, hint=None)
    return events


def _split(metrics: dict | None, prefix: str) -> dict[str, Any]:
    if not isinstance(metrics, dict):
        return {}
    out = {k: v for k, v in metrics.items() if k.startswith(prefix) or k in ("epoch",)}
    if prefix == "eval_" and "perplexity" in metrics:
        out["perplexity"] = metrics["perplexity"]
    return out if any(k.startswith(prefix) for k in out) else {}


def fold_trainer_state(trainer_state: dict[str, Any], results: dict[str, dict],
                       time: float | None = None, *, compact: bool = False) -> RunState:
    """A plain Hugging Face folder's state (source ``huggingface``: no Stop / Resume)."""
    state = fold(events_from_trainer_state(trainer_state, results, time), compact=compact)
    state.source = "huggingface"
    state.checkpoints = []  # the synthetic mark only carried the step
    return state
