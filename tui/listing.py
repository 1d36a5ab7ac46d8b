"""The runs folder as the home screen sees it: read once, then only what changed.

A sweep leaves hundreds of runs in one folder. Reading every run on every refresh
(two seconds) kept an idle dashboard busy and its first rows waited for the last run.
:class:`RunsLister` instead:

* on the first call reads the newest ``first`` runs (ordered by ``run.json``'s start
  time, a small file) and hands them out at once, then reads the rest;
* afterwards stats each run dir (the folder, ``run.json``, ``events.jsonl``) and reads
  again only the runs whose files changed, plus the running ones (their process may have
  died, which no file says);
* hands out a new listing only when something changed.

Pure Python (no Textual): the screen calls it from a thread worker. The summaries come
from the backend's public ``left_summary`` (a finished run's own summary file),
``read_run``, ``is_run_dir`` and ``read_run_json``.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Files whose change means a run must be read again (the folder's own mtime covers
#: files and checkpoints that appear or go, and every atomic rewrite of run.json).
WATCHED = ("run.json", "events.jsonl")
#: Runs read before the first listing is handed out: more than a tall terminal shows.
FIRST_ROWS = 60
#: ... and a first handful before those, so that something shows as soon as possible.
FIRST_STAGE = 8
#: Statuses whose summary depends on more than files (a dead pid makes "crashed").
LIVE_STATUSES = ("running",)


def _stat_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def signature(run_dir: str) -> tuple:
    """What changes when anything a run summary shows changes."""
    return (_stat_key(run_dir), *(_stat_key(os.path.join(run_dir, n)) for n in WATCHED))


def newest_started(children: list[str], count: int) -> list[str]:
    """The ``count`` run dirs that started last, reading few ``run.json`` files.

    A run's ``run.json`` is written when it starts and rewritten later, so its mtime is
    never before its start: going through the folders by that mtime, newest first, no
    folder left can beat the ``count``-th start found once the mtimes drop below it.
    Folders without ``run.json`` (plain Hugging Face outputs) rank by their own mtime.
    """
    from clmtune.backend.rundir.layout import read_run_json

    stamped: list[tuple[float, str, bool]] = []
    for path in children:
        try:
            stamped.append((os.stat(os.path.join(path, "run.json")).st_mtime, path, True))
        except OSError:
            try:
                stamped.append((os.stat(path).st_mtime, path, False))
            except OSError:
                continue
    stamped.sort(reverse=True)
    top: list[tuple[float, str]] = []  # the ``count`` newest found so far (a min-heap)
    for mtime, path, has_record in stamped:
        if len(top) >= count and mtime < top[0][0]:
            break
        start = read_run_json(Path(path)).get("start_time") if has_record else None
        item = (float(start) if isinstance(start, (int, float)) else mtime, path)
        if len(top) < count:
            heapq.heappush(top, item)
        else:
            heapq.heappushpop(top, item)
    return [path for _, path in sorted(top, reverse=True)]


def sort_newest_first(runs: list[Any]) -> list[Any]:
    """Newest first by start time (the folder's mtime for runs without one)."""

    def key(run: Any) -> float:
        if run.started is not None:
            return run.started
        try:
            return Path(run.path).stat().st_mtime
        except OSError:
            return 0.0

    return sorted(runs, key=key, reverse=True)


@dataclass
class _Known:
    signature: tuple
    summary: Any


class RunsLister:
    """Incremental listing of one runs folder (one instance per screen, one thread at a time)."""

    def __init__(self, root: Path, *, first: int = FIRST_ROWS) -> None:
        self.root = Path(root)
        self.first = first
        self._known: dict[str, _Known] = {}
        self._order: list[str] = []
        self.loaded = False  # True once a complete listing was handed out
        self.reads = 0  # read_run calls so far (benchmarks and tests look at it)
        # One refresh at a time: a timer tick during a long first listing is skipped, not
        # queued (and not a restart: the first listing resumes where it stopped).
        self._lock = threading.Lock()

    def forget(self, run_dir: Path) -> None:
        """Drop one run (deleted): the next refresh re-lists the folder."""
        self._known.pop(str(run_dir), None)

    def _children(self) -> list[str] | None:
        try:
            with os.scandir(self.root) as entries:
                return [e.path for e in entries if e.is_dir()]
        except OSError:
            return None

    def _read(self, path: str, sig: tuple | None = None) -> Any:
        from clmtune.backend.rundir.listing import left_summary
        from clmtune.backend.rundir.summary import read_run

        self.reads += 1
        # A finished run's own summary file when it still holds: one small read.
        summary = left_summary(path) or read_run(Path(path))
        self._known[path] = _Known(sig if sig is not None else signature(path), summary)
        return summary

    def refresh(
        self, emit: Callable[[list[Any]], None], cancelled: Callable[[], bool] = lambda: False
    ) -> bool:
        """Bring the listing up to date; ``emit(runs)`` each time it has news.

        Returns True when it emitted anything. The first call emits three times for a
        large folder: the newest few runs, the newest ``first``, then all of them. A call
        while another one is running returns False at once.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._refresh(emit, cancelled)
        finally:
            self._lock.release()

    def _refresh(
        self, emit: Callable[[list[Any]], None], cancelled: Callable[[], bool]
    ) -> bool:
        children = self._children()
        if children is None:
            changed = bool(self._known) or not self.loaded
            self._known.clear()
            self._order = []
            self.loaded = True
            if changed:
                emit([])
            return changed
        if not self.loaded:
            return self._first_listing(children, emit, cancelled)
        return self._update(children, emit, cancelled)

    def _first_listing(
        self, children: list[str], emit: Callable[[list[Any]], None],
        cancelled: Callable[[], bool],
    ) -> bool:  # fmt: skip
        from clmtune.backend.rundir.layout import is_run_dir

        emitted = False
        if len(children) > self.first:
            head = newest_started(children, self.first)
            for stage in sorted({min(FIRST_STAGE, self.first), self.first}):
                for path in head[:stage]:
                    if cancelled():
                        return emitted
                    if path not in self._known and is_run_dir(Path(path)):
                        self._read(path)
                emit(sort_newest_first([k.summary for k in self._known.values()]))
                emitted = True
        for path in children:
            if cancelled():
                return emitted
            if path not in self._known and is_run_dir(Path(path)):
                self._read(path)
        self.loaded = True
        self._emit_all(emit)
        return True

    def _update(
        self, children: list[str], emit: Callable[[list[Any]], None],
        cancelled: Callable[[], bool],
    ) -> bool:  # fmt: skip
        from clmtune.backend.rundir.layout import is_run_dir

        changed = False
        present = set(children)
        for gone in [p for p in self._known if p not in present]:
            del self._known[gone]
            changed = True
        for path in children:
            if cancelled():
                return False
            known = self._known.get(path)
            sig = signature(path)
            if known is not None:
                if sig == known.signature and known.summary.status not in LIVE_STATUSES:
                    continue
                before = known.summary
                after = self._read(path, sig)
                changed = changed or after != before
            elif is_run_dir(Path(path)):
                self._read(path, sig)
                changed = True
        if changed:
            self._emit_all(emit)
        return changed

    def _emit_all(self, emit: Callable[[list[Any]], None]) -> None:
        runs = sort_newest_first([k.summary for k in self._known.values()])
        self._order = [str(r.path) for r in runs]
        emit(runs)
