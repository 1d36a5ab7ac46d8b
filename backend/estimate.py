"""Memory and time estimate of a training run: pure arithmetic from the model config.

Light on purpose (the dashboard's Preview tab recomputes it when only the batch size
changes): no torch, transformers or datasets here; the model config is read as a plain
mapping or any object with the config's attributes.

Peak memory per device, the parts (bytes):

- ``weights``: every parameter in the dtype the model is loaded in (``[model] dtype``;
  ``auto`` is the checkpoint's dtype, float32 when it names none);
- ``gradients``: one value per *trainable* parameter, in the parameter dtype;
- ``optimizer``: adamw keeps two states per trainable parameter (parameter dtype), the 8-bit
  variants two bytes, adafactor factored second moments (about ``2 / hidden`` of the
  parameters, float32), sgd (no momentum, Trainer's default) and lomo none;
- ``autocast_copies``: with ``bf16``/``fp16`` mixed precision and float32 weights, autocast
  keeps a 16-bit copy of each weight it multiplies during the step (the float32 weights
  are the master weights: no other copy);
- ``activations``: what backward needs per layer (Korthikanti et al., "Reducing
  Activation Recomputation in Large Transformer Models"): per token ``(8·h + 2·I)`` values
  (``h + 4·I`` more for a gated MLP, ``3·I`` more for GPT-2's ``gelu_new``) plus the dropout
  masks (a byte each on a GPU, a float on CPU), and ``heads·block`` attention scores per token
  (softmax output, dropout mask and output) when attention is ``eager``, or on CPU with
  dropout (sdpa takes its math path there; on a GPU flash / memory-efficient keep none);
  with gradient checkpointing only each layer's input plus one layer's activations;
- ``logits``: ``batch·block·vocab`` logits in the activation dtype, their float32 copy for
  the loss (none when already float32), the log-softmax kept for backward and its gradient:
  for a small model with a large vocabulary this is the largest part.

The peak: weights + optimizer + autocast copies + the larger of (activations + logits) and
gradients (backward frees activations as gradients appear; with gradient accumulation the
gradients live through the next forward, so both count).

LoRA (or any frozen base): pass ``trainable_params``; gradients and optimizer state are
counted for those only (``[peft]`` settings can feed it when they exist).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp32": 4, "fp16": 2, "bf16": 2}
#: model types whose MLP is gated (gate, up and down projections).
GATED_MLP = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2",
                       "gemma3_text", "phi3", "olmo", "olmo2", "granite", "smollm3",
                       "cohere", "stablelm", "deepseek_v3"})
#: bytes of optimizer state per trainable parameter, by Trainer's ``optim`` name prefix.
OPTIMIZER_STATE_BYTES = (("adamw_torch_8bit", 2.0), ("adamw_8bit", 2.0), ("adamw_bnb", 2.0),
                         ("paged_adamw_8bit", 2.0), ("adamw_torch_4bit", 1.0),
                         ("sgd", 0.0), ("lomo", 0.0), ("adalomo", 0.0),
                         ("adagrad", 1.0), ("rmsprop", 1.0), ("lion", 1.0))
GIB = 1024**3


def _get(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if value is not None:
            return value
    return default


@dataclass
class ModelShape:
    """The sizes of a decoder-only model that memory depends on (from its config)."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_positions: int
    tie_embeddings: bool
    gated_mlp: bool
    dropout: bool
    learned_positions: bool
    activation: str = "gelu"  # gelu_new (GPT-2) is computed in Python ops that save 3 more tensors
    dtype: str = "float32"  # the checkpoint's dtype (``[model] dtype = "auto"`` loads that)
    num_params: int | None = None  # exact when counted elsewhere (meta device)

    @property
    def params(self) -> int:
        """The exact count when known, else :func:`count_params`."""
        return self.num_params if self.num_params is not None else count_params(self)


def shape_from_config(config: Any, *, vocab_size: int | None = None) -> ModelShape:
    """A :class:`ModelShape` from a transformers config (object or ``to_dict()`` mapping).

    ``vocab_size``: the embedding rows after the tokenizer resize (a pad token added).
    """
    hidden = int(_get(config, "hidden_size", "n_embd", "d_model", default=768))
    heads = int(_get(config, "num_attention_heads", "n_head", default=12))
    model_type = str(_get(config, "model_type", default=""))
    inner = _get(config, "intermediate_size", "n_inner", "ffn_dim", default=None)
    dropout = any(float(_get(config, key, default=0.0) or 0.0) > 0 for key in
                  ("resid_pdrop", "attn_pdrop", "embd_pdrop", "hidden_dropout_prob",
                   "attention_dropout", "dropout", "hidden_dropout"))  # fmt: skip
    vocab = int(_get(config, "vocab_size", default=50257))
    dtype = str(_get(config, "dtype", "torch_dtype", default="float32")).replace("torch.", "")
    return ModelShape(
        model_type=model_type,
        vocab_size=max(vocab, int(vocab_size or 0)),
        hidden_size=hidden,
        num_layers=int(_get(config, "num_hidden_layers", "n_layer", "num_layers", default=12)),
        num_heads=heads,
        num_kv_heads=int(_get(config, "num_key_value_heads", default=heads)),
        intermediate_size=int(inner) if inner else 4 * hidden,
        max_positions=int(_get(config, "max_position_embeddings", "n_positions", default=0)),
        tie_embeddings=bool(_get(config, "tie_word_embeddings", default=True)),
        gated_mlp=model_type in GATED_MLP,
        dropout=dropout,
        learned_positions=model_type in ("gpt2", "gpt_neo", "opt", "gptj", "biogpt"),
        activation=str(_get(config, "activation_function", "hidden_act", default="gelu")),
        dtype=dtype if dtype in DTYPE_BYTES else "float32",
    )


def count_params(shape: ModelShape) -> int:
    """Parameters of a standard decoder (embeddings, attention, MLP, norms, head)."""
    h, inner = shape.hidden_size, shape.intermediate_size
    head_dim = h // max(1, shape.num_heads)
    kv = shape.num_kv_heads * head_dim
    attention = h * h + 2 * h * kv + h * h + (2 * h + 2 * kv)  # q, k, v, o (+ biases)
    mlp = (3 * h * inner) if shape.gated_mlp else (2 * h * inner + inner + h)
    layer = attention + mlp + 4 * h  # two norms (weight + bias)
    total = shape.vocab_size * h + shape.num_layers * layer + 2 * h
    if shape.learned_positions:
        total += shape.max_positions * h
    if not shape.tie_embeddings:
        total += shape.vocab_size * h
    return int(total)


def optimizer_state_bytes(optim: str, param_bytes: int, hidden: int) -> float:
    """Bytes of optimizer state per trainable parameter."""
    name = str(optim or "adamw_torch").lower()
    if name.startswith(("adafactor", "galore_adafactor")):
        return 4.0 * 2.0 / max(1, hidden)  # row + column second moments, float32
    for prefix, size in OPTIMIZER_STATE_BYTES:
        if name.startswith(prefix):
            return size
    return 2.0 * param_bytes  # adamw (torch, fused, …): exp_avg + exp_avg_sq


@dataclass
class MemoryEstimate:
    """Peak memory of one device, by part, and whether it fits."""

    params: int
    trainable_params: int
    batch_size: int
    block_size: int
    precision: str
    param_dtype: str
    optim: str
    gradient_checkpointing: bool
    parts: dict[str, int]
    total: int
    device: str
    device_memory: int | None
    fits: bool | None
    max_batch_size: int | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_gib"] = round(self.total / GIB, 3)
        if self.device_memory:
            data["device_memory_gib"] = round(self.device_memory / GIB, 3)
        return data


