"""The saved-metrics screen on a finished clmtune run, a plain Hugging Face dir, and junk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Static, TabbedContent

from clmtune.backend.rundir.state import fold
from clmtune.tui.screens.metrics import MetricsScreen, load_saved_run
from clmtune.tui.widgets.loss_chart import LossChart
from clmtune.tui.widgets.metrics_table import LogHistoryTable, ResultsTable, format_cell
from tests.tui.conftest import frozen_clock, recorded_run, recording, wait_until

pytestmark = pytest.mark.anyio

TRAIN_RESULTS = {
    "epoch": 3.0,
    "total_flos": 12345.0,
    "train_loss": 3.61,
    "train_runtime": 15.2,
    "train_samples": 480,
    "train_samples_per_second": 94.7,
    "train_steps_per_second": 3.95,
}
EVAL_RESULTS = {
    "epoch": 3.0,
    "eval_accuracy": 0.412,
    "eval_loss": 2.41,
    "eval_runtime": 0.41,
    "eval_samples": 48,
    "eval_samples_per_second": 117.0,
    "eval_steps_per_second": 14.6,
    "perplexity": 11.133961145065307,
}


def write_results(run_dir: Path) -> None:
    (run_dir / "train_results.json").write_text(json.dumps(TRAIN_RESULTS))
    (run_dir / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    (run_dir / "all_results.json").write_text(json.dumps({**TRAIN_RESULTS, **EVAL_RESULTS}))


@pytest.fixture
def finished_run(runs_root: Path) -> Path:
    """A completed clmtune run: recorded events, run.json, config.toml, the results files."""
    run_dir = recorded_run(runs_root, "demo-completed", "completed", status="completed")
    (run_dir / "config.toml").write_text('[model]\nmodel_name_or_path = "./clmtune-demo/model"\n')
    write_results(run_dir)
    return run_dir


@pytest.fixture
def hf_run(tmp_path: Path) -> Path:
    """What a plain run_clm.py leaves: trainer_state.json, *_results.json, a checkpoint."""
    run_dir = tmp_path / "hf-out"
    (run_dir / "checkpoint-30").mkdir(parents=True)
    history: list[dict[str, Any]] = []
    for step in range(5, 31, 5):
        history.append(
            {
                "epoch": step / 10,
                "grad_norm": 1.5,
                "learning_rate": 5e-5 * (1 - step / 30),
                "loss": 4.0 - step / 10,
                "step": step,
            }
        )
        if step % 15 == 0:
            history.append(
                {
                    "epoch": step / 10,
                    "eval_loss": 3.5 - step / 20,
                    "eval_runtime": 0.5,
                    "step": step,
                }
            )
    history.append(
        {
            "epoch": 3.0,
            "step": 30,
            "total_flos": 1.0,
            "train_loss": 2.9,
            "train_runtime": 9.0,
            "train_samples_per_second": 10.0,
            "train_steps_per_second": 3.3,
        }
    )
    state = {"global_step": 30, "max_steps": 30, "log_history": history}
    (run_dir / "trainer_state.json").write_text(json.dumps(state))
    (run_dir / "checkpoint-30" / "trainer_state.json").write_text(json.dumps(state))
    (run_dir / "config.json").write_text(json.dumps({"_name_or_path": "gpt2"}))
    write_results(run_dir)
    return run_dir


class MetricsApp(App):
    def __init__(self, screen: MetricsScreen) -> None:
        super().__init__()
        self.metrics = screen

    def on_mount(self) -> None:
        self.push_screen(self.metrics)


def summary_text(screen: MetricsScreen) -> str:
    return str(screen.query_one("#summary", Static).content)


@pytest.mark.parametrize(
    "size", [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
)
async def test_finished_run(finished_run: Path, size) -> None:
    screen = MetricsScreen(finished_run)
    app = MetricsApp(screen)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        text = summary_text(screen)
        for expected in (
            "completed",
            "./clmtune-demo/model",
            "60 / 60",
            "2023-11-14 22:13",
            "20s",
            "2.41",
            "11.13",
            "41.20%",
        ):
            assert expected in text, expected
        results = screen.query_one(ResultsTable)
        assert [str(c.label) for c in results.columns.values()] == [
            "metric", "train", "eval", "all"]
        assert str(screen.query_one("#results-source", Static).content) == (
            "train = train_results.json, eval = eval_results.json, all = all_results.json")
        assert results.metric_names[0] == "eval_loss"  # losses first
        assert "perplexity" in results.metric_names
        history = screen.query_one(LogHistoryTable)
        assert history.row_total == 63  # 60 train logs + 3 evals, from events.jsonl
        assert "events.jsonl" in str(screen.query_one("#history-source", Static).content)
        chart = screen.query_one(LossChart)
        assert len(chart.train_x) == 60 and len(chart.eval_x) == 3

        await pilot.press("2")
        assert screen.query_one(TabbedContent).active == "results"
        await pilot.press("3")
        assert screen.query_one(TabbedContent).active == "history"
        await pilot.press("1", "l")
        assert chart.log_scale
        titles = [c.title for c in screen.palette_commands()]
        assert {"Metrics: Back", "Metrics: Reload", "Metrics: Log scale"} <= set(titles)
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen not in app.screen_stack)


async def test_plain_hugging_face_dir(hf_run: Path) -> None:
    screen = MetricsScreen(hf_run)
    app = MetricsApp(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        text = summary_text(screen)
        assert "Hugging Face dir" in text
        assert "gpt2" in text and "30 / 30" in text
        assert "41.20%" in text  # accuracy from eval_results.json
        assert "1 (0 resumable, last 30)" in text  # no weights in checkpoint-30
        history = screen.query_one(LogHistoryTable)
        assert history.row_total == 8  # 6 train logs + 2 evals; the totals row is dropped
        assert [str(c.label) for c in history.columns.values()][:5] == [
            "step",
            "epoch",
            "loss",
            "learning_rate",
            "grad_norm",
        ]
        assert "trainer_state.json" in str(screen.query_one("#history-source", Static).content)
        chart = screen.query_one(LossChart)
        assert list(chart.eval_x) == [15.0, 30.0]


async def test_not_a_run_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for target, words in (
        (tmp_path / "empty", "not a run folder"),
        (tmp_path / "missing", "no such folder"),
    ):
        screen = MetricsScreen(target)
        app = MetricsApp(screen)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, screen.ready.is_set)
            problem = screen.query_one("#metrics-problem", Static)
            assert problem.has_class("-shown") and words in str(problem.content)


def test_damaged_files_do_not_raise(finished_run: Path) -> None:
    (finished_run / "all_results.json").write_text("{not json")
    (finished_run / "trainer_state.json").write_text('{"log_history": 5}')
    with open(finished_run / "events.jsonl", "a") as fh:
        fh.write('{"type": "train_log", "step": 61, "lo')  # torn last line
    saved = load_saved_run(finished_run)
    assert saved.problem is None
    assert "all" not in saved.summary.metrics
    assert len(saved.history) == 63


def test_history_from_events_drops_the_stale_tail_of_a_resume() -> None:
    events = [{"type": "train_log", "step": s, "loss": 1.0} for s in (10, 20, 30)]
    events.append({"type": "run_started", "resume_step": 20})
    events += [{"type": "train_log", "step": 30, "loss": 0.5}]
    rows = fold(events).history_rows()
    assert [(r["step"], r["loss"]) for r in rows] == [(10, 1.0), (20, 1.0), (30, 0.5)]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (3, "3"),
        (3.0, "3"),
        (0.41234567, "0.4123"),
        (1e-5, "1.00e-05"),
        ("nan", "nan"),
        (123456, "123_456"),
    ],
)
def test_format_cell(value: Any, text: str) -> None:
    assert str(format_cell(value)) == text


# ----------------------------------------------------------------- snapshots


@pytest.mark.parametrize(
    "size", [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
)
def test_snapshot_metrics(finished_run: Path, snap_compare: Any, size, monkeypatch) -> None:
    from clmtune.tui.app import ClmtuneApp

    monkeypatch.chdir(finished_run.parent.parent)  # the title shows runs/demo-completed

    class SnapApp(ClmtuneApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.push_screen(MetricsScreen(Path("runs/demo-completed")))

    async def loaded(pilot: Any) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, MetricsScreen)
        await wait_until(pilot, screen.ready.is_set)
        await pilot.pause()

    app = SnapApp(finished_run.parent, clock=frozen_clock, remember_theme=False)
    assert snap_compare(app, terminal_size=size, run_before=loaded)


def _stopped_run(runs_root: Path) -> Path:
    """The first attempt of the "resumed" recording: stopped, so no *_results.json."""
    from clmtune.backend.events import EventWriter

    run_dir = runs_root / "stopped"
    (run_dir / "logs").mkdir(parents=True)
    events = recording("resumed")
    stop = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    with EventWriter(run_dir / "events.jsonl") as writer:
        for event in events[: stop + 1]:
            writer.emit(event)
    (run_dir / "run.json").write_text(json.dumps({"status": "stopped", "pid": 1}))
    return run_dir


async def test_stopped_run_shows_its_train_metrics(runs_root: Path) -> None:
    screen = MetricsScreen(_stopped_run(runs_root))
    async with MetricsApp(screen).run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        results = screen.query_one(ResultsTable)
        assert "train_loss" in results.metric_names  # from the final_metrics event
        assert "stopped" in summary_text(screen)


async def test_failed_run_error_and_hint_in_full_and_as_text(runs_root: Path) -> None:
    run_dir = recorded_run(runs_root, "bad-data", "failed", status="failed")
    long_error = "DatasetGenerationError: cannot read [/data/train.txt] " + "x" * 300
    info = json.loads((run_dir / "run.json").read_text())
    info.update(error=long_error, hint="check [data] train_file")
    (run_dir / "run.json").write_text(json.dumps(info))
    screen = MetricsScreen(run_dir)
    async with MetricsApp(screen).run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        problem = str(screen.query_one("#metrics-error", Static).render())
        assert long_error in problem.replace("\n", "")  # whole, not cut; markup kept as text
        assert "hint: check [data] train_file" in problem
        assert screen.query_one("#metrics-error-box").has_class("-shown")


async def test_running_run_updates_by_itself(runs_root: Path, monkeypatch) -> None:
    from clmtune.backend.events import EventWriter, make_event
    from clmtune.tui.screens import metrics

    monkeypatch.setattr(metrics, "AUTO_RELOAD_S", 0.1)
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    screen = MetricsScreen(run_dir)
    async with MetricsApp(screen).run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        assert "35 / 100" in summary_text(screen)
        with EventWriter(run_dir / "events.jsonl") as writer:
            writer.emit(make_event("train_log", step=36, loss=3.0))
        await wait_until(pilot, lambda: "36 / 100" in summary_text(screen))


def test_accuracy_is_the_newest_eval_not_a_stale_results_file(tmp_path: Path) -> None:
    # Completed at step 5 (eval_results.json written), trained further and stopped at
    # step 8 after another eval: eval_results.json is stale. The overview showed its
    # accuracy next to the perplexity of the newer eval.
    from clmtune.backend.events import EventWriter, make_event

    run = tmp_path / "run"
    run.mkdir()
    first = {"eval_loss": 2.0, "eval_accuracy": 0.1, "perplexity": 7.39, "epoch": 0.5}
    newer = {"eval_loss": 1.0, "eval_accuracy": 0.3, "perplexity": 2.72, "epoch": 0.8}
    with EventWriter(run / "events.jsonl") as writer:
        writer.emit(make_event("run_started", max_steps=5, resume_step=None))
        writer.emit(make_event("eval", step=5, epoch=0.5, metrics=first))
        writer.emit(make_event("run_finished", status="completed", error=None, hint=None))
        writer.emit(make_event("run_started", max_steps=10, resume_step=5))
        writer.emit(make_event("eval", step=8, epoch=0.8, metrics=newer))
        writer.emit(make_event("run_finished", status="stopped", error=None, hint=None))
    (run / "eval_results.json").write_text(json.dumps(first))
    saved = load_saved_run(run)
    assert saved.summary.perplexity == pytest.approx(2.72)
    assert saved.accuracy == pytest.approx(0.3)


async def test_the_nan_row_points_at_the_flag_and_fits_at_80x24(runs_root: Path) -> None:
    # The flag is shown above the tabs; the row said "(see below)" and was cut at 80x24.
    run_dir = recorded_run(runs_root, "diverged", "nan", status="completed")
    screen = MetricsScreen(run_dir)
    async with MetricsApp(screen).run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        # ready is set when the content is in place, before the layout that sizes it: a
        # region read at once could be the previous layout's (failed once in CI, width 8)
        await pilot.pause(0.1)
        box, summary = screen.query_one("#metrics-error-box"), screen.query_one("#summary")
        assert box.has_class("-shown") and box.region.bottom <= summary.region.y
        row = next(line for line in summary_text(screen).splitlines() if "not finite" in line)
        assert "above" in row and "below" not in row
        assert len(row.rstrip()) <= summary.content_region.width  # nothing cut


async def test_at_80_columns_the_history_says_how_to_see_its_other_columns(runs_root: Path):
    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    screen = MetricsScreen(run_dir)
    async with MetricsApp(screen).run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        await pilot.press("3")
        source = screen.query_one("#history-source", Static)
        await wait_until(pilot, lambda: "← →" in str(source.content))
        history = screen.query_one(LogHistoryTable)
        assert history.has_focus
        await pilot.press("right", "right", "right")
        await wait_until(pilot, lambda: history.scroll_x > 0)
    screen = MetricsScreen(run_dir)
    async with MetricsApp(screen).run_test(size=(200, 40)) as pilot:
        await wait_until(pilot, screen.ready.is_set)
        await pilot.press("3")
        await wait_until(pilot, lambda: "entries from" in str(
            screen.query_one("#history-source", Static).content))
        await pilot.pause()
        assert "← →" not in str(screen.query_one("#history-source", Static).content)
