"""Cost of listing the runs folder (what the TUI's runs screen does every 2 s).

Builds a runs folder of 20 run dirs: 19 small finished runs (a few hundred events,
checkpoints) and one live run with a 100k-step ``events.jsonl`` logged at every step
(train log + memory sample per step, evals, checkpoint events; ~200k lines) whose
checkpoints carry a ``trainer_state.json`` with the log history, as Hugging Face
writes them. Then it times ``backend.rundir.listing.list_runs(root)``:

- cold: the per-process cache emptied first (``clear_caches()``) - what every call
  cost before the cache, and what the first call still costs;
- warm: nothing changed since the previous call (the steady state of an idle folder);
- append: 100 new events appended to the live run before each call (the steady state
  while a run trains: the runs screen refreshes every 2 s).

Medians of ``--reps`` calls each; the ratios cold/warm and cold/append are printed,
along with a check that the three listings agree field for field.

    python bench/bench_runs_listing.py [--steps 100000] [--reps 7]

``--many N`` (issue 16, "Many runs") measures what a user runs instead: N finished runs
(hard-linked copies of one run: ``--source RUN_DIR`` for a real one, else a synthetic
finished run with the files a real one has) listed by ``clmtune runs --json`` in a fresh
process, against a fresh Python process that only reads every run's ``run.json``,
``trainer_state.json`` and ``all_results.json``. It prints both medians and the ratio
(target: at most 3x), for the first listing (no cache yet) and the following ones; and
the same for copies without the summary a finished run leaves in its folder (runs of an
older version, or killed): every one of those is read in full the first time.

    python bench/bench_runs_listing.py --many 1000 [--source runs/demo] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clmtune.backend.events import EventWriter, make_event  # noqa: E402
from clmtune.backend.rundir import cache as cache_mod  # noqa: E402
from clmtune.backend.rundir import layout as layout_mod  # noqa: E402
from clmtune.backend.rundir import listing as runs_mod  # noqa: E402

SMALL_RUNS = 19
SMALL_STEPS = 200


def _safetensors(path: Path, nbytes: int = 4096) -> None:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}
    ).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * nbytes)


def _torch_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"x" * 512)


def make_checkpoint(run_dir: Path, step: int, log_every: int) -> None:
    """A complete checkpoint whose trainer_state.json holds the log history up to ``step``."""
    ckpt = run_dir / f"checkpoint-{step}"
    ckpt.mkdir()
    _safetensors(ckpt / "model.safetensors")
    (ckpt / "config.json").write_text('{"model_type": "gpt2"}')
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        _torch_zip(ckpt / name)
    history = []
    for s in range(log_every, step + 1, log_every):
        history.append({"step": s, "epoch": s / 1000, "loss": 3.0 - s * 1e-5,
                        "learning_rate": 1e-4, "grad_norm": 1.0})  # fmt: skip
        if s % 1000 == 0:
            history.append({"step": s, "eval_loss": 3.1 - s * 1e-5})
    state = {"global_step": step, "max_steps": 10**6, "log_history": history}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    (ckpt / layout_mod.COMPLETE_MARKER).write_text(json.dumps({"step": step, "world_size": 1}))


def memory_event(step: int) -> dict:
    return make_event("memory", step=step, devices=[], process_rss=812_345_678,
                      system_used=5_000_000_000, system_total=16_000_000_000)  # fmt: skip


def train_event(step: int) -> dict:
    return make_event("train_log", step=step, epoch=step / 1000, loss=3.0 - step * 1e-5,
                      learning_rate=1e-4, grad_norm=0.9, tokens_per_second=40960.5,
                      samples_per_second=80.2, eta_seconds=1234.5)  # fmt: skip


def write_run(run_dir: Path, steps: int, *, live: bool, start: float) -> EventWriter:
    """A run dir with run.json, config.toml, events for ``steps`` steps and 3 checkpoints."""
    run_dir.mkdir(parents=True)
    (run_dir / "logs").mkdir()
    info = {"status": "running" if live else "completed", "pid": os.getpid() if live else 1,
            "host": socket.gethostname(), "start_time": start, "world_size": 1,
            "end_time": None if live else start + 600, "global_step": steps}  # fmt: skip
    (run_dir / layout_mod.RUN_JSON).write_text(json.dumps(info))
    (run_dir / layout_mod.CONFIG_TOML).write_text(
        '[model]\nmodel_name_or_path = "gpt2"\n\n[data]\ntrain_file = "train.txt"\n'
        "block_size = 64\n\n[training]\nmax_steps = 1000000\nlogging_steps = 1\n"
    )
    writer = EventWriter(run_dir / "events.jsonl")
    writer.emit(make_event("run_started", pid=info["pid"], host=info["host"], world_size=1,
                           max_steps=10**6, block_size=64, settings={"model": "gpt2"}))  # fmt: skip
    writer.emit(make_event("phase", phase="training", progress=0.0, detail="step 0"))
    for step in range(1, steps + 1):
        writer.emit(train_event(step))
        writer.emit(memory_event(step))
        if step % 1000 == 0:
            writer.emit(make_event("eval", step=step, metrics={"eval_loss": 3.1 - step * 1e-5,
                                                               "perplexity": 22.0}))  # fmt: skip
        if step % 10_000 == 0:
            writer.emit(make_event("checkpoint", step=step, complete=True,
                                   path=str(run_dir / f"checkpoint-{step}")))  # fmt: skip
    every = max(steps // 10, 1)
    for step in sorted({steps - k * every for k in range(3)} - {0}):
        make_checkpoint(run_dir, step, log_every=1)
    if not live:
        writer.emit(make_event("run_finished", status="completed", error=None, hint=None))
        writer.close()
    return writer


def timed(fn, reps: int, before=None) -> tuple[float, list]:
    samples = []
    result: list = []
    for _ in range(reps):
        if before is not None:
            before()
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def comparable(runs: list) -> list[dict]:
    """Every field of every summary, minus the wall-clock ones (duration of a live run)."""
    out = []
    for run in runs:
        data = run.to_json()
        data.pop("duration")
        out.append(data)
    return out


RAW_READS = """
import json, os, sys
root = sys.argv[1]
n = 0
for entry in os.scandir(root):
    for name in ("run.json", "trainer_state.json", "all_results.json"):
        try:
            with open(os.path.join(entry.path, name), encoding="utf-8") as fh:
                json.load(fh)
            n += 1
        except (OSError, ValueError):
            pass
