"""Runs by name or by path: the one helper every command that takes a run uses.

``clmtune show base-20260101-120000`` finds ``./runs/base-20260101-120000`` (the runs folder is
``--runs-dir``, default ``./runs``); ``clmtune show runs/base-…`` or an absolute path works too.
An unknown name is a :class:`~clmtune.backend.errors.UsageError` (one line, exit 2) listing the
closest names, so a typo costs one more try, not a search. Pure Python (the dashboard may import
it).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from clmtune.backend.errors import UsageError
from clmtune.backend.rundir.layout import is_run_dir

#: Where runs live unless ``--runs-dir`` says otherwise.
DEFAULT_RUNS_DIR = Path("runs")


def run_names(runs_dir: Path) -> list[str]:
    """Names of the run folders directly under ``runs_dir`` (empty when it is missing)."""
    try:
        entries = [e for e in os.scandir(runs_dir) if e.is_dir()]
    except OSError:
        return []
    return sorted(e.name for e in entries if is_run_dir(Path(e.path)))


def closest_names(name: str, names: list[str], limit: int = 3) -> list[str]:
    """Names starting with or containing ``name`` first, then difflib's close matches."""
    lowered = name.lower()
    found = [n for n in names if n.lower().startswith(lowered)]
    found += [n for n in names if lowered in n.lower() and n not in found]
    found += [n for n in difflib.get_close_matches(name, names, n=limit, cutoff=0.7)
              if n not in found]  # fmt: skip
    return found[:limit]


def _checked(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: is a file, not a run directory; give the run's folder")
    if not is_run_dir(path):
        raise UsageError(f"{path}: not a run directory (no run.json, events or checkpoints)")
    return path


def resolve_run(text: str, runs_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    """The run folder ``text`` names: an existing path, else a name under ``runs_dir``.

    Raises :class:`UsageError` with one line: a file, a folder that holds no run, or an unknown
    name (with the closest names under ``runs_dir``).
    """
    path = Path(text).expanduser()
    if path.exists():
        return _checked(path)
    under = Path(runs_dir) / text
    if not path.is_absolute() and under.exists():
        return _checked(under)
    names = run_names(Path(runs_dir))
    if not Path(runs_dir).is_dir():
        where = f"{runs_dir} does not exist; give a run's path or --runs-dir"
    elif not names:
        where = f"no runs under {runs_dir}"
    else:
        close = closest_names(Path(text).name, names)
        where = f"closest: {', '.join(close)}" if close else f"{len(names)} runs under {runs_dir}"
    raise UsageError(f"{text}: no such run ({where})")


def need_runs_dir(path: Path, *, given: bool) -> Path:
    """A folder of runs: a missing one given on the command line is an error, a file always."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: is a file; give the folder that holds the runs")
    if given and not path.exists():
        raise UsageError(f"{path}: no such folder; give the folder that holds the runs")
    if is_run_dir(path):
        raise UsageError(f"{path}: is a run, not a folder of runs; see it with: "
                         f"clmtune show {path}")
    return path


def resolve_runs(texts: list[str], runs_dir: str | Path | None) -> list[Path]:
    """Every run in ``texts`` resolved (``runs_dir`` None: ./runs); all bad names reported at
    once, one line each, before anything is read."""
    paths, problems = [], []
    for text in texts:
        try:
            paths.append(resolve_run(text, Path(runs_dir or DEFAULT_RUNS_DIR)))
        except UsageError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("\n".join(problems))
    return paths
