"""What the terminal can draw: ASCII fallback, a NO_COLOR filter that never crashes, and
an exit when the terminal is gone.

The Linux console (``TERM=linux``), serial consoles and terminals on a non-UTF-8 locale
have no braille and few or no box-drawing glyphs. Rather than teaching every widget
(Textual's borders, scrollbars, sparklines, textual-plot's axes) an ASCII style, the app
adds one line filter that maps each such glyph to an ASCII character of the same width,
so layouts stay as they are. ``CLMTUNE_ASCII=1`` (or ``ascii = true`` in tui.toml)
forces it; ``CLMTUNE_ASCII=0`` turns it off.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter, Monochrome, monochrome_style

if TYPE_CHECKING:
    from textual.app import App

ASCII_ENV = "CLMTUNE_ASCII"
# Terminals known to lack braille and (most) box drawing.
ASCII_TERMS = frozenset({"linux", "vt100", "vt102", "vt220", "dumb", "ansi", "cons25", "wsvt25"})


def _env_flag(value: str | None) -> bool | None:
    if value is None or not value.strip():
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")


def _utf8_locale(env: Mapping[str, str]) -> bool:
    """Whether the locale the terminal was given is UTF-8 (unknown counts as yes)."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(name, "")
        if value:
            low = value.lower().replace("-", "")
            return "utf8" in low
    return True


def ascii_mode(env: Mapping[str, str] | None = None, setting: object = None) -> bool:
    """Whether to draw with ASCII only.

    ``CLMTUNE_ASCII`` wins, then the ``ascii`` setting of tui.toml (``setting``), then
    the terminal: a ``TERM`` without braille/box drawing or a non-UTF-8 locale.
    """
    env = os.environ if env is None else env
    forced = _env_flag(env.get(ASCII_ENV))
    if forced is not None:
        return forced
    if isinstance(setting, bool):
        return setting
    term = env.get("TERM", "").lower()
    if term in ASCII_TERMS or term.startswith("vt"):
        return True
    return not _utf8_locale(env)


def _ascii_table() -> dict[int, str]:
    table: dict[str, str] = {}

    def put(chars: str, to: str) -> None:
        for char in chars:
            table[char] = to

    put("─━═╴╶╸╺▔▬⎯‒–—", "-")
    put("╌╍┄┅┈┉", ".")  # dashed: the empty part of a progress bar
    put("│┃║╎╏┆┇┊┋▏▎▍▕▐▌", "|")
    put("┌┐└┘╭╮╰╯├┤┬┴┼┏┓┗┛┣┫┳┻╋╔╗╚╝╠╣╦╩╬", "+")
    # Sparkline heights: low, middle, high.
    put("▁▂▃", "_")
    put("▄▅", "=")
    put("█▇▆▀▓▒░■", "#")
    put("•●◆◉⏺", "*")
    put("○◯◇", "o")
    put("▼▾⏷↓", "v")
    put("▲▴⏶↑", "^")
    put("▶▸⏵→⏎↵", ">")  # ⏎: Textual shows the enter key with it
    put("◀◂⏴←", "<")
    put("✓✔", "v")
    put("✗✘×", "x")
    put("⚠", "!")
    put("…", "~")
    put("·", ".")
    put("‘’", "'")
    put("“”", '"')
    mapping = {ord(k): v for k, v in table.items()}
    # Braille (textual-plot's lines, sparkline-like dots): any dot pattern is one dot.
    for code in range(0x2801, 0x2900):
        mapping[code] = "."
    mapping[0x2800] = " "
    return mapping


ASCII_TABLE = _ascii_table()


def to_ascii(text: str) -> str:
    """``text`` with every glyph the filter knows replaced by its one-cell ASCII stand-in."""
    return text.translate(ASCII_TABLE)


class AsciiFilter(LineFilter):
    """Replaces braille, box drawing and symbol glyphs with ASCII of the same width."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        table = ASCII_TABLE
        return [
            Segment(text.translate(table), style, control) if not text.isascii()
            else Segment(text, style, control)
            for text, style, control in segments
        ]


class SafeMonochrome(Monochrome):
    """Textual's NO_COLOR filter, tolerating segments without a style.

    textual-hires-canvas draws an empty line as a segment with no style, which the
    stock filter turns into an AttributeError (``NO_COLOR=1`` crashed the live view).
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        null = Style.null()
        return [
            Segment(text, monochrome_style(style or null), None)
            for text, style, _ in segments
        ]


def interactive() -> bool:
    """Whether stdin and stdout are a terminal (Textual reads keys from one and draws on it).

    Without one (cron, ``nohup``, ``< /dev/null``) the input thread reads end-of-file
    in a loop and the screen goes to a file: the dashboard would spin and draw nowhere.
    Another driver (``TEXTUAL_DRIVER``: textual-serve's web driver) needs no terminal.
    """
    if os.environ.get("TEXTUAL_DRIVER"):
        return True
    for stream in (sys.__stdin__, sys.__stdout__):
        try:
            if stream is None or not os.isatty(stream.fileno()):
                return False
        except (OSError, ValueError):
            return False
    return True


HANGUP_EXIT_CODE = 129  # 128 + SIGHUP, as if the hangup signal had ended the process
HANGUP_GRACE_S = 3.0
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


def exit_on_hangup(app: App[object], fd: int | None = None) -> threading.Thread | None:
    """Exit ``app`` when its terminal hangs up, even if no SIGHUP arrives.

    A terminal closed under a process that is not its session's controlling one (a
    ``nohup``-ed or re-parented dashboard, a pty whose owner was killed) sends no
    SIGHUP; Textual's input thread then reads end-of-file in a loop and spins a core
    for ever. A thread asleep in ``poll`` for hangup alone costs nothing until then,
    asks the app to exit, and ends the process if the exit cannot finish (it may
    block on the dead terminal). Training is never touched: it runs in its own process.
    """
    if fd is None:
        stdin = sys.__stdin__
        if stdin is None:
            return None
        try:
            fd = stdin.fileno()
        except (OSError, ValueError):
            return None
    if not os.isatty(fd):
        return None
    watched = fd

    def watch() -> None:
        poller = select.poll()
        poller.register(watched, 0)  # no events asked for: only hangup and errors wake it
        while not any(mask & _GONE for _, mask in poller.poll()):
            pass
        threading.Thread(target=app.call_from_thread, args=(app.exit, None, HANGUP_EXIT_CODE),
                         name="clmtune-hangup-exit", daemon=True).start()
        threading.Event().wait(HANGUP_GRACE_S)
        os._exit(HANGUP_EXIT_CODE)

    thread = threading.Thread(target=watch, name="clmtune-hangup", daemon=True)
    thread.start()
    return thread
