"""The records a run's events leave beside its figures: its attempts (one per worker
process) and the checkpoints the worker said it saved. Built by
:class:`clmtune.backend.rundir.state.RunState` while it folds the events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CheckpointMark:
    """A ``checkpoint`` event: what the worker said it saved (health is on disk)."""

    step: int
    path: str
    complete: bool
    time: float


@dataclass
class Attempt:
    """One worker process of a run: the first start, then each resume."""

    start: float
    end: float | None = None  # the run_finished time; None while running or after a crash
    last_seen: float | None = None  # the newest event of this attempt
    resumed_from: str | None = None
    resume_step: int | None = None
    status: str = "running"  # running | completed | stopped | failed (crashed: no end)
    first_step: int = 0  # the global step this attempt started from
    train_start: float | None = None  # its first "training" phase (model and data loaded)
    train_end: float | None = None  # its train metrics (trainer.train() returned)

    def duration(self, now: float | None) -> float:
        """Seconds this attempt ran: to its end, else ``now`` (live), else its last event."""
        end = self.end if self.end is not None else now
        if end is None:
            end = self.last_seen if self.last_seen is not None else self.start
        return max(end - self.start, 0.0)

    def training_duration(self) -> float:
        """Seconds from the start of training to its end, as Trainer's ``train_runtime``
        counts them: evaluations and saves during training in; loading the model and data,
        and the final evaluation and save after it, out (when the attempt logged them)."""
        whole = self.duration(None)
        start = self.start if self.train_start is None else self.train_start
        end = self.start + whole
        if self.train_end is not None and start <= self.train_end <= end:
            end = self.train_end
        return min(max(end - start, 0.0), whole)
