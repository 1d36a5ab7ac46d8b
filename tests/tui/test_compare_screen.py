"""The Compare screen on recorded runs: opened from the runs list, keys, chart, tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from clmtune.backend.tools import compare
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.screens.compare import CompareChart, CompareScreen
from tests.tui.conftest import frozen_clock, recorded_run, wait_until

SIZES = [(80, 24), (120, 40)]


def _two_runs(root: Path) -> list[Path]:
    """Two finished runs whose frozen settings differ in the learning rate only."""
    runs = []
    for name, rec, lr, shift in (("lr-small", "completed", "5e-05", -7200),
                                 ("lr-big", "resumed", "0.0003", -3600)):  # fmt: skip
        run = recorded_run(root, name, rec, shift=shift, status="completed")
        (run / "config.toml").write_text(
            f'[model]\nmodel_name_or_path = "tiny-gpt2"\n\n[training]\nlearning_rate = {lr}\n')
        runs.append(run)
    return runs


def _app(root: Path) -> ClmtuneApp:
    app = ClmtuneApp(root, clock=frozen_clock, remember_theme=False)
    app.animation_level = "none"
    return app


@pytest.mark.anyio
async def test_mark_two_runs_and_compare_them(runs_root):
    small, big = _two_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.screen.query_one("RunTable").runs) == 2)
        await pilot.press("c")  # nothing marked: says how
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("space", "down", "space", "c")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert sorted(p.name for p in screen.paths) == ["lr-big", "lr-small"]
        await wait_until(pilot, lambda: screen.loaded)
        chart = screen.query_one(CompareChart)
        assert [c.name for c in chart.curves] == [p.name for p in screen.paths]
        assert chart.plotted_points > 0 and len(chart.raw) == 2  # raw shown under smoothing

        # The curves are the backend's, smoothed by its debiased EMA at the screen's weight.
        run = compare.load_runs(screen.paths)[0]
        want = compare.ema(compare.curve_of(run, "train_loss").y, screen.smoothing)
        assert chart.curves[0].y.tolist() == pytest.approx(want)

        await pilot.press("right_square_bracket")
        assert screen.smoothing == pytest.approx(0.7)
        await pilot.press("r")
        assert chart.raw == []
        await pilot.press("m")
        assert screen.metric == "eval_loss" and chart.curves[0].y.tolist() == pytest.approx(
            compare.ema(compare.curve_of(run, "eval_loss").y, 0.7))
        await pilot.press("x")
        assert screen.x_axis == "epoch"
        await pilot.press("x")
        assert screen.x_axis == "time" and chart.curves[0].x[0] >= 0

        table = screen.query_one("#compare-table", DataTable)
        assert table.row_count == 2
        assert table.get_row_at(0)[0] == "lr-big"  # marked first (the newest run)
        await pilot.press("s", "s", "s", "s")  # sorted by run, status, steps, time taken
        assert screen.sort_column == 3
        assert table.get_row_at(0)[0] == "lr-small"  # 0:19 before 0:22 (the resumed run)
        diff = screen.query_one("#compare-diff", DataTable)
        assert diff.row_count == 1
        assert diff.get_row_at(0) == ["training.learning_rate", "5e-05", "0.0003"] or \
            diff.get_row_at(0) == ["training.learning_rate", "0.0003", "5e-05"]
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunsScreen"


async def _opened(pilot, paths: list[Path]) -> CompareScreen:
    """The Compare screen of ``paths``, pushed and loaded."""
    screen = CompareScreen(paths)
    await pilot.app.push_screen(screen)
    await wait_until(pilot, lambda: screen.loaded)
    return screen


def _compare(root: Path):
    paths = _two_runs(root)

    async def run_before(pilot):
        screen = await _opened(pilot, paths)
        diff = screen.query_one("#compare-diff", DataTable)
        try:
            await wait_until(pilot, lambda: diff.row_count == 1 and diff.size.height >= 2)
        except AssertionError:
            raise AssertionError([(w, w.region) for w in screen.children]) from None
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_compare_screen_snapshot(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    root = Path("runs")
    root.mkdir()
    assert snap_compare(_app(root), terminal_size=size, run_before=_compare(root))


@pytest.mark.anyio
async def test_a_live_run_updates_in_place(runs_root, monkeypatch):
    from clmtune.backend.events import EventWriter, make_event
    from clmtune.tui.screens import compare as compare_screen

    monkeypatch.setattr(compare_screen, "REFRESH_S", 0.1)
    done = recorded_run(runs_root, "done", "completed", status="completed")
    live = recorded_run(runs_root, "live", "running_gpu", status="running")  # another host
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = CompareScreen([done, live])
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.loaded)
        chart = screen.query_one(CompareChart)
        finished = chart.curves[0]
        points, last = len(chart.curves[1].x), int(chart.curves[1].x[-1])
        with EventWriter(live / "events.jsonl") as writer:
            writer.emit(make_event("train_log", step=last + 1, epoch=None, loss=0.5,
                                   learning_rate=1e-4))
        await wait_until(pilot, lambda: len(chart.curves[1].x) == points + 1)
        assert int(chart.curves[1].x[-1]) == last + 1
        assert chart.curves[0].x is finished.x  # the finished run was not read again


@pytest.mark.anyio
async def test_the_metric_label_is_whole_and_leaves_no_tail(runs_root):
    from textual_hires_canvas import Canvas

    paths = _two_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _opened(pilot, paths)
        chart = screen.query_one(CompareChart)
        margin = chart.query_one("#margin-top", Canvas)
        for metric in ("samples_per_second", "eval_loss", "train_loss", "eval_loss"):
            chart.set_ylabel(metric)
            chart.redraw()
            await pilot.pause()
            assert "".join(margin._buffer[0]).strip() == metric


LONG_NAME = ("lr-sweep-with-a-very-long-descriptive-name-for-the-cosine-schedule-warmup-"
             "ablation-run-07x")  # 90 characters


def _long_and_short(root: Path) -> list[Path]:
    """The 90-character run (learning rate 0.002, 120 steps) and a default-named one."""
    runs = []
    for name, rec, lr, steps, shift in ((LONG_NAME, "resumed", "0.002", 120, -3600),
                                        ("demo-20261203-181358", "completed", "0.0005", 60,
                                         -7200)):  # fmt: skip
        run = recorded_run(root, name, rec, shift=shift, status="completed")
        (run / "config.toml").write_text(
            f'[model]\nmodel_name_or_path = "tiny-gpt2"\n\n[training]\n'
            f"learning_rate = {lr}\nmax_steps = {steps}\n")
        runs.append(run)
    return runs


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
async def test_a_long_run_name_is_cut_so_figures_settings_and_curves_show(runs_root, size):
    paths = _long_and_short(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = await _opened(pilot, paths)
        await pilot.pause()
        table = screen.query_one("#compare-table", DataTable)
        diff = screen.query_one("#compare-diff", DataTable)
        await wait_until(pilot, lambda: diff.size.width > 0 and table.size.width > 0)
        # Every figure on screen: the name gives way (cut with …), nothing scrolls sideways.
        assert table.virtual_size.width <= table.size.width
        assert len(table.columns) == 9 and table.get_row_at(1)[-1] == "11.13"  # PPL
        name = table.get_row_at(0)[0]
        assert "…" in name and name.startswith("lr-sweep") and name.endswith("07x")
        # The settings' values whole, on screen; the run names over them cut with ….
        assert diff.virtual_size.width <= diff.size.width
        rows = {diff.get_row_at(i)[0]: diff.get_row_at(i)[1:] for i in range(diff.row_count)}
        assert rows == {"training.learning_rate": ["0.002", "0.0005"],
                        "training.max_steps": ["120", "60"]}
        headers = [str(column.label) for column in diff.ordered_columns]
        assert "…" in headers[1] and headers[2] == "demo-20261203-181358"
        # The legend: short names, in a corner where it hides no plotted point.
        chart = screen.query_one(CompareChart)
        labels = [label for label in chart._labels if label]
        assert len(labels) == 2 and all(len(label) <= chart.legend_width() for label in labels)
        assert labels[1] == "demo-20261203-181358"  # the marker is drawn by the legend
        assert chart.legend_covers == 0
        title = str(screen.query_one("#compare-title").render())
        assert len(title) <= size[0] - 2 and "demo-20261203-181358" in title


@pytest.mark.anyio
async def test_help_lists_each_key_once_as_bound(runs_root):
    from clmtune.tui.screens.help import HelpScreen

    paths = _two_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = CompareScreen(paths)
        await app.push_screen(screen)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = [key for key, _ in help_screen.keys]
        assert sorted(keys) == sorted(["esc", "m", "M", "x", "[", "]", "r", "s"])
        described = dict(help_screen.keys)
        assert described["M"] == "Previous metric" and described["]"] == "More smoothing"
