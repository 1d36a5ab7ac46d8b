"""Snapshots of the runs and live screens at 80x24 and 120x40 (NO_COLOR, ASCII, other themes).

Regenerate after an intended change: pytest tests/tui/test_snapshots.py --snapshot-update
(then look at the SVGs in tests/tui/__snapshots__/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived
from clmtune.tui.screens.live import LiveScreen
from tests.tui.conftest import (
    fake_checkpoint,
    frozen_clock,
    recorded_run,
    recording,
    standard_runs,
    wait_until,
)

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A relative ./runs: the runs folder is shown in the title, keep it stable."""
    monkeypatch.chdir(tmp_path)
    root = Path("runs")
    root.mkdir()
    return root


def _app(root: Path) -> ClmtuneApp:
    app = ClmtuneApp(root, clock=frozen_clock, remember_theme=False)
    app.animation_level = "none"  # tab underline and scrolling land at once
    return app


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_runs_screen(snap_compare, runs_root, size):
    standard_runs(runs_root)

    async def loaded(pilot):
        table = pilot.app.screen.query_one("RunTable")
        await wait_until(pilot, lambda: len(table.runs) == 4)

    assert snap_compare(_app(runs_root), terminal_size=size, run_before=loaded)


def test_runs_screen_empty(snap_compare, runs_root):
    assert snap_compare(_app(runs_root), terminal_size=(80, 24))


def _live(rec: str, status: str, checkpoints: tuple[int, ...] = ()):
    async def run_before(pilot):
        app = pilot.app
        run_dir = recorded_run(app.runs_dir, f"demo-{rec}", rec, status=status,
                               err="Some weights of GPT2LMHeadModel were not initialized\n")
        events = recording(rec)
        for step in checkpoints:
            saved = next(e["time"] for e in events
                         if e["type"] == "checkpoint" and e["step"] == step)
            fake_checkpoint(run_dir, step, eval_loss=3.0, mtime=saved)
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, events))
        table = screen.query_one("CheckpointTable")
        await wait_until(pilot, lambda: len(table.rows_shown) == len(checkpoints))
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_live_completed(snap_compare, runs_root, size):
    assert snap_compare(_app(runs_root), terminal_size=size,
                        run_before=_live("completed", "completed", (20, 40, 60)))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_live_running_gpu(snap_compare, runs_root, size):
    assert snap_compare(_app(runs_root), terminal_size=size,
                        run_before=_live("running_gpu", "running", (30,)))


def test_live_failed(snap_compare, runs_root):
    assert snap_compare(_app(runs_root), terminal_size=(80, 24),
                        run_before=_live("failed", "failed"))


# ----------------------------------------------------------------- terminals and themes


def test_live_completed_no_color(snap_compare, runs_root, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(_app(runs_root), terminal_size=(80, 24),
                        run_before=_live("completed", "completed", (20, 40, 60)))


def test_live_completed_ascii(snap_compare, runs_root, monkeypatch):
    monkeypatch.setenv("CLMTUNE_ASCII", "1")  # as on TERM=linux
    assert snap_compare(_app(runs_root), terminal_size=(80, 24),
                        run_before=_live("completed", "completed", (20, 40, 60)))


def _in_theme(theme: str, then):
    async def run_before(pilot):
        pilot.app.theme = theme
        await pilot.pause()
        await then(pilot)

    return run_before


def test_live_failed_in_a_textual_theme(snap_compare, runs_root):
    assert snap_compare(_app(runs_root), terminal_size=(80, 24),
                        run_before=_in_theme("nord", _live("failed", "failed")))


def test_runs_screen_no_color_light_theme(snap_compare, runs_root, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    standard_runs(runs_root)

    async def loaded(pilot):
        table = pilot.app.screen.query_one("RunTable")
        await wait_until(pilot, lambda: len(table.runs) == 4)

    assert snap_compare(_app(runs_root), terminal_size=(80, 24),
                        run_before=_in_theme("clmtune-light", loaded))
