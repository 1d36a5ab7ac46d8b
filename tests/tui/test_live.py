"""Pilot tests of the live screen, fed the same EventsArrived batches the tailer posts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.events import MouseScrollDown
from textual.widgets import TabbedContent

from clmtune.backend.events import make_event
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived, RunStatusChanged
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.widgets.checkpoint_table import CheckpointTable
from clmtune.tui.widgets.final_table import FinalTable
from clmtune.tui.widgets.log_view import LogView
from clmtune.tui.widgets.loss_chart import LossChart
from clmtune.tui.widgets.memory_panel import MemoryPanel
from clmtune.tui.widgets.phase_bar import PhaseBar
from tests.tui.conftest import (
    fake_checkpoint,
    frozen_clock,
    recorded_run,
    recording,
    wait_until,
)

pytestmark = pytest.mark.anyio

SIZES = [(80, 24), (120, 40)]


def _app(root: Path) -> ClmtuneApp:
    return ClmtuneApp(root, clock=frozen_clock, remember_theme=False)


async def _open(app: ClmtuneApp, pilot: Any, run_dir: Path, rec: str | None) -> LiveScreen:
    screen = LiveScreen(run_dir, follow=False)
    await app.push_screen(screen)
    # Its first fill (after the first refresh) is done: data a test sets is not replaced.
    await wait_until(pilot, lambda: screen._tick_timer is not None)
    if rec is not None:
        screen.post_message(EventsArrived(run_dir, recording(rec)))
    await pilot.pause()
    return screen


def _text(widget: Any) -> str:
    return str(widget.render())


def _table_rows(table: Any) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.parametrize("size", SIZES)
async def test_completed_run_shows_curves_final_table_and_checkpoints(runs_root, size):
    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    for step in (20, 40, 60):
        fake_checkpoint(run_dir, step, eval_loss=3.0)
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = await _open(app, pilot, run_dir, "completed")
        chart = screen.query_one(LossChart)
        assert len(chart.train_y) == 60 and len(chart.eval_y) == 3
        assert chart.plotted_points == 63  # few points: nothing thinned away
        assert "completed" in _text(screen.query_one(PhaseBar))
        assert "completed" in _text(screen.query_one("#live-title"))
        assert "tiny-gpt2" in _text(screen.query_one("#live-title"))
        assert screen.query_one(TabbedContent).active == "tab-final"
        rows = dict((r[0], r[1:]) for r in _table_rows(screen.query_one(FinalTable)))
        assert rows["perplexity"][1] == "11.13"
        assert rows["accuracy"][1] == "41.20%"
        table = screen.query_one(CheckpointTable)
        await wait_until(pilot, lambda: len(table.rows_shown) == 3)
        assert [r.step for r in table.rows_shown] == [60, 40, 20]
        assert all(r.state == "complete" for r in table.rows_shown)
        assert not screen.query_one("#error-panel").has_class("-shown")


async def test_failed_run_shows_error_and_hint_and_keeps_running(runs_root):
    run_dir = recorded_run(runs_root, "oom", "failed", status="failed")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run_dir, "failed")
        panel = screen.query_one("#error-panel")
        assert panel.has_class("-shown")
        assert "CUDA out of memory" in _text(panel)
        assert "gradient_checkpointing" in _text(panel)
        assert screen.query_one(TabbedContent).active == "tab-log"
        assert app.is_running


async def test_running_gpu_run_memory_log_and_warnings(runs_root):
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, run_dir, "running_gpu")
        assert screen.status == "running"
        assert run_dir in app.running_runs
        await pilot.pause()
        memory = screen.query_one(MemoryPanel)
        heads = [_text(w) for w in memory.query(".memory-head")]
        assert len(heads) == 2 and heads[0].startswith("GPU0 A100")
        log = screen.query_one(LogView)
        assert log.warning_count == 1
        bar = _text(screen.query_one(PhaseBar))
        assert "35/100" in bar and "ETA" in bar and "tok/s" in bar


async def test_tokenizing_phase_progress_before_step_one(runs_root):
    run_dir = recorded_run(runs_root, "fresh", "tokenizing")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run_dir, "tokenizing")
        bar = _text(screen.query_one(PhaseBar))
        assert bar.startswith("tokenizing") and "50%" in bar and "264/528" in bar


async def test_batches_accumulate_and_checkpoint_event_lists_disk(runs_root):
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run_dir, "running_gpu")
        chart = screen.query_one(LossChart)
        assert len(chart.train_y) == 35
        fake_checkpoint(run_dir, 36)
        screen.post_message(EventsArrived(run_dir, [
            make_event("train_log", step=36, loss=3.5, learning_rate=1e-4),
            make_event("checkpoint", step=36, path=str(run_dir / "checkpoint-36"),
                       complete=True),
        ]))
        await pilot.pause()
        assert len(chart.train_y) == 36
        table = screen.query_one(CheckpointTable)
        await wait_until(pilot, lambda: any(r.step == 36 for r in table.rows_shown))


async def test_crash_detected_from_run_json_status(runs_root):
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run_dir, "running_gpu")
        screen.post_message(RunStatusChanged(run_dir, "crashed", None, None))
        await pilot.pause()
        assert screen.status == "crashed"
        assert "crashed" in _text(screen.query_one("#live-title"))
        assert screen.query_one("#error-panel").has_class("-shown")
        assert run_dir not in app.running_runs


async def test_log_scale_toggle_and_zoom_keys(runs_root):
    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, run_dir, "completed")
        chart = screen.query_one(LossChart)
        await pilot.press("l")
        assert chart.log_scale
        await pilot.press("l")
        assert not chart.log_scale
        chart.focus()
        await pilot.pause()
        full = (chart._x_min, chart._x_max)
        await pilot.press("plus", "plus")
        assert chart._x_max - chart._x_min < full[1] - full[0]
        await pilot.press("0")
        await pilot.pause()
        assert (chart._x_min, chart._x_max) == full


async def test_mouse_wheel_zoom_rethins(runs_root):
    run_dir = recorded_run(runs_root, "demo", "completed")
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, run_dir, None)
        steps = list(range(1, 50_001))
        screen.post_message(EventsArrived(run_dir, [
            make_event("train_log", step=s, loss=1.0 + (s % 97) / 97) for s in steps
        ]))
        await pilot.pause()
        chart = screen.query_one(LossChart)
        whole = chart.plotted_points
        assert whole <= 2 * chart._columns() + 2
        plot = chart.query_one("#plot").region
        sx, sy = plot.x + plot.width // 2, plot.y + plot.height // 2
        for _ in range(20):  # the wheel over the plot area, as a terminal reports it
            chart.post_message(MouseScrollDown(
                chart, sx - chart.region.x, sy - chart.region.y, 0, 1, 0, False, False, False,
                screen_x=sx, screen_y=sy,
            ))
        await pilot.pause()
        assert chart._x_max - chart._x_min < 50_000 * 0.8
        # a narrower window re-thins at the same resolution: ~ as many points, not fewer
        assert chart.plotted_points >= whole * 0.5


async def test_follows_the_file_for_real(runs_root):
    """The real tailer thread: replay, then new lines appended by a writer show up."""
    from clmtune.backend.events import EventWriter

    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, poll_s=0.05)
        await app.push_screen(screen)
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train_y) == 35)
        with EventWriter(run_dir / "events.jsonl") as writer:
            writer.emit(make_event("train_log", step=36, loss=3.0))
        await wait_until(pilot, lambda: len(chart.train_y) == 36)


async def test_escape_returns_to_runs(runs_root):
    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot, run_dir, "completed")
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunsScreen"


async def test_plain_hugging_face_folder_is_completed_with_its_curve(runs_root):
    import json

    run_dir = runs_root / "hf-out"
    run_dir.mkdir()
    history = [{"step": s, "epoch": s / 10, "loss": 4.0 - s / 10} for s in range(5, 31, 5)]
    state = {"global_step": 30, "max_steps": 30, "log_history": history}
    (run_dir / "trainer_state.json").write_text(json.dumps(state))
    (run_dir / "all_results.json").write_text(json.dumps({"train_loss": 3.0, "epoch": 3.0}))
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = LiveScreen(run_dir, poll_s=0.05)
        await app.push_screen(screen)
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train_y) == 6)
        assert screen.status == "completed"
        assert "completed" in _text(screen.query_one(PhaseBar))
        assert "step 30/30" in _text(screen.query_one(PhaseBar))
        assert "Hugging Face" in _text(screen.query_one("#live-title"))
        assert screen.check_action("stop", ()) is False
        assert screen.check_action("resume", ()) is False
        assert screen.check_action("train_further", ()) is False  # nothing clmtune can extend
        empty = screen.query_one(MemoryPanel).query_one(".memory-empty")
        assert "not recorded" in str(empty.render())  # no "waiting for the first sample"


@pytest.mark.parametrize("values", [[2.5] * 5, [2.5, float("nan"), 2.7, float("inf"), 2.6]])
async def test_chart_axes_stay_readable(runs_root, values):
    """A flat or non-finite series keeps finite limits with a span its ticks can label."""
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, runs_root, None)
        chart = screen.query_one(LossChart)
        chart.set_data([1.0, 2.0, 3.0, 4.0, 5.0], values, [], [])
        await pilot.pause()
        y_min, y_max = chart._y_min, chart._y_max
        assert all(map(lambda v: v == v and abs(v) != float("inf"), (y_min, y_max)))
        assert y_max - y_min >= 0.1  # not textual-plot's 2e-6 around a flat line
        assert y_min <= 2.5 <= y_max


@pytest.mark.parametrize("log_scale", [False, True])
async def test_chart_tick_labels_are_true_numbers(runs_root, log_scale):
    """A diverging run (loss up to 1.5e6) gets tick labels that read as the tick values.

    textual-plot cuts labels to the left margin: "1500000" used to read "150000".
    """
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, runs_root, None)
        chart = screen.query_one(LossChart)
        chart.log_scale = log_scale
        chart.set_data([1.0, 2.0, 3.0, 4.0, 5.0], [9.0, 3e4, 4e5, 9e5, 1.5e6], [], [])
        await pilot.pause()
        ticks, labels = chart._y_formatter.get_ticks_and_labels(chart._y_min, chart._y_max)
        shown = [label[: chart.margin_left - 1] for label in labels]  # what textual-plot draws
        values = [10.0**t for t in ticks] if log_scale else ticks
        assert any(value >= 1e6 for value in values)
        for value, label in zip(values, shown, strict=True):
            assert float(label) == pytest.approx(value, rel=0.05), (label, value)


@pytest.mark.parametrize(("rec", "every"), [("completed", 3.0), ("running_gpu", 1.0)],
                         ids=["cpu-run", "gpu-run"])
async def test_a_cpu_run_is_redrawn_less_often(runs_root, rec, every):
    """The dashboard shares the cores of a CPU run: it redraws every 3 s, not every second
    (a GPU run's live view keeps the one-second pace), and new data still arrives."""
    from clmtune.tui.screens import live

    run_dir = recorded_run(runs_root, "live", rec, status="running")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run_dir, rec)
        assert screen.render_every_s == every
        assert every in (live.CPU_RUN_RENDER_EVERY_S, live.RENDER_EVERY_S)
        chart = screen.query_one(LossChart)
        before = len(chart.train_y)
        screen.post_message(EventsArrived(run_dir, [
            make_event("train_log", step=10_000, loss=1.5, learning_rate=1e-4)]))
        await wait_until(pilot, lambda: len(chart.train_y) == before + 1,
                         timeout=every + 5)


