"""Transitional re-export of :mod:`clmtune.backend.rundir` (the old ``backend.runs``).

New code imports from ``clmtune.backend.rundir.layout`` / ``.checkpoints`` /
``.state`` / ``.listing``. This shim stays while code importing
``clmtune.backend.runs`` is edited elsewhere; delete it once nothing imports it.
"""

from __future__ import annotations

from clmtune.backend.rundir.cache import clear_caches
from clmtune.backend.rundir.checkpoints import (
    CheckpointInfo,
    classify_checkpoint,
    list_checkpoints,
    resolve_resume,
)
from clmtune.backend.rundir.layout import (
    CHECKPOINT_RE,
    COMPLETE_MARKER,
    CONFIG_TOML,
    RESULT_FILES,
    RUN_JSON,
    STATUSES,
    STOP_FILE,
    TRAINER_STATE,
    RunError,
    is_run_dir,
    pid_alive,
    read_run_json,
    run_process_alive,
    write_json_atomic,
)
from clmtune.backend.rundir.listing import list_runs
from clmtune.backend.rundir.summary import RunSummary, delete_run, read_run

__all__ = ["CHECKPOINT_RE", "COMPLETE_MARKER", "CONFIG_TOML", "RESULT_FILES", "RUN_JSON",
           "STATUSES", "STOP_FILE", "TRAINER_STATE", "CheckpointInfo", "RunError",
           "RunSummary", "classify_checkpoint", "clear_caches", "delete_run", "is_run_dir",
           "list_checkpoints", "list_runs", "pid_alive", "read_run", "read_run_json",
           "resolve_resume", "run_process_alive", "write_json_atomic"]
