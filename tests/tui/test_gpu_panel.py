"""The GPU panel of the live view (recorded gpu events) and the GPU lines of the metrics screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Sparkline

from clmtune.backend.rundir.state import fold
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.screens.metrics import load_saved_run, summary_lines
from clmtune.tui.widgets.gpu_panel import GpuPanel, gpu_summary
from clmtune.tui.widgets.phase_bar import PhaseBar
from tests.tui.conftest import frozen_clock, recorded_run, recording, wait_until

pytestmark = pytest.mark.anyio


async def _live(app: ClmtuneApp, pilot: Any, run_dir: Path, rec: str) -> LiveScreen:
    screen = LiveScreen(run_dir, follow=False)
    await app.push_screen(screen)
    screen.post_message(EventsArrived(run_dir, recording(rec)))
    await pilot.pause()
    return screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_gpu_events_fill_the_panel_with_mfu(runs_root, size):
    run_dir = recorded_run(runs_root, "gpu-fast", "gpu_telemetry", status="running")
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=size) as pilot:
        screen = await _live(app, pilot, run_dir, "gpu_telemetry")
        panel = screen.query_one(GpuPanel)
        await wait_until(pilot, lambda: len(panel.query(".gpu-head")) == 2
                         and str(panel.query_one("#gpu-head-1").render()))
        assert panel.display
        heads = [str(w.render()) for w in panel.query(".gpu-head")]
        # The last event (step 40): util 70 + 40 % 20 + i; power 612 + i of 700 W; temp 71 + i.
        assert heads == ["GPU0 H100 70% 612W/700W 71C", "GPU1 H100 71% 613W/700W 72C"]
        detail = str(panel.query_one("#gpu-detail-1").render())
        assert detail == "62.5G/79.6G 1980MHz throttle power-cap"
        assert panel.query_one("#gpu-spark-0", Sparkline).data == [80.0, 70.0, 80.0, 70.0]
        # 800k tokens/s x 855,166,464 FLOPs / (2 x 989.5 TFLOP/s) = 34.57 %
        assert str(panel.query_one("#gpu-efficiency").render()) == "800.0k tok/s · MFU 34.6%"
        if size[0] >= 120:
            assert "MFU 35%" in str(screen.query_one(PhaseBar).render())


async def test_panel_hidden_without_gpu_events(runs_root):
    run_dir = recorded_run(runs_root, "cpu", "completed", status="completed")
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _live(app, pilot, run_dir, "completed")
        await pilot.pause()
        assert not screen.query_one(GpuPanel).display
        assert not screen.query(".gpu-head")
        assert "MFU" not in str(screen.query_one(PhaseBar).render())  # CPU: tokens/s only
        assert "tok/s" in str(screen.query_one(PhaseBar).render())


def test_final_table_shows_tokens_per_second_and_mfu():
    from clmtune.tui.widgets.final_table import final_rows

    rows = {r[0]: r[1:] for r in final_rows({"train": {
        "train_loss": 3.0, "train_tokens_per_second": 812_345.0, "train_mfu": 0.3512}})}
    assert rows["tokens/s"] == ("812.3k", "-") and rows["MFU"] == ("35.12%", "-")
    assert "MFU" not in {r[0] for r in final_rows({"train": {"train_loss": 3.0}})}


def test_metrics_screen_keeps_mean_and_max_per_gpu(runs_root):
    run_dir = recorded_run(runs_root, "gpu-fast", "gpu_telemetry", status="running")
    lines = dict(summary_lines(load_saved_run(run_dir)))
    # GPU0 utilisation at steps 10..40: 80, 70, 80, 70 -> mean 75, max 99 (util_max).
    assert lines["gpu0"] == ("H100 util 75% mean / 99% max · mem 63.0G/79.6G max · "
                             "612W mean / 690W max · 74C max")
    assert lines["gpu1"].endswith("throttle power-cap")
    assert lines["mfu"] == "34.57% (800.0k tok/s)"
    assert gpu_summary(fold(recording("completed")).gpu) == []
    cpu = dict(summary_lines(load_saved_run(recorded_run(runs_root, "cpu", "completed"))))
    assert "gpu0" not in cpu and "mfu" not in cpu


async def test_panel_on_an_ascii_terminal_without_colour(runs_root, monkeypatch):
    monkeypatch.setenv("CLMTUNE_ASCII", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    run_dir = recorded_run(runs_root, "gpu-fast", "gpu_telemetry", status="running")
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.ascii and app.no_color
        screen = await _live(app, pilot, run_dir, "gpu_telemetry")
        panel = screen.query_one(GpuPanel)
        await wait_until(pilot, lambda: str(panel.query_one("#gpu-head-1").render()) != ""
                         if panel.query("#gpu-head-1") else False)
        shot = app.export_screenshot()
    shown = "".join(t.split("<", 1)[0] for t in shot.split(">") if t and not t.startswith("<"))
    shown = shown.replace("&#160;", " ")
    assert "GPU1 H100 71% 613W/700W 72C" in shown and "MFU 34.6%" in shown
    blocks = [ch for ch in shown if 0x2580 <= ord(ch) <= 0x259F]  # sparkline bars
    assert not blocks and app.return_code in (None, 0)
