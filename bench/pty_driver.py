"""A process on a pseudo-terminal, its output drained as a terminal emulator would.

Used by the benchmarks that run commands "as users do": in a terminal (so progress
bars and the dashboard really render and write escape codes), sized 120x40.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading
from collections.abc import Sequence
from pathlib import Path

SIZE = (120, 40)
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from ``/proc/PID/stat`` (0 when gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime, stime (fields 14 and 15)


class Pty:
    """``command`` started on a new pseudo-terminal; its output is read and dropped."""

    def __init__(self, command: Sequence[str], *, cwd: Path | None = None,
                 env: dict[str, str] | None = None, size: tuple[int, int] = SIZE) -> None:
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = dict(os.environ if env is None else env)
        full_env.setdefault("TERM", "xterm-256color")
        full_env.setdefault("COLORTERM", "truecolor")
        self.proc = subprocess.Popen(list(command), cwd=cwd, env=full_env, stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output_bytes = 0
        self.seen_text = bytearray()  # everything written so far, for :meth:`saw`
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output_bytes += len(chunk)
            self.seen_text += chunk

    def saw(self, text: bytes) -> bool:
        """True once the process wrote ``text`` (e.g. a label only one screen shows)."""
        return text in self.seen_text

    def send(self, data: bytes) -> None:
        """Type ``data`` into the terminal."""
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=1.0)
        return code

    def close(self, timeout: float = 10.0) -> None:
        """Wait for the process (kill it after ``timeout``), then close the terminal."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass
