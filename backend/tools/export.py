"""``clmtune export``: a clean, shareable model folder from a run (the work; CLI in export_cli).

- A LoRA run with ``merge``: base model + adapter, ``merge_and_unload``, saved as a plain
  ``from_pretrained``-loadable model with the tokenizer.
- A LoRA run without ``merge``: the adapter files, their config and the tokenizer.
- A full fine-tuning run: the chosen model (final, or a checkpoint) and tokenizer; never the
  optimizer, scheduler or RNG state.

Every export gets a ``README.md`` model card. The folder is written next to OUT under a
temporary name and renamed when complete, so a failed export leaves no half folder; an OUT that
exists and is not empty is refused (export never overwrites). The folder and its files get the
modes ``mkdir`` and ``open`` would give them under the umask (an empty OUT the user made keeps
its own), whatever modes the libraries' temporary files had.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError
from clmtune.backend.lora import ADAPTER_CONFIG, adapter_base, is_adapter_folder

DTYPES = ("bfloat16", "float16", "float32")
#: Files of a model folder that are for sharing (weights aside): tokenizer and generation.
_SHARED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt",
                 "tokenizer.model", "spiece.model", "chat_template.jinja", "chat_template.json",
                 "generation_config.json")
_ADAPTER_FILES = (ADAPTER_CONFIG, "adapter_model.safetensors", "adapter_model.bin")

Progress = Callable[[str], None]


@dataclass
class ExportResult:
    """What was exported where (``clmtune export --json`` prints ``to_json()``)."""

    out: Path
    source: Path
    kind: str  # "merged" | "adapter" | "full"
    dtype: str | None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "source": str(self.source), "kind": self.kind,
                "dtype": self.dtype, "files": list(self.files)}


# ------------------------------------------------------------------------ choosing

def check_out(out: Path) -> None:
    """Refuse an OUT that exists and is not an empty folder (one line)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"export: {out} exists and is not a folder",
                         "give a new folder name for the export")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"export: {out} exists and is not empty",
                         "give a new (or empty) folder; export never overwrites files")


def _has_model(folder: Path) -> bool:
    if is_adapter_folder(folder):
        return True
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")
    return (folder / "config.json").is_file() and any((folder / w).is_file() for w in weights)


def choose_source(run_dir: Path, *, checkpoint: int | None = None, final: bool = False) -> Path:
    """The folder to export: ``checkpoint-N``, the final model, or (neither given) the final
    model when the run has one, else its last complete checkpoint."""
    from clmtune.backend.rundir.checkpoints import list_checkpoints

    checkpoints = list_checkpoints(run_dir)
    complete = [c for c in checkpoints if c.state in ("complete", "weights-only")]
    names = ", ".join(str(c.step) for c in complete) or "none"
    if checkpoint is not None:
        match = next((c for c in complete if c.step == checkpoint), None)
        if match is None:
            raise UsageError(f"export: {run_dir.name} has no usable checkpoint-{checkpoint} "
                             f"(checkpoints: {names})", "pick one of those with --checkpoint N")
        return match.path
    if _has_model(run_dir):
        return run_dir
    if final:
        raise UsageError(f"export: {run_dir.name} has no final model (it did not finish; "
                         f"checkpoints: {names})", "export a checkpoint with --checkpoint N")
    if not complete:
        raise UsageError(f"export: {run_dir.name} has no final model and no usable checkpoint",
                         "train it further first (clmtune train … --resume last)")
    return complete[-1].path


# ------------------------------------------------------------------------ exporting

def _torch_dtype(name: str | None):
    import torch

    return "auto" if name is None else getattr(torch, name)


def _tokenizer_dir(source: Path, run_dir: Path) -> Path | None:
    for folder in (source, run_dir):
        if (folder / "tokenizer_config.json").is_file():
            return folder
    return None


def _copy_shared(source: Path, run_dir: Path, dest: Path) -> None:
    tok = _tokenizer_dir(source, run_dir)
    for folder in (tok, source):
        if folder is None:
            continue
        for name in _SHARED_FILES:
            if (folder / name).is_file() and not (dest / name).exists():
                shutil.copy2(folder / name, dest / name)