print(n)
"""


def finished_run(run_dir: Path) -> None:
    """A finished run with the files a real one has (used when no --source is given)."""
    write_run(run_dir, SMALL_STEPS, live=False, start=time.time() - 3600)
    history = [{"step": s, "epoch": s / 100, "loss": 3.0 - s * 1e-3, "learning_rate": 1e-4,
                "grad_norm": 1.0} for s in range(10, SMALL_STEPS + 1, 10)]  # fmt: skip
    results = {"epoch": 2.0, "train_loss": 2.9, "train_runtime": 60.0, "train_samples": 480,
               "train_samples_per_second": 16.0, "eval_loss": 2.8, "perplexity": 16.4}  # fmt: skip
    (run_dir / "trainer_state.json").write_text(
        json.dumps({"global_step": SMALL_STEPS, "max_steps": SMALL_STEPS, "log_history": history})
    )
    (run_dir / "all_results.json").write_text(json.dumps(results))
    (run_dir / "train_results.json").write_text(json.dumps(results))
    _safetensors(run_dir / "model.safetensors")
    (run_dir / "config.json").write_text('{"model_type": "gpt2"}')


def link_copies(source: Path, root: Path, n: int, *, left_summary: bool = True) -> None:
    """``n`` copies of ``source`` under ``root``, every file hard-linked (no data copied).

    ``left_summary=False`` leaves out the summary the worker left (runs of an older
    version, or killed before their end).
    """
    ignore = None if left_summary else shutil.ignore_patterns(layout_mod.SUMMARY_FILE)
    for i in range(n):
        shutil.copytree(source, root / f"run-{i:04d}", copy_function=os.link, ignore=ignore)


def _median_process(argv: list[str], reps: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def many_runs(n: int, source: Path | None, reps: int) -> None:
    """``clmtune runs --json`` on ``n`` finished runs vs the raw reads (fresh processes)."""
    with tempfile.TemporaryDirectory(prefix="clmtune-bench-many-") as tmp:
        if source is None:
            source = Path(tmp) / "source"
            finished_run(source)
            runs_mod.store_summary(source)  # what the worker leaves at the end of a run
        left = (source / layout_mod.SUMMARY_FILE).is_file()
        root, older = Path(tmp) / "runs", Path(tmp) / "older"
        root.mkdir()
        older.mkdir()
        t0 = time.perf_counter()
        link_copies(source, root, n)
        link_copies(source, older, n, left_summary=False)
        print(f"{n} hard-linked copies of {source.name} in {time.perf_counter() - t0:.1f} s, "
              f"and {n} without the summary the run left ({'present' if left else 'ABSENT'} "
              f"in the source)")  # fmt: skip
        env = {**os.environ, "CLMTUNE_CACHE": str(Path(tmp) / "cache")}
        raw_argv = [sys.executable, "-c", RAW_READS, str(root)]
        subprocess.run(raw_argv, check=True, stdout=subprocess.DEVNULL)  # OS file cache
        raw = _median_process(raw_argv, reps, env)
        print(f"raw reads (run.json, trainer_state.json, all_results.json): {raw:6.2f} s")
        for label, folder in (("", root), (", runs without the summary", older)):
            cli_argv = [sys.executable, "-m", "clmtune.backend", "runs", "--json", str(folder)]
            subprocess.run([sys.executable, "-c", RAW_READS, str(folder)], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            first = _median_process(cli_argv, 1, env)
            again = _median_process(cli_argv, reps, env)
            print(f"clmtune runs --json, first listing{label}: {first:6.2f} s"
                  f"   ratio {first / raw:5.1f}x   (target <= 3x)")  # fmt: skip
            print(f"clmtune runs --json, next listings{label} (median of {reps}): {again:6.2f} s"
                  f"   ratio {again / raw:5.1f}x   (target <= 3x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="steps of the big live run")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--many", type=int, default=0, help="N finished runs via the CLI")
    parser.add_argument("--source", type=Path, default=None, help="a real run dir to copy")
    args = parser.parse_args()
    if args.many:
        many_runs(args.many, args.source, args.reps)
        return
    with tempfile.TemporaryDirectory(prefix="clmtune-bench-runs-") as tmp:
        os.environ["CLMTUNE_CACHE"] = str(Path(tmp) / "cache")

        def clear() -> None:
            """Cold: no per-process cache and no listing cache on disk."""
            cache_mod.clear_caches()
            shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)

        root = Path(tmp) / "runs"
        now = time.time()
        t0 = time.perf_counter()
        for i in range(SMALL_RUNS):
            write_run(root / f"small-{i:02d}", SMALL_STEPS, live=False, start=now - 10_000 + i)
        live = write_run(root / "big-live", args.steps, live=True, start=now)
        built = time.perf_counter() - t0
        size = (root / "big-live" / "events.jsonl").stat().st_size
        ckpt_state = root / "big-live" / f"checkpoint-{args.steps}" / "trainer_state.json"
        print(f"built {SMALL_RUNS + 1} run dirs in {built:.1f} s; big run: {args.steps} steps, "
              f"events.jsonl {size / 1e6:.1f} MB, last checkpoint's trainer_state.json "
              f"{ckpt_state.stat().st_size / 1e6:.1f} MB")  # fmt: skip

        runs_mod.list_runs(root)  # warm the OS file cache; not counted
        cold, cold_runs = timed(lambda: runs_mod.list_runs(root), args.reps, before=clear)
        runs_mod.list_runs(root)
        warm, warm_runs = timed(lambda: runs_mod.list_runs(root), args.reps)
        step = [args.steps]

        def append() -> None:
            for _ in range(50):
                step[0] += 1
                live.emit(train_event(step[0]))
                live.emit(memory_event(step[0]))

        appended, app_runs = timed(lambda: runs_mod.list_runs(root), args.reps, before=append)
        live.close()
        clear()
        fresh = runs_mod.list_runs(root)

    big = next(r for r in app_runs if r.name == "big-live")
    same = comparable(cold_runs) == comparable(warm_runs) and comparable(app_runs) == comparable(
        fresh
    )
    print(f"list_runs over {len(cold_runs)} runs, median of {args.reps}:")
    print(f"  cold (cache emptied):       {cold * 1e3:9.2f} ms")
    print(f"  warm (nothing changed):     {warm * 1e3:9.2f} ms   cold/warm   {cold / warm:7.1f}x")
    ratio = cold / appended
    print(f"  after appending 100 events: {appended * 1e3:9.2f} ms   cold/append {ratio:7.1f}x")
    print(f"  big run after appends: step {big.global_step}, last loss {big.last_loss:.5f}, "
          f"status {big.status}")  # fmt: skip
    print(f"  cached listings equal to uncached ones: {same}")


if __name__ == "__main__":
    main()
