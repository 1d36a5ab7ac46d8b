"""The runs folder: :func:`list_runs` (summaries) and :func:`list_runs_json` (``clmtune runs``).

Sweeps leave hundreds of runs in one folder and the TUI lists it every 2 s, so the
summary of a *finished* run is kept across processes in one file per runs folder
under ``$CLMTUNE_CACHE/listing/`` (default ``~/.cache/clmtune``), keyed by a signature
of the run folder (the names in it and the stat of the files a summary reads,
checkpoint folders included). An unchanged finished run is never read again; a
running one always is (its pid and the clock matter). A signature newer than
``cache.RACY_NS`` is not trusted (coarse time stamps). The figures themselves come
from :func:`clmtune.backend.rundir.summary.read_run`, i.e. from the one reducer.

A run that finished also leaves its summary in its own folder (:func:`store_summary`,
called by the worker), so even the first listing of a folder no process listed
before reads one small file per finished run.

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

from clmtune.backend import __version__
from clmtune.backend.events import read_json, to_float
from clmtune.backend.rundir import cache
from clmtune.backend.rundir.layout import SUMMARY_FILE, write_json_atomic

if TYPE_CHECKING:
    from clmtune.backend.rundir.summary import RunSummary

ENDED = ("completed", "stopped", "failed", "unknown")
# Bump both when a figure is computed differently: caches of older code then go unread.
LISTING_CACHE_VERSION = 4
SUMMARY_VERSION = 2
#: Files whose stat is part of a run's signature (others count by name only).
WATCHED = frozenset({"run.json", "events.jsonl", "config.toml", "config.json",
                     "trainer_state.json", "all_results.json", "train_results.json",
                     "eval_results.json"})
#: Entries no summary reads: the worker's logs, and the completions generated for the run
#: (tools.generate_io's samples.jsonl, appended to after the run by the Try screen).
UNREAD = frozenset({"logs", "samples.jsonl"})


def _scan(run_dir: str) -> tuple[list, int | None] | None:
    """(signature, the mtime of the run's own summary file or None); None when unreadable.

    The signature is what a finished run's summary depends on: the name of every entry
    and the size and mtime of the files a summary reads, checkpoint folders included.
    Plain lists and ints, as the caches store them (compared without converting). It
    holds no path and no inode, so a copy that keeps the files' times (``cp -a``, hard
    links) has the same one as its original: see :func:`store_summary`.
    """
    entries = []
    own = None
    try:
        for entry in os.scandir(run_dir):
            name = entry.name
            if name.startswith(".") or name in UNREAD:
                if name == SUMMARY_FILE:
                    own = entry.stat().st_mtime_ns
                continue
            if name in WATCHED or name.startswith("checkpoint-"):
                st = entry.stat()
                entries.append([name, st.st_size, st.st_mtime_ns])
            else:
                entries.append([name, 0, 0])
    except OSError:
        return None
    entries.sort()
    return entries, own


def _signature(run_dir: str) -> list | None:
    scanned = _scan(run_dir)
    return None if scanned is None else scanned[0]


def _newest_ns(signature: list) -> int:
    return max([0] + [e[2] for e in signature])


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


def _order(started: float | None, run_dir: str) -> float:
    """Newest first: by start time, else by the folder's time (read now, never cached: it
    is not in the signature, a new ``samples.jsonl`` or dotfile changes it)."""
    if started is not None:
        return started
    try:
        return os.stat(run_dir).st_mtime
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
        scanned = _scan(child)
        signature = None if scanned is None else scanned[0]
        key = child  # as listed: the stored text holds the paths in the form given
        entry = stored.get(key)
        if isinstance(entry, dict) and signature is not None and entry.get("sig") == signature:
            try:
                text, started = str(entry["json"]), to_float(entry["started"])
                item = text if as_json else _summary_from_json(text)
            except (KeyError, TypeError, ValueError):
                pass
            else:
                fresh[key] = entry
                rows.append((_order(started, child), item))
                continue
        left = None if scanned is None or scanned[1] is None else _left_summary(child, *scanned)
        if left is not None:
            text, started = left
            rows.append((_order(started, child), text if as_json else _summary_from_json(text)))
        else:
            path = Path(child)
            if not is_run_dir(path):
                continue
            from clmtune.backend.rundir.summary import read_run

            summary = read_run(path)
            text, started = json.dumps(summary.to_json()), summary.started
            rows.append((_order(started, child), text if as_json else summary))
            if summary.status not in ENDED:
                continue
        if signature is not None and not cache.racy(_newest_ns(signature), now_ns):
            fresh[key] = {"sig": signature, "json": text, "started": started}
            changed = True
    if changed or len(fresh) != len(stored):
        with _disk_lock:
            _save_listing_cache(root, fresh)
    cache.forget_vanished(root, {os.path.abspath(p) for p in children})
    rows.sort(key=lambda row: row[0], reverse=True)
    return [item for _, item in rows]


# ---------------------------------------------------------------- the summary a run leaves


def store_summary(run_dir: Path) -> bool:
    """Leave a finished run's summary in its folder (``.clmtune-summary.json``).

    The worker calls this last, so that the first listing of a folder of finished runs
    (a sweep, in a process or on a machine that never listed them) reads one small file
    per run instead of its events, checkpoints and results. The file holds the summary
    without its paths (a copy of the run with the same file times reads it too), the
    signature it was made from and the version that wrote it, and is used only while
    that signature still holds and every file in it is older than the summary file
    itself. A change within the time-stamp tick of a file's last change would not show
    in its stat (git's racy rule), so the run is read only once its newest file is a
    tick old (20 ms; 2 s on file systems with whole-second stamps). Returns whether a
    usable file was left; a folder that keeps changing gets none.

    Files inside a checkpoint count through the checkpoint folder's own stat, as for the
    on-disk listing cache: a file damaged in place later still lists as it was (a resume
    classifies the checkpoint afresh and refuses it).
    """
    from clmtune.backend.rundir.summary import read_run

    run_dir = Path(run_dir)
    target = run_dir / SUMMARY_FILE
    for _ in range(4):
        signature = _signature(str(run_dir))
        if signature is None:
            break
        wait_ns = _newest_ns(signature) + _tick_ns(signature) - time.time_ns()
        if wait_ns > 0:  # a write in the newest file's tick would not show: let it pass
            time.sleep(wait_ns / 1e9)
            continue
        summary = read_run(run_dir)
        if summary.status not in ENDED:
            break
        data = dict(summary.to_json())
        del data["path"], data["name"]
        data["checkpoints"] = [{**c, "path": Path(c["path"]).name} for c in data["checkpoints"]]
        try:
            write_json_atomic(target, {"version": SUMMARY_VERSION, "clmtune": __version__,
                                       "sig": signature, "summary": data})
            scanned = _scan(str(run_dir))
        except OSError:
            return False
        if (scanned is not None and scanned[0] == signature and scanned[1] is not None
                and _newest_ns(signature) < scanned[1]):
            return True
    forget_summary(run_dir)
    return False


def _tick_ns(signature: list) -> int:
    """A safe upper bound of the file system's time-stamp step: 2 s where every stamp is
    whole seconds (FAT, HFS+, ext3-style inodes, some NFS servers), else 20 ms."""
    stamps = [e[2] for e in signature if e[2]]
    if stamps and all(ns % 1_000_000_000 == 0 for ns in stamps):
        return 2_000_000_000
    return 20_000_000


def forget_summary(run_dir: Path) -> None:
    """Remove the summary a run left (a new attempt starts: it will be out of date)."""
    try:
        (Path(run_dir) / SUMMARY_FILE).unlink()
    except OSError:
        pass


def left_summary(run_dir: Path | str) -> RunSummary | None:
    """The summary a finished run left in its folder, while it still holds; else None.

    What :func:`read_run` would return (without ``state``), for one small file's read.
    """
    child = os.fspath(run_dir)
    if not os.path.exists(os.path.join(child, SUMMARY_FILE)):
        return None
    scanned = _scan(child)
    if scanned is None or scanned[1] is None:
        return None
    left = _left_summary(child, *scanned)
    return None if left is None else _summary_from_json(left[0])


def _left_summary(child: str, signature: list, own_ns: int) -> tuple[str, float | None] | None:
    """(JSON text, start time) from the summary the run left, when it still holds; else None."""
    if _newest_ns(signature) >= own_ns:
        return None
    data = read_json(os.path.join(child, SUMMARY_FILE))
    if (not isinstance(data, dict) or data.get("version") != SUMMARY_VERSION
            or data.get("clmtune") != __version__ or data.get("sig") != signature):
        return None
    try:
        body = data["summary"]
        path = str(Path(child))
        for ckpt in body["checkpoints"]:
            ckpt["path"] = os.path.join(path, ckpt["path"])
        text = json.dumps({"path": path, "name": os.path.basename(path), **body})
        started = to_float(body["started"])
    except (KeyError, TypeError, ValueError):
        return None
    return text, started


def _summary_from_json(text: str) -> RunSummary:
    from clmtune.backend.rundir.summary import RunSummary

    return RunSummary.from_json(json.loads(text))

