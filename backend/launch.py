"""Start, stop and find training worker processes.

Pure Python (the TUI imports it; no torch/transformers/datasets/evaluate). A
run is started as ``python -m clmtune.backend.worker RUN_DIR`` (or under ``torchrun``
when ``[launch] nproc_per_node > 1`` or ``nnodes > 1``) from an argument list,
never a shell string, in a new session so that closing the terminal (SIGHUP)
or Ctrl-C in the UI never reaches it. Its stdout/stderr go to ``RUN_DIR/logs``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.events import EVENTS_FILE, EventWriter, make_event
from clmtune.backend.resume_plan import (
    LEFTOVERS,
    RunPlan,
    need_fixed_dir,
    plan_run,
    resume_warnings,  # noqa: F401 - part of launch's public surface
    run_settings,
    world_size,
)
from clmtune.backend.rundir.layout import (
    CONFIG_TOML,
    RUN_JSON,
    STOP_FILE,
    RunError,
    is_run_dir,
    pid_alive,
    read_run_json,
    write_json_atomic,
)
from clmtune.backend.rundir.summary import read_run

if TYPE_CHECKING:  # config pulls in the schema; import it only where it is used
    from clmtune.backend.settings.run_config import RunConfig

LOGS_DIR = "logs"
WORKER_OUT = "worker.out"
WORKER_ERR = "worker.err"
# How long start_run waits for the worker to write its own run.json record.
START_WAIT_S = 60.0



@dataclass
class LaunchedRun:
    """A worker started (or found) by :func:`start_run`."""

    run_dir: Path
    pid: int
    command: list[str]
    process: subprocess.Popen | None  # None when reattaching
    warnings: list[str] = field(default_factory=list)  # resume warnings, if resuming
    resume_from: Path | None = None
    started: float = field(default_factory=time.time)  # UNIX time the worker was spawned


def is_alive(pid: int) -> bool:
    """True when the process exists on this machine (zombies count as dead)."""
    return pid_alive(pid)


def default_run_dir(config_path: Path | None, runs_root: Path = Path("runs")) -> Path:
    """``runs/<config stem>-<YYYYmmdd-HHMMSS>`` (suffixed ``-2``, ``-3``… if taken)."""
    stem = Path(config_path).stem if config_path else "run"
    base = Path(runs_root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def _frozen(cfg: RunConfig, run_dir: Path) -> RunConfig:
    frozen = cfg.resolved()
    if "output_dir" in frozen.training:
        # The run dir wins over output_dir: the frozen file says where the run really is.
        frozen.training["output_dir"] = str(run_dir)
    return frozen


def prepare_run_dir(cfg: RunConfig, run_dir: Path) -> Path:
    """Create the run dir, ``logs/`` and the frozen ``config.toml`` (absolute paths).

    Refuses (RunError) a directory whose run is still running, and a non-empty
    directory that is not a run dir (it would mix a run into unrelated files).
    """
    from clmtune.backend.settings.toml_io import save_config

    run_dir = Path(run_dir).resolve()
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: exists and is not a directory; pick another --run-dir")
    if run_dir.is_dir():
        if read_run(run_dir).status == "running":
            raise RunError(
                f"{run_dir}: a run is still running there; stop it first (clmtune stop {run_dir})"
            )
        if not is_run_dir(run_dir) and {p.name for p in run_dir.iterdir()} - LEFTOVERS:
            raise RunError(
                f"{run_dir}: exists and holds other files; give a new or empty --run-dir"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOGS_DIR).mkdir(exist_ok=True)
    save_config(_frozen(cfg, run_dir), run_dir / CONFIG_TOML)
    # A stop asked of a previous run in this dir must not stop the next one.
    try:
        (run_dir / STOP_FILE).unlink()
    except FileNotFoundError:
        pass
    return run_dir


def worker_command(cfg: RunConfig, run_dir: Path, resume: Path | None = None) -> list[str]:
    """The argument list that runs the worker (torchrun for more than one process)."""
    from clmtune.backend.settings.training_args import torchrun_argv

    # --planned: backend/resume_plan already decided; a hand-started worker decides itself.
    tail = ["--resume", str(resume), "--planned"] if resume is not None else []
    if not cfg.settings.launch.distributed:
        return [sys.executable, "-m", "clmtune.backend.worker", str(run_dir), *tail]
    # torchrun of this interpreter (not whatever `torchrun` is first on PATH).
    launcher = [sys.executable, "-m", "torch.distributed.run"]
    return [*torchrun_argv(cfg, run_dir, launcher=launcher), *tail]


def _load_for_launch(config_path: Path, hardware: bool) -> RunConfig:
    from clmtune.backend.settings.toml_io import load_config

    return load_config(Path(config_path), for_launch=True, hardware=hardware)


def _validate(cfg: RunConfig, hardware: bool) -> None:
    from clmtune.backend.settings.problems import ConfigError
    from clmtune.backend.settings.validate import validate_config

    errors, _warnings = validate_config(cfg, for_launch=True, hardware=hardware)
    if errors:
        raise ConfigError(errors)


def _choose_run_dir(
    cfg: RunConfig, config_path: Path | None, run_dir: Path | None, runs_root: Path
) -> Path:
    if run_dir is not None:
        return Path(run_dir)
    output_dir = cfg.settings.training.output_dir
    if output_dir:
        path = Path(str(output_dir)).expanduser()
        if not path.is_absolute() and cfg.source is not None:
            path = Path(cfg.source).parent / path
        return path
    if Path(runs_root).exists() and not Path(runs_root).is_dir():
        raise RunError(f"{runs_root}: is a file, not a folder of runs; move it away, or pass "
                       "--run-dir (or set [training] output_dir)")
    return default_run_dir(config_path or cfg.source, runs_root)


#: How often and how long _worker_env looks at the run queue before choosing the wait policy.
CONTENTION_SAMPLES = 5
CONTENTION_GAP_S = 0.01
#: Programs whose threads don't count as load: a dashboard burns a core while it starts (a
#: second or so) and is kept cheap after that, so its start-up must not decide a run's wait
#: policy for hours.
QUIET_PROGRAMS = (b"clmtune-tui", b"clmtune.tui")


def _is_quiet_program(cmdline: bytes) -> bool:
    """Whether a ``/proc/PID/cmdline`` is a clmtune dashboard (the console script or ``-m``)."""
    args = cmdline.split(b"\0")[:3]
    return any(a == name or a.endswith(b"/" + name) for a in args for name in QUIET_PROGRAMS)


def _quiet_pids() -> list[int]:
    """This process and every clmtune dashboard on the machine (Linux ``/proc``)."""
    pids = [os.getpid()]
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return pids
    for name in entries:
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = fh.read(4096)
        except OSError:
            continue
        if int(name) != pids[0] and _is_quiet_program(cmdline):
            pids.append(int(name))
    return pids


def _runnable_threads(pid: int) -> int:
    """How many threads of ``pid`` are runnable right now (0 when it is gone)."""
    count = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The state follows the command name in parentheses, which may itself hold ") ".
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"R":
            count += 1
    return count


def _others_runnable() -> float | None:
    """Mean number of runnable threads on this machine right now that are not ours (Linux).

    ``procs_running`` of ``/proc/stat`` counts every runnable thread, this reading one too;
    the runnable threads of this process and of clmtune dashboards are taken off.
    """
    quiet = _quiet_pids()
    counts = []
    for index in range(CONTENTION_SAMPLES):
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                line = next((ln for ln in fh if ln.startswith("procs_running")), "")
            running = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        ours = sum(_runnable_threads(pid) for pid in quiet)
        counts.append(max(0, running - max(1, ours)))  # at least this reading thread
        if index + 1 < CONTENTION_SAMPLES:
            time.sleep(CONTENTION_GAP_S)
    return sum(counts) / len(counts)


def _worker_env() -> dict[str, str]:
    """The worker's environment: the caller's, plus a wait policy chosen per case.

    Measured (bench/bench_vs_run_clm.py, README "Performance"): on an idle CPU machine
    OpenMP's default spin-then-sleep wait trains as fast as a plain script, and
    ``OMP_WAIT_POLICY=PASSIVE`` halves that; when other work already keeps the cores busy,
    spinning threads lose their time slices to each other and PASSIVE is several times
    faster. So PASSIVE only when, at launch, other runnable threads would not leave the
    worker's threads a core each (torch uses about one thread per physical core, so
    "half the cores busy", at least one); a value the user exported always wins. Our own
    dashboards don't count: one that is starting up is busy for a second, then kept cheap,
    and measured with ``--dashboard`` a start-up counted as load cost the run half its speed.
    """
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if "OMP_WAIT_POLICY" not in env:
        others = _others_runnable()
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        if others is not None and others >= max(1.0, cores / 2):
            env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def _new_last_line(path: Path, offset: int) -> str:
    """The last non-blank line written to ``path`` after ``offset`` (this attempt's)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _wait_for_worker(run_dir: Path, proc: subprocess.Popen, since: float, timeout: float,
                     err_offset: int = 0) -> None:
    """Wait until the worker wrote its own run.json record, or exited without doing so.

    A worker stopped (``clmtune stop``) before it could catch the signal is ``stopped``,
    not failed; a failure names this attempt's last line of worker.err, never an
    earlier attempt's.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_run_json(run_dir)
        if info.get("worker_pid") and (info.get("start_time") or 0) >= since - 1:
            return
        if proc.poll() is not None:
            info = read_run_json(run_dir)
            if info.get("worker_pid") and (info.get("start_time") or 0) >= since - 1:
                return
            if proc.returncode == -signal.SIGTERM and (run_dir / STOP_FILE).exists():
                info.update(status="stopped", error=None, end_time=time.time(),
                            hint="stopped before training began; start it again with "
                                 f"clmtune train --run-dir {run_dir} --resume auto")
                write_json_atomic(run_dir / RUN_JSON, info)
                return
            err_file = run_dir / LOGS_DIR / WORKER_ERR
            reason = _new_last_line(err_file, err_offset) or f"exit code {proc.returncode}"
            info.update(
                status="failed",
                error=f"the worker exited before starting: {reason}",
                hint=f"see {err_file}",
                end_time=time.time(),
            )
            write_json_atomic(run_dir / RUN_JSON, info)
            return
        time.sleep(0.05)


def _set_aside(run_dir: Path, plan: RunPlan) -> Path:
    """Move the checkpoints past the one resumed from into ``superseded/<when>-after-<ckpt>/``.

    A resume from an earlier checkpoint starts another history: left in place, the old
    later checkpoints would list as resumable and be picked by "resume newest", and
    Trainer's rotation would keep them over the new ones. Renames only; nothing is deleted.
    """
    from clmtune.backend.resume_plan import SUPERSEDED_DIR

    assert plan.checkpoint is not None
    when = time.strftime("%Y%m%d-%H%M%S")
    dest = run_dir / SUPERSEDED_DIR / f"{when}-after-{plan.checkpoint.name}"
    dest.mkdir(parents=True, exist_ok=True)
    for path in plan.superseded:
        try:
            os.replace(path, dest / path.name)
        except OSError as exc:
            raise RunError(f"could not move {path.name} aside into {dest}: {exc}") from exc
    return dest


def start_run(
    config_path: Path | None = None,
    *,
    cfg: RunConfig | None = None,
    run_dir: Path | None = None,
    runs_root: Path = Path("runs"),
    resume: str | None = None,
    wait_for_worker: bool = True,
    check_hardware: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
    announce: Callable[[RunPlan], None] | None = None,
) -> LaunchedRun:
    """Validate the settings, prepare the run dir and spawn the worker.

    ``resume`` is ``"last"``, ``"auto"`` or a checkpoint path; resuming an existing run dir
    without a new config re-uses its frozen ``config.toml``. What may be written where is
    decided by :func:`clmtune.backend.resume_plan.plan_run` (refusals raise ``RunDirError``
    before anything is written). ``overrides`` (``{"training": {"max_steps": 900}}``) change
    settings on top of the file: "train further" from the dashboard. ``announce`` is called
    with the plan before the worker starts (the CLI prints "loading checkpoint-N"). Raises
    ``ConfigError`` for invalid settings and :class:`RunError` for run dir /
    checkpoint problems (both one line per problem). With ``wait_for_worker``
    it returns once the worker has written its ``run.json`` record (or has
    died, which is then recorded as ``failed``). ``check_hardware=False`` skips the
    checks that import torch (bf16 without a GPU, ...): the TUI never loads torch, and
    the worker refuses such settings itself, as a failed run with the reason.
    """
    cfg_given = cfg is not None
    if cfg is None and config_path is not None:
        cfg = _load_for_launch(config_path, check_hardware)
    elif cfg is None:
        if run_dir is None or not (Path(run_dir) / CONFIG_TOML).is_file():
            raise RunError("nothing to run: give a config file (or a run dir that has config.toml)")
        cfg = _load_for_launch(Path(run_dir) / CONFIG_TOML, check_hardware)
    if overrides:
        for section, values in overrides.items():
            getattr(cfg, section).update(values)
        _validate(cfg, check_hardware)
    elif cfg_given:
        _validate(cfg, check_hardware)
    need_fixed_dir(resume, run_dir, cfg)
    target = _choose_run_dir(cfg, config_path, run_dir, runs_root).resolve()
    how = f"clmtune train {config_path or 'FILE'} --run-dir {target} --resume last"
    # The one rule (shared with the dashboard): fresh, resume from a checkpoint, or refuse
    # before anything is written.
    plan = plan_run(target, cfg, resume, how=how)
    checkpoint = plan.checkpoint
    warnings = plan_warnings(plan, cfg)
    if announce is not None:
        announce(plan)
    target = prepare_run_dir(cfg, target)
    if plan.changes:
        _record_changes(target, plan)
    if plan.superseded:
        _set_aside(target, plan)

    command = worker_command(cfg, target, checkpoint)
    since = time.time()
    write_json_atomic(
        target / RUN_JSON,
        {
            **_previous_attempts(target),
            "status": "running",
            "pid": None,
            "host": socket.gethostname(),
            "command": command,
            "start_time": since,
            "world_size": world_size(cfg),
            "resumed_from": str(checkpoint) if checkpoint else None,
            "settings_changes": list(plan.changes),
        },
    )
    logs = target / LOGS_DIR
    with open(logs / WORKER_OUT, "ab") as out, open(logs / WORKER_ERR, "ab") as err:
        err_offset = err.seek(0, os.SEEK_END)
        try:
            proc = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=_worker_env(),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            write_json_atomic(
                target / RUN_JSON,
                {**read_run_json(target), "status": "failed", "end_time": time.time(),
                 "error": f"could not start the worker: {exc}", "hint": None},
            )  # fmt: skip
            raise RunError(f"could not start the worker: {exc}") from exc
    info = read_run_json(target)
    if not info.get("worker_pid"):
        # Until the worker writes its record, its spawn pid lets readers tell a dead
        # start from a slow one. (If the worker wrote in between, its next write
        # restores its full record: it always rewrites the whole file.)
        write_json_atomic(target / RUN_JSON, {**info, "pid": proc.pid})
    if wait_for_worker:
        _wait_for_worker(target, proc, since, START_WAIT_S, err_offset)
    return LaunchedRun(
        run_dir=target,
        pid=proc.pid,
        command=command,
        process=proc,
        warnings=warnings,
        resume_from=checkpoint,
        started=since,
    )


def command_text(
    config_path: Path | None,
    *,
    run_dir: Path | None = None,
    runs_root: Path = Path("runs"),
    resume: str | None = None,
) -> str:
    """What ``clmtune train`` would run, shell-quoted: ``env VAR=… COMMAND`` (``--print-command``).

    Validates like :func:`start_run` and decides the run folder and checkpoint the same
    way, but writes nothing and starts nothing. The variables are the ones the worker's
    environment adds to or changes in this one (the OpenMP wait policy, unbuffered output).
    """
    import shlex

    if config_path is not None:
        cfg = _load_for_launch(config_path, True)
    elif run_dir is not None and (Path(run_dir) / CONFIG_TOML).is_file():
        cfg = _load_for_launch(Path(run_dir) / CONFIG_TOML, True)
    else:
        raise RunError("nothing to run: give a config file (or a run dir that has config.toml)")
    need_fixed_dir(resume, run_dir, cfg)
    target = _choose_run_dir(cfg, config_path, run_dir, runs_root).resolve()
    plan = plan_run(target, cfg, resume)
    command = worker_command(cfg, target, plan.checkpoint)
    here, env = os.environ, _worker_env()
    changed = [f"{k}={v}" for k, v in sorted(env.items()) if here.get(k) != v]
    line = shlex.join(["env", *changed, *command] if changed else command)
    return (
        f"# clmtune train first writes {shlex.quote(str(target / CONFIG_TOML))} (the frozen"
        f" settings) and {LOGS_DIR}/, then runs (output to {LOGS_DIR}/{WORKER_OUT},"
        f" {LOGS_DIR}/{WORKER_ERR}):\n{line}"
    )


#: [training] keys whose new value a resume puts over the checkpoint's optimizer state
#: (``backend/train.py``, ``restore_optimizer_settings``) from its first step on.
OPTIMIZER_KEYS = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon")
#: Schedulers that keep their own current rate (no base rate to replace).
_OWN_RATE = ("reduce_lr_on_plateau", "greedy")


def _optimizer_effect(cfg: RunConfig, key: str, now: Any) -> str:
    training = cfg.settings.training
    if training.deepspeed:
        return "DeepSpeed loads its own optimizer state from the checkpoint: not applied"
    if key == "learning_rate":
        kind = str(getattr(training.lr_scheduler_type, "value", training.lr_scheduler_type))
        if kind in _OWN_RATE:
            return f"{kind} continues from the checkpoint's current rate: not applied"
        return f"the rest of the schedule uses {now!r}"
    if key == "weight_decay":
        return "applied from the next step (biases and norms keep 0)"
    return ("applied from the next step (by an optimizer that has it); the moment estimates"
            " stay as saved")


def plan_warnings(plan: RunPlan, cfg: RunConfig) -> list[str]:
    """The plan's resume warnings, saying what a new optimizer setting really does.

    Trainer loads a checkpoint's optimizer and scheduler state over the one it built from the
    settings; the worker puts the settings' learning rate, weight decay, betas and epsilon back
    (and says so in a ``resume_settings_applied`` warning event). Call before the run folder's
    ``config.toml`` is replaced: the old values are read from it.
    """
    warnings = list(plan.warnings)
    old = run_settings(plan.run_dir) if plan.checkpoint is not None else None
    if old is None:
        return warnings
    notes: list[str] = []
    for key in OPTIMIZER_KEYS:
        before = getattr(old.settings.training, key)
        now = getattr(cfg.settings.training, key)
        if before == now:
            continue
        prefix = f"[training] {key} was "
        warnings = [w for w in warnings if not w.startswith(prefix)]
        notes.append(f"{prefix}{before!r} at {plan.checkpoint.name}, now {now!r}: "
                     + _optimizer_effect(cfg, key, now))  # fmt: skip
    return notes + warnings


def _record_changes(run_dir: Path, plan: RunPlan) -> None:
    """Say in the run's events which settings this attempt changed (run.json keeps them too)."""
    writer = EventWriter(run_dir / EVENTS_FILE)
    try:
        at = plan.checkpoint.name if plan.checkpoint else "a fresh start"
        writer.emit(make_event(
            "warning", code="settings_changed", changes=list(plan.changes),
            message=f"settings changed at {at}: " + "; ".join(plan.changes),
        ))  # fmt: skip
    finally:
        writer.close()


