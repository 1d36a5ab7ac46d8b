"""The training worker: ``python -m clmtune.backend.worker RUN_DIR [--resume SPEC]``.

One process (or one torchrun rank) runs one run from ``RUN_DIR/config.toml``.
Rank 0 alone writes ``events.jsonl`` and ``run.json``. Signals: the first
SIGTERM, SIGINT or SIGUSR1 asks for a graceful stop (checkpoint at the next optimizer
step, status ``stopped``); a second SIGINT aborts; SIGHUP is ignored so the
run outlives the terminal that started it. Any failure ends as status
``failed`` with a one-line error and a hint in ``run.json`` and the events; the
traceback goes to stderr only (``logs/worker.err``).

Test hook (for the failure drills, never on the hot path): when
``CLMTUNE_TEST_CALLBACKS=module:factory`` is set, ``factory(run_dir)`` returns
extra ``TrainerCallback`` objects appended after the event callback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from clmtune import backend
from clmtune.backend.errors import ClmtuneError
from clmtune.backend.events import EVENTS_FILE, Event, EventWriter, make_event
from clmtune.backend.rundir.checkpoints import resolve_resume
from clmtune.backend.rundir.layout import RUN_JSON, read_run_json, write_json_atomic
from clmtune.backend.rundir.listing import forget_summary, store_summary

TEST_CALLBACKS_ENV = "CLMTUNE_TEST_CALLBACKS"
STOP_SYNC_ENV = "CLMTUNE_STOP_SYNC_STEPS"
MEMORY_INTERVAL_S = 5.0


def _one_line(text: str, limit: int = 500) -> str:
    line = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


#: Exceptions that mean "the settings or files cannot work" (not a crash): the run fails
#: with ``bad_input`` in run.json and the worker exits 2, like any other bad input.
BAD_INPUT_ERRORS = ("ConfigError", "TrainingSetupError", "RunError")
EXIT_BAD_INPUT = 2


def is_bad_input(exc: BaseException) -> bool:
    """True when ``exc`` reports unusable settings or files (one line, no traceback needed)."""
    return isinstance(exc, ClmtuneError) or type(exc).__name__ in BAD_INPUT_ERRORS


def classify_error(exc: BaseException, cfg: Any = None) -> tuple[str, str | None]:
    """(one-line error, hint) for an exception that ended a run."""
    name = type(exc).__name__
    text = _one_line(str(exc)) or name
    if name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    ):
        settings = cfg.settings if cfg is not None else None
        bs = settings.training.per_device_train_batch_size if settings else None
        ga = settings.training.gradient_accumulation_steps if settings else None
        now = f" (now {bs} x {ga})" if bs is not None and ga is not None else ""
        return (
            f"out of memory: {text}",
            "lower [training] per_device_train_batch_size and raise gradient_accumulation_steps"
            f" to keep the effective batch{now}, or set gradient_checkpointing = true"
            " (a smaller [data] block_size helps too)",
        )
    if name == "ConfigError":
        return text, "fix the settings (clmtune check FILE lists every problem)"
    if is_bad_input(exc):
        return text, None
    if isinstance(exc, FileNotFoundError):
        missing = exc.filename or text
        return f"missing file: {missing}", "check the path in the run's config.toml"
    if isinstance(exc, KeyboardInterrupt):
        return (
            "aborted by a second interrupt before a checkpoint was saved",
            "resume from the newest complete checkpoint: clmtune train --run-dir RUN_DIR"
            " --resume last",
        )
    return f"{name}: {text}", "the traceback is in logs/worker.err"


# Stop signals that arrived before run() installed SignalState (a `clmtune stop` in the
# first second of a start): caught from the top of main(), handed to the StopControl.
_EARLY_STOPS: list[str] = []


def _catch_early_stops() -> None:
    def early(signum: int, frame: Any) -> None:  # noqa: ARG001
        _EARLY_STOPS.append(signal.Signals(signum).name)

    for name in ("SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), early)


class SignalState:
    """First SIGTERM/SIGINT/SIGUSR1 → graceful stop; second SIGINT → KeyboardInterrupt."""

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.interrupts = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_int)
        if hasattr(signal, "SIGUSR1"):  # Slurm's --signal=USR1@T: the time limit is near
            signal.signal(signal.SIGUSR1, self._on_usr1)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def settle(self) -> None:
        """Ignore further SIGTERM/SIGINT: the run is over and only its record is left."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _on_term(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.stop.request("SIGTERM")

    def _on_usr1(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.stop.request("SIGUSR1")

    def _on_int(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.interrupts += 1
        if self.interrupts >= 2:
            raise KeyboardInterrupt
        self.stop.request("SIGINT")


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "clmtune": backend.__version__,
    }
    for name in ("torch", "transformers", "datasets", "accelerate"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            versions[name] = None
    return versions


def _test_callbacks(run_dir: Path) -> list[Any]:
    spec = os.environ.get(TEST_CALLBACKS_ENV)
    if not spec:
        return []
    module_name, _, attr = spec.rpartition(":") if spec.count(":") else (spec, "", "")
    if module_name.endswith(".py"):  # a file (the test suite's drill hooks), not a module
        loader = importlib.util.spec_from_file_location("clmtune_test_callbacks", module_name)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    factory = getattr(module, attr or "make_callbacks")
    return list(factory(run_dir))


class RunRecord:
    """``run.json`` as this worker keeps it (rank 0 only; every write is atomic)."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path = run_dir / RUN_JSON
        self.enabled = enabled
        previous = read_run_json(run_dir) if enabled else {}
        # Under torchrun the launcher is torchrun (our parent); alone, it is this process.
        launcher = os.getppid() if "LOCAL_RANK" in os.environ else os.getpid()
        self.data: dict[str, Any] = {
            "status": "running",
            "pid": os.getpid(),
            "worker_pid": os.getpid(),
            "pgid": os.getpgid(0),
            "host": socket.gethostname(),
            # launch records the full command (torchrun included); keep it.
            "command": previous.get("command") or [sys.executable, "-m", "clmtune.backend.worker",
                                                   *sys.argv[1:]],
            "launcher_pid": launcher,
            "start_time": time.time(),
            "end_time": None,
            "versions": {"python": platform.python_version(), "clmtune": backend.__version__},
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "resumed_from": None,
            "global_step": None,
            "error": None,
            "hint": None,
            "bad_input": False,
            "attempts": list(previous.get("attempts") or []),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # export-job: requeue bookkeeping
            # What the launcher found changed since the last attempt (recorded per attempt).
            "settings_changes": list(previous.get("settings_changes") or []),
        }  # fmt: skip

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        if self.enabled:
            write_json_atomic(self.path, self.data)


def _cpu_processes_use_gloo() -> None:
    """Make several CPU processes one distributed job (gloo) instead of N lone runs.

    Accelerate (1.x) only treats torchrun ranks as a multi-CPU job when asked for
    the CPU explicitly; without a GPU it otherwise silently trains N separate
    copies that overwrite each other's checkpoints.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "ACCELERATE_USE_CPU" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"


def _leave_summary(run_dir: Path) -> None:
    """The finished run's summary for the first listing of its folder (never fails the run)."""
    try:
        store_summary(run_dir)
    except Exception:  # noqa: BLE001 - an optimisation: listings read the run instead
        traceback.print_exc(file=sys.stderr)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m clmtune.backend.worker")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", default=None, help="'last' or a checkpoint path")
    parser.add_argument("--planned", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _refusal(run_dir: Path, resume: str) -> str | None:
    """Why ``--resume`` may not write into ``run_dir`` (the rule ``clmtune train`` applies:
    ``backend/resume_plan``), for a worker started by hand rather than by the launcher."""
    from clmtune.backend.errors import ClmtuneError
    from clmtune.backend.resume_plan import plan_run
    from clmtune.backend.settings.toml_io import load_config

    try:
        plan_run(run_dir, load_config(run_dir / "config.toml", for_launch=True), resume,
                 how=f"python -m clmtune.backend.worker {run_dir} --resume {resume}")
    except ClmtuneError as exc:
        return " ".join(str(exc).split())  # one line: message; hint
    return None


def run(run_dir: Path, resume: str | None = None) -> int:
    """Run one training run in ``run_dir``; returns the process exit code.

    0: completed or stopped; 2: failed on bad settings or files (``bad_input`` in
    run.json); 1: failed otherwise.
    """
    from clmtune.backend.callback import EventCallback, StopControl
    from clmtune.backend.memory import MemorySampler, MemoryThread
    from clmtune.backend.telemetry import start_gpu_thread

    run_dir = run_dir.resolve()
    is_main = int(os.environ.get("RANK", "0")) == 0
    writer = EventWriter(run_dir / EVENTS_FILE) if is_main else None
    stop = StopControl(run_dir)
    signals = SignalState(stop)
    signals.install()
    for reason in _EARLY_STOPS:
        stop.request(reason)
    _EARLY_STOPS.clear()
    record = RunRecord(run_dir, enabled=is_main)
    record.update()
    if is_main:
        forget_summary(run_dir)  # a previous attempt's: out of date from now on

    sampler = MemorySampler()
    callback_ref: list[Any] = []

    def emit(event: Event) -> None:
        if writer is None:
            return
        if event.get("type") == "run_started" and callback_ref:
            # The callback needs the block size for tokens/s; train knows it first.
            block = event.get("block_size")
            if isinstance(block, int) and block > 0:
                callback_ref[0].block_size = block
        writer.emit(event)

    monitor = None
    if is_main:
        monitor = MemoryThread(
            sampler, emit, interval=MEMORY_INTERVAL_S,
            step=lambda: callback_ref[0].last_step if callback_ref else None,
        ).start()  # fmt: skip
    # GPU telemetry through NVML (rank 0; None without pynvml / a GPU): backend.telemetry
    gpu_monitor = start_gpu_thread(
        emit, step=lambda: callback_ref[0].last_step if callback_ref else None
    ) if is_main else None

    cfg: Any = None
    hooks: Any = None  # [notify]: alerts (backend/notify.py)
    status, error, hint, step, bad_input = "failed", None, None, None, False
    try:
        _cpu_processes_use_gloo()
        from clmtune.backend.settings.toml_io import load_config
        from clmtune.backend.train import run_training

        cfg = load_config(run_dir / "config.toml", for_launch=True)
        from clmtune.backend.notify import NotifyHooks

        hooks = NotifyHooks(cfg.settings.notify, run_dir, emit, is_main=is_main, stop=stop,
                            step=lambda: callback_ref[0].last_step if callback_ref else None,
                            training=lambda: bool(callback_ref) and callback_ref[0].training)
        resume_path = resolve_resume(run_dir, resume) if resume else None
        record.update(
            resumed_from=str(resume_path) if resume_path else None,
            versions=_versions(),
        )
        callback = EventCallback(
            emit, stop, memory=sampler,
            stop_sync_steps=int(os.environ.get(STOP_SYNC_ENV, "10")),
        )  # fmt: skip
        callback_ref.append(callback)
        outcome = run_training(
            cfg,
            run_dir,
            emit=emit,
            callbacks=[callback, *hooks.callbacks, *_test_callbacks(run_dir)],
            resume_from=str(resume_path) if resume_path else None,
        )
        step = getattr(outcome, "global_step", None)
        # "stopped" only when the run ended early; a stop on the last step completed it.
        status = getattr(outcome, "status", "completed") or "completed"
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
        status = "failed"
        error, hint = classify_error(exc, cfg)
        bad_input = is_bad_input(exc)
        if bad_input:  # the user's to fix: one line, as the CLI prints it; no traceback
            print(f"clmtune: error: {error}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        else:  # a crash inside training: the traceback is what a bug report needs
            traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
    finally:
        # The outcome is decided: a late Ctrl-C or SIGTERM must not cut the final record
        # short (run.json would stay "running"). SIGKILL still ends a stuck worker.
        signals.settle()
        if callback_ref and step is None:
            step = callback_ref[0].last_step
        if monitor is not None:
            monitor.stop()
        if gpu_monitor is not None:
            gpu_monitor.stop()
        if is_main:
            try:
                emit(sampler.sample(step))
            except Exception:  # noqa: BLE001
                pass
        try:
            emit(make_event("run_finished", status=status, error=error, hint=hint))
        except Exception:  # noqa: BLE001 - a full disk must not keep run.json "running"
            traceback.print_exc(file=sys.stderr)
        record.update(status=status, error=error, hint=hint, end_time=time.time(),
                      global_step=step, bad_input=bad_input)  # fmt: skip
        if hooks is not None:  # after the record: a slow command must not hide the status
            hooks.finish(status, step, error)
        if writer is not None:
            writer.close()
        if is_main:
            _leave_summary(run_dir)
    if status in ("completed", "stopped"):
        return 0
    return EXIT_BAD_INPUT if bad_input else 1


def main(argv: list[str] | None = None) -> int:
    _catch_early_stops()
    args = _parse(argv)
    if not (args.run_dir / "config.toml").is_file():
        # Not a prepared run dir: say so without creating anything there.
        print(
            f"{args.run_dir}: no config.toml; start runs with `clmtune train FILE`",
            file=sys.stderr,
        )
        return 2
    if args.resume and not args.planned:
        problem = _refusal(args.run_dir, args.resume)
        if problem is not None:
            print(f"clmtune: error: {problem}", file=sys.stderr)
            return 2
    return run(args.run_dir, args.resume)


if __name__ == "__main__":
    sys.exit(main())
