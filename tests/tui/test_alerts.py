"""The dashboard rings the bell and shows a toast when a watched run ends (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from clmtune.backend.events import make_event
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived, RunStatusChanged
from clmtune.tui.screens.live import LiveScreen
from tests.tui.conftest import frozen_clock, recorded_run, recording

pytestmark = pytest.mark.anyio


def _watching(runs_root) -> tuple[Any, ClmtuneApp, list[int]]:
    """A recorded running run, the app, and the bells it rings (the terminal is the edge)."""
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    rings: list[int] = []
    app.bell = lambda: rings.append(1)
    return run_dir, app, rings


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_watched_run_ending_rings_the_bell_once(runs_root, status):
    run_dir, app, rings = _watching(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, recording("running_gpu")))
        screen.post_message(RunStatusChanged(run_dir, "running"))  # the tailer reads run.json
        await pilot.pause()
        assert screen.status == "running" and rings == []  # opening a run is silent
        end = make_event("run_finished", status=status, error="boom" if status == "failed"
                         else None, hint=None)  # fmt: skip
        screen.post_message(EventsArrived(run_dir, [end]))
        await pilot.pause()
        assert screen.status == status
        assert rings == [1]
        toasts = [n.message for n in app._notifications]
        assert any(run_dir.name in t and status in t for t in toasts), toasts


async def test_opening_a_finished_run_is_silent(runs_root):
    run_dir, app, rings = _watching(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        end = make_event("run_finished", status="completed", error=None, hint=None)
        screen.post_message(EventsArrived(run_dir, [*recording("running_gpu"), end]))
        await pilot.pause()
        assert screen.status == "completed" and rings == []


async def test_opening_a_run_that_crashed_long_ago_is_silent(runs_root):
    # Its events end without run_finished ("running") until run.json says "crashed".
    run_dir, app, rings = _watching(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, recording("running_gpu")))
        await pilot.pause()
        screen.post_message(RunStatusChanged(run_dir, "crashed"))
        await pilot.pause()
        assert screen.status == "crashed" and rings == []
        assert not [n for n in app._notifications if n.title == "run ended"]