@pytest.mark.parametrize("size", SIZES)
async def test_every_eval_has_its_marker_the_last_one_at_the_right_edge_too(runs_root, size):
    # textual-plot maps x = x_max one column past the canvas: the run's last evaluation
    # (at its last step) had no marker, in the live view and the metrics screen alike.
    from textual_hires_canvas import Canvas

    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = await _open(app, pilot, run_dir, "completed")
        chart = screen.query_one(LossChart)
        assert list(chart.eval_x) == [20, 40, 60] and max(chart.train_x) == 60
        await pilot.pause()
        buffer = chart.query_one("#plot", Canvas)._buffer
        assert sum(row.count("•") for row in buffer) == 3


async def test_key_1_puts_the_arrow_keys_on_the_checkpoints(runs_root):
    # The chart holds the focus (arrows pan it): "1" shows the checkpoints and focuses them.
    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    for step in (20, 40, 60):
        fake_checkpoint(run_dir, step, eval_loss=3.0)
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, run_dir, "completed")
        table = screen.query_one(CheckpointTable)
        await wait_until(pilot, lambda: len(table.rows_shown) == 3)
        await pilot.press("1")
        assert screen.query_one(TabbedContent).active == "tab-checkpoints"
        assert app.focused is table
        await pilot.press("down", "down")
        assert table.cursor_row == 2


