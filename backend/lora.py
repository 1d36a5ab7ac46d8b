"""LoRA and QLoRA with ``peft``: adapter wrapping, quantised loading, inference loading.

``peft`` and ``bitsandbytes`` are the optional extra ``clmtune-tui[lora]``; everything here
imports them lazily and turns their absence into :class:`MissingExtra` (one line with the pip
command). The settings checks (``settings/validate_peft.py``) catch the same before a run starts.

- :func:`quantization_kwargs`: ``from_pretrained`` keywords for ``[model] load_in_4bit`` /
  ``load_in_8bit`` (NF4, double quantisation, compute dtype from ``bf16``/``fp16``).
- :func:`find_target_modules`: ``target_modules = "auto"``: the attention and MLP linear layers
  (``nn.Linear`` and GPT-2's ``Conv1D``), never the output head.
- :func:`wrap_model`: ``get_peft_model`` after loading (``model.load_model_and_tokenizer``).
- :func:`load_peft_for_inference`: base model + adapter from a LoRA run's folder or checkpoint.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.errors import MissingExtra, SetupError

if TYPE_CHECKING:
    from clmtune.backend.settings.run_config import Settings

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")

#: Leaf names that are never adapted by "auto" (output heads, classifier heads).
_NEVER = frozenset({"lm_head", "embed_out", "output", "score", "classifier", "qa_outputs"})


@dataclass
class LoraSummary:
    """What the run reports about its adapter (the ``peft`` field of ``run_started``)."""

    method: str
    r: int
    lora_alpha: float
    target_modules: list[str]
    quantization: str | None = None  # "4bit" | "8bit" | None
    modules_to_save: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "r": self.r, "lora_alpha": self.lora_alpha,
                "target_modules": list(self.target_modules), "quantization": self.quantization,
                "modules_to_save": list(self.modules_to_save)}


def _peft():
    try:
        import peft
    except ImportError as exc:
        raise MissingExtra("[peft] method = \"lora\"", "lora", "peft") from exc
    return peft


def is_lora(settings: Settings) -> bool:
    """Whether a run trains a LoRA adapter."""
    return settings.peft.method == "lora"


def quantization_label(settings: Settings) -> str | None:
    if settings.model.load_in_4bit:
        return "4bit"
    if settings.model.load_in_8bit:
        return "8bit"
    return None


def quantization_kwargs(settings: Settings) -> dict[str, Any]:
    """``from_pretrained`` keywords for a quantised base model ({} when not quantised)."""
    label = quantization_label(settings)
    if label is None:
        return {}
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(f"[model] load_in_{label}", "lora", "bitsandbytes") from exc
    import torch
    from transformers import BitsAndBytesConfig

    if label == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    if settings.training.bf16:
        compute = torch.bfloat16
    elif settings.training.fp16:
        compute = torch.float16
    else:
        compute = torch.float32
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute)}


def _is_adaptable(module: Any) -> bool:
    import torch
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, (torch.nn.Linear, Conv1D)):
        return True
    # bitsandbytes' Linear4bit / Linear8bitLt subclass nn.Linear; other quantised linears
    # (e.g. a backend's own class) are recognised by name.
    name = type(module).__name__
    return name.startswith("Linear") and hasattr(module, "weight")


def find_target_modules(model: Any) -> list[str]:
    """The leaf names of the attention and MLP linear layers (``"auto"``), sorted.

    GPT-2 gives ``c_attn``, ``c_fc``, ``c_proj`` (``Conv1D``); Llama gives ``q_proj``,
    ``k_proj``, ``v_proj``, ``o_proj``, ``gate_proj``, ``up_proj``, ``down_proj``. The output
    head (``lm_head``, or whatever ``get_output_embeddings`` returns) is never included.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names: set[str] = set()
    for full_name, module in model.named_modules():
        if not full_name or module is head or not _is_adaptable(module):
            continue
        leaf = full_name.rsplit(".", 1)[-1]
        if leaf in _NEVER:
            continue
        names.add(leaf)
    return sorted(names)


def _uses_conv1d(model: Any, targets: list[str]) -> bool:
    from transformers.pytorch_utils import Conv1D

    wanted = set(targets)
    return any(isinstance(m, Conv1D) and n.rsplit(".", 1)[-1] in wanted
               for n, m in model.named_modules())


def wrap_model(model: Any, settings: Settings) -> tuple[Any, LoraSummary]:
    """``get_peft_model`` with the ``[peft]`` settings (after ``prepare_model_for_kbit_training``
    for a quantised base). Returns the PeftModel and what to report."""
    peft = _peft()
    p = settings.peft
    label = quantization_label(settings)
    checkpointing = bool(settings.training.gradient_checkpointing)
    if label is not None:
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=checkpointing)
    elif checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks need grads
    auto = p.target_modules in ("auto", ["auto"])  # the form writes a list field as a list
    targets = find_target_modules(model) if auto else list(p.target_modules)
    if not targets:
        raise SetupError(
            "[peft] target_modules = \"auto\" found no linear layers in this model",
            "list the module names to adapt in [peft] target_modules")
    config = peft.LoraConfig(
        task_type="CAUSAL_LM", r=int(p.r), lora_alpha=p.lora_alpha,
        lora_dropout=float(p.lora_dropout), target_modules=targets,
        modules_to_save=list(p.modules_to_save) if p.modules_to_save else None,
        bias=p.bias, use_rslora=bool(p.use_rslora), use_dora=bool(p.use_dora),
        fan_in_fan_out=_uses_conv1d(model, targets),
    )
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or ["invalid LoRA settings"])[0]
        raise SetupError(f"[peft] target_modules = {targets!r}: {first}",
                         "name modules that exist in the model (or use \"auto\")") from exc
    summary = LoraSummary("lora", int(p.r), float(p.lora_alpha), targets, label,
                          list(p.modules_to_save or []))
    return wrapped, summary


