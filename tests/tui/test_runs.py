"""Pilot tests of the runs screen over hand-made run dirs (read by the real backend.runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmtune.backend.runs import list_runs
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import RunsRefreshed
from clmtune.tui.widgets.run_table import RunTable
from tests.tui.conftest import fake_checkpoint, frozen_clock, standard_runs, wait_until

pytestmark = pytest.mark.anyio


def _app(root: Path) -> ClmtuneApp:
    return ClmtuneApp(root, clock=frozen_clock, remember_theme=False)


async def _loaded(app: ClmtuneApp, pilot, count: int) -> RunTable:
    table = app.screen.query_one(RunTable)
    await wait_until(pilot, lambda: len(table.runs) == count)
    return table


def _cells(table: RunTable, row: int) -> dict[str, str]:
    """The cells of a row by column key (the columns shown depend on the width)."""
    keys = [column.key.value for column in table.ordered_columns]
    return dict(zip(keys, (str(c) for c in table.get_row_at(row)), strict=True))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_lists_every_run_newest_first_with_status(runs_root, size):
    standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        table = await _loaded(app, pilot, 4)
        names = [r.name for r in table.runs]
        assert names == ["gpt2-live", "lost-worker", "big-oom", "demo-completed"]
        status = {r.name: r.status for r in table.runs}
        assert status == {"gpt2-live": "running", "lost-worker": "crashed",
                          "big-oom": "failed", "demo-completed": "completed"}
        live = _cells(table, 0)
        assert live["name"] == "gpt2-live" and "35/100" in live["progress"]
        assert live["duration"] == "1h00m"  # running: duration from the injected clock
        done = _cells(table, 3)
        assert done["ppl"] == "11.13" and done["duration"] == "20s"
        if size[0] >= 100:
            assert done["started"] == "3h00m ago" and "model" in done
        else:  # 80 columns: the least needed columns go, nothing scrolls sideways
            assert set(done) == {"name", "status", "progress", "loss", "ppl", "duration"}
            assert table.virtual_size.width <= table.size.width
        assert app.running_runs == {runs_root / "gpt2-live"}
        assert not app.screen.has_class("-empty")


async def test_empty_folder_shows_the_hint(runs_root):
    app = _app(runs_root / "missing")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-empty")
        assert "press n to set up the offline demo" in str(
            app.screen.query_one("#runs-empty").render()
        ).replace("Press", "press")


async def test_refresh_keeps_cursor_on_the_same_run(runs_root):
    runs = standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 4)
        await pilot.press("down", "down")
        assert table.selected.name == "big-oom"
        fake_checkpoint(runs["completed"], 10)
        app.screen.post_message(RunsRefreshed(list_runs(runs_root)))
        await pilot.pause()
        assert table.selected.name == "big-oom"


async def test_enter_opens_the_live_view(runs_root):
    standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "LiveScreen"
        assert app.screen.run_dir == runs_root / "gpt2-live"


async def test_delete_refuses_running_and_deletes_after_confirm(runs_root):
    runs = standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 4)
        await pilot.press("d")  # cursor on the running run
        await pilot.pause()
        assert type(app.screen).__name__ == "RunsScreen"
        assert any("stop it first" in n.message for n in app._notifications)
        await pilot.press("down", "down", "down", "d")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        await pilot.press("y")
        await wait_until(pilot, lambda: len(table.runs) == 3)
        assert not runs["completed"].exists()


async def test_delete_cancelled_keeps_the_run(runs_root):
    runs = standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("down", "down", "down", "d")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert runs["completed"].exists()


async def test_metrics_key_opens_saved_metrics(runs_root):
    standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("down", "down", "down", "m")
        await pilot.pause()
        assert type(app.screen).__name__ == "MetricsScreen"


async def test_new_opens_the_editor(runs_root):
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "EditorScreen"
