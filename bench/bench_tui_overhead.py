"""Training throughput with the dashboard watching the run vs not (target: ≤ 2% apart).

Each repetition trains the same small run as a real worker process
(``backend.launch.start_run`` -> ``python -m clmtune.backend.worker``): a GPT-2 (2 layers,
width 128, 4 heads) from scratch on the offline demo's text and tokenizer, block 64,
batch 8, logging every step (a train log and a memory sample per step: the dashboard
has work every poll), one torch/OpenMP thread, no eval, no checkpoints. The launcher
gives the worker ``OMP_WAIT_POLICY=PASSIVE``.

"on" runs also start ``clmtune-tui`` (``tui.app.ClmtuneApp``) in a second process,
opened on the run's live view for the run's whole duration, as a person watching it
would: by default on a pseudo-terminal (120x40) whose output this script drains like
a terminal emulator does, so rendering and escape-code output are paid for;
``--display headless`` uses Textual's headless driver instead (rendering, no output).
The runs screen underneath keeps refreshing the listing every 2 s, as in real use.
"off" runs have no dashboard at all. Both processes share the machine's cores.

On/off repetitions are interleaved (off, on, on, off, ...) so drifting machine load
hits both arms alike. Printed: the median ``train_samples_per_second`` (from each
run's ``train_results.json``) per arm, their ratio, the median of adjacent on/off
pairs, and the dashboard process's CPU seconds per run.

    python bench/bench_tui_overhead.py [--reps 5] [--steps 100] [--display pty|headless]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clmtune.backend.launch import start_run  # noqa: E402
from clmtune.backend.rundir.layout import read_run_json  # noqa: E402
from clmtune.backend.settings.run_config import RunConfig  # noqa: E402

SIZE = (120, 40)

# The dashboard, watching one run until it is no longer running; then it writes its
# own CPU seconds and the step its live view reached to the file named by argv[3].
DRIVER = """
import json, sys, time
from pathlib import Path
from clmtune.backend.rundir.layout import read_run_json  # noqa: E402
from clmtune.tui.app import ClmtuneApp

runs_dir, run_dir, out, display = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]

class Watch(ClmtuneApp):
    def on_mount(self):
        super().on_mount()
        self.open_live(run_dir)
        self.set_interval(0.5, self.check_done)

    def check_done(self):
        if read_run_json(run_dir).get("status") not in (None, "running"):
            step = getattr(self.screen, "view", None) and self.screen.view.step
            self.exit({"cpu": time.process_time(), "step": step})

app = Watch(runs_dir, remember_theme=False)
result = app.run(headless=True, size=(120, 40)) if display == "headless" else app.run()
Path(out).write_text(json.dumps(result))
"""


def build_assets() -> tuple[Path, Path, Path]:
    """The offline demo's tokenizer and text (built once per user, then reused)."""
    from clmtune.backend.demo import build_demo_assets, default_demo_dir

    assets = build_demo_assets(default_demo_dir(), size="demo")
    return assets.model_dir, assets.train_file, assets.validation_file


def make_config(args: argparse.Namespace, tokenizer: Path, train: Path) -> RunConfig:
    return RunConfig(
        model={
            "model_type": "gpt2",
            "tokenizer_name": str(tokenizer),
            "config_overrides": "n_embd=128,n_layer=2,n_head=4,n_positions=64,vocab_size=1024",
        },
        data={"train_file": str(train), "block_size": 64},
        training={
            "max_steps": args.steps,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "eval_strategy": "no",
            "save_strategy": "no",
            "seed": 42,
            "disable_tqdm": True,
            "report_to": "none",
            "dataloader_num_workers": 0,
            "dataloader_pin_memory": False,
        },
    )


