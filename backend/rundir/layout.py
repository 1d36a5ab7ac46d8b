"""The run directory's layout: file names, ``run.json``, atomic writes, pid liveness.

Pure Python (the TUI imports it). See DESIGN.md "Run directory" for the contract;
readers here tolerate damaged files (a half-written ``run.json`` reads as ``{}``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

from clmtune.backend.errors import RunDirError
from clmtune.backend.events import EVENTS_FILE, _sanitize, read_json, to_float

RUN_JSON = "run.json"
CONFIG_TOML = "config.toml"
COMPLETE_MARKER = ".clmtune-complete"
#: A finished run's summary, left by its worker for listings (rundir.listing.store_summary).
SUMMARY_FILE = ".clmtune-summary.json"
STOP_FILE = "stop.request"
STATUSES = ("running", "completed", "stopped", "failed", "crashed", "unknown")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
RESULT_FILES = {
    "train": "train_results.json",
    "eval": "eval_results.json",
    "all": "all_results.json",
}


class RunError(RunDirError):
    """A user-facing, one-line problem with a run directory or checkpoint."""


# ---------------------------------------------------------------- small readers


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        # A byte-order mark is dropped, as the settings reader (settings.toml_io) does.
        return tomllib.loads(path.read_bytes().decode("utf-8").removeprefix("\ufeff"))
    except (OSError, ValueError):  # UnicodeDecodeError and TOMLDecodeError are ValueErrors
        return {}


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to ``path`` then ``os.replace`` it: readers see old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(_sanitize(data), fh, indent=2, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_run_json(run_dir: Path) -> dict:
    """``run.json`` as a dict ({} when missing or damaged)."""
    data = read_json(Path(run_dir) / RUN_JSON)
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- process checks


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists on this machine (zombies count as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    try:
        import psutil  # light C extension; only for the zombie / reuse checks

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process just left
        return True


def _pid_reused(pid: int, started: float | None) -> bool:
    """True when ``pid`` now belongs to a process born after the run started."""
    if started is None:
        return False
    try:
        import psutil
    except ImportError:
        return False
    try:
        created = psutil.Process(pid).create_time()
    except (OSError, psutil.Error):  # gone, or not ours to see
        return False
    # The worker writes its start time after it was born; a reused pid is younger.
    return created > started + 2.0


def run_process_alive(info: dict) -> bool | None:
    """Whether the process recorded in ``run.json``-like ``info`` is alive.

    None when it cannot be told (another host, or no pid recorded).
    """
    pid = info.get("pid")
    host = info.get("host")
    if not isinstance(pid, int):
        return None
    if host and host != socket.gethostname():
        return None
    if not pid_alive(pid):
        return False
    return not _pid_reused(pid, to_float(info.get("start_time")))



def is_run_dir(path: Path) -> bool:
    """True for a clmtune run dir or a plain Hugging Face output dir."""
    path = Path(path)
    if not path.is_dir():
        return False
    for name in (RUN_JSON, EVENTS_FILE, TRAINER_STATE, "all_results.json"):
        if (path / name).is_file():
            return True
    try:
        return any(CHECKPOINT_RE.match(e.name) and e.is_dir() for e in os.scandir(path))
    except OSError:
        return False
