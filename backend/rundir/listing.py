"""The runs folder: :func:`list_runs` (summaries) and :func:`list_runs_json` (``clmtune runs``).

Sweeps leave hundreds of runs in one folder and the TUI lists it every 2 s, so the
summary of a *finished* run is kept across processes in one file per runs folder
under ``$CLMTUNE_CACHE/listing/`` (default ``~/.cache/clmtune``), keyed by a signature
of the run folder (the names in it and the stat of the files a summary reads,
checkpoint folders included). An unchanged finished run is never read again; a
running one always is (its pid and the clock matter). A signature newer than
``cache.RACY_NS`` is not trusted (coarse time stamps). The figures themselves come
from :func:`clmtune.backend.rundir.summary.read_run`, i.e. from the one reducer.

The modules behind a summary are imported only when a run must be read: listing a
folder whose runs are all cached stats files and copies stored text.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.events import read_json
from clmtune.backend.rundir import cache

if TYPE_CHECKING:
    from clmtune.backend.rundir.summary import RunSummary

ENDED = ("completed", "stopped", "failed", "unknown")
LISTING_CACHE_VERSION = 2
#: Files whose stat is part of a run's signature (others count by name only).
WATCHED = frozenset({"run.json", "events.jsonl", "config.toml", "config.json",
                     "trainer_state.json", "all_results.json", "train_results.json",
                     "eval_results.json"})


def _signature(run_dir: str) -> list | None:
    """What a finished run's summary depends on: its entries' stat, checkpoints included.

    Plain lists and ints, as the listing cache stores them (compared without converting).
    """
    try:
        entries = []
        for entry in os.scandir(run_dir):
            name = entry.name
            if name.startswith(".") or name == "logs":
                continue
            if name in WATCHED or name.startswith("checkpoint-"):
                st = entry.stat()
                entries.append([name, st.st_ino, st.st_size, st.st_mtime_ns])
            else:
                entries.append([name, 0, 0, 0])
        st = os.stat(run_dir)
    except OSError:
        return None
    entries.sort()
    return [st.st_ino, st.st_mtime_ns, entries]


def _newest_ns(signature: list) -> int:
    return max([signature[1]] + [e[3] for e in signature[2]])


def _cache_file(root: Path) -> Path:
    base = os.environ.get("CLMTUNE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "clmtune")
    where = os.path.abspath(root)
    tag = f"{os.path.basename(where)}-{zlib.crc32(where.encode()):08x}-{len(where)}"
    return Path(base) / "listing" / f"{tag}.json"


_disk_lock = threading.Lock()


def _load_listing_cache(root: Path) -> dict[str, Any]:
    data = read_json(_cache_file(root))
    if not isinstance(data, dict) or data.get("version") != LISTING_CACHE_VERSION:
        return {}
    runs = data.get("runs")
    return runs if isinstance(runs, dict) else {}


def _save_listing_cache(root: Path, runs: dict[str, Any]) -> None:
    path = _cache_file(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"version": LISTING_CACHE_VERSION, "runs": runs}, fh,
                      separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: list without the cache


def list_runs(root: Path) -> list[RunSummary]:
    """Every run dir directly under ``root``, newest first; a missing root gives [].

    A finished run whose files did not change since it was last listed (by any
    process) comes from the listing cache without reading its files.
    """
    return [item for item in _listing(Path(root), as_json=False)]


def list_runs_json(root: Path) -> list[str]:
    """:func:`list_runs` as one JSON object (text) per run: ``clmtune runs --json``.

    Cached runs are passed through as stored, never parsed: the listing of a big
    folder costs little more than a stat of each run's files.
    """
    return [item for item in _listing(Path(root), as_json=True)]


def _order(summary: RunSummary) -> float:
    """Newest first: by start time, else by the folder's time."""
    if summary.started is not None:
        return summary.started
    try:
        return summary.path.stat().st_mtime
    except OSError:
        return 0.0


def _listing(root: Path, *, as_json: bool) -> list[Any]:
    try:
        children = [e.path for e in os.scandir(root) if e.is_dir()]
    except OSError:
        return []
    from clmtune.backend.rundir.layout import is_run_dir

    with _disk_lock:
        stored = _load_listing_cache(root)
    fresh: dict[str, Any] = {}
    changed = False
    now_ns = time.time_ns()
    rows: list[tuple[float, Any]] = []
    for child in children:
        signature = _signature(child)
        key = os.path.abspath(child)
        entry = stored.get(key)
        if isinstance(entry, dict) and signature is not None and entry.get("sig") == signature:
            try:
                text, order = str(entry["json"]), float(entry["order"])
                item = text if as_json else _summary_from_json(text)
            except (KeyError, TypeError, ValueError):
                pass
            else:
                fresh[key] = entry
                rows.append((order, item))
                continue
        path = Path(child)
        if not is_run_dir(path):
            continue
        from clmtune.backend.rundir.summary import read_run

        summary = read_run(path)
        text = json.dumps(summary.to_json())
        rows.append((_order(summary), text if as_json else summary))
        if (signature is not None and summary.status in ENDED
                and not cache.racy(_newest_ns(signature), now_ns)):
            fresh[key] = {"sig": signature, "json": text, "order": _order(summary)}
            changed = True
    if changed or len(fresh) != len(stored):
        with _disk_lock:
            _save_listing_cache(root, fresh)
    cache.forget_vanished(root, {os.path.abspath(p) for p in children})
    rows.sort(key=lambda row: row[0], reverse=True)
    return [item for _, item in rows]




def _summary_from_json(text: str) -> RunSummary:
    from clmtune.backend.rundir.summary import RunSummary

    return RunSummary.from_json(json.loads(text))