def _parts(shape: ModelShape, *, batch: int, block: int, precision: str, param_dtype: str,
           optim: str, gradient_checkpointing: bool, trainable: int,
           attention: str, device: str) -> dict[str, int]:
    params = shape.params
    pbytes = DTYPE_BYTES.get(param_dtype, 4)
    mixed = precision in ("bf16", "fp16") and pbytes == 4
    abytes = 2 if (mixed or pbytes == 2) else 4
    h, inner, layers = shape.hidden_size, shape.intermediate_size, shape.num_layers
    tokens = batch * block
    on_cpu = device.startswith("cpu")
    mask = (abytes if on_cpu else 1) if shape.dropout else 0  # dropout masks: float on CPU
    per_token = abytes * (8 * h + 2 * inner + ((h + 4 * inner) if shape.gated_mlp else 0))
    if shape.activation == "gelu_new":
        per_token += abytes * 3 * inner  # pow, tanh, mul: each keeps a tensor for backward
    per_token += 2 * h * mask
    if attention == "eager":  # scores: softmax output, dropout mask and output
        per_token += shape.num_heads * block * (2 * abytes + mask)
    elif on_cpu and shape.dropout:  # CPU sdpa with dropout takes the math path: the same
        per_token += shape.num_heads * block * (2 * abytes + mask)
    if gradient_checkpointing:
        activations = tokens * (layers * h * abytes + per_token)
    else:
        activations = tokens * layers * per_token
    activations += tokens * h * (2 * abytes + mask)  # embeddings, final norm
    # logits, their float32 copy for the loss, log-softmax kept for backward, its gradient
    logits = tokens * shape.vocab_size * (abytes + (4 if abytes != 4 else 0) + 4 + 4)
    return {
        "weights": params * pbytes,
        "gradients": trainable * pbytes,
        "optimizer": int(trainable * optimizer_state_bytes(optim, pbytes, h)),
        "autocast_copies": (params - shape.vocab_size * h) * 2 if mixed else 0,
        "activations": int(activations),
        "logits": int(logits),
    }


def _peak(parts: Mapping[str, int], accumulation: int) -> int:
    base = parts["weights"] + parts["optimizer"] + parts["autocast_copies"]
    forward = parts["activations"] + parts["logits"]
    if accumulation > 1:
        return base + forward + parts["gradients"]
    return base + max(forward, parts["gradients"])


def estimate_memory(
    shape: ModelShape,
    *,
    batch_size: int,
    block_size: int,
    precision: str = "fp32",
    param_dtype: str | None = None,
    optim: str = "adamw_torch",
    gradient_checkpointing: bool = False,
    gradient_accumulation_steps: int = 1,
    trainable_params: int | None = None,
    attention: str = "sdpa",
    device: str = "cpu",
    device_memory: int | None = None,
) -> MemoryEstimate:
    """Peak memory per device of a training step; ``fits`` and the largest batch that fits.

    ``trainable_params`` (default: all) is the LoRA hook: gradients and optimizer state
    are counted for those only. ``device_memory`` (bytes; the GPU's, else the host's RAM)
    decides ``fits`` and ``max_batch_size`` (None when unknown).
    """
    dtype = param_dtype if param_dtype and param_dtype != "auto" else shape.dtype
    trainable = shape.params if trainable_params is None else int(trainable_params)
    options = dict(block=block_size, precision=precision, param_dtype=dtype, optim=optim,
                   gradient_checkpointing=gradient_checkpointing, trainable=trainable,
                   attention=attention, device=device)  # fmt: skip

    def total_for(batch: int) -> int:
        return _peak(_parts(shape, batch=batch, **options), gradient_accumulation_steps)

    parts = _parts(shape, batch=batch_size, **options)
    total = _peak(parts, gradient_accumulation_steps)
    fits = None if not device_memory else total <= device_memory
    max_batch = None
    if device_memory:
        max_batch = largest_fitting(total_for, device_memory)
    return MemoryEstimate(
        params=shape.params, trainable_params=trainable, batch_size=batch_size,
        block_size=block_size, precision=precision, param_dtype=dtype, optim=optim,
        gradient_checkpointing=gradient_checkpointing, parts=parts, total=total,
        device=device, device_memory=device_memory, fits=fits, max_batch_size=max_batch,
    )  # fmt: skip


def largest_fitting(total_for: Any, limit: int, ceiling: int = 1 << 16) -> int:
    """The largest batch size whose total fits in ``limit`` (0 when not even 1 fits)."""
    if total_for(1) > limit:
        return 0
    low, high = 1, 2
    while high <= ceiling and total_for(high) <= limit:
        low, high = high, high * 2
    high = min(high, ceiling + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if total_for(mid) <= limit else (low, mid)
    return low


def time_estimate(seconds_per_step: float | None, total_steps: int | None) -> dict[str, Any]:
    """Seconds per optimizer step and for the whole run (None parts stay None)."""
    total = None
    if seconds_per_step is not None and total_steps:
        total = seconds_per_step * total_steps
    return {"seconds_per_step": seconds_per_step, "total_seconds": total,
            "source": "measured" if seconds_per_step is not None else None}  # fmt: skip


def plan_steps(train_blocks: int, *, batch_size: int, accumulation: int = 1, world_size: int = 1,
               drop_last: bool = False, max_steps: int = -1,
               num_train_epochs: float = 3.0) -> dict[str, Any]:
    """Steps per epoch and in all as Trainer counts them: batches per process (the sampler
    shards them over ``world_size``), then optimizer steps of ``accumulation`` batches."""
    batch, accumulation, world = max(1, batch_size), max(1, accumulation), max(1, world_size)
    batches = train_blocks // batch if drop_last else math.ceil(train_blocks / batch)
    per_process = batches // world if drop_last else math.ceil(batches / world)
    per_epoch = max(per_process // accumulation + int(per_process % accumulation > 0), 1)
    total = max_steps if max_steps > 0 else math.ceil(float(num_train_epochs) * per_epoch)
    return {
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accumulation,
        "world_size": world,
        "dataloader_drop_last": drop_last,
        "max_steps": max_steps,
        "num_train_epochs": num_train_epochs,
        "total_train_batch_size": batch * accumulation * world,
        "steps_per_epoch": per_epoch if train_blocks else 0,
        "total_steps": total if train_blocks else 0,
        "epochs": round(total / per_epoch, 3) if train_blocks else 0,
    }


def rebatch(report: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """A preview report (``clmtune preview --json``) for another per-device batch size:
    steps and the memory estimate recomputed, the data figures kept (no reload)."""
    out = dict(report)
    out.update(plan_steps(int(report["train_blocks"] or 0), batch_size=batch_size,
                          accumulation=int(report["gradient_accumulation_steps"]),
                          world_size=int(report["world_size"]),
                          drop_last=bool(report.get("dataloader_drop_last")),
                          max_steps=int(report.get("max_steps") or -1),
                          num_train_epochs=float(report.get("num_train_epochs") or 3.0)))
    out["tokens_per_step"] = out["total_train_batch_size"] * int(report["block_size"])
    estimate = report.get("estimate")
    if estimate:
        memory = estimate["memory"]
        result = estimate_memory(
            shape_from_json(estimate["model"]), batch_size=batch_size,
            block_size=int(report["block_size"]),
            gradient_accumulation_steps=int(report["gradient_accumulation_steps"]),
            trainable_params=memory.get("trainable_params"), device=memory["device"],
            device_memory=memory.get("device_memory"), **estimate["options"])
        timing = time_estimate(None, out["total_steps"])
        timing["hint"] = "measured for another batch size: preview again with --measure"
        if batch_size == report["per_device_train_batch_size"]:
            timing = estimate.get("time") or timing
        out["estimate"] = dict(estimate, memory=result.to_json(), time=timing)
    return out


def shape_from_json(data: Mapping[str, Any]) -> ModelShape:
    """The :class:`ModelShape` back from a preview's JSON (``estimate.model``)."""
    return ModelShape(**{k: data[k] for k in ModelShape.__dataclass_fields__ if k in data})


def fmt_bytes(size: float | None) -> str:
    """``1.23 GiB`` / ``456 MiB`` / ``12 KiB``."""
    if size is None or not math.isfinite(size):
        return "-"
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(size) >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{int(size)} B"
