"""One training run, end to end, the way ``run_clm.py`` does it, reporting through events.

:func:`run_training` loads the model and data, trains with the real ``Trainer``
(callbacks passed in do the live reporting, checkpoint marking and stopping),
then writes Hugging Face's usual outputs into the run directory: the final model
and tokenizer, ``train_results.json``, ``eval_results.json``, ``all_results.json``
(with ``perplexity``), ``trainer_state.json`` and the ``README.md`` model card.

A run stopped by a callback (``control.should_training_stop`` before the last
step) keeps the checkpoint the callback asked for, skips the final evaluation and
outputs, and returns status ``"stopped"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.data import PreparedData, prepare_datasets
from clmtune.backend.events import Emit, make_event, read_json
from clmtune.backend.hub_check import check_hub_models
from clmtune.backend.lora import lora_log_line
from clmtune.backend.metrics import (
    make_compute_metrics,
    perplexity,
    preprocess_logits_for_metrics,
)
from clmtune.backend.model import ModelInfo, TrainingSetupError, load_model_and_tokenizer
from clmtune.backend.samples import sample_callbacks

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from clmtune.backend.settings.run_config import RunConfig

__all__ = ["TrainOutcome", "TrainingSetupError", "run_training", "build_training_arguments"]


@dataclass
class TrainOutcome:
    """How a run ended: ``status`` is ``"completed"`` or ``"stopped"``."""

    status: str
    train_metrics: dict[str, Any] = field(default_factory=dict)
    eval_metrics: dict[str, Any] = field(default_factory=dict)
    global_step: int = 0


# ----------------------------------------------------------------- TrainingArguments


def _expects_validation(cfg: RunConfig) -> bool:
    """Whether the data will have a validation split (known for sure only after loading).

    Without streaming run_clm always has one (carved out of train when missing); a
    streamed hub dataset is assumed to have one and corrected after loading.
    """
    settings = cfg.settings
    if not settings.data.streaming:
        return True
    return bool(settings.data.validation_file or settings.data.dataset_name)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_training_arguments(
    cfg: RunConfig, output_dir: str | os.PathLike[str], *, has_validation: bool
) -> TrainingArguments:
    """``TrainingArguments`` for a run; settings the hardware cannot honour raise
    :class:`TrainingSetupError` with a one-line message instead of a traceback."""
    from transformers import TrainingArguments

    from clmtune.backend.settings.training_args import training_arguments_kwargs

    kwargs = training_arguments_kwargs(cfg, str(output_dir), has_validation=has_validation)
    on_cpu = bool(kwargs.get("use_cpu")) or not _cuda_available()
    for flag in ("fp16", "fp16_full_eval"):
        if kwargs.get(flag) and on_cpu:
            raise TrainingSetupError(
                f"[training] {flag} = true needs a CUDA GPU and none is available here",
                f"set [training] {flag} = false, or run on a GPU machine",
            )
    try:
        return TrainingArguments(**kwargs)
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or ["invalid value"])[0]
        if "bf16" in first:
            raise TrainingSetupError(
                "[training] bf16 = true is not supported by this machine's hardware",
                "set [training] bf16 = false, or run on a GPU with bfloat16 (Ampere or newer)",
            ) from exc
        raise TrainingSetupError(
            f"[training] invalid settings: {first}", "fix the [training] section"
        ) from exc


# ------------------------------------------------------------------------ reporting


def _devices(args: TrainingArguments) -> list[str]:
    import torch

    kind = args.device.type
    if kind == "cuda":
        count = min(torch.cuda.device_count(), max(1, args.world_size))
        return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count)]
    if kind == "cpu":
        return [f"cpu ({torch.get_num_threads()} threads)"]
    return [kind]


def _precision(args: TrainingArguments) -> str:
    if args.bf16:
        return "bf16"
    if args.fp16:
        return "fp16"
    return "fp32"


def _settings_summary(
    cfg: RunConfig, args: TrainingArguments, data: PreparedData, info: ModelInfo
) -> dict[str, Any]:
    settings = cfg.settings
    train_file = settings.data.train_file
    return {
        "model": info.name or f"{info.model_type} (from scratch)",
        "data": data.dataset_name or (Path(str(train_file)).name if train_file else None),
        "packing": settings.data.packing,
        "block_size": data.block_size,
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "total_train_batch_size": args.per_device_train_batch_size
        * args.gradient_accumulation_steps
        * max(1, args.world_size),
        "max_steps": args.max_steps,
        "num_train_epochs": args.num_train_epochs,
        "precision": _precision(args),
        "dtype": settings.model.dtype,
        "seed": args.seed,
    }


def _planned_max_steps(trainer: Trainer) -> int | None:
    """The max_steps Trainer will use, computed with Trainer's own method when possible."""
    args = trainer.args
    if args.max_steps > 0:
        return int(args.max_steps)
    try:
        values = trainer.set_initial_training_values(args, trainer.get_train_dataloader())
        return int(values[-1])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None  # transformers changed the helper: the callback reports it at train begin


