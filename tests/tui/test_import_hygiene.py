"""The TUI process never loads torch, transformers, datasets or evaluate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.tui.conftest import recorded_run

HEAVY = ("torch", "transformers", "datasets", "evaluate")

SCRIPT = """
import asyncio, sys
from pathlib import Path
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.screens.live import LiveScreen

root = Path(sys.argv[1])

async def main():
    app = ClmtuneApp(root, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("RunTable")
        while not table.runs:  # the runs listing went through backend.rundir
            await pilot.pause(0.05)
        await app.push_screen(LiveScreen(root / "demo", poll_s=0.05))
        chart = app.screen.query_one("LossChart")
        while len(chart.train_y) < 60:  # the tailer replayed the file
            await pilot.pause(0.05)
        await pilot.press("t", "l")
asyncio.run(main())
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


def test_tui_loads_no_training_library(runs_root: Path):
    recorded_run(runs_root, "demo", "completed", status="completed")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY), str(runs_root)],
        capture_output=True, text=True, cwd=root, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1:] in ([""], []), proc.stdout
