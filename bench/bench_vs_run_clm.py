"""`clmtune train FILE`, run as users run it, against a plain run_clm-style script.

Each side is its own process started from a command line, on a pseudo-terminal (as in
a terminal), with the environment left as it is (default torch/OpenMP thread count):

* clmtune: the installed ``clmtune`` command (``clmtune train FILE --run-dir DIR``),
  which starts ``python -m clmtune.backend.worker`` and follows its events;
* plain: ``bench/plain_run_clm.py`` (transformers/datasets/evaluate only), given the very
  ``TrainingArguments`` keywords clmtune derives from FILE.

Same local model (``from_pretrained`` of the offline "tiny" fixture or the "demo" preset's
model), same text files, block size, batch, seed, steps and log/eval/save cadence. Pairs
are interleaved (plain, clmtune, clmtune, plain, ...) after one untimed warm-up pair.
Printed per side: train samples/s (``train_samples_per_second`` of its results), the time
from the command's start to the end of the first optimizer step, and the final eval loss
(the two must agree: the work is the same). Then the median of the per-pair ratios, and
the callback's own cost per step measured in isolation (``bench/bench_callback.py``).

``--dashboard`` also starts the real ``clmtune-tui`` in a second pseudo-terminal for each
clmtune run; it opens the run's live view with Enter (the list lands on the newest run)
and watches it to the end. Its CPU use over the training (from ``/proc``, % of one core)
is printed twice: over the whole training (first train log to the end, the final eval
and save included) and over its steady part (first train log to 90 % of the steps). The
plain side then gets no dashboard: the ratio is what watching costs too.

    python bench/bench_vs_run_clm.py [--pairs 3] [--steps 200] [--size tiny|demo]
                                     [--logging-steps 10] [--dashboard]

Nothing here gates anything; the numbers are ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from pty_driver import Pty, cpu_seconds  # noqa: E402

BLOCK_SIZE = 64
BATCH = 8
MAX_EVAL_SAMPLES = 64
LIVE_MARK = b"Log scale"  # in the live view's footer only


@dataclass
class Sample:
    """One timed run of one side."""

    samples_per_s: float
    first_step_s: float
    eval_loss: float | None
    dashboard_cpu: float | None = None  # % of one core over the training, --dashboard only
    # ... over the steady part: from the first train log until 90 % of the steps are logged
    # (no start-up, no end of the run: what a person watching a long run sees)
    dashboard_cpu_steady: float | None = None


def settings_toml(assets, opts: argparse.Namespace) -> str:
    """The run's settings file, as a user would write it."""
    eval_every = max(1, opts.steps // 2)
    return f"""[model]
model_name_or_path = "{assets.model_dir}"

[data]
train_file = "{assets.train_file}"
validation_file = "{assets.validation_file}"
block_size = {BLOCK_SIZE}
max_eval_samples = {MAX_EVAL_SAMPLES}

[training]
max_steps = {opts.steps}
per_device_train_batch_size = {BATCH}
per_device_eval_batch_size = {BATCH}
learning_rate = 0.001
seed = 42
logging_steps = {opts.logging_steps}
eval_steps = {eval_every}
save_steps = {eval_every}
"""


def plain_arguments(config: Path, out_dir: Path) -> dict:
    """The ``TrainingArguments`` keywords clmtune derives from ``config`` (for the plain side)."""
    from clmtune.backend.settings.toml_io import load_config
    from clmtune.backend.settings.training_args import training_arguments_kwargs

    return training_arguments_kwargs(load_config(config), str(out_dir), has_validation=True)


def clmtune_command() -> list[str]:
    """The installed ``clmtune`` console script next to this interpreter."""
    script = Path(sys.executable).parent / "clmtune"
    if not script.exists():
        found = shutil.which("clmtune")
        if not found:
            raise SystemExit("the clmtune command is not installed (pip install -e .)")
        script = Path(found)
    return [str(script)]


def run_plain(assets, config: Path, work: Path, name: str) -> Sample:
    out_dir = work / name
    args_file, result = work / f"{name}.args.json", work / f"{name}.result.json"
    args_file.write_text(json.dumps(plain_arguments(config, out_dir)))
    from clmtune.backend.metrics_local import TOKEN_ACCURACY

    command = [
        sys.executable, str(BENCH / "plain_run_clm.py"), "--model", str(assets.model_dir),
        "--train", str(assets.train_file), "--validation", str(assets.validation_file),
        "--block-size", str(BLOCK_SIZE), "--max-eval-samples", str(MAX_EVAL_SAMPLES),
        "--metric", str(TOKEN_ACCURACY), "--training-args", str(args_file),
        "--result", str(result),
    ]  # fmt: skip
    start = time.time()
    code = Pty(command, cwd=work).wait()
    if code != 0 or not result.exists():
        raise SystemExit(f"the plain script failed (exit {code}); run it by hand to see why")
    got = json.loads(result.read_text())
    return Sample(got["train_samples_per_second"], got["first_step_time"] - start,
                  got["eval_loss"])  # fmt: skip


def _first_step_time(run_dir: Path) -> float | None:
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "train_log" and (event.get("step") or 0) >= 1:
            return float(event["time"])
    return None


def _wait_for(path: Path, proc: Pty, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            return True
        time.sleep(0.05)
    return path.exists()


def run_clmtune(config: Path, work: Path, name: str, dashboard: bool, steps: int) -> Sample:
    run_dir = work / "runs" / name
    command = [*clmtune_command(), "train", str(config), "--run-dir", str(run_dir)]
    start = time.time()
    train = Pty(command, cwd=work)
    tui = None
    cpu_at_train = None
    if dashboard:
        tui = Pty([str(Path(clmtune_command()[0]).with_name("clmtune-tui")),
                   str(run_dir.parent)], cwd=work)  # fmt: skip
        # Open the live view the way a person does: the list lands on the newest run.
        if _wait_for(run_dir / "run.json", train):
            _open_live_view(tui, train)
        while train.poll() is None and not _has_train_log(run_dir):
            time.sleep(0.05)
        cpu_at_train = (cpu_seconds(tui.pid), time.monotonic())
    steady = None
    if tui is not None and cpu_at_train is not None:
        goal = int(0.9 * steps)
        while train.poll() is None and _last_step(run_dir) < goal:
            time.sleep(0.25)
        if train.poll() is None:
            steady = 100.0 * (cpu_seconds(tui.pid) - cpu_at_train[0]) / max(
                1e-9, time.monotonic() - cpu_at_train[1])
    code = train.wait()
    dashboard_cpu = None
    if tui is not None and cpu_at_train is not None:
        used = cpu_seconds(tui.pid) - cpu_at_train[0]
        dashboard_cpu = 100.0 * used / max(1e-9, time.monotonic() - cpu_at_train[1])
        tui.send(b"q")
        tui.close(timeout=10)
    results = run_dir / "train_results.json"
    if code != 0 or not results.exists():
        raise SystemExit(f"clmtune train failed (exit {code}); see {run_dir}/logs")
    rate = json.loads(results.read_text())["train_samples_per_second"]
    eval_file = run_dir / "eval_results.json"
    loss = json.loads(eval_file.read_text()).get("eval_loss") if eval_file.exists() else None
    first = _first_step_time(run_dir)
    return Sample(rate, (first - start) if first else float("nan"), loss, dashboard_cpu, steady)


def _last_step(run_dir: Path) -> int:
    """The step of the newest train log (the tail of events.jsonl; 0 before the first)."""
    try:
        with open(run_dir / "events.jsonl", "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return 0
    found = re.findall(r'"type":"train_log"[^\n]*?"step":(\d+)', tail)
    return int(found[-1]) if found else 0


def _open_live_view(tui: Pty, train: Pty, timeout: float = 60.0) -> None:
    """Press enter on the runs list until the live view shows (its footer's "Log scale")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and train.poll() is None:
        if tui.saw(LIVE_MARK):
            return
        if tui.saw(b"Took"):  # the runs table is on screen: open the newest run
            tui.send(b"\r")
        time.sleep(0.5)
    if not tui.saw(LIVE_MARK):
        raise SystemExit("the dashboard did not open the run's live view")


def _has_train_log(run_dir: Path) -> bool:
    try:
        return '"train_log"' in (run_dir / "events.jsonl").read_text()
    except OSError:
        return False


def build_assets(size: str, where: Path):
    from clmtune.backend.demo import build_demo_assets

    return build_demo_assets(where / f"assets-{size}", size=size)


def callback_cost_us(work: Path) -> tuple[float, float]:
    """(µs per on_step_end, µs per on_log with its event and memory sample), in isolation."""
    from bench_callback import callback_costs

    per_step, per_log = callback_costs(work, calls=50_000, logs=1_000)
    return per_step * 1e6, per_log * 1e6


def report(opts: argparse.Namespace, runs: dict[str, list[Sample]], work: Path) -> None:
    plain, ours = runs["plain"], runs["clmtune"]
    ratios = [c.samples_per_s / p.samples_per_s for c, p in zip(ours, plain, strict=True)]
    starts = [c.first_step_s / p.first_step_s for c, p in zip(ours, plain, strict=True)]
    load = os.getloadavg()
    print(f"\nGPT-2 '{opts.size}' from_pretrained, block {BLOCK_SIZE}, batch {BATCH}, "
          f"{opts.steps} steps, logging every {opts.logging_steps}; {opts.pairs} interleaved "
          f"pairs; {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
          f"{'; dashboard watching every clmtune run' if opts.dashboard else ''}")  # fmt: skip
    for name, side in (("plain run_clm", plain), ("clmtune train", ours)):
        print(f"{name:14s} samples/s median {statistics.median(s.samples_per_s for s in side):7.1f}"
              f" [{', '.join(f'{s.samples_per_s:.1f}' for s in side)}]   first step after "
              f"{statistics.median(s.first_step_s for s in side):5.2f} s   eval_loss "
              f"{', '.join(f'{s.eval_loss:.6f}' for s in side if s.eval_loss is not None)}")
    target = 0.95 if opts.dashboard else 0.97
    print(f"samples/s ratio clmtune/plain, median of pairs: {statistics.median(ratios):.3f} "
          f"[{', '.join(f'{r:.3f}' for r in ratios)}]   (target >= {target})")
    print(f"time to first step ratio clmtune/plain, median of pairs: "
          f"{statistics.median(starts):.3f}   (target <= 1.1)")
    losses = [(c.eval_loss, p.eval_loss) for c, p in zip(ours, plain, strict=True)]
    diff = max((abs(a - b) for a, b in losses if a is not None and b is not None), default=None)
    print(f"max |eval_loss clmtune - plain|: {diff if diff is not None else 'n/a'}  (target 0)")
    per_step, per_log = callback_cost_us(work)
    step_us = 1e6 * BATCH / statistics.median(s.samples_per_s for s in plain)
    print(f"callback in isolation: on_step_end {per_step:.2f} us, on_log (event + memory "
          f"sample) {per_log:.0f} us; per step at this logging cadence "
          f"{per_step + per_log / opts.logging_steps:.1f} us = "
          f"{(per_step + per_log / opts.logging_steps) / step_us:.3%} of a {step_us / 1000:.1f} ms "
          f"step   (target <= 1%)")
    if opts.dashboard:
        cpu = [s.dashboard_cpu for s in ours if s.dashboard_cpu is not None]
        if cpu:
            print(f"dashboard CPU while watching, whole run: median {statistics.median(cpu):.1f}%"
                  f" of one core [{', '.join(f'{c:.1f}' for c in cpu)}]   (target <= 5%)")
        steady = [s.dashboard_cpu_steady for s in ours if s.dashboard_cpu_steady is not None]
        if steady:
            print(f"dashboard CPU while watching, steady (first log to 90 % of the steps): "
                  f"median {statistics.median(steady):.1f}% of one core "
                  f"[{', '.join(f'{c:.1f}' for c in steady)}]   (target <= 5%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", choices=("tiny", "demo"), default="tiny")
    parser.add_argument("--logging-steps", type=int, default=None,
                        help="default: 10, or 1 with --dashboard (a run that logs every step)")
    parser.add_argument("--dashboard", action="store_true",
                        help="watch every clmtune run with a real clmtune-tui")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = parser.parse_args()
    if opts.logging_steps is None:
        opts.logging_steps = 1 if opts.dashboard else 10
    work = Path(tempfile.mkdtemp(prefix="clmtune-vs-run-clm-"))
    # Offline, private caches; inherited by every process started below.
    os.environ.setdefault("HF_HOME", str(work / "hf"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("CLMTUNE_CACHE", str(work / "cache"))
    try:
        assets = build_assets(opts.size, work)
        config = work / "bench.toml"
        config.write_text(settings_toml(assets, opts))
        # Untimed warm-up pair: datasets caches, OS file cache, __pycache__.
        run_plain(assets, config, work, "warm-plain")
        run_clmtune(config, work, "warm-clmtune", dashboard=False, steps=opts.steps)
        runs: dict[str, list[Sample]] = {"plain": [], "clmtune": []}
        for pair in range(opts.pairs):
            order = ("plain", "clmtune") if pair % 2 == 0 else ("clmtune", "plain")
            for side in order:
                name = f"{side}-{pair}"
                if side == "plain":
                    got = run_plain(assets, config, work, name)
                else:
                    got = run_clmtune(config, work, name, opts.dashboard, opts.steps)
                runs[side].append(got)
                print(f"pair {pair} {side:8s} {got.samples_per_s:7.1f} samples/s, first step "
                      f"{got.first_step_s:5.2f} s, eval_loss {got.eval_loss}"
                      + (f", dashboard {got.dashboard_cpu:.1f}% CPU"
                         if got.dashboard_cpu is not None else ""), flush=True)  # fmt: skip
        report(opts, runs, work)
    finally:
        if opts.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
