"""Runs with damaged events or run.json: the runs list, live view and metrics screen still draw.

One run with a string for a step (a hand edit, another tool, a bad disk) once kept the
whole runs list on "Loading runs…". The recorded runs here are damaged at random
(seeded) in a few fields each, the way tests/test_damaged_events.py damages them for
the command line.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.screens.metrics import MetricsScreen
from clmtune.tui.widgets.run_table import RunTable
from tests.test_damaged_events import RECORDINGS, RUN_JSON_KEYS, WRONG, _damage, _events, _write_run
from tests.tui.conftest import frozen_clock, wait_until

pytestmark = pytest.mark.anyio


def _damaged_runs(root: Path, per_recording: int) -> list[Path]:
    runs = []
    for recording in RECORDINGS:
        rng = random.Random(f"tui-{recording.stem}")
        for i in range(per_recording):
            events = _events(recording)
            _damage(events, rng, rng.randint(1, 6))
            info = {"status": "completed", "pid": 4242, "host": "gpu-box",
                    "start_time": 1.7e9, "world_size": 1, "global_step": 60}
            info[rng.choice(RUN_JSON_KEYS)] = rng.choice(WRONG)
            run = root / f"{recording.stem}-{i}"
            _write_run(run, events, info if i % 2 else None)
            runs.append(run)
    return runs


async def test_damaged_runs_list_and_open(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    runs = _damaged_runs(root, 3)
    app = ClmtuneApp(root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(RunTable)
        await wait_until(pilot, lambda: len(table.runs) == len(runs), timeout=30)
        for run in runs:
            live = LiveScreen(run, follow=False)
            await app.push_screen(live)
            live.post_message(EventsArrived(run, [json.loads(line) for line in
                                                  (run / "events.jsonl").read_text().splitlines()]))
            await pilot.pause()
            app.pop_screen()
            metrics = MetricsScreen(run)
            await app.push_screen(metrics)
            await wait_until(pilot, metrics.ready.is_set, timeout=10)
            app.pop_screen()
            await pilot.pause()
        assert app.is_running
