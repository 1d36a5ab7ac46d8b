"""Generate from a run's final model or one of its checkpoints (``clmtune generate``).

The same calls a user would write: ``AutoModelForCausalLM.from_pretrained(folder)`` (a LoRA
folder through :mod:`clmtune.backend.lora`) and ``model.generate`` with the settings given,
so a completion here equals a direct call with the same settings, token for token. Greedy by
default (temperature 0); with a temperature above 0 it samples, seeded with ``--seed``
(``transformers.set_seed`` right before ``generate``). Which folder is loaded and the
``samples.jsonl`` record live in :mod:`clmtune.backend.tools.generate_io` (light, the
dashboard reads them). Heavy: torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError

#: numpy's legacy seeding (``transformers.set_seed``) takes 0 … 2**32 - 1.
MAX_SEED = 2**32 - 1
#: What ``--device`` accepts.
DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
DEVICE_CHOICES = "cpu, cuda, cuda:N or mps"


@dataclass
class GenSettings:
    """How to generate: greedy when ``temperature`` is 0, else sampling with ``seed``."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def check(self) -> GenSettings:
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens: must be 1 or more, got {self.max_new_tokens}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UsageError(f"--temperature: must be 0 (greedy) or a finite number above, "
                             f"got {self.temperature}")
        if not math.isfinite(self.top_p) or not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p: must be in (0, 1], got {self.top_p}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed: must be 0 … {MAX_SEED} (2**32 - 1), got {self.seed}")
        return self

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``model.generate`` (a direct call uses the same)."""
        if not self.sampling:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {"max_new_tokens": self.max_new_tokens, "do_sample": True,
                "temperature": self.temperature, "top_p": self.top_p}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    """One completion: its text, how many new tokens, how long generate took."""

    completion: str
    tokens: int
    seconds: float
    token_ids: list[int]


def pick_device(want: str | None = None) -> str:
    """``want`` when given (cpu / cuda / cuda:N / mps, checked against this machine), else
    cuda when there is one, else cpu. UsageError (one line) for anything else."""
    import torch

    if not want:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not DEVICE_RE.match(want):
        raise UsageError(f"--device {want}: not a device; use {DEVICE_CHOICES}")
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {want}: no CUDA device on this machine; use --device cpu")
        count = torch.cuda.device_count()
        index = int(want.partition(":")[2] or 0)
        if index >= count:
            raise UsageError(f"--device {want}: this machine has {count} CUDA device(s), "
                             f"cuda:0 … cuda:{count - 1}")
    if want == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: no Apple GPU (MPS) on this machine; use --device cpu")
    return want


def pick_dtype(run_dir: Path, device: str) -> Any:
    """bf16 on a GPU that has it when the run trained in bf16; else None (the default)."""
    import torch

    from clmtune.backend.tools.generate_io import trained_bf16

    if device.startswith("cuda") and trained_bf16(run_dir) and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    # Trainer saves the tokenizer with each checkpoint; a plain script may keep it in the root.
    for where in (folder, folder.parent):
        if (where / "tokenizer_config.json").is_file() or (where / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(where)
    raise UsageError(f"{folder}: no tokenizer here or in {folder.parent}; save the tokenizer "
                     "with the model (trainer.save_model does)")


def load_for_generation(folder: Path, device: str, dtype: Any = None) -> tuple[Any, Any]:
    """(model in eval mode on ``device``, tokenizer) from a model folder or checkpoint.

    A LoRA folder (``adapter_config.json``) loads through
    ``clmtune.backend.lora.load_peft_for_inference``; anything else through
    ``AutoModelForCausalLM.from_pretrained(folder)`` (``dtype`` None: its default).
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in a command's output
    folder = Path(folder)
    tokenizer = _load_tokenizer(folder)
    if (folder / "adapter_config.json").is_file():
        from clmtune.backend.lora import load_peft_for_inference  # type: ignore[import-not-found]

        model = load_peft_for_inference(folder, dtype=dtype, device=device)
    else:
        from transformers import AutoModelForCausalLM

        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs).to(device)
    model.eval()
    return model, tokenizer


def position_limit(model: Any) -> int | None:
    """How many positions the model has (learned position embeddings: GPT-2's
    ``n_positions``, ``max_position_embeddings``); None when its config sets no limit."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"


def check_length(prompt_tokens: int, max_new_tokens: int, limit: int | None) -> None:
    """UsageError (one line) when the prompt and the new tokens do not fit in ``limit``
    positions: past them a model with learned positions fails with an IndexError."""
    if limit is None or prompt_tokens + max_new_tokens <= limit:
        return
    if prompt_tokens >= limit:
        room = limit - max_new_tokens
        fix = (f"shorten it to at most {room} tokens to keep --max-new-tokens {max_new_tokens}"
               if room >= 1 else f"shorten it and lower --max-new-tokens (together ≤ {limit})")
        raise UsageError(f"prompt ({_tokens(prompt_tokens)}) alone fills the model's {limit} "
                         f"positions; {fix}")
    raise UsageError(f"prompt ({_tokens(prompt_tokens)}) + --max-new-tokens {max_new_tokens} "
                     f"exceeds the model's {limit} positions; lower --max-new-tokens to "
                     f"≤ {limit - prompt_tokens}")


def generate(model: Any, tokenizer: Any, prompt: str, settings: GenSettings,
             streamer: Any = None) -> Generation:
    """One completion of ``prompt`` (seeded right before ``generate`` when sampling).

    Every path (the CLI, the warm helper, training-time samples) comes through here, so the
    length check below covers them all."""
    import torch
    from transformers import set_seed

    if not prompt:
        raise UsageError("prompt: empty; give some text to continue")
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    check_length(int(inputs["input_ids"].shape[1]), settings.max_new_tokens,
                 position_limit(model))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if settings.seed is not None:
        set_seed(settings.seed)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, **settings.generate_kwargs(), pad_token_id=pad,
                             streamer=streamer)
    seconds = time.perf_counter() - start
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    text = tokenizer.decode(new, skip_special_tokens=True)
    return Generation(text, len(new), seconds, new)


def with_seed(settings: GenSettings) -> GenSettings:
    """Sampling without a seed gets one, so the record says how to reproduce it."""
    if settings.sampling and settings.seed is None:
        settings.seed = random.randrange(2**31)
    return settings


def record(*, choice: Any, prompt: str, gen: Generation, settings: GenSettings, device: str,
           dtype: Any, source: str) -> dict[str, Any]:
    """The ``samples.jsonl`` entry for one generation."""
    return {
        "time": time.time(), "source": source, "checkpoint": choice.label, "step": choice.step,
        "prompt": prompt, "completion": gen.completion, "tokens": gen.tokens,
        "seconds": round(gen.seconds, 4),
        "settings": {**settings.to_json(), "device": device,
                     "dtype": str(dtype).removeprefix("torch.") if dtype else "default"},
    }  # fmt: skip


def read_prompts(prompts: list[str] | None, prompt_file: str | None) -> list[str]:
    """Prompts from ``--prompt`` (any number) and ``--prompt-file`` (one per non-empty line)."""
    found = list(prompts or [])
    if prompt_file:
        try:
            text = Path(prompt_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.__class__.__name__
            raise UsageError(f"--prompt-file {prompt_file}: cannot read it ({why})") from None
        found += [line for line in text.splitlines() if line.strip()]
    if not found:
        raise UsageError("generate: give --prompt TEXT or --prompt-file FILE")
    if any(not p for p in found):
        raise UsageError("--prompt: empty; give some text to continue")
    return found
