"""Model FLOPs utilisation (MFU): the model's training FLOPs per token and GPU peaks.

Pure Python (the reducer in :mod:`clmtune.backend.rundir.state` imports it, and the TUI
imports the reducer). The count is the one nanoGPT's ``estimate_mfu`` and the PaLM
paper (appendix B) use:

    flops_per_token = 6 * N + 12 * L * H * Q * T

``N``: the parameters that take part in matrix multiplies (every parameter except the
embedding lookups; a token embedding tied to the output layer counts, as the output
projection uses it), ``L`` layers, ``H`` attention heads, ``Q`` head size, ``T``
sequence length (block size). ``6 N``: forward (2) plus backward (4) multiply-adds per
weight; ``12 L H Q T``: the attention scores and the weighted sum, forward plus backward.

MFU = achieved model FLOP/s / peak FLOP/s, where achieved = tokens/s ×
flops_per_token (tokens/s of the whole job) and peak = the per-GPU dense peak for the
run's precision × the number of processes. Peaks come from :data:`PEAK_TFLOPS` (the
vendors' datasheets, dense, no sparsity) keyed by the NVML / ``torch.cuda`` device
name, or from ``[launch] peak_tflops``. Without a GPU (and no override) there is no
peak, hence tokens/s but no MFU.
"""

from __future__ import annotations

import re
from typing import Any

TFLOPS = 1e12

