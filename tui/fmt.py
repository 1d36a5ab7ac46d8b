"""Small, pure formatting helpers shared by the TUI widgets (no Textual imports).

Every function that shows a time takes ``now`` explicitly so screens can pass an
injectable clock and snapshot tests stay stable.
"""

from __future__ import annotations

import math

from clmtune.backend.cli_text import fmt_float
from clmtune.backend.cli_text import fmt_time as local_time

BAR_FULL = "━"
BAR_EMPTY = "╌"


def num(value: float | None, digits: int = 4) -> str:
    """A figure with ``digits`` significant digits, as the CLI writes it (one rule:
    ``cli_text.fmt_float``), with shorter exponents for narrow columns."""
    return fmt_float(value, digits, sci_digits=max(digits - 2, 1))


def percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals ('16.93%'); ``-`` for missing."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return num(value)
    return f"{value:.2%}"


def si(value: float | None, unit: str = "") -> str:
    """1234 -> '1.2k', 3.4e6 -> '3.4M' (throughput, token counts)."""
    if value is None or not math.isfinite(value):
        return "-"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f}{suffix}{unit}"
    return f"{value:.0f}{unit}" if abs(value) >= 10 else f"{value:.1f}{unit}"


def human_bytes(value: float | None) -> str:
    """Bytes in binary units with one decimal: 3.2G, 512.0M."""
    if value is None:
        return "-"
    size = float(value)
    for suffix in ("B", "K", "M", "G", "T"):
        if abs(size) < 1024 or suffix == "T":
            return f"{size:.0f}{suffix}" if suffix == "B" else f"{size:.1f}{suffix}"
        size /= 1024
    return f"{size:.1f}T"  # pragma: no cover - loop always returns


def duration(seconds: float | None) -> str:
    """Seconds as '4.2s', '45s', '12m05s', '3h07m', '2d04h', '113d' (days only from ten on,
    so the runs list's Took column never cuts a long duration)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h" if d < 10 else f"{d}d"


def started(ts: float | None, now: float) -> str:
    """A start time relative to ``now`` ('5m ago') or as a local date when older than a day."""
    if ts is None:
        return "-"
    age = now - ts
    if age < 0:
        return local_time(ts, "%H:%M")
    if age < 60:
        return f"{int(age)}s ago"
    if age < 3600:
        return f"{int(age // 60)}m ago"  # seconds are noise here, and the column is narrow
    if age < 86400:
        return f"{duration(age)} ago"
    return local_time(ts, "%Y-%m-%d")


def clock_time(ts: float | None) -> str:
    """Local wall-clock time of a timestamp (checkpoint table)."""
    return local_time(ts, "%H:%M:%S")


def bar(fraction: float | None, width: int = 10) -> str:
    """A text progress bar that renders the same in every terminal."""
    if fraction is None or not math.isfinite(fraction):
        return BAR_EMPTY * width
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def perplexity_of(loss: float | None) -> float | None:
    """exp(loss) with overflow guarded, as run_clm computes it."""
    if loss is None or not math.isfinite(loss):
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf
