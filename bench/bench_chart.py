"""Redraw time of the loss chart holding 100,000 train points (target ≤ 50 ms).

Runs the real LossChart in a headless app at 120x40 and times ``redraw()`` followed
by the plot render (thinning + textual-plot canvas drawing), against the same
chart holding 1,000 points as the baseline. Prints medians and the ratio.

    python bench/bench_chart.py [--points 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.app import App, ComposeResult  # noqa: E402

from clmtune.tui.widgets.loss_chart import LossChart  # noqa: E402


class ChartApp(App):
    CSS = "LossChart { width: 1fr; height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield LossChart()


def series(n: int) -> tuple[list[float], list[float], list[float], list[float]]:
    xs = [float(i) for i in range(1, n + 1)]
    ys = [2.0 + 8.0 * math.exp(-i / (n / 5)) + 0.3 * math.sin(i * 0.37) for i in range(1, n + 1)]
    ex = xs[:: max(n // 50, 1)]
    ey = [y + 0.1 for y in ys[:: max(n // 50, 1)]]
    return xs, ys, ex, ey


def time_redraw(chart: LossChart, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        chart.redraw()
        chart.render()  # textual-plot draws its canvases here
        samples.append(time.perf_counter() - t0)
    return samples


async def run(points: int, repeat: int) -> None:
    app = ChartApp()
    async with app.run_test(size=(120, 40)) as pilot:
        chart = app.query_one(LossChart)
        await pilot.pause()
        results = {}
        for n in (1_000, points):
            chart.set_data(*series(n))
            await pilot.pause()
            results[n] = statistics.median(time_redraw(chart, repeat))
            print(
                f"{n:>7} points -> {chart.plotted_points} plotted: "
                f"median redraw {results[n] * 1000:.1f} ms"
            )
        cold = []
        for _ in range(repeat):  # first draw after attaching: the whole list converted
            t0 = time.perf_counter()
            chart.set_data(chart.train_x, chart.train_y, chart.eval_x, chart.eval_y, reset=True)
            chart.render()
            cold.append(time.perf_counter() - t0)
        print(
            f"{points:>7} points, cold (list -> array): median "
            f"{statistics.median(cold) * 1000:.1f} ms"
        )
        chart.log_scale = True
        await pilot.pause()
        log_ms = statistics.median(time_redraw(chart, repeat)) * 1000
        print(f"{points:>7} points, log scale: median redraw {log_ms:.1f} ms")
        print(
            f"ratio {points} / 1000 points: {results[points] / results[1_000]:.2f}x "
            f"(target: {points} points <= 50 ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.points, args.repeat))


if __name__ == "__main__":
    main()
