"""Cost of comparing runs (issue 11): 10 runs of 100,000 logged points each.

Builds ``--runs`` run folders whose ``events.jsonl`` hold ``--points`` train logs (loss,
learning rate, grad norm, throughput; an eval every 1,000 steps), then times, as medians of
``--reps``:

- raw: reading every file and parsing every line with ``json.loads`` (the floor: what
  reading the files costs);
- load: :func:`clmtune.backend.tools.compare.load_runs` (the same files, folded by the one
  reducer with full histories); the ratio load / raw is printed; with orjson installed
  (the reader parses with it, see ``backend/events.py``) also the raw read with
  ``orjson.loads`` per line, so the reducer's own share shows;
- build: after the read, what a key press costs: the curves of every run for a metric
  and x axis, EMA-smoothed, thinned to a 200-column chart, plus the table and the
  settings diff (train loss by step at smoothing 0.9, and by wall time at 0.99). "first":
  the curve was never shown (lists → arrays); "again": switching back to it (smoothing
  and thinning only).

- tui (``--tui``): the Compare screen in a headless Textual app (120x40) with the runs
  already read: each key (next metric, x axis, more smoothing, back to train loss)
  from the press to the chart painted ("painted": the last row of the chart's canvas
  rendered for the screen; an unbound key paints nothing) and the pilot's round trip
  (``pilot.press`` returns, then one ``pilot.pause()``; includes the pilot's own waits
  for the app to go idle: compare with the unbound key's).

    python bench/bench_compare.py [--runs 10] [--points 100000] [--reps 5] [--tui]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clmtune.backend import events as events_mod  # noqa: E402
from clmtune.backend.events import EventWriter, make_event  # noqa: E402
from clmtune.backend.tools import compare  # noqa: E402


def build_run(folder: Path, points: int, lr: float) -> None:
    """One run's events: run_started, a train log per step, an eval every 1,000 steps."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f"[training]\nlearning_rate = {lr}\nmax_steps = {points}\n")
    t0 = 1_700_000_000.0
    with EventWriter(folder / "events.jsonl") as writer:
        start = make_event("run_started", max_steps=points, world_size=1, resume_step=None,
                           resumed_from=None, settings={"per_device_train_batch_size": 8})
        start["time"] = t0
        writer.emit(start)
        for step in range(1, points + 1):
            loss = 3.0 * math.exp(-step / points) + 0.1 * math.sin(step)
            event = make_event("train_log", step=step, epoch=step / 1000, loss=loss,
                               learning_rate=lr * (1 - step / points), grad_norm=1.0 + loss,
                               tokens_per_second=5000.0, samples_per_second=20.0)
            event["time"] = t0 + step * 0.1
            writer.emit(event)
            if step % 1000 == 0:
                ev = make_event("eval", step=step, epoch=step / 1000,
                                metrics={"eval_loss": loss + 0.2, "perplexity": math.exp(loss)})
                ev["time"] = t0 + step * 0.1
                writer.emit(ev)
        done = make_event("run_finished", status="completed", error=None, hint=None)
        done["time"] = t0 + points * 0.1
        writer.emit(done)


def raw_read(paths: list[Path]) -> int:
    """The floor: every line of every events file parsed."""
    count = 0
    for path in paths:
        with open(path / "events.jsonl", encoding="utf-8") as fh:
            for line in fh:
                json.loads(line)
                count += 1
    return count


def raw_read_orjson(paths: list[Path]) -> int:
    """The same floor with the parser the reader uses (orjson), for the record."""
    import orjson

    count = 0
    for path in paths:
        with open(path / "events.jsonl", "rb") as fh:
            for line in fh:
                orjson.loads(line)
                count += 1
    return count


def build(runs: list[compare.ComparedRun], metric: str, x_axis: str, smoothing: float) -> None:
    """What a key press costs once the runs are read: curves, smoothing, thinning, tables."""
    from clmtune.tui.thin import thin_minmax  # the dashboard's own thinning (numpy)

    for curve in compare.curves(runs, metric, x_axis, smoothing):
        thin_minmax(curve.x, curve.y, 200)
    compare.table(runs)
    compare.config_diff(runs)


