"""Alerts: ``[notify] command`` run on run events, like a git hook.

The command is the user's own command line, so it runs through the shell
(``sh -c COMMAND``), in the background, in the run directory, with a timeout
(``NOTIFY_TIMEOUT_S``), and with these environment variables:

``CLMTUNE_EVENT``     finished | failed | stopped | eval | stalled | nan
``CLMTUNE_RUN_DIR``   the run directory (absolute)
``CLMTUNE_STEP``      the global step (empty when unknown)
``CLMTUNE_MESSAGE``   one line for a human ("new best eval loss 2.31 at step 400")

What the command prints becomes a ``log`` event; a command that fails (non-zero
exit, not found, timed out) becomes a ``warning`` event with code
``notify_failed``. Nothing here ever raises into training.

Where the events come from: ``finished``/``failed``/``stopped`` from the worker
once the final status is known (crashes included); ``eval`` (a new best eval
loss) and ``nan`` (a NaN/inf training loss) from :class:`NotifyCallback`;
``stalled`` from :class:`StallWatchdog` (no new step for ``stalled_minutes`` while
training: loading, tokenizing and the final evaluation do not count).
Only the main process (rank 0) notifies. With ``on_nan = "stop"`` every rank
saves a checkpoint and stops at the step whose logged loss is NaN/inf (the
logged loss is already averaged over ranks, so they all agree).
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clmtune.backend.events import Emit, make_event

#: Seconds the command may run before it is killed (and a warning logged).
NOTIFY_TIMEOUT_S = 30.0
#: How much of the command's output goes into the log event.
OUTPUT_LIMIT = 300
#: The final statuses of a run, as the worker knows them, → the notify event.
FINAL_EVENTS = {"completed": "finished", "failed": "failed", "stopped": "stopped"}


def _one_line(text: str, limit: int = OUTPUT_LIMIT) -> str:
    line = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Notifier:
    """Runs the ``[notify]`` command for the events it is set up for (never raises)."""

    def __init__(
        self,
        command: str | None,
        run_dir: str | os.PathLike[str],
        emit: Emit | None = None,
        *,
        events: Any = (),
        timeout: float = NOTIFY_TIMEOUT_S,
    ) -> None:
        self.command = command or None
        self.run_dir = Path(run_dir)
        self.emit = emit
        self.events = frozenset(events or ())
        self.timeout = timeout
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, run_dir: Path, emit: Emit | None) -> Notifier:
        """From a ``NotifySettings`` (``cfg.settings.notify``)."""
        return cls(settings.command, run_dir, emit, events=_events(settings))

    def wants(self, event: str) -> bool:
        return self.command is not None and event in self.events

    def notify(self, event: str, step: int | None = None, message: str = "") -> bool:
        """Start the command for ``event`` in the background; False when not wanted."""
        if not self.wants(event):
            return False
        env = dict(os.environ)
        env.update(
            CLMTUNE_EVENT=event,
            CLMTUNE_RUN_DIR=str(self.run_dir),
            CLMTUNE_STEP="" if step is None else str(step),
            CLMTUNE_MESSAGE=_one_line(message, 1000),
        )
        thread = threading.Thread(
            target=self._run, args=(event, env), name=f"clmtune-notify-{event}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down, or out of threads
            return False
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the commands started so far (at most ``timeout`` s in all)."""
        deadline = time.monotonic() + (self.timeout + 1 if timeout is None else timeout)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def say(self, type_: str, **fields: Any) -> None:
        if self.emit is None:
            return
        try:
            self.emit(make_event(type_, **fields))
        except Exception:  # noqa: BLE001 - a closed writer or full disk: alerts are best effort
            pass

    def _failed(self, event: str, why: str) -> None:
        self.say(
            "warning", code="notify_failed",
            message=f"[notify] command failed on {event}: {why}; training is not affected"
            " (fix or remove [notify] command)",
        )  # fmt: skip

    def _run(self, event: str, env: dict[str, str]) -> None:
        try:
            proc = subprocess.Popen(  # noqa: S603 - the user's own command line, like a hook
                ["/bin/sh", "-c", self.command or ""],
                cwd=str(self.run_dir) if self.run_dir.is_dir() else None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # never gets the worker's signals; killable as a group
                close_fds=True,
            )
        except Exception as exc:  # noqa: BLE001
            self._failed(event, f"could not start /bin/sh: {exc}")
            return
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            proc.communicate()
            self._failed(event, f"timed out after {self.timeout:g} s (killed)")
            return
        except Exception as exc:  # noqa: BLE001
            self._failed(event, str(exc))
            return
        text = _one_line(out.decode("utf-8", "replace") if out else "")
        if proc.returncode != 0:
            self._failed(event, f"exit code {proc.returncode}" + (f": {text}" if text else ""))
        elif text:
            self.say("log", message=f"[notify] {event}: {text}")


def _events(settings: Any) -> tuple[str, ...]:
    """``[notify] events``; unset means all of them (an empty list means none)."""
    from clmtune.backend.settings.schema import NOTIFY_EVENTS

    return NOTIFY_EVENTS if settings.events is None else tuple(settings.events)


