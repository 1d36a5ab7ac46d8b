"""The preview report as plain lines: ``clmtune preview`` and the editor's Preview tab.

Pure Python over the report dict (``clmtune preview --json``): the dashboard imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clmtune.backend.cli_text import fmt_duration
from clmtune.backend.estimate import fmt_bytes


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"


def data_lines(r: dict[str, Any]) -> Iterator[str]:
    """Rows, tokens, blocks, lengths, packing losses, steps."""
    yield f"data      {r['packing']} packing, block_size {r['block_size']}, " \
          f"text column {r.get('text_column')!r}"
    yield f"rows      train {_n(r['train_rows'])}   validation {_n(r['eval_rows'])}"
    yield f"tokens    train {_n(r['train_tokens'])}   validation {_n(r['eval_tokens'])}"
    yield f"blocks    train {_n(r['train_blocks'])}   validation {_n(r['eval_blocks'])}" \
          f"   (train_samples / eval_samples)"
    lengths = r.get("lengths") or {}
    yield "lengths   " + "  ".join(f"{k} {_n(lengths.get(k))}"
                                   for k in ("min", "p50", "p90", "p99", "max"))
    yield f"          {_n(r.get('longer_than_block'))} examples longer than the block"
    if r["packing"] == "group":
        yield f"dropped   {_n(r['dropped_tokens'])} tokens (the remainder of each 1000 examples)"
    else:
        yield f"padded    {_n(r['padded_tokens'])} tokens, truncated " \
              f"{_n(r.get('truncated_tokens'))} tokens"
    yield f"steps     {_n(r['steps_per_epoch'])} per epoch, {_n(r['total_steps'])} in all " \
          f"(batch {r['per_device_train_batch_size']} x accumulation " \
          f"{r['gradient_accumulation_steps']} x {r['world_size']} devices)"
    yield f"          {_n(r['tokens_per_step'])} tokens per step"


def _params(memory: dict[str, Any], model: dict[str, Any]) -> str:
    """``334,464 parameters (334,464 trainable)``; a LoRA run as the run itself says it:
    ``trainable 24,576 of 359,040 parameters (6.84%): base 334,464 + LoRA adapter 24,576``."""
    total, trainable = memory["params"], memory["trainable_params"]
    if model.get("adapter_params") is None:
        return f"{_n(total)} parameters ({_n(trainable)} trainable)"
    share = 100.0 * trainable / total if total else 0.0
    about = "" if model.get("lora_counted") else " (estimated from the model's shape)"
    return f"trainable {_n(trainable)} of {_n(total)} parameters ({share:.2f}%): base " \
           f"{_n(model['base_params'])} + LoRA adapter {_n(model['adapter_params'])}{about}"


def estimate_lines(estimate: dict[str, Any] | None) -> Iterator[str]:
    """Parameters, memory by part, fits / does not fit, the largest batch, time."""
    if not estimate:
        return
    memory = estimate["memory"]
    yield f"model     {_params(memory, estimate.get('model') or {})}, weights " \
          f"{memory['param_dtype']}, {memory['precision']}, " \
          f"{memory['optim']}" + (", gradient checkpointing"
                                   if memory["gradient_checkpointing"] else "")
    parts = memory["parts"]
    yield "memory    " + ", ".join(f"{k.replace('_', ' ')} {fmt_bytes(v)}"
                                   for k, v in parts.items() if v)
    device = memory["device"]
    total = fmt_bytes(memory["total"])
    if memory.get("device_memory"):
        verdict = "fits" if memory["fits"] else "does NOT fit"
        yield f"          peak {total} per device of {fmt_bytes(memory['device_memory'])} " \
              f"({device}{', host RAM' if device == 'cpu' else ''}): {verdict}"
        most = memory["max_batch_size"]
        yield f"          largest per_device_train_batch_size that fits: {most}" \
              + (" or more" if most and most >= 65536 else "")
    else:
        yield f"          peak {total} per device ({device}, memory unknown)"
    measured = estimate.get("measured")
    if measured:
        yield f"measured  {measured['seconds_per_step']:.3f} s per step on {measured['device']}" \
              + (f", peak {fmt_bytes(measured['peak_memory'])}"
                 if measured.get("peak_memory") else "")
    timing = estimate.get("time") or {}
    if timing.get("seconds_per_step") is not None:
        yield f"time      {fmt_duration(timing['total_seconds'])} for the run " \
              f"({timing['seconds_per_step']:.3f} s per step)"
    else:
        yield f"time      unknown: {timing.get('hint') or 'use --measure'}"


def sample_lines(r: dict[str, Any]) -> Iterator[str]:
    """The decoded sample blocks (example boundaries marked ``<||>``)."""
    for sample in r.get("samples") or []:
        yield f"--- block {sample['index']} ({sample['tokens']} tokens"  \
              f"{', ' + str(sample['padding']) + ' padding' if sample['padding'] else ''}," \
              f" {len(sample['segments'])} example(s)) ---"
        yield from str(sample["text"]).splitlines() or [""]


def report_lines(r: dict[str, Any]) -> Iterator[str]:
    """The whole report, warnings last (the CLI's text output)."""
    yield from data_lines(r)
    yield from estimate_lines(r.get("estimate"))
    yield from sample_lines(r)
    for warning in r.get("warnings") or []:
        yield f"warning: {warning}"