def median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_tui(runs: list[compare.ComparedRun], reps: int) -> None:
    """Key press → painted chart on the Compare screen, the runs read beforehand."""
    import asyncio

    from textual.app import App
    from textual.strip import Strip
    from textual_hires_canvas import Canvas

    from clmtune.tui.screens.compare import CompareChart, CompareScreen, RunsLoaded, warm_curves

    class Bench(App):
        def on_mount(self) -> None:
            screen = CompareScreen([r.path for r in runs])
            screen.load_runs = lambda: screen.post_message(RunsLoaded(runs))  # already read
            self.push_screen(screen)

    async def go() -> None:
        app = Bench()
        async with app.run_test(size=(120, 40)) as pilot:
            while not getattr(app.screen, "loaded", False):
                await pilot.pause(0.05)
            warm_curves(runs)  # what the screen's loader does after the first paint
            chart = app.screen.query_one(CompareChart)
            canvas = chart.query_one("#plot", Canvas)
            painted: list[float] = []
            render_line = canvas.render_line

            def timed_render_line(y: int) -> Strip:  # when the chart's rows reach the screen
                strip = render_line(y)
                painted.append(time.perf_counter())
                return strip

            canvas.render_line = timed_render_line  # type: ignore[method-assign]
            for key, what in (("z", "unbound (pilot baseline)"), ("m", "next metric (eval loss)"),
                              ("M", "back to train loss"), ("x", "x axis: epoch"),
                              ("right_square_bracket", "smoothing +0.1"),
                              ("x", "x axis: time"), ("x", "x axis: step")):  # fmt: skip
                times, paints = [], []
                for _ in range(reps):
                    painted.clear()
                    t = time.perf_counter()
                    await pilot.press(key)
                    await pilot.pause()
                    times.append((time.perf_counter() - t) * 1000)
                    paints.append((painted[-1] - t) * 1000 if painted else math.nan)
                    if key in ("m", "M"):  # come back so each rep does the same work
                        await pilot.press("M" if key == "m" else "m")
                        await pilot.pause()
                    elif key == "right_square_bracket":
                        await pilot.press("left_square_bracket")
                        await pilot.pause()
                    elif key == "x":
                        await pilot.press("x", "x")
                        await pilot.pause()
                print(f"tui key {what:24s}: painted {statistics.median(paints):6.1f} ms,"
                      f" pilot round trip {statistics.median(times):6.1f} ms"
                      f" ({chart.plotted_points} points plotted)")

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tui", action="store_true", help="also time the Compare screen")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"run-{i}" for i in range(args.runs)]
        t = time.perf_counter()
        for i, path in enumerate(paths):
            build_run(path, args.points, 1e-4 * (i + 1))
        print(f"built {args.runs} runs x {args.points} points in {time.perf_counter() - t:.1f} s")
        raw = median_ms(lambda: raw_read(paths), args.reps)
        load = median_ms(lambda: compare.load_runs(paths), args.reps)
        print(f"raw read (json.loads per line): {raw:8.1f} ms")
        print(f"load_runs (one reducer, full):  {load:8.1f} ms   ratio {load / raw:.2f}x")
        if events_mod._fast_parser(events_mod.ORJSON_MIN_BYTES) is not None:
            fast = median_ms(lambda: raw_read_orjson(paths), args.reps)
            print(f"raw read (orjson.loads per line): {fast:6.1f} ms   load_runs ÷ this "
                  f"{load / fast:.2f}x (the reducer's share)")  # fmt: skip
        runs = compare.load_runs(paths)
        for metric, x_axis, smoothing in (("train_loss", "step", 0.9),
                                          ("train_loss", "time", 0.99),
                                          ("learning_rate", "epoch", 0.0),
                                          ("eval_loss", "step", 0.6)):  # fmt: skip
            def cold(m: str = metric, x: str = x_axis, s: float = smoothing) -> None:
                for run in runs:
                    run.curve_cache.clear()  # the first time this curve is shown
                build(runs, m, x, s)

            first = median_ms(cold, args.reps)
            again = median_ms(lambda m=metric, x=x_axis, s=smoothing: build(runs, m, x, s),
                              args.reps)
            print(f"build {metric} vs {x_axis}, smoothing {smoothing}: first {first:7.1f} ms,"
                  f" again {again:7.1f} ms")
        if args.tui:
            bench_tui(runs, args.reps)


if __name__ == "__main__":
    main()