def test_a_checkpoint_without_its_own_eval_says_which_step_the_loss_is_from(runs_root):
    # A stop saves checkpoint-45; the last evaluation was at step 40.
    import json

    from clmtune.backend.rundir.checkpoints import classify_checkpoint
    from clmtune.tui.widgets.checkpoint_table import CheckpointRow

    run_dir = recorded_run(runs_root, "demo", "completed", status="stopped")
    ckpt = fake_checkpoint(run_dir, 45)
    history = [{"step": 20, "eval_loss": 5.9}, {"step": 40, "eval_loss": 5.396},
               {"step": 45, "loss": 5.1}]
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 45,
                                                         "log_history": history}))
    info = classify_checkpoint(ckpt)
    assert (info.eval_loss, info.eval_step) == (5.396, 40)
    assert info.to_json()["eval_step"] == 40
    assert CheckpointRow.from_info(info).eval_text == "5.396 @40"
    own = classify_checkpoint(fake_checkpoint(run_dir, 60, eval_loss=3.0))
    assert CheckpointRow.from_info(own).eval_text == "3"  # its own: no step added


# ------------------------------------------------------------ header, title, dialogs, first frame


def _until_second_start(rec: str = "resumed") -> tuple[list[dict], list[dict]]:
    """The recording up to the resumed worker's run_started (included), and the rest."""
    events = recording(rec)
    starts = [i for i, e in enumerate(events) if e["type"] == "run_started"]
    return events[: starts[1] + 1], events[starts[1] + 1:]


