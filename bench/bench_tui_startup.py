"""Dashboard startup and idle cost against a bare Textual app, with few and many runs.

Each startup sample is a fresh interpreter, timed from spawning it to the end of a
refresh (headless driver), so interpreter start and every import count:

* bare: a Textual app showing one Static, first paint (the baseline);
* clmtune-tui first paint on the given runs folder (target: <= 1.2x bare);
* clmtune-tui first rows on a folder of ``--many`` finished runs (hard-linked copies of
  one real run trained once by ``clmtune train``): the first refresh after the run table
  holds a row (target: <= 2x bare's first paint).

Then the idle cost: the real ``clmtune-tui`` on a pseudo-terminal (120x40) over the
``--many`` folder, CPU % of one core over ``--idle-s`` seconds once it settled
(target: <= 2%), from /proc.

    python bench/bench_tui_startup.py [--runs 7] [--many 1000] [--idle-s 20] [RUNS_DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from pty_driver import Pty, cpu_seconds  # noqa: E402

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

# First rows: the first refresh after the runs table got a row.
ROWS = """
import sys, time
from pathlib import Path
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.widgets.run_table import RunTable

class Probe(ClmtuneApp):
    def on_mount(self):
        super().on_mount()
        self._poll = self.set_interval(0.005, self.check)
    def check(self):
        try:
            rows = self.screen.query_one(RunTable).row_count
        except Exception:
            return
        if rows:
            self._poll.stop()
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


def sample(code: str, runs_dir: str | Path) -> float:
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, str(runs_dir)], cwd=ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1]) - start


def one_real_run(work: Path) -> Path:
    """A finished run trained by ``clmtune train`` on the tiny offline model (20 steps)."""
    from clmtune.backend.demo import build_demo_assets

    assets = build_demo_assets(work / "assets", size="tiny")
    config = work / "one.toml"
    config.write_text(
        f'[model]\nmodel_name_or_path = "{assets.model_dir}"\n\n'
        f'[data]\ntrain_file = "{assets.train_file}"\n'
        f'validation_file = "{assets.validation_file}"\nblock_size = 64\n'
        "max_eval_samples = 32\n\n"
        "[training]\nmax_steps = 20\nlogging_steps = 1\nsave_steps = 10\n"
        "per_device_train_batch_size = 8\n"
    )
    run_dir = work / "template" / "one"
    clmtune = Path(sys.executable).with_name("clmtune")
    subprocess.run([str(clmtune), "train", str(config), "--run-dir", str(run_dir)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return run_dir


def many_runs(template: Path, root: Path, count: int) -> Path:
    """``count`` hard-linked copies of ``template`` under ``root`` (as a sweep leaves them)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        shutil.copytree(template, root / f"sweep-{i:04d}", copy_function=os.link)
    return root


def idle_cpu(runs_dir: Path, settle_s: float, idle_s: float) -> float:
    """% of one core the real dashboard uses over ``idle_s`` s, after ``settle_s`` s."""
    tui = Pty([str(Path(sys.executable).with_name("clmtune-tui")), str(runs_dir)], cwd=ROOT)
    try:
        time.sleep(settle_s)
        cpu0, t0 = cpu_seconds(tui.pid), time.monotonic()
        time.sleep(idle_s)
        return 100.0 * (cpu_seconds(tui.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        tui.send(b"q")
        tui.close(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", nargs="?", default="runs")
    parser.add_argument("--runs", type=int, default=7, help="starts per case")
    parser.add_argument("--many", type=int, default=1000, help="runs in the large folder")
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--settle-s", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clmtune-bench-tui-"))
    os.environ.setdefault("HF_HOME", str(work / "hf"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CLMTUNE_CACHE", str(work / "cache"))
    try:
        big = many_runs(one_real_run(work), work / "runs", args.many) if args.many else None
        sample(CLMTUNE, args.runs_dir)  # warm the OS file cache and __pycache__
        tui, bare, rows = [], [], []
        for _ in range(args.runs):  # interleaved: drifting load hits every case alike
            bare.append(sample(BARE, args.runs_dir))
            tui.append(sample(CLMTUNE, args.runs_dir))
            if big is not None:
                rows.append(sample(ROWS, big))
        m_tui, m_bare = statistics.median(tui), statistics.median(bare)
        load = os.getloadavg()
        print(f"{args.runs} starts per case; {os.cpu_count()} CPUs, load "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
        print(f"bare Textual app first paint:   median {m_bare * 1000:5.0f} ms")
        print(f"clmtune-tui first paint ({args.runs_dir}): median {m_tui * 1000:5.0f} ms "
              f"(min {min(tui) * 1000:.0f}, max {max(tui) * 1000:.0f}) = "
              f"{m_tui / m_bare:.2f}x bare   (target <= 1.2x)")  # fmt: skip
        if big is not None:
            m_rows = statistics.median(rows)
            print(f"clmtune-tui first rows, {args.many} runs: median {m_rows * 1000:5.0f} ms = "
                  f"{m_rows / m_bare:.2f}x bare first paint   (target <= 2x)")
            cpu = idle_cpu(big, args.settle_s, args.idle_s)
            print(f"clmtune-tui idle on {args.many} runs: {cpu:.1f}% of one core over "
                  f"{args.idle_s:.0f} s   (target <= 2%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