def trainable_line(trainable: int, total: int) -> str:
    """``trainable 1,234 of 56,789 parameters (2.17%)``."""
    share = 100.0 * trainable / total if total else 0.0
    return f"trainable {trainable:,} of {total:,} parameters ({share:.2f}%)"


def is_adapter_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a LoRA adapter (config and weights)."""
    folder = Path(folder)
    return (folder / ADAPTER_CONFIG).is_file() and any(
        (folder / name).is_file() for name in ADAPTER_WEIGHTS)


def adapter_base(folder: str | Path) -> str:
    """``base_model_name_or_path`` of an adapter folder (SetupError when unreadable)."""
    path = Path(folder) / ADAPTER_CONFIG
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise SetupError(f"{path} cannot be read: {exc}",
                         "point at a LoRA run's folder or checkpoint") from exc
    if not base:
        raise SetupError(f"{path} names no base_model_name_or_path",
                         "the adapter was not saved by clmtune or peft")
    return str(base)


def _dtype(dtype: Any):
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _hub_kwargs_of_run(folder: Path, base: str) -> dict[str, Any]:
    """cache_dir / revision / trust_remote_code of the run that trained the adapter in
    ``folder`` (its frozen ``config.toml``), so a hub base resolves offline as it did then."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    for candidate in (folder / "config.toml", folder.parent / "config.toml"):
        try:
            model = tomllib.loads(candidate.read_text(encoding="utf-8")).get("model") or {}
        except (OSError, ValueError):
            continue
        if model.get("model_name_or_path") != base:
            continue
        kwargs: dict[str, Any] = {"trust_remote_code": bool(model.get("trust_remote_code"))}
        if model.get("cache_dir"):
            kwargs["cache_dir"] = str(model["cache_dir"])
        if model.get("model_revision"):
            kwargs["revision"] = str(model["model_revision"])
        return kwargs
    return {}


def load_base_for_adapter(folder: str | Path, *, dtype: Any = None, device: Any = "cpu"):
    """The base model an adapter was trained on, embeddings resized to the saved tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    base = adapter_base(folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=_dtype(dtype),
                                                     **_hub_kwargs_of_run(folder, base))
    except (OSError, ValueError) as exc:
        raise SetupError(f"the adapter's base model {base!r} could not be loaded: "
                         f"{(str(exc).strip().splitlines() or ['?'])[0]}",
                         "make the base model folder (or hub cache) available again") from exc
    tokenizer = None
    for candidate in (folder, folder.parent):
        if (candidate / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(candidate)
            break
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device)


def load_peft_for_inference(folder: Path, *, dtype, device):
    """Base model + the adapter in ``folder`` (a LoRA run's folder or checkpoint), eval mode.

    The base comes from ``adapter_config.json``'s ``base_model_name_or_path`` (training saves
    the local path or hub id it loaded, so it resolves offline). ``dtype``: a torch dtype, a
    name (``"float32"``) or ``"auto"``/None; ``device``: anything ``.to()`` takes.
    """
    peft = _peft()
    folder = Path(folder)
    if not is_adapter_folder(folder):
        raise SetupError(f"{folder} holds no LoRA adapter (adapter_config.json + "
                         "adapter_model.safetensors)", "point at a LoRA run or checkpoint")
    base = load_base_for_adapter(folder, dtype=dtype, device=device)
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated question
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        model = peft.PeftModel.from_pretrained(base, str(folder), is_trainable=False)
    model.to(device)
    model.eval()
    return model


def lora_log_line(info: Any) -> str:
    """The start-of-run log line of a LoRA run (``info``: ``model.ModelInfo``)."""
    p = info.peft or {}
    quant = f", base in {p['quantization']}" if p.get("quantization") else ""
    return (f"LoRA r={p.get('r')} alpha={p.get('lora_alpha'):g}{quant} on "
            f"{', '.join(p.get('target_modules') or [])}: "
            f"{trainable_line(info.trainable_params, info.num_params)}")


def estimated_lora_params(shape: Any, settings: Settings) -> int | None:
    """Trainable parameters of a LoRA run for ``clmtune preview``'s memory estimate, from the
    model's shape (``estimate.ModelShape``), without loading it; None when not LoRA.

    ``"auto"`` targets are taken as q/k/v/o plus the MLP's two (three when gated) linears of
    every layer; GPT-2's fused ``c_attn`` makes the real count about 10 % lower. An explicit
    ``target_modules`` list is estimated the same way (names alone do not give shapes).
    """
    if not is_lora(settings):
        return None
    r, h, i = int(settings.peft.r), int(shape.hidden_size), int(shape.intermediate_size)
    kv = h * int(shape.num_kv_heads) // max(int(shape.num_heads), 1)
    attention = r * ((h + h) * 2 + (h + kv) * 2)
    mlp = r * (h + i) * (3 if shape.gated_mlp else 2)
    return int(shape.num_layers) * (attention + mlp)