def _resume_step(resume_from: str | None) -> int | None:
    if not resume_from:
        return None
    state = read_json(Path(resume_from) / "trainer_state.json")
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def _model_card_kwargs(cfg: RunConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"tasks": "text-generation"}
    settings = cfg.settings
    name = settings.model.model_name_or_path
    if name:
        kwargs["finetuned_from"] = str(name)
    dataset_name = settings.data.dataset_name
    if dataset_name:
        kwargs["dataset_tags"] = dataset_name
        config_name = settings.data.dataset_config_name
        if config_name:
            kwargs["dataset_args"] = config_name
            kwargs["dataset"] = f"{dataset_name} {config_name}"
        else:
            kwargs["dataset"] = dataset_name
    return kwargs


def _data_file_error(cfg: RunConfig, exc: BaseException) -> TrainingSetupError:
    """Which data file ``datasets`` could not parse, and why (it says only "an error occurred").

    With a train and a validation file, each is parsed alone (only now, after a failure) to
    find the one at fault.
    """
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    cause = exc.__cause__ or exc.__context__ or exc
    why = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    data = cfg.settings.data
    files = [(key, str(path)) for key, path in (("validation_file", data.validation_file),
                                                ("train_file", data.train_file)) if path]
    key, path = files[-1] if files else ("dataset_name", str(data.dataset_name))
    kind = Path(path).suffix.lstrip(".").lower()
    builder = {"jsonl": "json", "txt": "text"}.get(kind, kind)
    if len(files) > 1:
        try:
            load_dataset(builder, data_files={"train": files[0][1]}, split="train")
        except DatasetGenerationError as first:
            key, path = files[0]
            cause = first.__cause__ or first.__context__ or first
            why = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return TrainingSetupError(
        f"[data] {key} = {path!r} cannot be read as {kind or 'data'}: {why}"
        f" ({type(cause).__name__})",
        "fix the file: .json/.jsonl needs one JSON object per line, .csv a header row and the"
        " same number of fields on every line",
    )


# ------------------------------------------------------------------------- MFU


def _mfu_fields(cfg: RunConfig, args: TrainingArguments, model: Any,
                block_size: int | None) -> dict[str, Any]:
    """``run_started``'s MFU fields (backend.mfu): FLOPs per token and the device's peak."""
    from clmtune.backend import mfu

    name = None
    if args.device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(args.device)
    precision = mfu.precision_of(bf16=args.bf16, fp16=args.fp16, tf32=args.tf32)
    return mfu.run_started_fields(model, block_size, device_name=name, precision=precision,
                                  override_tflops=cfg.settings.launch.peak_tflops)


def _efficiency(args: TrainingArguments, steps: int, metrics: dict[str, Any],
                block_size: int | None, fields: dict[str, Any]) -> dict[str, float]:
    """``train_tokens_per_second`` and ``train_mfu`` of this attempt (results files too)."""
    from clmtune.backend import mfu

    per_step = (args.per_device_train_batch_size * args.gradient_accumulation_steps
                * args.world_size * (block_size or 0))
    return mfu.final_figures(steps, per_step, metrics.get("train_runtime"),
                             {**fields, "world_size": args.world_size})


