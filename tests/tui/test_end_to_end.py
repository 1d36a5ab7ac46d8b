"""End to end: start a real tiny run from the app, watch it, stop it, resume it, finish it.

No mocks: the app launches ``backend.worker`` processes exactly as it does for a user.
The drill hook holds the worker at step ``PAUSE_AT`` until a stop is requested, so the
stop always lands mid-run however fast or loaded the machine is; every wait is on a
condition the UI shows, never a fixed sleep.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clmtune.backend.settings.toml_io import save_config
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.screens.confirm import ConfirmScreen
from clmtune.tui.screens.live import LiveScreen
from tests.fixtures import make_tiny_config
from tests.run_helpers import DRILL_HOOKS
from tests.tui.conftest import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MAX_STEPS = 40
PAUSE_AT = 6
# A worker start imports torch and transformers: slow on a loaded CI box.
START_S = 120.0


def _text(widget) -> str:
    """Everything a DataTable shows, as one string."""
    rows = [widget.get_row_at(i) for i in range(widget.row_count)]
    return "\n".join(" ".join(str(cell) for cell in row) for row in rows)


async def _wait(pilot, condition, what: str, timeout: float = START_S) -> None:
    """``wait_until``, failing with what the user saw (notifications, run dir state)."""
    try:
        await wait_until(pilot, condition, timeout=timeout)
    except AssertionError:
        app = pilot.app
        seen = [n.message for n in app._notifications]
        screen = app.screen
        run_dir = getattr(screen, "run_dir", None)
        state = ""
        if run_dir is not None:
            from clmtune.backend.rundir.layout import read_run_json

            state = f" run.json={read_run_json(run_dir)} files={sorted(os.listdir(run_dir))}"
        raise AssertionError(
            f"timed out waiting for {what}; screen={type(screen).__name__}"
            f" notifications={seen}{state}"
        ) from None


async def _confirm(pilot, app: ClmtuneApp) -> None:
    await _wait(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", 10)
    await pilot.press("y")
    await _wait(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog to close",
                10)


async def test_start_watch_stop_resume_finish(tmp_path, tiny_assets, monkeypatch):
    monkeypatch.setenv("CLMTUNE_TEST_CALLBACKS", DRILL_HOOKS)
    monkeypatch.setenv("DRILL_PAUSE_AT", str(PAUSE_AT))
    config = tmp_path / "tiny.toml"
    save_config(
        make_tiny_config(tiny_assets, max_steps=MAX_STEPS, logging_steps=1, save_steps=4,
                         eval_steps=10),
        config,
    )
    from clmtune.tui.messages import StartRunRequested

    app = ClmtuneApp(tmp_path / "runs", remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.post_message(StartRunRequested(config, None))
        await _wait(pilot, lambda: isinstance(app.screen, LiveScreen), "the live view")
        live = app.screen
        assert isinstance(live, LiveScreen)
        run_dir = live.run_dir
        assert run_dir.parent == (tmp_path / "runs").resolve()

        # Loss points arrive while the worker is held at step PAUSE_AT.
        await _wait(pilot, lambda: live.query("LossChart"), "the live view's chart")  # composed
        chart = live.query_one("LossChart")
        await _wait(pilot, lambda: len(chart.train_y) >= 3, "loss points")
        assert live.status == "running"
        assert chart.plotted_points >= 3

        # Stop: s, then confirm; the worker saves a checkpoint and stops.
        await pilot.press("s")
        await _confirm(pilot, app)
        await _wait(pilot, lambda: live.status == "stopped", "status stopped")
        table = live.query_one("CheckpointTable")
        await _wait(
            pilot,
            lambda: any(r.resumable and r.step >= PAUSE_AT for r in table.rows_shown),
            "the stop checkpoint in the table",
            timeout=30,
        )
        stopped_at = max(r.step for r in table.rows_shown if r.resumable)
        assert stopped_at < MAX_STEPS
        assert table.selected is not None and table.selected.step == stopped_at  # newest first

        # Resume from the checkpoint table: r, then confirm. Same run dir, same live view.
        table.focus()
        await pilot.press("r")
        await _confirm(pilot, app)
        await _wait(pilot, lambda: live.status == "running", "status running again")
        await _wait(pilot, lambda: live.status == "completed", "status completed")
        assert app.screen is live

        # The final train/eval table, perplexity included, comes to the front.
        final = live.query_one("FinalTable")
        await _wait(pilot, lambda: "perplexity" in _text(final), "the final table", 30)
        assert live.query_one("TabbedContent").active == "tab-final"
        ppl_row = next(
            final.get_row_at(i) for i in range(final.row_count)
            if final.get_row_at(i)[0] == "perplexity"
        )
        assert ppl_row[2] != "-"  # an eval perplexity was measured
        steps = list(live.view.train_steps)
        assert steps[-1] == MAX_STEPS
        assert min(steps) <= stopped_at  # the chart holds the whole history, both attempts
        assert Path(run_dir / "all_results.json").is_file()