# Dense peak TFLOP/s per GPU from the vendors' datasheets (no 2:4 sparsity), by precision.
# bf16/fp16: tensor cores with fp32 accumulation (what mixed-precision training uses);
# tf32: tensor cores; fp32: plain CUDA cores. None: the GPU has no such mode.
# The first pattern that matches the upper-cased device name wins: keep specific before
# general (H100 NVL / PCIe before H100, A100 before A10, L40S before L4).
PEAK_TFLOPS: tuple[tuple[str, str, dict[str, float | None]], ...] = (
    # (regex on the name, label, peaks)
    (r"H200.*NVL", "H200 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    (r"H200", "H200 SXM", {"bf16": 989.5, "fp16": 989.5, "tf32": 494.5, "fp32": 67.0}),
    (r"H100.*NVL", "H100 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    (r"H100.*PCI", "H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    (r"H100", "H100 SXM", {"bf16": 989.5, "fp16": 989.5, "tf32": 494.5, "fp32": 67.0}),
    (r"A100", "A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    (r"L40S", "L40S", {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6}),
    (r"\bL4\b", "L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    # A10G (AWS G5) has no NVIDIA datasheet of its own; the A10's figures are used.
    (r"\bA10G?\b", "A10/A10G", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    (r"RTX 4090", "RTX 4090", {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    (r"RTX 3090", "RTX 3090", {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6}),
    (r"V100.*PCI", "V100 PCIe", {"bf16": None, "fp16": 112.0, "tf32": None, "fp32": 14.0}),
    (r"V100", "V100 SXM2", {"bf16": None, "fp16": 125.0, "tf32": None, "fp32": 15.7}),
    (r"\bT4\b", "T4", {"bf16": None, "fp16": 65.0, "tf32": None, "fp32": 8.1}),
)

PRECISIONS = ("bf16", "fp16", "tf32", "fp32")


def precision_of(*, bf16: bool = False, fp16: bool = False, tf32: bool | None = False) -> str:
    """The precision the matrix multiplies of a run use (its peak column)."""
    if bf16:
        return "bf16"
    if fp16:
        return "fp16"
    return "tf32" if tf32 else "fp32"


def gpu_label(name: str | None) -> str | None:
    """The table's label for a device name (``None`` when the GPU is not in the table)."""
    entry = _entry(name)
    return entry[1] if entry else None


def _entry(name: str | None) -> tuple[str, str, dict[str, float | None]] | None:
    if not name:
        return None
    upper = str(name).upper()
    for entry in PEAK_TFLOPS:
        if re.search(entry[0], upper):
            return entry
    return None


def peak_flops(name: str | None, precision: str, override_tflops: float | None = None
               ) -> float | None:
    """Dense peak FLOP/s of one device: the override (TFLOP/s) if set, else the table's."""
    if override_tflops is not None and override_tflops > 0:
        return float(override_tflops) * TFLOPS
    entry = _entry(name)
    if entry is None:
        return None
    value = entry[2].get(precision)
    return value * TFLOPS if value else None


def _first(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def model_shape(config: Any) -> tuple[int, int, int] | None:
    """``(layers, heads, head size)`` of a transformers model config (None if unknown)."""
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(config, "num_attention_heads", "n_head")
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    head_dim = _first(config, "head_dim")
    if not (isinstance(layers, int) and isinstance(heads, int) and heads > 0):
        return None
    if not isinstance(head_dim, int):
        if not isinstance(hidden, int):
            return None
        head_dim = hidden // heads
    return layers, heads, head_dim


def flops_per_token(n_params: int, layers: int, heads: int, head_dim: int, seq_len: int
                    ) -> float:
    """Training FLOPs per token: ``6 N + 12 L H Q T`` (nanoGPT, PaLM appendix B)."""
    return 6.0 * n_params + 12.0 * layers * heads * head_dim * seq_len


def matmul_params(model: Any) -> int:
    """Parameters of ``model`` that take part in matrix multiplies (embedding lookups out).

    Every ``nn.Embedding`` is a lookup, except a token embedding whose weight is also
    the output layer's (tied, as in GPT-2): that one is the output projection too.
    """
    total = sum(p.numel() for p in model.parameters())
    output = getattr(model, "get_output_embeddings", lambda: None)()
    tied = getattr(output, "weight", None)
    lookups = 0
    seen: set[int] = set()
    for module in model.modules():
        if type(module).__name__ != "Embedding" or not hasattr(module, "weight"):
            continue
        weight = module.weight
        if id(weight) in seen or (tied is not None and weight is tied):
            continue
        seen.add(id(weight))
        lookups += weight.numel()
    return int(total - lookups)


def mfu(tokens_per_second: float | None, flops_token: float | None,
        peak_per_device: float | None, devices: int = 1) -> float | None:
    """Model FLOPs utilisation (0..1) of a job on ``devices`` equal GPUs; None if unknown."""
    if not tokens_per_second or not flops_token or not peak_per_device or devices < 1:
        return None
    return tokens_per_second * flops_token / (peak_per_device * devices)


def run_started_fields(model: Any, seq_len: int | None, *, device_name: str | None,
                       precision: str, override_tflops: float | None) -> dict[str, Any]:
    """What the worker adds to ``run_started`` so every view can compute MFU.

    ``flops_per_token`` (None when the model's shape is unknown), ``peak_flops`` (per
    device; None on a CPU or an unknown GPU without ``[launch] peak_tflops``),
    ``precision`` and ``gpu_name``.
    """
    shape = model_shape(getattr(model, "config", None))
    per_token = None
    if shape is not None and seq_len:
        try:
            per_token = flops_per_token(matmul_params(model), *shape, int(seq_len))
        except Exception:  # noqa: BLE001 - an exotic model: tokens/s without MFU
            per_token = None
    return {
        "flops_per_token": per_token,
        "peak_flops": peak_flops(device_name, precision, override_tflops),
        "precision": precision,
        "gpu_name": device_name,
    }


def final_figures(steps: int, tokens_per_step: int | None, runtime_s: float | None,
                  started: dict[str, Any] | None) -> dict[str, float]:
    """``train_tokens_per_second`` and ``train_mfu`` of one attempt, for the results."""
    if not steps or not tokens_per_step or not runtime_s or runtime_s <= 0:
        return {}
    tokens = steps * tokens_per_step / runtime_s
    out = {"train_tokens_per_second": tokens}
    started = started or {}
    value = mfu(tokens, started.get("flops_per_token"), started.get("peak_flops"),
                int(started.get("world_size") or 1))
    if value is not None:
        out["train_mfu"] = value
    return out