def final_message(status: str, step: int | None, error: str | None) -> str:
    """The ``CLMTUNE_MESSAGE`` of the event that ends a run."""
    at = f" at step {step}" if step is not None else ""
    if status == "completed":
        return f"run finished{at}"
    if status == "stopped":
        return f"run stopped{at}; a checkpoint was saved"
    return f"run failed{at}: {error or 'unknown error'}"


def notify_final(notifier: Notifier | None, status: str, step: int | None,
                 error: str | None) -> None:
    """Send finished/failed/stopped and wait for the command (the worker exits next)."""
    if notifier is None:
        return
    try:
        event = FINAL_EVENTS.get(status, "failed")
        if notifier.notify(event, step, final_message(status, step, error)):
            notifier.wait()
    except Exception:  # noqa: BLE001 - never in the way of the final record
        pass


class StallWatchdog:
    """Sends ``stalled`` when the step has not changed for ``minutes`` (once per stall)."""

    def __init__(self, notifier: Notifier, step: Callable[[], int | None], minutes: float,
                 *, check_every_s: float | None = None,
                 active: Callable[[], bool] | None = None) -> None:
        self.notifier = notifier
        self.step = step
        self.active = active  # False: not training (loading, final evaluation): no clock
        self.limit_s = max(0.0, float(minutes) * 60.0)
        self.check_every_s = check_every_s or min(10.0, max(0.05, self.limit_s / 4))
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StallWatchdog:
        if self.notifier.wants("stalled"):
            self._thread = threading.Thread(target=self._loop, name="clmtune-stall", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        last, since, sent = None, time.monotonic(), False
        while not self._done.wait(self.check_every_s):
            try:
                step = self.step()
                idle = self.active is not None and not self.active()
            except Exception:  # noqa: BLE001
                step, idle = None, False
            now = time.monotonic()
            if idle:
                last, since, sent = None, now, False
            elif step != last:
                last, since, sent = step, now, False
            elif not sent and now - since >= self.limit_s:
                sent = True
                waited = now - since
                took = f"{waited / 60:.1f} min" if waited >= 60 else f"{waited:.0f} s"
                where = f"step {step}" if step is not None else "the start"
                self.notifier.notify("stalled", step, f"no training step for {took} (at {where})")


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: nothing to say


def make_notify_callback(notifier: Notifier, on_nan: str = "continue",
                         stop: Any = None) -> Any:
    """A ``TrainerCallback`` for ``eval`` and ``nan`` (transformers imported only here)."""
    from transformers import TrainerCallback

    class NotifyCallback(TrainerCallback):
        """New best eval loss → ``eval``; NaN/inf training loss → ``nan`` (and maybe stop)."""

        def __init__(self) -> None:
            self.best: float | None = None
            self.was_finite = True

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
            if not logs or "loss" not in logs:
                return
            step = int(state.global_step)
            finite = _finite(logs.get("loss"))
            if not finite and on_nan == "stop" and not control.should_training_stop:
                # Every rank sees the same (averaged) loss, so every rank stops here.
                if stop is not None:
                    stop.request("nan loss")
                control.should_save = True
                control.should_training_stop = True
                if state.is_world_process_zero:
                    notifier.say("log", message=f"loss is {logs.get('loss')} at step {step}: "
                                  "saving a checkpoint and stopping ([notify] on_nan = stop)")
            if state.is_world_process_zero and not finite and self.was_finite:
                action = "; stopping after a checkpoint" if on_nan == "stop" else ""
                notifier.notify("nan", step, f"training loss is {logs.get('loss')} at step "
                                 f"{step}{action}")
            self.was_finite = finite

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: D102
            if not state.is_world_process_zero:
                return
            loss = (metrics or {}).get("eval_loss")
            if loss is None or not _finite(loss):
                return
            loss = float(loss)
            if self.best is None or loss < self.best:
                self.best = loss
                step = int(state.global_step)
                notifier.notify("eval", step, f"new best eval loss {loss:.4g} at step {step}")

    return NotifyCallback()


class NotifyHooks:
    """What the worker wires in: the notifier, its callback and the stall watchdog.

    Only rank 0 runs the command; every rank gets the callback when ``on_nan = "stop"``
    (all ranks must stop at the same step).
    """

    def __init__(self, settings: Any, run_dir: Path, emit: Emit | None, *, is_main: bool,
                 stop: Any, step: Callable[[], int | None],
                 training: Callable[[], bool] | None = None) -> None:
        command = settings.command if is_main else None
        self.notifier = Notifier(command, run_dir, emit, events=_events(settings))
        wanted = self.notifier.command is not None or settings.on_nan == "stop"
        self.callbacks = [make_notify_callback(self.notifier, settings.on_nan, stop)] if wanted \
            else []
        self.watchdog = StallWatchdog(self.notifier, step, settings.stalled_minutes,
                                      active=training).start()

    def finish(self, status: str, step: int | None, error: str | None) -> None:
        """The run is over: stop watching and send finished/failed/stopped."""
        try:
            self.watchdog.stop()
        except Exception:  # noqa: BLE001
            pass
        notify_final(self.notifier, status, step, error)