def _previous_attempts(run_dir: Path) -> dict[str, Any]:
    info = read_run_json(run_dir)
    attempts = list(info.get("attempts") or [])
    if info.get("status"):
        previous = {k: info.get(k) for k in ("status", "start_time", "end_time", "resumed_from",
                                             "global_step", "error", "settings_changes")}
        if previous["status"] == "running":  # its worker died without a word (kill -9)
            previous["status"] = "crashed"
        attempts.append(previous)
    return {"attempts": attempts} if attempts else {}


# ------------------------------------------------------------------ stop


def request_stop(run_dir: Path) -> bool:
    """Ask a running worker to save a checkpoint at the next step and exit (``stopped``).

    Writes ``RUN_DIR/stop.request`` (rank 0 polls it) and sends SIGTERM to the
    rank-0 worker process when it runs on this machine. Under torchrun the
    signal goes to the worker, not to torchrun itself, whose own SIGTERM
    handling would kill the ranks after a grace period instead of letting them
    save. Returns False when the run is not running.
    """
    run_dir = Path(run_dir)
    summary = read_run(run_dir)
    if summary.status != "running":
        return False
    (run_dir / STOP_FILE).write_text(f"{time.time()} {os.getpid()}\n")
    info = read_run_json(run_dir)
    pid = info.get("worker_pid") or info.get("pid")
    same_host = info.get("host") in (None, socket.gethostname())
    if isinstance(pid, int) and same_host and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass  # the stop file is enough
    return True


def kill_run(run_dir: Path) -> bool:
    """Abort a running worker at once (SIGKILL to its process group). Last resort."""
    info = read_run_json(Path(run_dir))
    pgid = info.get("pgid") or info.get("launcher_pid") or info.get("pid")
    if not isinstance(pgid, int) or info.get("host") not in (None, socket.gethostname()):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        return False
    return True
