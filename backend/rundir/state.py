"""THE reducer: ``events.jsonl`` → :class:`RunState`. Every view of a run folds through it.

``state = fold(events)``, or incrementally ``state.apply(event)`` while a run is
tailed. The CLI progress and its final table, ``clmtune runs`` / ``clmtune show``, the
runs listing (:mod:`clmtune.backend.rundir.listing`), the live view and the metrics
screen all render a :class:`RunState`; none of them derives a figure from events on
its own. The event schema is documented in :mod:`clmtune.backend.events`.

A plain Hugging Face output folder has no events:
:func:`clmtune.backend.rundir.hf_events.events_from_trainer_state` turns its
``trainer_state.json`` into the same events, so its figures come from this
reducer too (and the state says it offers no Stop / Resume).

What depends on the moment or on the machine (whether the worker's pid is alive) is
not folded: :meth:`RunState.status_with` takes the status ``run.json`` reports (with
``crashed`` decided by the listing) and :meth:`RunState.elapsed` / :meth:`RunState.eta`
take ``now`` and that status, so a crashed run shows no ETA and a fixed elapsed time.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clmtune.backend import mfu as _mfu
from clmtune.backend.events import (
    INT_LIMIT,
    Event,
    as_dict,
    as_text,
    perplexity,
    to_float,
    to_int,
    with_device_list,
)
from clmtune.backend.rundir.attempts import Attempt, CheckpointMark

#: What the headline loss of a run is; shown next to the number everywhere.
LOSS_LAST_TRAIN = "last train log"
LOSS_MEAN_TRAIN = "mean train loss"
LOSS_LAST_EVAL = "last eval"
ENDED = ("completed", "stopped", "failed", "crashed")


# Fields of ``run_started`` that views index into: a damaged one is dropped when folded.
_STARTED_SHAPES: dict[str, type] = {"settings": dict, "peft": dict, "devices": list}


@dataclass(frozen=True)
class LossFigure:
    """A loss value and which loss it is (``kind`` is one of the ``LOSS_*`` labels)."""

    value: float | None
    kind: str

    @property
    def label(self) -> str:
        return f"loss ({self.kind})" if self.value is not None else "loss"


@dataclass
class RunState:
    """Everything known about one run from its events. Live and past runs alike.

    Histories are plain lists (``train_steps[i]`` ↔ ``train_loss[i]``) so a chart can
    thin them without copying. ``compact`` states (the listing's) keep no memory
    samples, learning-rate history or logs: fewer bytes, same figures.
    """

    compact: bool = False
    source: str = "clmtune"  # "clmtune" | "huggingface" (no worker: no Stop / Resume)
    started: Event | None = None  # the latest run_started event
    status: str = "unknown"  # running | completed | stopped | failed (crashed: status_with)
    phase: str = "starting"
    phase_progress: float | None = None
    phase_detail: str = ""
    step: int = 0
    epoch: float | None = None
    max_steps: int | None = None
    train_steps: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_epochs: list[float] = field(default_factory=list)
    train_times: list[float] = field(default_factory=list)  # event time of each train log
    lr_steps: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    tokens_per_second: float | None = None
    samples_per_second: float | None = None
    eta_seconds: float | None = None
    # Throughput history (not ``compact``): tokens/s and samples/s as each train log said.
    speed_steps: list[float] = field(default_factory=list)
    speed_tokens: list[float] = field(default_factory=list)
    speed_samples: list[float] = field(default_factory=list)
    eval_steps: list[float] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    eval_times: list[float] = field(default_factory=list)  # event time of each eval
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[str, Any] = field(default_factory=dict)
    memory: list[Event] = field(default_factory=list)
    gpu: list[Event] = field(default_factory=list)  # ``gpu`` events (NVML), newest last
    checkpoints: list[CheckpointMark] = field(default_factory=list)
    warnings: list[Event] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    final_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    last_event_time: float | None = None
    nan_loss_steps: list[int] = field(default_factory=list)
    nan_message: str | None = None  # the worker's nan_loss warning (what to change)
    # The latest ``sample`` event: [samples] completions after an evaluation.
    samples: list[dict[str, Any]] = field(default_factory=list)
    samples_step: int | None = None
    samples_seconds: float | None = None
    events_folded: int = 0
    _attempt_trained: bool = False  # the current attempt got as far as training

    max_memory_samples: int = 600
    max_gpu_samples: int = 360  # an hour at one event per 10 s
    max_logs: int = 500

    def __post_init__(self) -> None:
        if self.compact:
            # The listing keeps one state per run: 8-byte floats, not Python objects.
            self.train_steps = array("d")  # type: ignore[assignment]
            self.train_loss = array("d")  # type: ignore[assignment]
            self.train_epochs = array("d")  # type: ignore[assignment]

    # ------------------------------------------------------------ the fold

    def apply(self, event: Event) -> None:
        """Fold one event. Unknown types are ignored (forward compatible)."""
        kind = event.get("type")
        t = to_float(event.get("time"))
        self.events_folded += 1
        self._attempt_for(kind, event, t)
        if t is not None:
            self.last_event_time = t
            if self.attempts:
                self.attempts[-1].last_seen = t
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    def apply_all(self, events: list[Event]) -> None:
        """Fold events in order.

        A stretch of ``train_log`` events inside a running attempt (most of any events
        file) is folded by :meth:`_fold_train_logs`, which does what :meth:`apply` does
        for each of them without the per-event dispatch.
        """
        i, n = 0, len(events)
        while i < n:
            event = events[i]
            if (event.get("type") == "train_log" and self.attempts
                    and self.attempts[-1].status == "running"):  # fmt: skip
                i = self._fold_train_logs(events, i)
            else:
                self.apply(event)
                i += 1

    def _fold_train_logs(self, events: list[Event], i: int) -> int:
        """Fold ``events[i:]`` up to the first event that is not a ``train_log``; return
        its index. The same as :meth:`apply` on each: ``_attempt_for`` would only mark the
        running attempt as trained, and ``_on_train_logs`` takes them all at once."""
        n, start = len(events), i
        while i < n and events[i].get("type") == "train_log":
            i += 1
        stretch = events[start:i]
        self._on_train_logs(stretch)
        last_time: float | None = None
        for event in reversed(stretch):  # the newest stamped one (all are, as written)
            last_time = to_float(event.get("time"))
            if last_time is not None:
                break
        self.events_folded += i - start
        self._attempt_trained = True
        if last_time is not None:
            self.last_event_time = last_time
            self.attempts[-1].last_seen = last_time
        return i

    def _attempt_for(self, kind: Any, event: Event, t: float | None) -> None:
        """Open a new attempt when ``event`` is the first one of a worker process.

        A worker's first event is a ``phase`` (loading the model) or, in hand-made
        logs, ``run_started``. A new attempt begins after a ``run_finished``, or when
        a worker starts loading again after an attempt that already trained (crashed).
        """
        current = self.attempts[-1] if self.attempts else None
        if current is not None and t is None and kind == "log":
            # A worker.err line the dashboard forwards (no time): a resumed worker prints
            # before its first event; opening the attempt here would date it to the end
            # of the previous one and count the gap between them.
            return
        starts = current is None or current.status != "running"
        if not starts and self._attempt_trained:
            loading = kind == "phase" and event.get("phase") in ("starting", "loading_model")
            starts = loading or kind == "run_started"
        if starts:
            when = t if t is not None else (self.last_event_time or 0.0)
            self.attempts.append(Attempt(start=when, first_step=self.step))
            self._attempt_trained = False
            # A new worker: the speed is its own to measure (a resumed run showed the
            # previous worker's tokens/s and MFU until it logged).
            self.tokens_per_second = self.samples_per_second = None
        elif kind in ("train_log", "eval", "checkpoint") or (
            kind == "phase" and event.get("phase") == "training"
        ):
            self._attempt_trained = True
            if kind == "phase" and current is not None and current.train_start is None:
                current.train_start = t

    def _on_run_started(self, e: Event) -> None:
        damaged = [k for k, kind in _STARTED_SHAPES.items()
                   if e.get(k) is not None and not isinstance(e[k], kind)]
        self.started = {k: v for k, v in e.items() if k not in damaged} if damaged else e
        self.status = "running"
        self.error = self.hint = None
        attempt = self.attempts[-1]
        attempt.resumed_from = as_text(e.get("resumed_from"))
        max_steps = to_int(e.get("max_steps"))
        if max_steps is not None:
            self.max_steps = max_steps
        resume_step = to_int(e.get("resume_step"))
        # A resumed run re-logs the steps after its checkpoint: drop the stale tail.
        cut = resume_step if resume_step is not None else -1
        attempt.resume_step = cut if cut >= 0 else None
        attempt.first_step = max(cut, 0)
        self._truncate_after(cut)

    def _truncate_after(self, step: int) -> None:
        def keep(steps: list[float], *series: list[Any]) -> None:
            n = sum(1 for s in steps if s <= step)
            del steps[n:]
            for values in series:
                del values[n:]

        keep(self.train_steps, self.train_loss, self.train_epochs, self.train_times)
        keep(self.lr_steps, self.learning_rate, self.grad_norm)
        keep(self.speed_steps, self.speed_tokens, self.speed_samples)
        keep(self.eval_steps, self.eval_loss, self.eval_accuracy, self.eval_rows,
             self.eval_times)
        # The last evaluation is the last one kept (its perplexity is the run's until the
        # resumed worker evaluates), not one of the history the resume left.
        self.last_eval = dict(self.eval_rows[-1]) if self.eval_rows else {}
        # The epoch is the last kept step's (the speed went with the previous worker).
        kept = [e for e in self.train_epochs if math.isfinite(e)]
        self.epoch = kept[-1] if kept else None
        self.nan_loss_steps = [s for s in self.nan_loss_steps if s <= step]
        # Checkpoints past a resume point belong to the history it left (moved aside).
        self.checkpoints = [c for c in self.checkpoints if c.step <= step or step < 0]
        if not self.nan_loss_steps:
            self.nan_message = None
        self.step = max(step, 0)
        self.final_metrics = {}
        self.eta_seconds = None

    def _on_phase(self, e: Event) -> None:
        self.phase = str(e.get("phase", self.phase))
        self.phase_progress = to_float(e.get("progress"))
        self.phase_detail = str(e.get("detail") or "")
        if self.status in ("unknown",) or (self.phase != "finished" and self.status in ENDED):
            self.status = "running"  # a new attempt is loading

    def _on_train_log(self, e: Event) -> None:
        self._on_train_logs((e,))

    def _on_train_logs(self, events: Sequence[Event]) -> None:
        """Fold train logs in order: the hottest code of every reader (a call per logged
        step, or one per stretch of them). Values written as floats skip ``to_float``;
        anything else (ints, "nan" strings, None) goes through it."""
        if not events:
            return
        nan, isfinite = math.nan, math.isfinite
        full = not self.compact
        add_step, add_loss = self.train_steps.append, self.train_loss.append
        add_epoch, add_time = self.train_epochs.append, self.train_times.append
        add_lr_step, add_lr = self.lr_steps.append, self.learning_rate.append
        add_grad_norm, add_speed_step = self.grad_norm.append, self.speed_steps.append
        add_tokens, add_samples = self.speed_tokens.append, self.speed_samples.append
        top = self.step
        epoch: float | None = None
        last_tokens = last_samples = last_eta = None
        for e in events:
            get = e.get
            step = get("step")
            if step.__class__ is not int or not -INT_LIMIT < step < INT_LIMIT:
                step = to_int(step)
                if step is None:
                    continue  # a damaged line: no step to put it at
            if step > top:
                top = step
            epoch = get("epoch")
            if epoch.__class__ is not float:
                epoch = to_float(epoch)
            loss = get("loss")
            if loss.__class__ is not float:
                loss = to_float(loss)
            tokens = get("tokens_per_second")
            if tokens.__class__ is not float:
                tokens = to_float(tokens)
            samples = get("samples_per_second")
            if samples.__class__ is not float:
                samples = to_float(samples)
            if loss is not None:
                add_step(step)
                add_loss(loss)
                add_epoch(epoch if epoch is not None else nan)
                t = get("time")
                add_time(t if t.__class__ is float else _time_of(e))
                if not isfinite(loss):
                    self.nan_loss_steps.append(step)
            if full:
                lr = get("learning_rate")
                if lr.__class__ is not float:
                    lr = to_float(lr)
                if lr is not None:
                    add_lr_step(step)
                    add_lr(lr)
                    gn = get("grad_norm")
                    if gn.__class__ is not float:
                        gn = to_float(gn)
                    add_grad_norm(gn if gn is not None else nan)
                if tokens is not None or samples is not None:
                    add_speed_step(step)
                    add_tokens(tokens if tokens is not None else nan)
                    add_samples(samples if samples is not None else nan)
            if tokens is not None:
                last_tokens = tokens
            if samples is not None:
                last_samples = samples
            eta = get("eta_seconds")
            if eta is not None:
                eta = eta if eta.__class__ is float else to_float(eta)
                if eta is not None:
                    last_eta = eta
        self.step = top
        self.epoch = epoch  # the last train log's, as logged (None when it had none)
        if last_tokens is not None:
            self.tokens_per_second = last_tokens
        if last_samples is not None:
            self.samples_per_second = last_samples
        if last_eta is not None:
            self.eta_seconds = last_eta

    def _on_eval(self, e: Event) -> None:
        metrics = dict(as_dict(e.get("metrics")))
        step = to_int(e.get("step"))
        step = self.step if step is None else step
        self.step = max(self.step, step)
        self.last_eval = {"step": step, **metrics}
        loss = to_float(metrics.get("eval_loss"))
        if loss is not None:
            if self.eval_steps and self.eval_steps[-1] == step:
                # The final evaluate() after a periodic eval at the same last step: one
                # point (trainer_state.json has it once too). The worker marks it final;
                # it may be of other weights (load_best_model_at_end loaded the best
                # checkpoint), so the periodic point stays. Unmarked (older runs): the same
                # weights, the newer figure.
                if e.get("final") is True:
                    return
                for series in (self.eval_steps, self.eval_loss, self.eval_accuracy,
                               self.eval_times, self.eval_rows):
                    series.pop()
            self.eval_steps.append(step)
            self.eval_loss.append(loss)
            acc = to_float(metrics.get("eval_accuracy"))
            self.eval_accuracy.append(acc if acc is not None else math.nan)
            self.eval_times.append(_time_of(e))
            row = {"step": step, "epoch": to_float(e.get("epoch"))}
            row.update({k: to_float(v) for k, v in metrics.items()})
            self.eval_rows.append({k: v for k, v in row.items() if v is not None})

    def _on_memory(self, e: Event) -> None:
        if self.compact:
            return
        self.memory.append(with_device_list(e))
        if len(self.memory) > self.max_memory_samples:
            del self.memory[: len(self.memory) - self.max_memory_samples]

    def _on_gpu(self, e: Event) -> None:
        if self.compact:
            return
        self.gpu.append(with_device_list(e))
        if len(self.gpu) > self.max_gpu_samples:
            del self.gpu[: len(self.gpu) - self.max_gpu_samples]

    def _on_checkpoint(self, e: Event) -> None:
        mark = CheckpointMark(
            step=to_int(e.get("step")) or 0,
            path=str(e.get("path") or ""),
            complete=bool(e.get("complete")),
            time=to_float(e.get("time")) or 0.0,
        )
        self.checkpoints = [c for c in self.checkpoints if c.path != mark.path] + [mark]
        # A step that was saved (e.g. the stop step) was trained even if it was not logged.
        self.step = max(self.step, mark.step)

    def _on_warning(self, e: Event) -> None:
        if e.get("code") == "nan_loss":
            self.nan_message = str(e.get("message") or "")
        if not self.compact:
            self.warnings.append(e)

    def _on_log(self, e: Event) -> None:
        if self.compact:
            return
        self.logs.append(str(e.get("message", "")))
        if len(self.logs) > self.max_logs:
            del self.logs[: len(self.logs) - self.max_logs]

    def _on_final_metrics(self, e: Event) -> None:
        split = str(e.get("split") or "train")
        self.final_metrics[split] = dict(as_dict(e.get("metrics")))
        if split == "train" and self.attempts and e.get("time") is not None:
            self.attempts[-1].train_end = to_float(e.get("time"))  # trainer.train() returned

    def _on_run_finished(self, e: Event) -> None:
        self.status = str(e.get("status") or "completed")
        self.error = as_text(e.get("error"))
        self.hint = as_text(e.get("hint"))
        self.phase = "finished"
        self.phase_progress = None
        self.eta_seconds = None
        if self.attempts:
            attempt = self.attempts[-1]
            attempt.end = to_float(e.get("time"))
            attempt.status = self.status

    def _on_sample(self, e: Event) -> None:
        rows = e.get("samples")
        if not isinstance(rows, list):
            return
        self.samples = [dict(r) for r in rows if isinstance(r, dict)]
        step = e.get("step")
        self.samples_step = step if isinstance(step, int) else None
        self.samples_seconds = to_float(e.get("seconds"))

    # ------------------------------------------------------------ figures

    @property
    def start_time(self) -> float | None:
        """When the run first started (the first attempt), not the latest resume."""
        return self.attempts[0].start if self.attempts else None

    @property
    def end_time(self) -> float | None:
        """When the latest attempt finished (None while running or after a crash)."""
        return self.attempts[-1].end if self.attempts else None

    @property
    def resumed_from(self) -> str | None:
        """The checkpoint the latest attempt resumed from."""
        return self.attempts[-1].resumed_from if self.attempts else None

    @property
    def controllable(self) -> bool:
        """Whether Stop / Resume apply (a plain Hugging Face folder has no worker)."""
        return self.source == "clmtune"

    @property
    def last_loss(self) -> float | None:
        """The loss of the last train log."""
        return self.train_loss[-1] if self.train_loss else None

    @property
    def mean_train_loss(self) -> float | None:
        """Trainer's ``train_loss``: the mean over the run (final metrics only)."""
        return to_float((self.final_metrics.get("train") or {}).get("train_loss"))

    @property
    def last_eval_loss(self) -> float | None:
        """The loss of the last evaluation (final evaluation included)."""
        final = to_float((self.final_metrics.get("eval") or {}).get("eval_loss"))
        if final is not None:
            return final
        return self.eval_loss[-1] if self.eval_loss else None

    @property
    def loss(self) -> LossFigure:
        """The headline loss and which one it is: last train log, else mean, else last eval."""
        if self.last_loss is not None:
            return LossFigure(self.last_loss, LOSS_LAST_TRAIN)
        if self.mean_train_loss is not None:
            return LossFigure(self.mean_train_loss, LOSS_MEAN_TRAIN)
        if self.last_eval_loss is not None:
            return LossFigure(self.last_eval_loss, LOSS_LAST_EVAL)
        return LossFigure(None, LOSS_LAST_TRAIN)

    @property
    def best_eval_loss(self) -> float | None:
        best = self.best_eval
        return best[0] if best is not None else None

    @property
    def best_eval(self) -> tuple[float, int] | None:
        """The lowest finite eval loss and its step (the final evaluation counts at the last
        step; the earliest step wins a tie)."""
        pairs = [(x, int(s)) for x, s in zip(self.eval_loss, self.eval_steps, strict=False)
                 if math.isfinite(x)]
        final = to_float((self.final_metrics.get("eval") or {}).get("eval_loss"))
        if final is not None and math.isfinite(final):
            pairs.append((final, self.step))
        return min(pairs, key=lambda pair: (pair[0], pair[1])) if pairs else None

    @property
    def perplexity(self) -> float | None:
        for src in (self.final_metrics.get("eval") or {}, self.last_eval):
            value = to_float(src.get("perplexity"))
            if value is not None:
                return value
        # Written without one (results files, a plain Hugging Face folder's log history):
        # exp(last eval loss), as run_clm computes it.
        return perplexity(self.last_eval_loss)

    @property
    def best_perplexity(self) -> float | None:
        """exp(best eval loss): the perplexity that goes with :attr:`best_eval_loss`
        (:attr:`perplexity` is the last evaluation's, as run_clm reports it)."""
        return perplexity(self.best_eval_loss)

    @property
    def nan_flag(self) -> str | None:
        """A one-line badge when the train loss became NaN/inf, with the worker's hint."""
        if not self.nan_loss_steps:
            return None
        first = self.nan_loss_steps[0]
        text = f"loss not finite since step {first}"
        return f"{text}: {self.nan_message}" if self.nan_message else text

    @property
    def train_samples(self) -> int | None:
        """Samples in the training set (as run_clm reports ``train_samples``)."""
        value = (self.final_metrics.get("train") or {}).get("train_samples")
        if value is None and self.started:
            value = self.started.get("train_samples")
        number = to_float(value)
        return int(number) if number is not None and math.isfinite(number) else None

    @property
    def trainable(self) -> str | None:
        """``1,234 of 56,789 params (2.17%) · LoRA r=8`` from ``run_started`` (None before it)."""
        started = as_dict(self.started)
        counts = _param_counts(started)
        if counts is None:
            return None
        trainable, total = counts
        text = f"{trainable:,} of {total:,} params ({100.0 * trainable / total:.2f}%)"
        peft = started.get("peft")
        if isinstance(peft, dict) and peft.get("method"):
            quant = f" {peft['quantization']}" if peft.get("quantization") else ""
            name = str(peft["method"]).replace("lora", "LoRA")
            text += f" · {name}{quant} r={peft.get('r')}"
        return text

    @property
    def trainable_badge(self) -> str | None:
        """``LoRA r=8 · 0.52% trainable`` for an adapter run; None for full fine-tuning."""
        started = as_dict(self.started)
        peft = started.get("peft")
        counts = _param_counts(started)
        if not isinstance(peft, dict) or counts is None:
            return None
        trainable, total = counts
        quant = f" {peft['quantization']}" if peft.get("quantization") else ""
        return (f"{str(peft.get('method', 'lora')).replace('lora', 'LoRA')}{quant} "
                f"r={peft.get('r')} · {100.0 * trainable / total:.2f}% trainable")

    @property
    def samples_per_step(self) -> int | None:
        started = as_dict(self.started)
        settings = as_dict(started.get("settings"))
        batch = to_int(settings.get("per_device_train_batch_size"))
        accum = to_int(settings.get("gradient_accumulation_steps")) or 1
        world = to_int(started.get("world_size")) or 1
        if batch is None or batch <= 0:
            return None
        return batch * max(accum, 1) * max(world, 1)

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilisation (0..1) at the last train log; None on CPU / unknown."""
        started = as_dict(self.started)
        return _mfu.mfu(self.tokens_per_second, to_float(started.get("flops_per_token")),
                        to_float(started.get("peak_flops")),
                        to_int(started.get("world_size")) or 1)

    def run_tokens_per_second(self) -> float | None:
        """Tokens per second over every attempt (samples/s × block size)."""
        block = to_float(as_dict(self.started).get("block_size"))
        speed = self.run_samples_per_second()
        return speed * block if speed is not None and block else None

    def run_mfu(self) -> float | None:
        """MFU over every attempt (from :meth:`run_tokens_per_second`)."""
        started = as_dict(self.started)
        return _mfu.mfu(self.run_tokens_per_second(), to_float(started.get("flops_per_token")),
                        to_float(started.get("peak_flops")),
                        to_int(started.get("world_size")) or 1)

    def status_with(self, disk: str | None) -> str:
        """The status to show: the events' one, unless ``run.json`` knows better.

        ``disk`` is run.json's status with ``crashed`` for a vanished worker.
        """
        if disk == "crashed" and self.status in ("running", "unknown"):
            return "crashed"
        if self.status == "unknown" and disk:
            return disk
        return self.status

    def elapsed(self, now: float, status: str | None = None) -> float | None:
        """Seconds the run has taken over all its attempts (gaps between them excluded).

        ``now`` counts only while the run is running; a crashed run stops at its last
        event, so the figure is fixed.
        """
        if not self.attempts:
            return None
        status = status or self.status
        total = sum(a.duration(None) for a in self.attempts[:-1])
        live = now if status == "running" else None
        return total + self.attempts[-1].duration(live)

    def eta(self, status: str | None = None) -> float | None:
        """The worker's estimate of the time left; None unless the run is running."""
        status = status or self.status
        return self.eta_seconds if status == "running" and self.phase != "finished" else None

    def run_samples_per_second(self) -> float | None:
        """Samples per second over every attempt: samples trained / time training.

        The time is each attempt's from its start of training (as ``train_runtime``
        counts it: loading the model and data is left out). Trainer's own
        ``train_samples_per_second`` divides the whole run's samples by the last
        attempt's runtime, which overstates it after a resume. A run without its
        batch settings (a plain Hugging Face folder) has only Trainer's figure.
        """
        per_step = self.samples_per_step
        if per_step is None or not self.attempts:
            return to_float((self.final_metrics.get("train") or {}).get(
                "train_samples_per_second"))
        steps = 0
        seconds = 0.0
        for i, attempt in enumerate(self.attempts):
            nxt = self.attempts[i + 1].first_step if i + 1 < len(self.attempts) else self.step
            trained = max(nxt - attempt.first_step, 0)
            steps += trained
            if trained:
                seconds += attempt.training_duration()
        return steps * per_step / seconds if seconds > 0 and steps > 0 else None

    def history_rows(self) -> list[dict[str, Any]]:
        """Log-history rows in Hugging Face's shape (train logs and evals by step)."""
        lr = dict(zip(self.lr_steps, zip(self.learning_rate, self.grad_norm, strict=False),
                      strict=False))
        rows: list[dict[str, Any]] = []
        for step, loss, epoch in zip(self.train_steps, self.train_loss, self.train_epochs,
                                     strict=False):
            row: dict[str, Any] = {"step": int(step)}
            if math.isfinite(epoch):
                row["epoch"] = epoch
            row["loss"] = loss
            if step in lr:
                row["learning_rate"], grad = lr[step]
                if math.isfinite(grad):
                    row["grad_norm"] = grad
            rows.append(row)
        rows.extend(dict(r) for r in self.eval_rows)
        rows.sort(key=lambda r: (r.get("step") or 0, "eval_loss" in r))
        return rows


def _param_counts(started: Event) -> tuple[int, int] | None:
    """(trainable, total) parameters from ``run_started``; None unless both are sane."""
    trainable, total = to_int(started.get("trainable_params")), to_int(started.get("num_params"))
    if trainable is None or total is None or total <= 0 or trainable < 0:
        return None
    return trainable, total


def _time_of(event: Event) -> float:
    value = event.get("time")
    if value.__class__ is float:
        return value
    value = to_float(value)
    return value if value is not None else math.nan


def fold(events: list[Event], *, compact: bool = False) -> RunState:
    """The state of a run after ``events`` (the one reduction every view uses)."""
    state = RunState(compact=compact)
    state.apply_all(events)
    return state