# ------------------------------------------------------- resuming with new settings

#: Param-group keys that the settings decide besides the learning rate ([training]
#: weight_decay, adam_beta1/adam_beta2, adam_epsilon), with the setting each one comes from.
_GROUP_KEYS = {"weight_decay": ("weight_decay",), "betas": ("adam_beta1", "adam_beta2"),
               "eps": ("adam_epsilon",)}


def _plain(value: Any) -> Any:
    """A param-group value comparable with ``==`` (tuples for betas, floats for tensors)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return tuple(value) if isinstance(value, list | tuple) else value


def optimizer_settings(optimizer: Any) -> list[dict[str, Any]]:
    """Per param group, what the settings put there: ``initial_lr`` (the base learning rate,
    set by the scheduler) and the keys of ``_GROUP_KEYS`` the group has."""
    return [
        {key: group[key] for key in ("initial_lr", *_GROUP_KEYS) if key in group}
        for group in optimizer.param_groups
    ]


def restore_optimizer_settings(
    optimizer: Any, scheduler: Any, fresh: list[dict[str, Any]]
) -> dict[str, tuple[Any, Any]]:
    """Put the settings' values back over those a checkpoint's optimizer.pt/scheduler.pt
    brought (``torch`` loads a param group's lr, initial_lr, weight_decay, betas and eps, and
    LambdaLR its base_lrs): ``fresh`` is :func:`optimizer_settings` of the optimizer as built
    from the current settings, before the checkpoint was loaded.

    Groups are matched by position: Trainer builds them in a fixed order (the parameters it
    decays, then biases and norms with weight_decay 0), which ``load_state_dict`` requires to
    match. A new base learning rate also sets the scheduler's ``base_lrs`` and the current rate
    (base × the schedule's factor at this step for a LambdaLR, so the first resumed step uses
    it; the old rate scaled for other schedulers that keep a base). The moment estimates (the
    optimizer's ``state``) stay as saved. Returns ``{setting: (checkpoint's value, now)}``,
    empty when nothing differs (the exact resume is untouched).
    """
    groups = optimizer.param_groups
    if len(groups) != len(fresh):
        return {}
    sched = scheduler if hasattr(scheduler, "base_lrs") else getattr(scheduler, "scheduler", None)
    applied: dict[str, tuple[Any, Any]] = {}
    new_lr = False
    for index, (group, want) in enumerate(zip(groups, fresh, strict=True)):
        for key, names in _GROUP_KEYS.items():
            if key not in want or key not in group or _plain(group[key]) == _plain(want[key]):
                continue
            old, new = _plain(group[key]), _plain(want[key])
            if len(names) > 1 and isinstance(old, tuple) and isinstance(new, tuple):
                pairs = list(zip(names, old, new, strict=False))  # betas: one setting each
            else:
                pairs = [(names[0], old, new)]
            for name, was, now in pairs:
                if was != now:
                    applied.setdefault(name, (was, now))
            group[key] = want[key]
        base, was = want.get("initial_lr"), group.get("initial_lr")
        if base is None or was is None or _plain(base) == _plain(was):
            continue
        applied.setdefault("learning_rate", (_plain(was), _plain(base)))
        new_lr = True
        group["initial_lr"] = base
        base_lrs = getattr(sched, "base_lrs", None)
        if base_lrs is not None and index < len(base_lrs):
            base_lrs[index] = base
        lambdas = getattr(sched, "lr_lambdas", None)
        if lambdas is not None and index < len(lambdas):
            group["lr"] = base * lambdas[index](sched.last_epoch)
        else:
            group["lr"] = group["lr"] * base / was if was else base
    if new_lr and sched is not None and hasattr(sched, "_last_lr"):
        sched._last_lr = [group["lr"] for group in groups]  # what Trainer logs for the step
    return applied


def _applied_message(applied: dict[str, tuple[Any, Any]], step: int, lr_now: Any) -> str:
    parts = []
    order = ["learning_rate", *(name for names in _GROUP_KEYS.values() for name in names)]
    for name, (was, now) in sorted(applied.items(), key=lambda item: order.index(item[0])):
        text = f"{name} {was!r} → {now!r}"
        if name == "learning_rate":
            text += f" (the rest of the schedule uses {now!r}; step {step + 1} trains at " \
                    f"{float(lr_now):.4g})"  # fmt: skip
        parts.append(text)
    return (
        f"resumed at step {step} with the current settings over the checkpoint's optimizer: "
        + ", ".join(parts)
        + "; the optimizer's moment estimates stay as saved"
    )


def _trainer_class(send: Emit) -> type[Trainer]:
    """``Trainer`` whose resume keeps the settings' optimizer values (see
    :func:`restore_optimizer_settings`) and says which it applied in a ``warning`` event.

    ``Trainer._prepare_for_training`` builds the optimizer and scheduler from the arguments,
    then ``_load_optimizer_and_scheduler`` loads the checkpoint's over them: between the two is
    the only moment both the settings' values and the checkpoint's are known.
    """
    from transformers import Trainer

    class ResumingTrainer(Trainer):
        def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
            if checkpoint is None or self.is_deepspeed_enabled or self.optimizer is None:
                super()._load_optimizer_and_scheduler(checkpoint)
                return  # DeepSpeed has loaded its own optimizer state already
            fresh = optimizer_settings(self.optimizer)
            super()._load_optimizer_and_scheduler(checkpoint)
            applied = restore_optimizer_settings(self.optimizer, self.lr_scheduler, fresh)
            if applied:
                step = int(self.state.global_step)
                lr_now = self.optimizer.param_groups[0]["lr"]
                send(make_event(
                    "warning", code="resume_settings_applied", step=step,
                    applied={k: list(v) for k, v in applied.items()},
                    message=_applied_message(applied, step, lr_now),
                ))  # fmt: skip

    return ResumingTrainer


# ------------------------------------------------------------------------- the run


def run_training(
    cfg: RunConfig,
    run_dir: Path,
    *,
    emit: Emit,
    callbacks: Sequence[TrainerCallback] = (),
    resume_from: str | None = None,
) -> TrainOutcome:
    """Train one run into ``run_dir`` (the Trainer ``output_dir``) and write its outputs.

    ``resume_from`` is a checkpoint directory already checked to be complete.
    Raises :class:`TrainingSetupError` for settings that cannot work (one line).
    Only the main process emits events.
    """
    from transformers import default_data_collator, set_seed

    run_dir = Path(run_dir)
    cfg = cfg.resolved()  # relative paths are relative to the TOML file, not the cwd
    args = build_training_arguments(cfg, run_dir, has_validation=_expects_validation(cfg))
    if cfg.settings.data.streaming and args.max_steps <= 0:
        raise TrainingSetupError(
            "[training] max_steps is required with [data] streaming = true (a stream has no "
            "length to count epochs in)",
            "set [training] max_steps",
        )
    is_main = args.process_index == 0

    def send(event: dict[str, Any]) -> None:
        if is_main:
            emit(event)

    # run_clm seeds before building the model so a from-scratch init is reproducible.
    set_seed(args.seed)
    send(make_event("phase", phase="loading_model", progress=None, detail="loading"))
    # Seconds, not half a minute of retries, without network.
    note = check_hub_models(cfg.model)
    if note:
        send(make_event("warning", code="hub_offline", message=note))
    model, tokenizer, info = load_model_and_tokenizer(cfg)
    send(
        make_event(
            "phase",
            phase="loading_model",
            progress=1.0,
            detail=f"{info.name or info.model_type}: " + (
                f"{info.num_params - info.trainable_params:,} parameters + LoRA adapter "
                f"{info.trainable_params:,}" if info.peft else f"{info.num_params:,} parameters"),
        )
    )
    from datasets.exceptions import DatasetGenerationError

    try:
        data = prepare_datasets(
            cfg,
            tokenizer,
            model.config,
            emit=send,
            main_process_first=lambda desc: args.main_process_first(desc=desc),
            cache_dir=cfg.settings.model.cache_dir,
        )
    except DatasetGenerationError as exc:
        raise _data_file_error(cfg, exc) from exc
    if data.eval_dataset is None and args.do_eval:
        args = build_training_arguments(cfg, run_dir, has_validation=False)

    evaluating = data.eval_dataset is not None
    trainer = _trainer_class(send)(
        model=model,
        args=args,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        processing_class=tokenizer,
        data_collator=default_data_collator,
        compute_metrics=make_compute_metrics() if evaluating else None,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics if evaluating else None,
        callbacks=[*callbacks, *sample_callbacks(cfg, run_dir, send)],
    )
    mfu_fields = _mfu_fields(cfg, args, model, data.block_size)
    if args.fsdp and not getattr(trainer, "is_fsdp_enabled", False):  # accelerate: GPUs only
        send(make_event("warning", code="fsdp_ignored", message="[training] fsdp is set but "
                        "accelerate does not shard on CPU processes: this run trains full "
                        "copies with DDP (gloo); FSDP needs CUDA GPUs"))  # fmt: skip
    send(
        make_event(
            "run_started",
            run_dir=str(run_dir),
            pid=os.getpid(),
            host=os.uname().nodename if hasattr(os, "uname") else None,
            world_size=args.world_size,
            devices=_devices(args),
            num_params=info.num_params,
            trainable_params=info.trainable_params,
            max_steps=_planned_max_steps(trainer),
            num_train_epochs=args.num_train_epochs,
            train_samples=data.train_samples,
            eval_samples=data.eval_samples,
            block_size=data.block_size,
            resumed_from=resume_from,
            resume_step=_resume_step(resume_from),
            settings=_settings_summary(cfg, args, data, info),
            **mfu_fields,
            peft=info.peft,
        )
    )
    if info.peft:  # LoRA: which layers got an adapter, and how much of the model trains
        send(make_event("log", message=lora_log_line(info)))

    send(make_event("phase", phase="training", progress=None, detail=""))
    result = trainer.train(resume_from_checkpoint=resume_from)
    train_metrics = dict(result.metrics)
    if data.train_samples is not None:
        train_metrics["train_samples"] = data.train_samples
    state = trainer.state
    steps = state.global_step - (_resume_step(resume_from) or 0)  # this attempt's
    train_metrics.update(_efficiency(args, steps, train_metrics, data.block_size, mfu_fields))
    if state.max_steps and state.global_step < state.max_steps:
        send(make_event("final_metrics", split="train", metrics=train_metrics))
        return TrainOutcome("stopped", train_metrics, {}, state.global_step)

    send(make_event("phase", phase="saving", progress=None, detail="model and tokenizer"))
    trainer.save_model()
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()
    send(make_event("final_metrics", split="train", metrics=train_metrics))

    eval_metrics: dict[str, Any] = {}
    if evaluating:
        send(make_event("phase", phase="evaluating", progress=None, detail="final evaluation"))
        eval_metrics = dict(trainer.evaluate())
        if data.eval_samples is not None:
            eval_metrics["eval_samples"] = data.eval_samples
        eval_metrics["perplexity"] = perplexity(float(eval_metrics["eval_loss"]))
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        send(make_event("final_metrics", split="eval", metrics=eval_metrics))

    send(make_event("phase", phase="saving", progress=None, detail="model card"))
    card = _model_card_kwargs(cfg)
    if args.push_to_hub:
        trainer.push_to_hub(**card)
    else:
        trainer.create_model_card(**card)
    return TrainOutcome("completed", train_metrics, eval_metrics, state.global_step)
