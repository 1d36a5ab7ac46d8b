"""TrainerCallback → events, checkpoint completion markers and the safe stop.

The callback knows nothing about the UI: it gets an ``emit(event)`` function.
Every reporting hook returns at once unless this is the main process
(``state.is_world_process_zero``); the stop decision and the checkpoint barrier
are the exceptions, because every rank must take part in them.

Cost per optimizer step (the only per-step hook is ``on_step_end``): one
``time.monotonic()``, an occasional ``stat`` of the stop file (at most every
``StopControl.check_every_s``), and under DDP one broadcast of a one-element
tensor every ``stop_sync_steps`` steps. No tensor is read back per step: loss
and grad norm arrive in ``on_log`` already as Python floats (Trainer syncs
there anyway), and tokens/s comes from batch shapes. Per log: one event line,
and a memory sample at most once a second (``MEMORY_EVERY_S``).

Where ``on_save`` fires (transformers 5.x, ``Trainer._maybe_log_save_evaluate``):
``self._save_checkpoint(model, trial)`` then
``self.callback_handler.on_save(...)``. ``_save_checkpoint`` writes, in order,
the model (``save_model``), optimizer + scheduler, scaler, RNG state,
``trainer_state.json``, and finally rotates old checkpoints. So on rank 0 all
of rank 0's files exist when ``on_save`` runs. Under DDP each rank writes its
own ``rng_state_{rank}.pth`` with no barrier after it, hence the barrier in
:meth:`EventCallback.on_save` before rank 0 writes the marker.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from clmtune.backend.events import Emit, make_event, perplexity
from clmtune.backend.memory import MemorySampler
from clmtune.backend.rundir.layout import COMPLETE_MARKER, STOP_FILE, write_json_atomic

#: Memory samples at logs are at most this often (the memory thread fills longer gaps).
MEMORY_EVERY_S = 1.0


class StopControl:
    """A stop request: a flag set by a signal handler, or the run dir's stop file.

    ``request()`` only sets attributes, so it is safe inside a signal handler.
    ``poll()`` is called every optimizer step; it looks at the file at most
    every ``check_every_s`` seconds so a slow filesystem cannot slow training.
    """

    def __init__(
        self, run_dir: str | os.PathLike[str] | None = None, *, check_every_s: float = 0.2
    ):
        self.stop_file = Path(run_dir) / STOP_FILE if run_dir is not None else None
        self.check_every_s = check_every_s
        self.reason: str | None = None
        self._requested = False
        self._next_check = 0.0

    def request(self, reason: str = "requested") -> None:
        if not self._requested:
            self.reason = reason
        self._requested = True

    @property
    def requested(self) -> bool:
        return self._requested

    def poll(self) -> bool:
        """True once a stop was asked for (flag or file)."""
        if self._requested:
            return True
        if self.stop_file is None:
            return False
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_every_s
        if self.stop_file.exists():
            self.request("stop file")
        return self._requested

    def clear_file(self) -> None:
        """Remove a stale stop file (a new or resumed run starts unstopped)."""
        if self.stop_file is not None:
            try:
                self.stop_file.unlink()
            except FileNotFoundError:
                pass


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def write_complete_marker(checkpoint: Path, *, step: int, world_size: int) -> None:
    """Write ``checkpoint/.clmtune-complete`` atomically (temp file, fsync, rename)."""
    files = sorted(p.name for p in checkpoint.iterdir() if p.name != COMPLETE_MARKER)
    payload = {"step": step, "time": time.time(), "world_size": world_size, "files": files}
    write_json_atomic(checkpoint / COMPLETE_MARKER, payload)


class EventCallback(TrainerCallback):
    """Turns Trainer hooks into events; marks checkpoints complete; honours stop requests."""

    def __init__(
        self,
        emit: Emit,
        stop: StopControl | None = None,
        *,
        memory: MemorySampler | None = None,
        block_size: int | None = None,
        stop_sync_steps: int = 10,
        memory_every_s: float = MEMORY_EVERY_S,
    ) -> None:
        self.emit = emit
        self.stop = stop if stop is not None else StopControl()
        self.memory = memory
        self.memory_every_s = memory_every_s
        self.block_size = block_size  # set from the run_started event by the worker
        self.stop_sync_steps = max(1, int(stop_sync_steps))
        self.stopped_at: int | None = None  # global step where a stop was honoured
        self.training = False
        self.last_step = 0
        self._tokens_per_step: int | None = None
        self._samples_per_step: int = 0
        self._max_steps: int | None = None
        self._t0 = 0.0
        self._step0 = 0
        self._win_t = 0.0
        self._win_step = 0
        self._loss_was_finite = True
        self._distributed = False

    # ------------------------------------------------------------ helpers

    def _phase(self, phase: str, detail: str = "", progress: float | None = None) -> None:
        self.emit(make_event("phase", phase=phase, progress=progress, detail=detail))

    def _infer_block_size(self, train_dataloader: Any) -> int | None:
        # One row of the (map-style) dataset; a streaming dataset cannot be indexed.
        try:
            row = train_dataloader.dataset[0]
            return len(row["input_ids"])
        except (TypeError, KeyError, IndexError, AttributeError, NotImplementedError):
            return None  # iterable, empty, or rows without input_ids

    def _reset_window(self, step: int) -> None:
        self._win_t = time.monotonic()
        self._win_step = step

    def _sample_memory(self, step: int) -> None:
        # A sample reads /proc (about as long as writing the log event): a run that logs
        # every few milliseconds must not pay it at every log.
        if self.memory is None:
            return
        if time.monotonic() - self.memory.last_sample_time >= self.memory_every_s:
            self.emit(self.memory.sample(step))

    # ------------------------------------------------------------ hooks

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102
        import torch.distributed as dist  # torch is already loaded by Trainer here

        self._distributed = args.world_size > 1 and dist.is_available() and dist.is_initialized()
        if not state.is_world_process_zero:
            return
        self.training = True
        self._max_steps = int(state.max_steps) if state.max_steps and state.max_steps > 0 else None
        self._step0 = int(state.global_step)
        self.last_step = self._step0
        self._t0 = time.monotonic()
        self._reset_window(self._step0)
        if self.block_size is None:
            self.block_size = self._infer_block_size(kwargs.get("train_dataloader"))
        self._samples_per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        )
        if self.block_size:
            self._tokens_per_step = self._samples_per_step * int(self.block_size)
        if self.memory is not None:
            import torch

            # The current device is per thread: decide it here, on the training thread.
            if torch.cuda.is_initialized():
                self.memory.set_devices([torch.cuda.current_device()])
        progress = (self._step0 / self._max_steps) if self._max_steps else None
        self._phase("training", f"step {self._step0} of {self._max_steps}", progress)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D102
        step = state.global_step
        if self.stopped_at is None and self._stop_decision(step, state.is_world_process_zero):
            self.stopped_at = step
            control.should_save = True
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.emit(
                    make_event(
                        "log",
                        message=f"stop requested ({self.stop.reason}): saving a checkpoint "
                        f"at step {step}",
                    )
                )
        if not state.is_world_process_zero:
            return
        self.last_step = step
        if control.should_evaluate:
            self._phase("evaluating", f"step {step}")
        elif control.should_save:
            self._phase("saving", f"checkpoint-{step}")
        if control.should_save:
            self._drop_stale_marker(args, step)

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: D102
        if state.is_world_process_zero and control.should_save:
            self._drop_stale_marker(args, int(state.global_step))

    @staticmethod
    def _drop_stale_marker(args: Any, step: int) -> None:
        # A checkpoint dir re-used after a resume may hold an old marker: drop it
        # before Trainer starts overwriting the files.
        stale = Path(args.output_dir) / f"checkpoint-{step}" / COMPLETE_MARKER
        try:
            stale.unlink()
        except FileNotFoundError:
            pass

    def _stop_decision(self, step: int, is_main: bool) -> bool:
        if not self._distributed:
            return self.stop.poll()
        # Every rank calls the broadcast at the same steps (global_step is the same
        # everywhere), so no rank waits for a collective the others skip.
        if step % self.stop_sync_steps != 0:
            return False
        import torch
        import torch.distributed as dist

        wanted = self.stop.poll() if is_main else False
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if dist.get_backend() == "nccl"
            else torch.device("cpu")
        )
        flag = torch.tensor([1 if wanted else 0], dtype=torch.int32, device=device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        step = int(state.global_step)
        now = time.monotonic()
        loss = _float(logs.get("loss"))
        steps = step - self._win_step
        dt = now - self._win_t
        tokens_per_s = samples_per_s = None
        if steps > 0 and dt > 0:
            samples_per_s = steps * self._samples_per_step / dt
            if self._tokens_per_step:
                tokens_per_s = steps * self._tokens_per_step / dt
        self._reset_window(step)
        eta = None
        done = step - self._step0
        if self._max_steps and done > 0:
            # Average since training began: evaluations and saves are part of what is left.
            eta = max(0, self._max_steps - step) * (now - self._t0) / done
        self.emit(
            make_event(
                "train_log",
                step=step,
                epoch=_float(state.epoch),
                loss=loss,
                learning_rate=_float(logs.get("learning_rate")),
                grad_norm=_float(logs.get("grad_norm")),
                tokens_per_second=tokens_per_s,
                samples_per_second=samples_per_s,
                eta_seconds=eta,
            )
        )
        finite = loss is None or math.isfinite(loss)
        if not finite and self._loss_was_finite:
            self.emit(
                make_event(
                    "warning",
                    code="nan_loss",
                    message=f"the training loss is {loss} at step {step}: lower the learning "
                    "rate, enable max_grad_norm, or use bf16 instead of fp16",
                    step=step,
                )
            )
        self._loss_was_finite = finite
        self._sample_memory(step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: D102
        if not state.is_world_process_zero:
            return
        metrics = dict(metrics or {})
        loss = _float(metrics.get("eval_loss"))
        if loss is not None and "perplexity" not in metrics:
            metrics["perplexity"] = perplexity(loss)
        # After training: the final evaluate() (of the best checkpoint's weights with
        # load_best_model_at_end), not a point of the training curve.
        final = {} if self.training else {"final": True}
        self.emit(
            make_event(
                "eval", step=int(state.global_step), epoch=_float(state.epoch), metrics=metrics,
                **final,
            )
        )
        # Evaluation time is not training time: restart the tokens/s window.
        self._reset_window(int(state.global_step))
        if self.training and not control.should_save and not control.should_training_stop:
            self._phase("training", f"step {state.global_step}", self._progress(state))

    def _progress(self, state) -> float | None:
        return state.global_step / self._max_steps if self._max_steps else None

    def on_save(self, args, state, control, **kwargs):  # noqa: D102
        if self._distributed:
            import torch.distributed as dist

            # Each rank writes its own RNG state (and shards under FSDP/DeepSpeed)
            # without a barrier; wait for all of them before calling it complete.
            dist.barrier()
        if not state.is_world_process_zero:
            return
        step = int(state.global_step)
        checkpoint = Path(args.output_dir) / f"checkpoint-{step}"
        complete = checkpoint.is_dir()
        if complete:
            write_complete_marker(checkpoint, step=step, world_size=int(args.world_size))
        self.emit(make_event("checkpoint", step=step, path=str(checkpoint), complete=complete))
        self._reset_window(step)
        if self.training and not control.should_training_stop:
            self._phase("training", f"step {step}", self._progress(state))

    def on_train_end(self, args, state, control, **kwargs):  # noqa: D102
        if not state.is_world_process_zero:
            return
        self.training = False
        self.last_step = int(state.global_step)