@pytest.mark.parametrize("size", SIZES)
async def test_a_resumed_run_shows_no_speed_or_epoch_of_the_steps_it_left(runs_root, size):
    # Stopped at step 25 (epoch 1.25, 8.2k tok/s), resumed from checkpoint-20: until the new
    # worker logs, the header shows step 20 and its epoch, not the abandoned step 25's figures.
    run_dir = recorded_run(runs_root, "resumed", "resumed", status="running")
    before, after = _until_second_start()
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        stop = next(i for i, e in enumerate(before) if e["type"] == "run_finished")
        loading = [i for i, e in enumerate(before) if e["type"] == "phase"
                   and e["phase"] == "loading_model" and i > stop]  # the resumed worker's
        screen.post_message(EventsArrived(run_dir, before[: loading[0] + 1]))
        await pilot.pause()
        bar = _text(screen.query_one(PhaseBar))
        assert bar.startswith("loading model") and "tok/s" not in bar  # no speed measured yet
        screen.post_message(EventsArrived(run_dir, before[loading[0] + 1:]))
        await pilot.pause()
        bar = _text(screen.query_one(PhaseBar))
        # The reducer forgets step 25's speed at the resume's run_started (the phase bar
        # hides it already while the new worker loads, before that event).
        assert screen.view.tokens_per_second is None and screen.view.epoch == 1.0
        assert "step 20/60" in bar
        assert "tok/s" not in bar and "ep 1.25" not in bar
        if size == (120, 40):
            assert "ep 1.00" in bar  # the epoch at the checkpoint's step
        first_log = next(i for i, e in enumerate(after) if e["type"] == "train_log")
        screen.post_message(EventsArrived(run_dir, after[: first_log + 1]))  # step 21
        await wait_until(pilot, lambda: "step 21/60" in _text(screen.query_one(PhaseBar)))
        assert "tok/s" in _text(screen.query_one(PhaseBar))


