"""Config, tokenizer and model loading, the way ``run_clm.py`` does it, plus the pad policy.

The hub token is never passed explicitly: ``huggingface_hub`` reads it from the
environment (``HF_TOKEN``) or the stored login, so it never appears in a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clmtune.backend.errors import SetupError
from clmtune.backend.lora import is_lora, quantization_kwargs, wrap_model

if TYPE_CHECKING:
    from clmtune.backend.settings.run_config import RunConfig, Settings

PAD_POLICIES = ("eos", "add")
DTYPES = ("auto", "bfloat16", "float16", "float32")
ADDED_PAD_TOKEN = "<pad>"


class TrainingSetupError(SetupError):
    """A run cannot start because of its settings or the hardware; the message is one line.

    ``message`` names the setting or file and ``hint`` says how to fix it; ``str()``
    joins both so it can be printed as is.
    """


@dataclass
class ModelInfo:
    """What the dashboard shows about the loaded model."""

    num_params: int
    trainable_params: int
    name: str | None  # model_name_or_path, or None when trained from scratch
    model_type: str
    vocab_size: int  # rows of the input embedding matrix after any resize
    from_scratch: bool
    pad_token_added: bool
    embeddings_resized: bool
    peft: dict[str, Any] | None = None  # LoRA: LoraSummary.to_json() (method, r, targets, …)


def _hub_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "cache_dir": settings.model.cache_dir,
        "revision": settings.model.model_revision,
        "trust_remote_code": bool(settings.model.trust_remote_code),
    }


def _load_error(key: str, value: str, exc: Exception) -> TrainingSetupError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TrainingSetupError(
        f"[model] {key} = {value!r} could not be loaded: {first}",
        f"check that [model] {key} is a local model folder or a hub id you can reach",
    )


def load_config(cfg: RunConfig):
    """The model config, as run_clm picks it: config_name, model path, or model_type."""
    from transformers import CONFIG_MAPPING, AutoConfig

    settings = cfg.settings
    kwargs = _hub_kwargs(settings)
    config_name = settings.model.config_name
    name = settings.model.model_name_or_path
    overrides = settings.model.config_overrides
    for key, value in (("config_name", config_name), ("model_name_or_path", name)):
        if value:
            try:
                return AutoConfig.from_pretrained(value, **kwargs)
            except (OSError, ValueError) as exc:
                raise _load_error(key, value, exc) from exc
    model_type = settings.model.model_type
    if not model_type or model_type not in CONFIG_MAPPING:
        raise TrainingSetupError(
            f"[model] model_type = {model_type!r} is not a known model type",
            "set [model] model_name_or_path, or a model_type such as 'gpt2'",
        )
    config = CONFIG_MAPPING[model_type]()
    if overrides:
        try:
            config.update_from_string(overrides)
        except (ValueError, AttributeError) as exc:
            raise TrainingSetupError(
                f"[model] config_overrides = {overrides!r} is invalid: {exc}",
                "write it as 'key=value,key=value' with keys of the model config",
            ) from exc
    return config


def load_tokenizer(cfg: RunConfig):
    """The tokenizer from tokenizer_name or the model path (run_clm never trains one)."""
    from transformers import AutoTokenizer

    settings = cfg.settings
    kwargs = _hub_kwargs(settings)
    kwargs["use_fast"] = bool(settings.model.use_fast_tokenizer)
    candidates = (("tokenizer_name", settings.model.tokenizer_name),
                  ("model_name_or_path", settings.model.model_name_or_path))
    for key, value in candidates:
        if value:
            try:
                return AutoTokenizer.from_pretrained(value, **kwargs)
            except (OSError, ValueError) as exc:
                raise _load_error(key, value, exc) from exc
    raise TrainingSetupError(
        "[model] tokenizer_name is required when training from scratch",
        "point [model] tokenizer_name at an existing tokenizer (a folder or a hub id)",
    )


def _torch_dtype(name: str):
    import torch

    if name in (None, "auto"):
        return "auto"
    if name not in DTYPES:
        raise TrainingSetupError(
            f"[model] dtype = {name!r} is not supported", f"use one of {', '.join(DTYPES)}"
        )
    return getattr(torch, name)


def apply_pad_policy(tokenizer, policy: str) -> bool:
    """Give the tokenizer a pad token; returns True when a new token was added.

    ``"eos"`` reuses the end-of-sequence token (GPT-2 has no pad token), ``"add"``
    adds ``<pad>``, which needs an embedding row (see :func:`load_model_and_tokenizer`).
    An existing pad token is always kept.
    """
    if policy not in PAD_POLICIES:
        raise TrainingSetupError(
            f"[model] pad_token = {policy!r} is not a pad policy", "use 'eos' or 'add'"
        )
    if tokenizer.pad_token is not None:
        return False
    if policy == "eos":
        if tokenizer.eos_token is None:
            raise TrainingSetupError(
                "[model] pad_token = 'eos' but the tokenizer has no end-of-sequence token",
                "set [model] pad_token = 'add'",
            )
        tokenizer.pad_token = tokenizer.eos_token
        return False
    return bool(tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN}))


def load_model_and_tokenizer(cfg: RunConfig):
    """Load (model, tokenizer, info) like run_clm, then apply the pad policy.

    From a path/hub id the weights come through ``from_pretrained`` with the
    configured dtype; with only ``model_type`` a fresh model is built from the
    config. Embeddings are resized when the tokenizer has more tokens than the
    embedding matrix (run_clm's rule; also covers an added ``<pad>``).
    """
    from transformers import AutoModelForCausalLM

    config = load_config(cfg)
    tokenizer = load_tokenizer(cfg)
    settings = cfg.settings
    name = settings.model.model_name_or_path
    kwargs = _hub_kwargs(settings)
    if name:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                name,
                config=config,
                dtype=_torch_dtype(settings.model.dtype),
                cache_dir=kwargs["cache_dir"],
                revision=kwargs["revision"],
                trust_remote_code=kwargs["trust_remote_code"],
                **quantization_kwargs(settings),  # [model] load_in_4bit / load_in_8bit
            )
        except (OSError, ValueError) as exc:
            raise _load_error("model_name_or_path", name, exc) from exc
    else:
        model = AutoModelForCausalLM.from_config(
            config, trust_remote_code=kwargs["trust_remote_code"]
        )

    pad_added = apply_pad_policy(tokenizer, settings.model.pad_token)
    embedding_rows = model.get_input_embeddings().weight.shape[0]
    resized = len(tokenizer) > embedding_rows
    if resized:
        model.resize_token_embeddings(len(tokenizer))
    # The model must know the pad id too (generation, and models that mask on it).
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id

    model, lora = wrap_model(model, settings) if is_lora(settings) else (model, None)
    params = list(model.parameters())
    counts = (sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))
    if lora is not None:  # peft counts 4-bit packed weights as the weights they stand for
        counts = model.get_nb_trainable_parameters()
    info = ModelInfo(
        num_params=int(counts[1]),
        trainable_params=int(counts[0]),
        name=name,
        model_type=str(getattr(config, "model_type", "")),
        vocab_size=int(model.get_input_embeddings().weight.shape[0]),
        from_scratch=not name,
        pad_token_added=pad_added,
        embeddings_resized=resized,
        peft=lora.to_json() if lora is not None else None,
    )
    return model, tokenizer, info
