"""Checks of ``[peft]`` and of ``[model] load_in_4bit`` / ``load_in_8bit`` (LoRA, QLoRA).

``check_peft`` is pure Python (``importlib.util.find_spec`` only: nothing is imported), so the
TUI runs it as the user types, through ``validate.validate_document``. ``peft_hardware_problems``
imports torch to look for a CUDA GPU: it runs where the other hardware checks run
(``hardware.hardware_problems``), i.e. before a run loads anything.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from clmtune.backend.settings.problems import FieldError

if TYPE_CHECKING:
    from clmtune.backend.settings.run_config import RunConfig, Settings

#: The one pip command that installs what LoRA and QLoRA need.
LORA_PIP = "pip install 'clmtune-tui[lora]'"

_QUANT_KEYS = ("load_in_4bit", "load_in_8bit")


def installed(package: str) -> bool:
    """Whether ``package`` can be imported here (without importing it)."""
    try:
        return find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _quantised(settings: Settings) -> list[str]:
    return [k for k, v in (("load_in_4bit", settings.model.load_in_4bit),
                           ("load_in_8bit", settings.model.load_in_8bit)) if v is True]


def check_peft(ctx: Any, settings: Settings) -> None:
    """Cross-field rules of ``[peft]`` and quantised loading; ``ctx`` is validate's ``_Ctx``.

    ``ctx.error`` is always an error; ``ctx.soft`` is a warning while editing and an error
    when a run starts (a missing package may be installed on the machine that trains).
    """
    peft = settings.peft
    lora = peft.method == "lora"
    if lora and not installed("peft"):
        ctx.soft("peft", "method",
                 f"'lora' needs the peft package, which is not installed; run: {LORA_PIP}")
    target = peft.target_modules
    if isinstance(target, str) and target != "auto":
        ctx.error("peft", "target_modules",
                  f'must be "auto" or an array of module names, e.g. ["q_proj", "v_proj"]; '
                  f"got '{target}'")
    elif isinstance(target, list) and not target:
        ctx.error("peft", "target_modules",
                  'is empty; list module names or remove it (default "auto")')
    if not lora:
        ignored = [k for k in ("r", "lora_alpha", "lora_dropout", "target_modules",
                               "modules_to_save", "bias", "use_rslora", "use_dora")
                   if peft.was_set(k)]
        if ignored:
            ctx.warn("peft", ignored[0],
                     f"ignored while method = \"none\" ({', '.join(ignored)}); "
                     'set method = "lora" to train an adapter')
    quantised = _quantised(settings)
    if len(quantised) == 2:
        ctx.error("model", "load_in_8bit",
                  "load_in_4bit and load_in_8bit cannot both be true; keep one of them")
    for key in quantised[:1]:
        if not lora:
            ctx.error("model", key,
                      'a quantised model cannot be fine-tuned in full; set [peft] method = '
                      '"lora" (QLoRA) or set this to false')
        if not installed("bitsandbytes"):
            ctx.soft("model", key,
                     f"needs the bitsandbytes package, which is not installed; run: {LORA_PIP}")


def peft_hardware_problems(cfg: RunConfig) -> list[FieldError]:
    """``load_in_4bit`` / ``load_in_8bit`` without a CUDA GPU (imports torch only then)."""
    settings = cfg.settings
    quantised = _quantised(settings)
    if not quantised:
        return []
    import torch  # lazy: seconds to import, and the TUI never may

    file = str(cfg.source) if cfg.source else None
    if torch.cuda.is_available() and not settings.training.use_cpu:
        return []
    key = quantised[0]
    return [FieldError("model", key,
                       f"{key} = true needs a CUDA GPU (bitsandbytes) and none is visible here; "
                       f"set {key} = false", file)]