async def test_after_a_resume_the_final_tab_shows_no_eval_of_the_steps_it_left(runs_root):
    # Evaluated at 20 and 40, stopped at 45, resumed from checkpoint-20: the evaluation at 40
    # belongs to the history the resume left; the Final tab shows the one at 20.
    import math

    from clmtune.tui import fmt

    run_dir = recorded_run(runs_root, "again", "completed", status="running")

    def evaluation(step: int, loss: float) -> dict:
        return make_event("eval", step=step, metrics={"eval_loss": loss,
                                                      "perplexity": math.exp(loss)})

    events = [make_event("run_started", max_steps=60, resume_step=None),
              *[make_event("train_log", step=s, loss=4.0, tokens_per_second=900.0)
                for s in range(1, 46)],
              evaluation(20, 3.5), evaluation(40, 3.0),
              make_event("final_metrics", split="train", metrics={"train_loss": 4.0}),
              make_event("run_finished", status="stopped"),
              make_event("phase", phase="loading_model"),
              make_event("run_started", max_steps=60, resume_step=20)]
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, events[:-2]))
        await pilot.pause()
        table = screen.query_one(FinalTable)
        assert table.eval_title == "Eval @40"
        screen.post_message(EventsArrived(run_dir, events[-2:]))
        await wait_until(pilot, lambda: table.eval_title == "Eval @20")
        rows = {r[0]: r[1:] for r in _table_rows(table)}
        assert rows["perplexity"] == ["-", fmt.num(math.exp(3.5))]


LONG_NAME = "lr-sweep-with-a-very-long-descriptive-name-to-test-the-truncation-of-names-2026"


@pytest.mark.parametrize("no_color", [False, True])
@pytest.mark.parametrize("size", SIZES)
async def test_a_long_run_name_is_shortened_and_the_status_always_shows(runs_root, size,
                                                                        no_color, monkeypatch):
    from rich.cells import cell_len

    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    name = LONG_NAME + "-" + "x" * (size[0] - 60)  # too long for either width
    run_dir = recorded_run(runs_root, name, "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = await _open(app, pilot, run_dir, "completed")
        title = _text(screen.query_one("#live-title")).rstrip()
        head, _, status = title.partition("  ")
        assert status.startswith("completed")  # the model may give way, the status never
        assert head.startswith("lr-sweep-with") and "…" in head and head.endswith("xxxx")
        assert cell_len(title) <= size[0] - 2
        await pilot.resize_terminal(64, 20)  # narrower still: fitted again
        await pilot.pause()
        title = _text(screen.query_one("#live-title"))
        assert "  completed" in title and cell_len(title.rstrip()) <= 62


def test_title_text_keeps_name_and_status_and_drops_extras_first():
    from clmtune.tui.screens.live import shorten_middle, title_text

    wide = title_text("run-1", "running", [(0, "gpt2", ""), (3, "⚠ loss not finite", "")], 80)
    assert wide.plain == "run-1  running  gpt2  ⚠ loss not finite"
    narrow = title_text("run-1", "running", [(0, "gpt2", ""), (3, "⚠ loss not finite", "")], 36)
    assert narrow.plain == "run-1  running  ⚠ loss not finite"  # the model goes first
    cut = title_text("a" * 30 + "-2026", "stopped", [(0, "gpt2", "")], 24)
    assert cut.plain.endswith("  stopped") and "…" in cut.plain and cut.cell_len == 24
    assert cut.plain.startswith("aaaa") and "2026" in cut.plain  # both ends kept
    assert shorten_middle("abcdefgh", 5) == "ab…gh" and shorten_middle("abc", 5) == "abc"


@pytest.mark.parametrize("no_color", [False, True])
@pytest.mark.parametrize("size", SIZES)
async def test_the_stop_dialog_names_the_run_over_the_live_view(runs_root, size, no_color,
                                                                monkeypatch):
    import re
    from html import unescape

    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    run_dir = recorded_run(runs_root, "gpt2-live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = await _open(app, pilot, run_dir, "running_gpu")
        await pilot.press("s")
        await pilot.pause()
        dialog = app.screen
        assert type(dialog).__name__ == "ConfirmScreen"
        assert "gpt2-live" in _text(dialog.query_one("#confirm-title"))
        # A modal overlay: the live view stays visible (dimmed) around the dialog.
        assert dialog.styles.background.a < 1
        shot = unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())).replace("\xa0", " ")
        assert "step 35/100" in shot  # the phase line of the live view behind the dialog
        assert screen in app._background_screens


