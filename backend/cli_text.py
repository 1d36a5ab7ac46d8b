"""Text for the command line: number, duration and size formats, rich escaping, the console.

Shared by ``backend/cli.py`` and the commands in ``backend/tools/`` so every command prints
figures the same way. Light: rich is imported only when a console is made.
"""

from __future__ import annotations

import math
import time
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED, EXIT_ABORTED = 0, 1, 2, 3, 130
RUNS_DIR_HELP = "the folder run names are looked up in (default ./runs)"



def fmt_float(value: Any, digits: int = 4, sci_digits: int = 3) -> str:
    """A figure as the CLI and the dashboard both write it (``tui.fmt.num`` is this with
    shorter exponents): ``-`` for none; a count whole (train_samples 11326); ``digits``
    significant digits, or a whole number at 10**digits and above (12346, not 1.235e+04);
    an exponent (``sci_digits`` decimals) from 10**6 up and below 1e-3."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**7:
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number != 0 and (abs(number) >= 1e6 - 0.5 or abs(number) < 1e-3):
        return f"{number:.{sci_digits}e}"
    if abs(number) >= 10**digits - 0.5:  # 9999.5 rounds up: whole, not "1e+04"
        return f"{number:.0f}"
    return f"{number:.{digits}g}"


def fmt_eval_at(loss: float | None, eval_step: int | None, step: int,
                sci_digits: int = 3) -> str:
    """A checkpoint's eval loss, with the step it was logged at when that is not the
    checkpoint's own (a checkpoint saved by a stop): ``5.143 @60``. The CLI's and the
    dashboard's checkpoint tables both write it so."""
    text = fmt_float(loss, 4, sci_digits)
    if loss is not None and eval_step is not None and eval_step != step:
        return f"{text} @{eval_step}"
    return text


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))  # rounded as the dashboard rounds (59.6 s is 1m00s there)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fmt_time(stamp: float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A local date and time; ``-`` for none, a non-number or a stamp no clock can show (a
    damaged file's)."""
    if not stamp or isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return "-"
    try:
        return time.strftime(fmt, time.localtime(stamp))
    except (OverflowError, OSError, ValueError):
        return "-"


def fmt_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def esc(value: Any) -> str:
    """``value`` as literal text in rich markup: messages name settings as ``[data] key``,
    which rich would otherwise take for a style tag and drop."""
    from rich.markup import escape

    return escape(str(value))


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    # soft_wrap: commands printed for copy-paste must not be broken at 80 columns.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)