def _export_merged(source: Path, dest: Path, dtype: str | None, progress: Progress) -> None:
    from clmtune.backend.lora import load_peft_for_inference

    progress(f"loading the base model {adapter_base(source)} and the adapter")
    model = load_peft_for_inference(source, dtype="float32", device="cpu")
    progress("merging the adapter into the base weights")
    merged = model.merge_and_unload()
    target = dtype or _saved_dtype(merged)
    if target:
        merged = merged.to(_torch_dtype(target))
    progress(f"saving the merged model ({target or 'float32'})")
    merged.save_pretrained(dest)


def _saved_dtype(model: Any) -> str | None:
    """The dtype the base checkpoint was saved in (its config), as a name."""
    value = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    name = str(value).replace("torch.", "") if value is not None else None
    return name if name in DTYPES else None


def _export_full(source: Path, dest: Path, dtype: str | None, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM

    progress(f"loading {source.name}")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(dtype))
    progress(f"saving the model ({dtype or 'as saved'})")
    model.save_pretrained(dest)


def _export_adapter(source: Path, dest: Path, progress: Progress) -> None:
    progress("copying the adapter and its config")
    for name in _ADAPTER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)


def _work_folder(out: Path) -> Path:
    """A new hidden folder beside ``out``, made by ``mkdir`` (so under the umask; mkdtemp
    would make it 0700 and the export would keep that)."""
    for _ in range(100):
        work = out.parent / f".{out.name}.export-{secrets.token_hex(4)}"
        try:
            work.mkdir()
        except FileExistsError:
            continue
        return work
    raise FileExistsError(f"export: no free temporary name beside {out}")


def _umask_modes(folder: Path) -> None:
    """Files and folders under ``folder`` get the modes ``open`` and ``mkdir`` give under the
    umask (read off ``folder``, which ``mkdir`` made): savers that write a temporary file and
    rename it (safetensors shards) leave 0600."""
    dir_mode = stat.S_IMODE(folder.stat().st_mode)
    file_mode = dir_mode & 0o666
    for root, dirs, files in os.walk(folder):
        for names, mode in ((dirs, dir_mode), (files, file_mode)):
            for name in names:
                path = os.path.join(root, name)
                if not os.path.islink(path):  # chmod would follow it out of the export
                    os.chmod(path, mode)


def export_run(run_dir: Path, out: Path, *, checkpoint: int | None = None, final: bool = False,
               merge: bool = False, dtype: str | None = None,
               progress: Progress = lambda _line: None) -> ExportResult:
    """Export a run (see the module docstring); raises UsageError for bad input (one line)."""
    run_dir, out = Path(run_dir), Path(out)
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"export: --dtype {dtype} is not supported",
                         f"use one of {', '.join(DTYPES)}")
    check_out(out)
    source = choose_source(run_dir, checkpoint=checkpoint, final=final)
    lora = is_adapter_folder(source)
    if merge and not lora:
        raise UsageError(f"export: --merge is for LoRA runs; {run_dir.name} fine-tuned the "
                         "whole model", "drop --merge (the model is exported as it is)")
    kind = "merged" if merge else ("adapter" if lora else "full")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = _work_folder(out)
    try:
        if kind == "merged":
            _export_merged(source, work, dtype, progress)
        elif kind == "adapter":
            _export_adapter(source, work, progress)
        else:
            _export_full(source, work, dtype, progress)
        _copy_shared(source, run_dir, work)
        progress("writing the model card")
        (work / "README.md").write_text(model_card(run_dir, source, kind, dtype),
                                        encoding="utf-8")
        _umask_modes(work)
        check_out(out)  # nothing appeared there meanwhile
        if out.is_dir():
            os.chmod(work, stat.S_IMODE(out.stat().st_mode))  # the user's folder, their mode
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress(f"exported to {out}")
    files = sorted(p.name for p in out.iterdir())
    return ExportResult(out, source, kind, dtype, files)


# ------------------------------------------------------------------------ model card

def _clmtune_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clmtune-tui")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class CardFigures:
    """What the model card says about the exported weights: where they come from, their step,
    and the evaluation of those very weights (None when there was none)."""

    origin: str
    step: int | None
    eval_label: str
    eval_loss: float | None
    perplexity: float | None


def _checkpoint_step(source: Path, state: Any) -> int | None:
    step = state.get("global_step") if isinstance(state, dict) else None
    if isinstance(step, int) and not isinstance(step, bool):
        return step
    try:
        return int(source.name.removeprefix("checkpoint-"))
    except ValueError:
        return None


def _card_figures(run_dir: Path, source: Path, summary: Any) -> CardFigures:
    """The final model: the run's final figures. A checkpoint: its own step, and the last
    evaluation at or before it in its own ``trainer_state.json`` (later ones judged other
    weights)."""
    from clmtune.backend.events import INT_LIMIT, perplexity, read_json
    from clmtune.backend.rundir.checkpoints import eval_at

    if source.resolve() == run_dir.resolve():
        eval_metrics = (summary.metrics or {}).get("eval") or {}
        return CardFigures("the final model", summary.global_step, "final eval loss",
                           eval_metrics.get("eval_loss", summary.last_eval_loss),
                           eval_metrics.get("perplexity", summary.perplexity))
    state = read_json(source / "trainer_state.json")
    step = _checkpoint_step(source, state)
    history = state.get("log_history") if isinstance(state, dict) else None
    found = eval_at(history, INT_LIMIT if step is None else step)
    origin = f"`{source.name}`" + (f" (step {step})" if step is not None else "")
    if found is None:
        return CardFigures(origin, step, "eval loss", None, None)
    return CardFigures(origin, step, f"eval loss (at step {found[0]})", found[1],
                       perplexity(found[1]))


def model_card(run_dir: Path, source: Path, kind: str, dtype: str | None) -> str:
    """A short README.md: base model, data, key settings, and the exported weights' step,
    eval loss and perplexity (:func:`_card_figures`)."""
    from clmtune.backend.cli_text import fmt_float
    from clmtune.backend.rundir.summary import read_run

    summary = read_run(run_dir)
    settings = summary.settings or {}
    model, data = settings.get("model") or {}, settings.get("data") or {}
    training, peft = settings.get("training") or {}, settings.get("peft") or {}
    base = model.get("model_name_or_path") or summary.model or "-"
    if kind in ("merged", "adapter"):
        base = adapter_base(source)
    figures = _card_figures(run_dir, source, summary)
    what = {"merged": "LoRA adapter merged into the base weights",
            "adapter": "LoRA adapter (load it on the base model with peft)",
            "full": "fully fine-tuned model"}[kind]
    data_files = [str(data[k]) for k in ("dataset_name", "train_file", "validation_file")
                  if data.get(k)]
    lines = [f"# {run_dir.name}", "", f"A {what}, exported by clmtune {_clmtune_version()} "
             f"from {figures.origin} of run `{run_dir.name}`.", "",
             f"- base model: `{base}`",
             f"- data: {', '.join(f'`{d}`' for d in data_files) or '-'}",
             f"- steps trained: {'-' if figures.step is None else figures.step}",
             f"- {figures.eval_label}: {fmt_float(figures.eval_loss)}",
             f"- perplexity: {fmt_float(figures.perplexity)}",
             f"- weights dtype: {dtype or 'as saved'}", "", "## Settings", ""]
    keys = [("training", k) for k in ("learning_rate", "num_train_epochs", "max_steps",
                                      "per_device_train_batch_size",
                                      "gradient_accumulation_steps", "lr_scheduler_type",
                                      "seed", "bf16", "fp16")]
    keys += [("data", "block_size")]
    keys += [("peft", k) for k in ("method", "r", "lora_alpha", "lora_dropout",
                                   "target_modules", "use_rslora", "use_dora")]
    keys += [("model", k) for k in ("load_in_4bit", "load_in_8bit")]
    sections = {"training": training, "data": data, "peft": peft, "model": model}
    for section, key in keys:
        if key in sections[section]:
            lines.append(f"- `[{section}] {key}` = `{json.dumps(sections[section][key])}`")
    if kind == "adapter":
        lines += ["", "## Use", "", "```python", "from peft import AutoPeftModelForCausalLM",
                  "model = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")", "```"]
    else:
        lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM",
                  "model = AutoModelForCausalLM.from_pretrained(\"PATH\")", "```"]
    return "\n".join(lines) + "\n"
