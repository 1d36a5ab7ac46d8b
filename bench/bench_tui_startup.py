"""Startup to first paint of ``clmtune-tui`` (target: median ≤ 0.5 s).

Each sample is a fresh interpreter: the time from spawning it to the end of the
first refresh of the runs screen (headless driver), so interpreter start and
every import count. The baseline is a bare Textual app showing one Static, timed
the same way, so the ratio says what clmtune adds on this machine.

    python bench/bench_tui_startup.py [--runs 7] [RUNS_DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLMTUNE = """
import sys, time
from pathlib import Path
from clmtune.tui.app import ClmtuneApp

class Probe(ClmtuneApp):
    def on_mount(self):
        super().on_mount()
        self.screen.call_after_refresh(self.painted)
    def painted(self):
        self.exit(time.time())

print(Probe(Path(sys.argv[1]), remember_theme=False).run(headless=True))
"""

BARE = """
import sys, time
from textual.app import App
from textual.widgets import Static

class Probe(App):
    def compose(self):
        yield Static("hello")
    def on_mount(self):
        self.screen.call_after_refresh(self.painted)
    def painted(self):
        self.exit(time.time())

print(Probe().run(headless=True))
"""


def sample(code: str, runs_dir: str) -> float:
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, runs_dir], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1]) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", nargs="?", default="runs")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sample(CLMTUNE, args.runs_dir)  # warm the OS file cache and __pycache__
    tui = [sample(CLMTUNE, args.runs_dir) for _ in range(args.runs)]
    bare = [sample(BARE, args.runs_dir) for _ in range(args.runs)]
    m_tui, m_bare = statistics.median(tui), statistics.median(bare)
    print(
        f"clmtune-tui first paint: median {m_tui * 1000:.0f} ms "
        f"(min {min(tui) * 1000:.0f}, max {max(tui) * 1000:.0f}) over {args.runs} starts"
    )
    print(f"bare Textual app:        median {m_bare * 1000:.0f} ms")
    print(f"ratio clmtune / bare: {m_tui / m_bare:.2f}x   (target: median <= 500 ms)")


if __name__ == "__main__":
    main()
