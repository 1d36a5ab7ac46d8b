"""``clmtune export-job FILE --slurm``: an sbatch script for the same training, to stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clmtune.backend.cli_text import EXIT_OK
from clmtune.backend.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export-job`` to the ``clmtune`` subcommands."""
    p = sub.add_parser("export-job", help="a cluster job script (sbatch) for a settings file")
    p.add_argument("file", help="the run settings (TOML)")
    p.add_argument("--slurm", action="store_true", help="a Slurm sbatch script (the only kind)")
    p.add_argument("--nodes", type=int, default=1, help="machines (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=1,
                   help="GPUs per machine, one process each (0: one CPU process)")
    p.add_argument("--time", metavar="HH:MM:SS", help="the job's time limit (also MM, MM:SS, "
                   "D-HH, D-HH:MM, D-HH:MM:SS)")
    p.add_argument("--partition", help="the Slurm partition")
    p.add_argument("--run-dir", help="the run folder on shared storage (default: output_dir,"
                   " else ./runs/NAME)")
    p.add_argument("--signal-seconds", type=int, default=120,
                   help="seconds before the time limit to save a checkpoint (default 120)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the settings, then print the sbatch script."""
    from clmtune.backend.settings.toml_io import load_config
    from clmtune.backend.tools import export_job

    if not args.slurm:
        raise UsageError("export-job: say which scheduler: --slurm (the only one so far)")
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such settings file (create one with clmtune init FILE)")
    if args.signal_seconds < 10:
        raise UsageError(f"--signal-seconds {args.signal_seconds}: give at least 10 seconds")
    cfg = load_config(path, for_launch=True, hardware=False)  # the cluster's GPUs, not ours
    run_dir = Path(args.run_dir) if args.run_dir else export_job.default_run_dir(cfg, path)
    script = export_job.slurm_script(
        path, run_dir, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
        time_limit=args.time, partition=args.partition, signal_seconds=args.signal_seconds,
    )  # fmt: skip
    # A folder the job's first step would refuse (a completed run): exit 2 now, not after
    # the queue; a run running there now only warns (it may be this job's own).
    note = export_job.check_run_dir(cfg, path, run_dir, nodes=args.nodes,
                                    procs_per_node=max(1, args.gpus_per_node))
    if note:
        print(f"clmtune: warning: {note}", file=sys.stderr)
    print(script, end="")
    return EXIT_OK
