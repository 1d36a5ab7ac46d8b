"""Every figure is true and the same everywhere (issue 9, one reducer of issue 10).

Recorded event logs (a resumed run, a crashed run, a run whose loss became NaN, a
completed and a failed one) are put in run folders; then the figures are read through
``clmtune show --json``, ``clmtune runs --json``, the listing (``read_run`` /
``list_runs``), the live view and the metrics screen (both fed the recorded files by
the real tailer / loader: the edge mock is only the recording). They must agree with
each other and with what the recording says happened.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Static

from clmtune.backend.cli import main
from clmtune.backend.rundir.listing import list_runs
from clmtune.backend.rundir.summary import read_run
from clmtune.tui import fmt
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.screens.metrics import MetricsScreen
from clmtune.tui.widgets.loss_chart import LossChart
from clmtune.tui.widgets.phase_bar import PhaseBar
from tests.tui.conftest import dead_pid, frozen_clock, recorded_run, recording, wait_until
from tests.tui.make_recordings import T0, loss_at

pytestmark = pytest.mark.anyio

FIGURES = ("status", "global_step", "max_steps", "loss", "loss_kind", "best_eval_loss",
           "perplexity", "started", "duration", "eta", "attempts", "nan_flag",
           "train_samples", "samples_per_second")


def _attempt_seconds(events: list[dict[str, Any]]) -> float:
    """Sum of the attempts' durations, computed here from the recording by hand."""
    total, start = 0.0, events[0]["time"]
    for i, event in enumerate(events):
        if event["type"] == "run_finished":
            total += event["time"] - start
            if i + 1 < len(events):
                start = events[i + 1]["time"]
                continue
            return total
    return total + events[-1]["time"] - start  # no end: a crash; stops at the last event


def _training_seconds(events: list[dict[str, Any]]) -> float:
    """Sum over the attempts of the time from their "training" phase to the end of training:
    their train metrics (trainer.train() returned), else their end."""
    total, start, end = 0.0, None, None
    for event in events:
        if event["type"] == "phase" and event["phase"] == "training" and start is None:
            start = event["time"]
        elif event["type"] == "final_metrics" and event["split"] == "train":
            end = event["time"]
        elif event["type"] == "run_finished" and start is not None:
            total += (end if end is not None else event["time"]) - start
            start = end = None
    return total


def _resumed_run(root: Path) -> Path:
    """The recording plus the run.json launch writes on a resume (start = the resume)."""
    run_dir = recorded_run(root, "resumed", "resumed", status="completed")
    events = recording("resumed")
    stop = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    info = json.loads((run_dir / "run.json").read_text())
    info.update(start_time=events[stop + 1]["time"], end_time=events[-1]["time"],
                resumed_from="runs/resumed/checkpoint-20", global_step=60,
                attempts=[{"status": "stopped", "start_time": T0,
                           "end_time": events[stop]["time"], "global_step": 25}])
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


@pytest.fixture
def runs(runs_root: Path) -> dict[str, Path]:
    return {
        "resumed": _resumed_run(runs_root),
        "crashed": recorded_run(runs_root, "crashed", "crashed", status="running",
                                pid=dead_pid()),
        "nan": recorded_run(runs_root, "nan", "nan", status="completed"),
        "completed": recorded_run(runs_root, "completed", "completed", status="completed"),
        "failed": recorded_run(runs_root, "failed", "failed", status="failed"),
    }


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data.get(key) for key in FIGURES}


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_backend_figures_are_true(runs: dict[str, Path]) -> None:
    resumed = read_run(runs["resumed"])
    events = recording("resumed")
    seconds = _attempt_seconds(events)
    assert seconds < 60  # the 1000 s between the stop and the resume do not count
    assert resumed.status == "completed" and resumed.attempts == 2
    assert resumed.started == T0  # the first attempt, not the resume
    assert resumed.duration == pytest.approx(seconds)
    assert (resumed.global_step, resumed.max_steps) == (60, 60)
    assert (resumed.loss, resumed.loss_kind) == (pytest.approx(loss_at(60)), "last train log")
    assert resumed.train_samples == 480
    # 20 steps in the first attempt (up to its checkpoint), 40 in the second; 8 per step,
    # over the time spent training (loading the model and data left out, as Trainer's
    # train_runtime leaves them out).
    training = _training_seconds(events)
    assert 0 < training < seconds - 2  # each attempt loads for over a second
    assert resumed.samples_per_second == pytest.approx(60 * 8 / training)
    assert resumed.eta is None

    crashed = read_run(runs["crashed"])
    assert crashed.status == "crashed" and crashed.eta is None
    assert crashed.duration == pytest.approx(_attempt_seconds(recording("crashed")))
    assert crashed.nan_flag is None

    nan = read_run(runs["nan"])
    assert nan.nan_flag is not None and "step 12" in nan.nan_flag
    assert "lower the learning rate" in nan.nan_flag  # the worker's hint

    failed = read_run(runs["failed"])
    assert failed.status == "failed" and "out of memory" in (failed.error or "")


