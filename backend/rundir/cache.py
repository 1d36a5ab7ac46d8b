"""Per-process caches of what the run readers derive from files, keyed by the files' stat.

Shared by :mod:`.checkpoints` and :mod:`.listing`; see the comment below for the rules.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The TUI lists the runs folder every 2 s from a thread. Re-reading everything each
# time costs seconds once one run is long: a 100k-step events.jsonl is tens of MB and
# every checkpoint's trainer_state.json repeats the log history. So what is derived
# from files is cached per process, keyed by the files' stat:
# - events.jsonl: the reduced summary and the byte offset read so far; a grown file is
#   read from that offset only (the file is append-only by contract);
# - each checkpoint-N: its classification, keyed by the stat of every entry in it;
# - config.toml and trainer_state.json: the parsed (or reduced) content.
# What depends on the moment (a dead pid makes "crashed", the duration of a live run)
# is never cached. A file whose mtime is within RACY_NS of the moment it was read may
# have changed again in the same timestamp tick (ext4 / tmpfs stamps are coarse)
# without its stat showing it, so such an entry is checked again until the file is
# older than that (git's "racy" rule).

RACY_NS = 2_000_000_000
MAX_RUNS = 256
MAX_CHECKPOINTS = 4096
MAX_FILES = 1024
SAMPLE_BYTES = 256  # head and tail of an events file, kept to notice a rewritten file

cache_lock = threading.Lock()  # guards the three dicts below, never held during I/O
events_cache: OrderedDict[str, Any] = OrderedDict()
checkpoint_cache: OrderedDict[str, tuple[tuple, int, Any]] = OrderedDict()
file_cache: OrderedDict[tuple[str, str], tuple[tuple, int, Any]] = OrderedDict()


def clear_caches() -> None:
    """Forget everything cached about run dirs (benchmarks; correctness never needs it)."""
    with cache_lock:
        events_cache.clear()
        checkpoint_cache.clear()
        file_cache.clear()


def forget(run_dir: Path) -> None:
    """Drop the cache entries of one run dir (it was deleted)."""
    prefix = os.path.abspath(run_dir) + os.sep
    with cache_lock:
        for key in [k for k in events_cache if k.startswith(prefix)]:
            del events_cache[key]
        for key in [k for k in checkpoint_cache if k.startswith(prefix)]:
            del checkpoint_cache[key]
        for fkey in [k for k in file_cache if k[1].startswith(prefix)]:
            del file_cache[fkey]


def forget_vanished(root: Path, present: set[str]) -> None:
    """Drop the events entries of run dirs under ``root`` that are gone (deleted elsewhere)."""
    prefix = os.path.abspath(root) + os.sep
    with cache_lock:
        for key in list(events_cache):
            parent = os.path.dirname(key)
            if key.startswith(prefix) and os.path.dirname(parent) + os.sep == prefix:
                if parent not in present:
                    del events_cache[key]


def lru_get(cache: OrderedDict, key: Any) -> Any:
    value = cache.get(key)
    if value is not None:
        cache.move_to_end(key)
    return value


def lru_put(cache: OrderedDict, key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def racy(mtime_ns: int, read_ns: int) -> bool:
    return mtime_ns >= read_ns - RACY_NS


def cached_parse(kind: str, path: Path, parse: Callable[[Path], Any], missing: Any) -> Any:
    """``parse(path)``, re-run only when the file's stat changed; ``missing`` without a file.

    The value is shared between callers: treat it as read-only.
    """
    key = (kind, os.path.abspath(path))
    try:
        st = os.stat(path)
    except OSError:
        with cache_lock:
            file_cache.pop(key, None)
        return missing
    signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with cache_lock:
        hit = lru_get(file_cache, key)
    if hit is not None and hit[0] == signature and not racy(st.st_mtime_ns, hit[1]):
        return hit[2]
    read_ns = time.time_ns()
    value = parse(path)
    with cache_lock:
        lru_put(file_cache, key, (signature, read_ns, value), MAX_FILES)
    return value

