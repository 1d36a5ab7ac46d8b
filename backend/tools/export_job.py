"""``clmtune export-job FILE --slurm``: an sbatch script that runs the same training on a cluster.

The script (to stdout) asks Slurm for N nodes with G GPUs each, ``--requeue`` and
``--signal=B:USR1@SECONDS``. On the batch host it first prepares the run folder once
(``python -m clmtune.backend.tools.export_job prepare``: the frozen settings, the attempt
record, and which complete checkpoint to continue from, exactly like ``clmtune train
--resume auto``), then starts one torchrun per node with ``srun`` and a c10d rendezvous on
the first node (``SLURM_NODEID`` is the node rank, ``SLURM_JOB_ID`` the rendezvous id).

Graceful stop before the time limit: Slurm sends USR1 to the batch shell; its trap writes
the run's ``stop.request`` (the folder is shared), rank 0 sees it within a fraction of a
second and broadcasts the stop, every rank saves the checkpoint at the next step, the run
ends ``stopped``, and the script requeues the job, which continues from that checkpoint.
A node failure or preemption requeues too (``--requeue``); the next attempt continues from
the newest complete checkpoint.

The folder must be on a filesystem every node sees, and this Python environment too (the
script calls this interpreter by its path).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError

#: Slurm's ``--time`` forms (for ``fullmatch``): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
TIME_RE = re.compile(r"(?P<days>\d+)-(?P<dh>\d{1,2})(?::(?P<dm>\d{1,2})(?::(?P<ds>\d{1,2}))?)?"
                     r"|(?P<first>\d+)(?::(?P<second>\d{1,2})(?::(?P<third>\d{1,2}))?)?")
TIME_FORMS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 04:00:00)"
#: What ``#SBATCH`` values may hold unquoted (sbatch splits them on white space).
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
PARTITION_RE = re.compile(r"[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*")
DEFAULT_PORT = 29500
SLURM_JOB_ENV = "SLURM_JOB_ID"


def check_time(value: str | None) -> str | None:
    """A Slurm ``--time`` (``HH:MM:SS``, ``D-HH:MM:SS``, ``MM``…), or UsageError."""
    if value is None:
        return value
    match = TIME_RE.fullmatch(value)
    if match is None:
        raise UsageError(f"--time {value!r}: not a Slurm time limit; write {TIME_FORMS}")
    # The leading field may be anything (90 = 90 minutes, 100:00:00 = 100 hours); a minutes
    # or seconds field after it counts to 60.
    after = (match[k] for k in ("dm", "ds", "second", "third"))
    if any(v is not None and int(v) >= 60 for v in after):
        raise UsageError(f"--time {value!r}: minutes and seconds must be below 60; write "
                         f"{TIME_FORMS}")
    return value


def safe_job_name(config_path: Path) -> str:
    """``clmtune-STEM`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``-``:
    ``#SBATCH`` lines are not shell-quoted, and the name is part of the log file name."""
    return SAFE_NAME.sub("-", f"clmtune-{Path(config_path).stem}")


def default_run_dir(cfg: Any, config_path: Path) -> Path:
    """``[training] output_dir`` (relative to the file), else ``./runs/STEM`` (no date: every
    requeue must find the same folder)."""
    output_dir = cfg.settings.training.output_dir
    if output_dir:
        path = Path(str(output_dir)).expanduser()
        return path if path.is_absolute() else Path(config_path).parent / path
    return Path("runs") / Path(config_path).stem


def slurm_script(
    config_path: Path,
    run_dir: Path,
    *,
    nodes: int = 1,
    gpus_per_node: int = 1,
    time_limit: str | None = None,
    partition: str | None = None,
    signal_seconds: int = 120,
    job_name: str | None = None,
    python: str | None = None,
) -> str:
    """The sbatch script (a string); paths absolute, every value shell-quoted, the job name
    reduced to ``[A-Za-z0-9._-]`` (``#SBATCH`` lines are not a shell's to quote)."""
    if nodes < 1:
        raise UsageError(f"--nodes {nodes}: must be at least 1")
    if gpus_per_node < 0:
        raise UsageError(f"--gpus-per-node {gpus_per_node}: must be 0 (CPU) or more")
    check_time(time_limit)
    if partition is not None and not PARTITION_RE.fullmatch(partition):
        raise UsageError(f"--partition {partition!r}: not a Slurm partition name; use letters, "
                         "digits, '.', '_', '-' (several: comma-separated)")
    py = python or sys.executable
    procs = max(1, gpus_per_node)
    name = SAFE_NAME.sub("-", job_name) if job_name else safe_job_name(config_path)
    q = shlex.quote
    run_dir, config_path = Path(run_dir).absolute(), Path(config_path).absolute()
    head = [
        "#!/bin/bash",
        f"# Written by `clmtune export-job --slurm` on {time.strftime('%Y-%m-%d %H:%M')}:"
        f" {config_path.name} on {nodes} node(s) x {procs} process(es).",
        "# Submit with: sbatch THIS_FILE. Watch: clmtune-tui (or clmtune show) on the run folder.",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
    ]
    if gpus_per_node > 0:
        head.append(f"#SBATCH --gpus-per-node={gpus_per_node}")
    if time_limit:
        head.append(f"#SBATCH --time={time_limit}")
    if partition:
        head.append(f"#SBATCH --partition={partition}")
    head += [
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:USR1@{signal_seconds}",
        "#SBATCH --open-mode=append",
        "#SBATCH --output=clmtune-%x-%j.out",  # in the folder sbatch was called from
    ]
    prepare = shlex.join([py, "-m", "clmtune.backend.tools.export_job", "prepare",
                          str(config_path), str(run_dir), "--nodes", str(nodes),
                          "--procs-per-node", str(procs)])  # fmt: skip
    worker = (
        f'{q(py)} -m torch.distributed.run --nnodes="$SLURM_NNODES" --nproc_per_node={procs}'
        ' --node_rank="$SLURM_NODEID" --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d'
        ' --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT"'
        f' -m clmtune.backend.worker "$RUN_DIR" ${{RESUME:+--resume "$RESUME"}}'
    )
    body = f"""
set -uo pipefail
RUN_DIR={q(str(run_dir))}
export RUN_DIR
export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_PORT=$(( {DEFAULT_PORT} + SLURM_JOB_ID % 1000 ))
export PYTHONUNBUFFERED=1

# Once, on this node: the frozen settings and the attempt record; RESUME is the newest
# complete checkpoint (empty on the first attempt), as with `clmtune train --resume auto`.
RESUME="$({prepare})" || exit 2
export RESUME

# Before the time limit Slurm sends USR1 (--signal above): ask for the safe stop. Rank 0
# sees stop.request, every rank saves a checkpoint at the next step, the run ends "stopped".
STOPPING=0
stop_training() {{ STOPPING=1; echo "clmtune: time limit near: saving a checkpoint"; \\
    touch "$RUN_DIR/stop.request"; }}
trap stop_training USR1 TERM

srun --kill-on-bad-exit=1 --ntasks-per-node=1 bash -c {q(worker)} &
SRUN_PID=$!
while :; do  # a trapped signal interrupts `wait`: wait again until srun has ended
    wait "$SRUN_PID"; CODE=$?
    kill -0 "$SRUN_PID" 2>/dev/null || break
done

# Stopped for the time limit (not completed, not failed): continue in a new allocation.
if [ "$STOPPING" = 1 ] && grep -Eq '"status": "stopped"' "$RUN_DIR/run.json"; then
    scontrol requeue "$SLURM_JOB_ID" && exit 0
fi
exit "$CODE"
"""
    return "\n".join(head) + "\n" + body


# ------------------------------------------------------------------ prepare (on the cluster)


def _previous_was_this_job(run_dir: Path) -> bool:
    """run.json says "running" for an attempt of this very Slurm job: it died (requeued)."""
    from clmtune.backend.rundir.layout import read_run_json

    job = os.environ.get(SLURM_JOB_ENV)
    info = read_run_json(run_dir)
    return bool(job) and info.get("status") == "running" and str(info.get("slurm_job_id")) == job


def _job_config(cfg: Any, *, nodes: int, procs_per_node: int) -> Any:
    """The settings as the job runs them: the allocation's processes, Slurm's rendezvous."""
    cfg.launch.update(nproc_per_node=procs_per_node, nnodes=nodes)
    cfg.launch.pop("master_addr", None)
    cfg.launch.pop("master_port", None)
    return cfg


def check_run_dir(cfg: Any, config_path: Path, run_dir: Path, *, nodes: int,
                  procs_per_node: int) -> str | None:
    """What the job's ``prepare`` step will decide for ``run_dir``, decided now on the folder
    as it is (:func:`clmtune.backend.resume_plan.plan_run`, ``--resume auto``, writes nothing).

    A folder it would refuse (a completed run, another script's outputs, a folder inside a
    run) is a :class:`RunDirError` here, exit 2, naming ``--run-dir``: else the job would wait
    in the queue and then fail at its first step. A run running there now (this job's own
    earlier attempt, or one that may end first) is only a warning line, returned.
    """
    from clmtune.backend.errors import RunDirError
    from clmtune.backend.resume_plan import RESUME_AUTO, RunComplete, is_ours, plan_run
    from clmtune.backend.rundir.summary import read_run

    run_dir = Path(run_dir).absolute()
    if run_dir.is_dir() and is_ours(run_dir) and read_run(run_dir).status == "running":
        return (f"{run_dir}: a run is running there now; the job continues it only if it has "
                "stopped by then (else give it a new --run-dir)")
    job_cfg = _job_config(cfg, nodes=nodes, procs_per_node=procs_per_node)
    new_dir = "pass --run-dir NEW for a new run"
    try:
        plan_run(run_dir, job_cfg, RESUME_AUTO)
    except RunComplete as exc:
        reached = f"step {exc.step}" if exc.step is not None else "its end"
        raise RunDirError(
            f"{run_dir}: holds a completed run ({reached}); the job would stop at its first "
            "step with nothing to train",
            f"{new_dir}, or raise [training] max_steps in {Path(config_path).name} to train "
            "it further (the job then resumes it)") from None
    except RunDirError as exc:
        raise RunDirError(f"{exc.message}; the job would stop at its first step",
                          new_dir) from None
    return None


def prepare(config_path: Path, run_dir: Path, *, nodes: int, procs_per_node: int) -> Path | None:
    """Prepare ``run_dir`` for the attempt the script starts; returns the checkpoint to
    resume from (None: from the beginning). Writes what ``clmtune train`` writes first."""
    from clmtune.backend import launch
    from clmtune.backend.resume_plan import plan_run
    from clmtune.backend.rundir.layout import RUN_JSON, read_run_json, write_json_atomic
    from clmtune.backend.settings.toml_io import load_config

    run_dir = Path(run_dir).resolve()
    if _previous_was_this_job(run_dir):  # killed without a final record (node loss, preempt)
        info = read_run_json(run_dir)
        info.update(status="failed", end_time=time.time(),
                    error="the Slurm job was requeued before this attempt wrote its end",
                    hint="continued from the newest complete checkpoint")  # fmt: skip
        write_json_atomic(run_dir / RUN_JSON, info)
    cfg = load_config(Path(config_path), for_launch=True, hardware=False)
    cfg = _job_config(cfg, nodes=nodes, procs_per_node=procs_per_node)
    plan = plan_run(run_dir, cfg, "auto")
    run_dir = launch.prepare_run_dir(cfg, run_dir)
    if plan.changes:
        launch._record_changes(run_dir, plan)
    write_json_atomic(run_dir / RUN_JSON, {
        **launch._previous_attempts(run_dir), "status": "running", "pid": None,
        "host": os.uname().nodename, "command": ["sbatch", os.environ.get(SLURM_JOB_ENV, "")],
        "start_time": time.time(), "world_size": nodes * procs_per_node,
        "resumed_from": str(plan.checkpoint) if plan.checkpoint else None,
        "settings_changes": list(plan.changes), "slurm_job_id": os.environ.get(SLURM_JOB_ENV),
    })  # fmt: skip
    return plan.checkpoint


def main(argv: list[str] | None = None) -> int:
    """``python -m clmtune.backend.tools.export_job prepare FILE RUN_DIR --nodes N
    --procs-per-node P``: prints the checkpoint to resume from (empty for a fresh start)."""
    parser = argparse.ArgumentParser(prog="python -m clmtune.backend.tools.export_job")
    parser.add_argument("action", choices=["prepare"])
    parser.add_argument("file", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--procs-per-node", type=int, default=1)
    args = parser.parse_args(argv)
    from clmtune.backend.errors import ClmtuneError

    try:
        checkpoint = prepare(args.file, args.run_dir, nodes=args.nodes,
                             procs_per_node=args.procs_per_node)  # fmt: skip
    except ClmtuneError as exc:  # ConfigError / RunError: one line each
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"clmtune: error: {line}", file=sys.stderr)
        return 2
    print(checkpoint or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