async def test_the_footer_and_the_waiting_chart_are_there_from_the_first_frame(runs_root):
    from textual_hires_canvas import Canvas

    run_dir = runs_root / "fresh-run"
    (run_dir / "logs").mkdir(parents=True)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        # Before the first refresh's callbacks: keys in the footer, a status in the title.
        assert {key.action for key in screen.query("FooterKey")} >= {"back", "stop"}
        assert _text(screen.query_one("#live-title")).startswith("fresh-run  ")
        await pilot.pause()
        chart = screen.query_one(LossChart)

        def chart_text() -> str:
            return "\n".join("".join(row) for row in chart.query_one("#plot", Canvas)._buffer)

        assert "waiting for the first loss" in chart_text()
        screen.post_message(EventsArrived(run_dir, [
            make_event("phase", phase="loading_model", progress=None, detail="")]))
        await pilot.pause()
        lines = [line.strip("┃┫┣ ") for line in chart_text().splitlines()]
        assert ["waiting for the first loss", "(loading model…)"] == [
            line for line in lines if any(c.isalpha() for c in line)]
        screen.post_message(EventsArrived(run_dir, [make_event("train_log", step=1, loss=3.0)]))
        await wait_until(pilot, lambda: "waiting" not in chart_text())  # the next redraw


@pytest.mark.parametrize("size", SIZES)
async def test_the_memory_note_is_never_cut(runs_root, size):
    from rich.cells import cell_len

    run_dir = recorded_run(runs_root, "fresh", "tokenizing", status="running")
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = await _open(app, pilot, run_dir, "tokenizing")
        memory = screen.query_one(MemoryPanel)
        note = memory.query_one(".memory-empty")
        assert str(note.content).startswith("memory: waiting")
        for longer in (None, "memory: not recorded (a plain Hugging Face folder)"):
            if longer is not None:
                memory.no_samples(longer)
                await pilot.pause()
            text = str(note.content)
            assert note.size.width <= note.parent.content_size.width  # inside the side panel
            assert cell_len(text) <= note.size.width * note.size.height  # wrapped, not cut


@pytest.mark.parametrize("changed", [False, True])
def test_the_resume_question_keeps_later_checkpoints_apart_from_settings(runs_root, changed):
    # The plan as backend.resume_plan makes it for checkpoint-40 of a run stopped at 60
    # (tests/tui/test_train_further.py checks the same on a plan it really makes).
    from clmtune.backend.resume_plan import RunPlan
    from clmtune.tui.screens.confirm import SETTINGS_HEADING, resume_body

    run_dir = runs_root / "paused"
    move = ("checkpoint-60 comes after checkpoint-40: the history this resume leaves; moved to"
            " superseded/ (nothing is deleted)")
    setting = "[training] learning_rate was 0.0005, now 0.125 (the schedule)"
    plan = RunPlan("resume", run_dir, run_dir / "checkpoint-40",
                   warnings=((setting,) if changed else ()) + (move,),
                   superseded=(run_dir / "checkpoint-60",))
    body = resume_body("paused", plan)
    paragraphs = body.split("\n\n")
    assert paragraphs[0] == "Resume paused from checkpoint-40."
    assert paragraphs[-1].startswith("Later checkpoint") and "checkpoint-60" in paragraphs[-1]
    assert "superseded/" in paragraphs[-1]
    if changed:
        assert paragraphs[1] == f"{SETTINGS_HEADING}\n• {setting}"  # the move is not a setting
    else:
        assert SETTINGS_HEADING not in body and len(paragraphs) == 2  # nothing changed