def _drain(fd: int) -> None:
    """Read and drop a pseudo-terminal's output (what a terminal emulator does)."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def start_dashboard(runs_dir: Path, run_dir: Path, out: Path, display: str):
    """The dashboard process (and the pty master to close after it), watching ``run_dir``."""
    command = [sys.executable, "-c", DRIVER, str(runs_dir), str(run_dir), str(out), display]
    env = dict(os.environ)
    if display == "headless":
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        return proc, None
    master, slave = pty.openpty()
    rows, cols = SIZE[1], SIZE[0]
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env["TERM"] = "xterm-256color"
    env["COLORTERM"] = "truecolor"
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    threading.Thread(target=_drain, args=(master,), daemon=True).start()
    return proc, master


def one_run(cfg: RunConfig, runs_dir: Path, name: str, watch: bool, display: str):
    """(train samples/s, dashboard CPU seconds or None) of one run."""
    run_dir = runs_dir / name
    launched = start_run(cfg=cfg, run_dir=run_dir, check_hardware=False)
    dashboard = master = None
    cpu_file = run_dir.parent / f".{name}.tui-cpu"
    if watch:
        dashboard, master = start_dashboard(runs_dir, launched.run_dir, cpu_file, display)
    assert launched.process is not None
    launched.process.wait(timeout=600)
    tui_cpu = None
    if dashboard is not None:
        try:
            dashboard.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.wait()
        if master is not None:
            os.close(master)
        seen = json.loads(cpu_file.read_text()) if cpu_file.exists() else None
        if not seen or not seen.get("step"):
            raise SystemExit(f"run {name}: the dashboard did not follow the run ({seen})")
        tui_cpu = float(seen["cpu"])
    info = read_run_json(launched.run_dir)
    results = launched.run_dir / "train_results.json"
    if info.get("status") != "completed" or not results.exists():
        err = launched.run_dir / "logs" / "worker.err"
        tail = err.read_text(errors="replace")[-2000:] if err.exists() else ""
        raise SystemExit(f"run {name} ended {info.get('status')}: {info.get('error')}\n{tail}")
    rate = float(json.loads(results.read_text())["train_samples_per_second"])
    return rate, tui_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per arm")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--display", choices=("pty", "headless"), default="pty")
    parser.add_argument("--verbose", action="store_true", help="print every run's rate")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="clmtune-bench-tui-"))
    # Offline, private caches and one thread per worker: the workers inherit this environment
    # (set before anything imports transformers or datasets).
    os.environ.setdefault("HF_HOME", str(tmp / "hf"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    try:
        measure(args, tmp / "runs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, runs_dir: Path) -> None:
    tokenizer, train, _validation = build_assets()
    cfg = make_config(args, tokenizer, train)
    rates: dict[bool, list[float]] = {False: [], True: []}
    tui_cpu: list[float] = []
    pairs: list[float] = []
    start = time.monotonic()
    one_run(cfg, runs_dir, "warmup", False, args.display)  # datasets cache, OS file cache
    for rep in range(args.reps):
        order = (False, True) if rep % 2 == 0 else (True, False)
        got: dict[bool, float] = {}
        for watch in order:
            rate, cpu = one_run(cfg, runs_dir, f"r{rep}-{'on' if watch else 'off'}", watch,
                                args.display)  # fmt: skip
            got[watch] = rate
            rates[watch].append(rate)
            if cpu is not None:
                tui_cpu.append(cpu)
            if args.verbose:
                print(f"  rep {rep} {'on ' if watch else 'off'}: {rate:.2f} samples/s", flush=True)
        pairs.append(got[True] / got[False])
    took = time.monotonic() - start

    def spread(xs: list[float]) -> float:
        return (max(xs) - min(xs)) / statistics.median(xs)

    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"run: GPT-2 2x128, block 64, batch 8, {args.steps} steps, logging every step, "
          f"1 thread; dashboard display: {args.display} ({SIZE[0]}x{SIZE[1]}); "
          f"{args.reps} runs per arm, {took:.0f} s in all; {os.cpu_count()} CPUs")  # fmt: skip
    for label, arm in (("off (no dashboard)", False), ("on  (dashboard)   ", True)):
        median = statistics.median(rates[arm])
        print(f"{label}: median {median:.2f} train samples/s (spread {spread(rates[arm]):.1%})")
    print(f"ratio on/off of medians: {on / off:.4f} ({on / off - 1:+.2%})   (target: >= -2%)")
    paired = statistics.median(pairs)
    print(f"median of adjacent on/off pairs: {paired:.4f} ({paired - 1:+.2%})")
    if tui_cpu:
        print(f"dashboard process CPU per run: median {statistics.median(tui_cpu):.2f} s")
    if args.verbose:
        for watch in (False, True):
            print(f"  {'on ' if watch else 'off'}: " + " ".join(f"{r:.1f}" for r in rates[watch]))


if __name__ == "__main__":
    main()