def test_cli_and_listing_agree(runs: dict[str, Path], runs_root: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    listed = {Path(r.path).name: r for r in list_runs(runs_root)}
    from_cli = {Path(r["path"]).name: r for r in _cli_json(capsys, "runs", "--json",
                                                           str(runs_root))}
    again = {Path(r["path"]).name: r for r in _cli_json(capsys, "runs", "--json",
                                                        str(runs_root))}  # from the cache
    assert set(listed) == set(from_cli) == set(runs)
    for name, run_dir in runs.items():
        shown = _cli_json(capsys, "show", "--json", str(run_dir))
        expected = _figures(read_run(run_dir).to_json())
        assert _figures(shown) == expected, name
        assert _figures(listed[name].to_json()) == expected, name
        assert _figures(from_cli[name]) == expected, name
        assert _figures(again[name]) == expected, name


def _live_app(root: Path) -> ClmtuneApp:
    return ClmtuneApp(root, clock=frozen_clock, remember_theme=False)


@pytest.mark.parametrize("name", ["resumed", "crashed", "nan"])
async def test_live_view_shows_the_listing_figures(runs: dict[str, Path], runs_root: Path,
                                                   name: str) -> None:
    summary = read_run(runs[name], now=frozen_clock())
    app = _live_app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = LiveScreen(runs[name], poll_s=0.05)  # the real tailer reads the files
        await app.push_screen(screen)
        last = recording(name)[-1]["time"]
        await wait_until(pilot, lambda: screen.view.last_event_time == last
                         and screen.status == summary.status)
        await pilot.pause()
        bar = str(screen.query_one(PhaseBar).render())
        assert f"{fmt.duration(summary.duration)} elapsed" in bar
        assert f"step {summary.global_step}/{summary.max_steps}" in bar
        assert ("ETA" in bar) == (summary.eta is not None)
        title = str(screen.query_one("#live-title", Static).render())
        assert summary.status in title
        panel = screen.query_one("#error-panel", Static)
        if summary.nan_flag:
            assert panel.has_class("-shown") and summary.nan_flag in str(panel.render())
            assert "loss not finite" in title
        if name == "crashed":
            assert panel.has_class("-shown")
        chart = screen.query_one(LossChart)
        assert list(chart.train_x)[-1] == summary.global_step


class _MetricsApp(App):
    def __init__(self, screen: MetricsScreen) -> None:
        super().__init__()
        self.metrics = screen

    def on_mount(self) -> None:
        self.push_screen(self.metrics)


@pytest.mark.parametrize("name", ["resumed", "crashed", "nan", "failed"])
async def test_metrics_screen_shows_the_listing_figures(runs: dict[str, Path],
                                                        name: str) -> None:
    summary = read_run(runs[name])
    screen = MetricsScreen(runs[name])
    async with _MetricsApp(screen).run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        text = str(screen.query_one("#summary", Static).render())
        assert f"{fmt.num(summary.loss)} ({summary.loss_kind})" in text
        assert fmt.duration(summary.duration) in text
        assert summary.status in text
        problem = str(screen.query_one("#metrics-error", Static).render())
        box = screen.query_one("#metrics-error-box")
        if summary.nan_flag:
            assert summary.nan_flag in problem and box.has_class("-shown")
        if name == "failed":
            assert summary.error in problem and summary.hint in problem
        if name == "crashed":
            assert "crashed" in problem


def test_recorded_figures_are_what_the_recording_says() -> None:
    """Guards the recordings themselves (the tests above trust them)."""
    nan = recording("nan")
    losses = [e.get("loss") for e in nan if e["type"] == "train_log"]
    assert losses[11] == "inf" and losses[12] == "nan" and math.isfinite(losses[10])
    resumed = recording("resumed")
    starts = [e for e in resumed if e["type"] == "run_started"]
    assert [e["resume_step"] for e in starts] == [None, 20]


def _stopped_run(root: Path) -> Path:
    """The first attempt of the "resumed" recording alone: stopped at step 25, its last
    evaluation at step 20, final metrics of the train split only (as a stop leaves them)."""
    from clmtune.backend.events import EventWriter

    run_dir = recorded_run(root, "stopped", "resumed", status="stopped")
    events = recording("resumed")
    stop = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    (run_dir / "events.jsonl").unlink()
    with EventWriter(run_dir / "events.jsonl") as writer:
        for event in events[: stop + 1]:
            writer.emit(event)
    info = json.loads((run_dir / "run.json").read_text())
    info["end_time"] = events[stop]["time"]
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_final_tab_of_a_stopped_run_shows_the_perplexity_show_prints(
        runs_root: Path, capsys: pytest.CaptureFixture[str], size: tuple[int, int]) -> None:
    # Stopped: no final evaluation. The Final tab read "perplexity 134.3" (exp of the mean
    # train loss 4.9) and "-" in every eval cell, while `clmtune show` said the last eval's.
    run_dir = _stopped_run(runs_root)
    shown = _cli_json(capsys, "show", "--json", str(run_dir))
    eval_step = 20
    last_eval = next(e for e in recording("resumed")
                     if e["type"] == "eval" and e["step"] == eval_step)["metrics"]
    assert shown["status"] == "stopped"
    assert shown["perplexity"] == pytest.approx(last_eval["perplexity"])
    app = _live_app(runs_root)
    async with app.run_test(size=size) as pilot:
        screen = LiveScreen(run_dir, poll_s=0.05)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.status == "stopped")
        table = screen.query_one("FinalTable")
        await wait_until(pilot, lambda: table.row_count > 0)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:]]
                for i in range(table.row_count)}
        assert rows["perplexity"] == ["-", fmt.num(shown["perplexity"])]  # one figure
        assert rows["mean loss"] == [fmt.num(4.9), fmt.num(last_eval["eval_loss"])]
        # The eval column says which evaluation it is: the last one, at step 20.
        assert [str(c.label) for c in table.columns.values()][2] == f"Eval @{eval_step}"


@pytest.mark.parametrize(("value", "text"), [
    (11326, "11326"),  # a count (train_samples) was "1.133e+04" in both
    (12345.6, "12346"),  # a rate over 10^4 (tokens/s) likewise
    (5.3538, "5.354"), (203.5, "203.5"), (0.0005, None), (1.65e11, None),
    (123456.0, "123456"), (2_000_000, "2000000"), (9999.5, "10000"),  # tokens/s on an H200
    (2_500_000.0, None),
])
def test_counts_and_large_figures_read_the_same_in_the_cli_and_the_dashboard(value, text):
    from clmtune.backend.cli_text import fmt_float

    if text is not None:
        assert fmt_float(value) == fmt.num(value) == text
    else:  # very small or very large: scientific in both
        assert "e" in fmt_float(value) and "e" in fmt.num(value)


def test_compare_keeps_counts_whole(runs: dict[str, Path], capsys) -> None:
    from clmtune.backend.tools.compare import final_metrics

    final = final_metrics(read_run(runs["completed"], compact=False).state)
    counts = [k for k in final if k.endswith("_samples")]
    assert counts and all(type(final[k]) is int for k in counts)
