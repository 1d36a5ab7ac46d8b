"""Saved metrics of a past run, drawn from disk.

Works on our run dirs (run.json, events.jsonl, config.toml) and on plain
Hugging Face output dirs that only hold ``trainer_state.json`` and the
``*_results.json`` files. Everything is read in a thread worker by
:func:`load_saved_run`; the screen only renders what it returns. Every figure comes
from the one reducer (``backend.rundir.state``), through ``read_run`` for the summary
and a full fold of the events for the curves and the log history. A running run is
read again every ``AUTO_RELOAD_S`` seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from clmtune.backend.events import EVENTS_FILE, read_events, to_float
from clmtune.backend.rundir.state import fold
from clmtune.tui import fmt
from clmtune.tui.screens.editor import binding_commands, display_path
from clmtune.tui.widgets.footer import AppFooter
from clmtune.tui.widgets.metrics_table import RESULT_FILES, LogHistoryTable, ResultsTable

TRAINER_STATE = "trainer_state.json"
AUTO_RELOAD_S = 3.0  # a running run's metrics are read again this often


@dataclass
class SavedRun:
    """What the metrics screen shows, read from a run dir."""

    path: Path
    summary: Any  # backend.rundir.summary.RunSummary
    history: list[dict[str, Any]] = field(default_factory=list)
    history_source: str = ""  # "trainer_state.json" | "events.jsonl" | ""
    train_x: list[float] = field(default_factory=list)
    train_y: list[float] = field(default_factory=list)
    eval_x: list[float] = field(default_factory=list)
    eval_y: list[float] = field(default_factory=list)
    accuracy: float | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # files + event finals
    problem: str | None = None  # the dir is not a run dir / unreadable
    gpu_lines: list[tuple[str, str]] = field(default_factory=list)  # MFU, mean/max per GPU


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _trainer_state(run_dir: Path, summary: Any) -> dict | None:
    state = _read_json(run_dir / TRAINER_STATE)
    if isinstance(state, dict):
        return state
    for ckpt in reversed(getattr(summary, "checkpoints", []) or []):
        state = _read_json(Path(ckpt.path) / TRAINER_STATE)
        if isinstance(state, dict):
            return state
    return None


def load_saved_run(run_dir: Path) -> SavedRun:
    """Read everything the metrics screen shows. Never raises on a damaged dir."""
    from clmtune.backend.rundir.layout import is_run_dir
    from clmtune.backend.rundir.summary import read_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return SavedRun(run_dir, None, problem=f"{run_dir}: no such folder")
    if not is_run_dir(run_dir):
        return SavedRun(
            run_dir,
            None,
            problem=f"{run_dir}: not a run folder (no run.json, events.jsonl, "
            "trainer_state.json or checkpoint-N/)",
        )
    summary = read_run(run_dir)
    saved = SavedRun(run_dir, summary)
    state = _trainer_state(run_dir, summary)
    if state is not None and isinstance(state.get("log_history"), list):
        saved.history = [e for e in state["log_history"] if isinstance(e, dict)]
        saved.history_source = TRAINER_STATE
    events_path = run_dir / EVENTS_FILE
    events = read_events(events_path) if events_path.exists() else []
    folded = fold(events) if events else summary.state
    event_history = folded.history_rows() if events and folded is not None else []
    # events.jsonl is newer than the last trainer_state.json save when a run was stopped
    # between checkpoints: use whichever knows more steps.
    if event_history and _last_step(event_history) > _last_step(saved.history):
        saved.history = event_history
        saved.history_source = EVENTS_FILE
    if folded is not None:  # the curves are the reducer's, as in the live view
        saved.train_x, saved.train_y = list(folded.train_steps), list(folded.train_loss)
        saved.eval_x, saved.eval_y = list(folded.eval_steps), list(folded.eval_loss)
    # A stopped run writes no *_results.json: its train metrics are in the events.
    saved.results = dict(summary.metrics)
    for split, values in (folded.final_metrics if folded is not None else {}).items():
        if values and not saved.results.get(split):
            saved.results[split] = values
    saved.accuracy = _accuracy(saved.results, saved.history)
    if folded is not None:
        saved.gpu_lines = _gpu_lines(folded, saved.results.get("train") or {})
    return saved


def _gpu_lines(state: Any, train: dict[str, Any]) -> list[tuple[str, str]]:
    """MFU / tokens/s (the final figures, else the last log's) and the per-GPU summary."""
    from clmtune.tui.widgets.gpu_panel import gpu_summary

    mfu = to_float(train.get("train_mfu"))
    tokens = to_float(train.get("train_tokens_per_second"))
    if mfu is None and tokens is None:
        mfu, tokens = state.mfu, state.tokens_per_second
    lines = []
    if mfu is not None:
        lines.append(("mfu", f"{fmt.percent(mfu)} ({fmt.si(tokens)} tok/s)"))
    elif to_float(train.get("train_tokens_per_second")) is not None:
        lines.append(("tokens/s", fmt.si(tokens)))
    return lines + gpu_summary(state.gpu)


def _last_step(history: list[dict[str, Any]]) -> float:
    steps = [to_float(e.get("step")) for e in history]
    return max((s for s in steps if s is not None), default=-1.0)


def _accuracy(metrics: dict[str, dict], history: list[dict[str, Any]]) -> float | None:
    """The newest eval accuracy: the results file's, unless the history has a later eval.

    A run trained further and stopped keeps the older attempt's eval_results.json; its
    accuracy would sit next to the perplexity of the newer eval.
    """
    saved, saved_epoch = None, None
    for split in ("eval", "all"):
        values = metrics.get(split) or {}
        saved = to_float(values.get("eval_accuracy"))
        if saved is not None:
            saved_epoch = to_float(values.get("epoch"))
            break
    for entry in reversed(history):
        value = to_float(entry.get("eval_accuracy"))
        if value is None:
            continue
        epoch = to_float(entry.get("epoch"))
        newer = epoch is not None and saved_epoch is not None and epoch > saved_epoch
        return value if saved is None or newer else saved
    return saved


def _when(ts: float | None) -> str:
    return fmt.local_time(ts, "%Y-%m-%d %H:%M")


def summary_lines(saved: SavedRun) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the summary panel (error and hint: the error panel)."""
    s = saved.summary
    steps = f"{s.global_step}" + (f" / {s.max_steps}" if s.max_steps else "")
    lines = [
        ("status", s.status + ("" if s.source == "clmtune" else "  (Hugging Face dir)")),
        (
            "model",
            display_path(Path(s.model))
            if s.model and Path(s.model).is_absolute()
            else (s.model or "-"),
        ),
        ("steps", steps),
        ("started", _when(s.started)),
        ("duration", fmt.duration(s.duration)),
        # Which loss it is goes with the value: a long label would cut the other values.
        ("loss", f"{fmt.num(s.loss)} ({s.loss_kind})" if s.loss is not None else "-"),
        ("best eval loss", fmt.num(s.best_eval_loss)),
        ("perplexity", fmt.num(s.perplexity)),
        ("accuracy", fmt.percent(saved.accuracy)),  # as the live view's final table
        ("checkpoints", _checkpoint_text(s.checkpoints)),
    ]
    if s.world_size and s.world_size > 1:
        lines.append(("processes", str(s.world_size)))
    if s.attempts > 1:
        lines.append(("attempts", str(s.attempts)))
    if s.eta is not None:
        lines.append(("eta", fmt.duration(s.eta)))
    if s.resumed_from:
        lines.append(("resumed from", Path(s.resumed_from).name))
    lines += saved.gpu_lines
    if s.nan_flag:
        lines.append(("loss", "⚠ not finite (above)"))  # the flag is shown above the tabs
    return lines


def problem_text(saved: SavedRun) -> str:
    """The run's error, hint and loss flag in full ("" when there is none)."""
    s = saved.summary
    parts = []
    if s.error or s.status in ("failed", "crashed"):
        parts.append(f"{s.status}: {s.error or 'the worker ended without an error message'}")
    if s.hint:
        parts.append(f"hint: {s.hint}")
    if s.nan_flag:
        parts.append(f"⚠ {s.nan_flag}")
    return "\n".join(parts)


def _checkpoint_text(checkpoints: list[Any]) -> str:
    if not checkpoints:
        return "none"
    resumable = sum(1 for c in checkpoints if getattr(c, "resumable", False))
    last = checkpoints[-1]
    return f"{len(checkpoints)} ({resumable} resumable, last {last.step})"


class MetricsScreen(Screen[None]):
    """The saved metrics of one run: summary, loss curve, results files, log history."""

    DEFAULT_CSS = """
    MetricsScreen #metrics-title {
        height: 1; padding: 0 1; background: $panel; text-style: bold;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    MetricsScreen #metrics-problem {
        display: none; height: auto; padding: 0 1; color: $text-error;
    }
    MetricsScreen #metrics-problem.-shown { display: block; }
    MetricsScreen TabbedContent { height: 1fr; }
    MetricsScreen TabPane { padding: 0; }
    MetricsScreen #overview-box { height: 1fr; }
    MetricsScreen #summary {
        width: auto; max-width: 50%; height: auto; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    MetricsScreen #metrics-chart-box { width: 1fr; height: 1fr; min-height: 8; }
    MetricsScreen #metrics-chart { height: 1fr; }
    MetricsScreen #metrics-error-box {
        display: none; height: auto; max-height: 8; padding: 0 1; color: $text-error;
    }
    MetricsScreen #metrics-error-box.-shown { display: block; }
    MetricsScreen #metrics-chart-empty { color: $text-muted; padding: 1 2; }
    MetricsScreen ResultsTable, MetricsScreen LogHistoryTable { height: 1fr; }
    MetricsScreen #history-source, MetricsScreen #results-source {
        height: 1; color: $text-muted; padding: 0 1;
    }
    MetricsScreen .summary-label { color: $text-muted; }
    """

    HELP_TITLE = "Saved metrics"
    HELP = (
        "What a run left on disk: its summary and loss curve, the train / eval / all "
        "results files and Trainer's log history. Works for any Hugging Face output "
        "folder (trainer_state.json and friends), not only clmtune runs."
    )
    FOOTER_OPTIONAL = frozenset({"toggle_theme", "open_toml"})

    BINDINGS = [
        Binding("escape,b", "back", "Back"),
        # The tab titles show these keys: keep them out of the footer.
        Binding("1", "tab('overview')", "Overview", show=False),
        Binding("2", "tab('results')", "Results", show=False),
        Binding("3", "tab('history')", "Log history", show=False),
        Binding("l", "log_scale", "Log scale", tooltip="Loss axis: linear / log scale"),
        Binding("f5,ctrl+r", "reload", "Reload", tooltip="Read the files again"),
    ]

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield from binding_commands(self, "Metrics: ")

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.saved: SavedRun | None = None
        self.ready = asyncio.Event()  # set after each load is shown (tests await it)

    def compose(self) -> ComposeResult:
        yield Static(f"Metrics · {display_path(self.run_dir)}", id="metrics-title", markup=False)
        yield Static("", id="metrics-problem", markup=False)
        with VerticalScroll(id="metrics-error-box"):
            yield Static("", id="metrics-error", markup=False)
        with TabbedContent(initial="overview"):
            with TabPane("Overview (1)", id="overview"):
                with Horizontal(id="overview-box"):
                    yield Static("Loading…", id="summary", markup=False)
                    with Vertical(id="metrics-chart-box"):
                        yield from self._chart()
            with TabPane("Results (2)", id="results"):
                yield Static("", id="results-source", markup=False)
                yield ResultsTable(id="results-table")
            with TabPane("Log history (3)", id="history"):
                yield Static("", id="history-source", markup=False)
                yield LogHistoryTable(id="history-table")
        yield AppFooter()

    def _chart(self) -> ComposeResult:
        try:
            from clmtune.tui.widgets.loss_chart import LossChart
        except ImportError:  # pragma: no cover - the chart ships with the app
            yield Static("", id="metrics-chart-empty", markup=False)
            return
        yield LossChart(id="metrics-chart")

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(AUTO_RELOAD_S, self._auto_reload)

    def _auto_reload(self) -> None:
        # A running run changes under us; a finished one is read once (f5 reads again).
        if self.ready.is_set() and self.saved is not None and self.saved.summary is not None:
            if self.saved.summary.status == "running":
                self.reload()

    def reload(self) -> None:
        """Read the run dir again (in a thread)."""
        self.ready.clear()
        self._load()

    @work(thread=True, exclusive=True, group="metrics-load")
    def _load(self) -> SavedRun:
        return load_saved_run(self.run_dir)

    @on(Worker.StateChanged)
    def _loaded(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "_load":
            return
        if event.worker.state == WorkerState.SUCCESS:
            self.show(event.worker.result)
        elif event.worker.state == WorkerState.ERROR:
            self._problem(f"{self.run_dir}: could not be read ({event.worker.error})")
            self.ready.set()

    def _problem(self, text: str) -> None:
        problem = self.query_one("#metrics-problem", Static)
        problem.update(text)
        problem.set_class(True, "-shown")
        self.query_one("#summary", Static).update("")

    def show(self, saved: SavedRun) -> None:
        """Render a loaded run."""
        self.saved = saved
        if saved.problem or saved.summary is None:
            self._problem(saved.problem or f"{self.run_dir}: nothing to show")
            self.ready.set()
            return
        self.query_one("#metrics-problem", Static).set_class(False, "-shown")
        width = max(len(label) for label, _ in summary_lines(saved))
        text = "\n".join(f"{label:<{width}}  {value}" for label, value in summary_lines(saved))
        self.query_one("#summary", Static).update(text)
        problem = problem_text(saved)
        self.query_one("#metrics-error", Static).update(problem)
        self.query_one("#metrics-error-box").set_class(bool(problem), "-shown")
        self.query_one("#results-table", ResultsTable).set_results(saved.results)
        files = [f"{split} = {name}" for split, name in RESULT_FILES.items()
                 if saved.results.get(split)]
        self.query_one("#results-source", Static).update(
            ", ".join(files) if files else "")
        self.query_one("#history-table", LogHistoryTable).set_history(saved.history)
        self._shown = saved
        self._history_source(saved)
        self.call_after_refresh(self._history_source, saved)  # once the table is laid out
        self._draw_chart(saved)
        self.ready.set()

    def _history_source(self, saved: SavedRun) -> None:
        """Where the log history comes from; and, when its columns do not fit, how to see
        the rest (the table is wider than a narrow terminal)."""
        try:
            table = self.query_one("#history-table", LogHistoryTable)
            source = self.query_one("#history-source", Static)
        except NoMatches:  # called after a refresh: the screen may be closed by then
            return
        text = f"{len(saved.history)} entries from {saved.history_source or 'no log history'}"
        if table.virtual_size.width > table.scrollable_content_region.width > 0:
            text += " · ← → for more columns"
        source.update(text)

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        # A table on a hidden tab has no width: measure it again when it is shown.
        saved = getattr(self, "_shown", None)
        if saved is not None:
            self.call_after_refresh(self._history_source, saved)

    def _draw_chart(self, saved: SavedRun) -> None:
        try:
            from clmtune.tui.widgets.loss_chart import LossChart

            chart = self.query_one("#metrics-chart", LossChart)
        except (ImportError, NoMatches):  # no chart widget: the summary stands alone
            return
        chart.set_data(saved.train_x, saved.train_y, saved.eval_x, saved.eval_y)

    # -- actions

    def action_back(self) -> None:
        """Return to the previous screen."""
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)
        else:
            self.app.exit()

    def action_tab(self, tab: str) -> None:
        """Show one tab; its table takes the keys (arrows scroll it)."""
        self.query_one(TabbedContent).active = tab
        tables = {"results": "#results-table", "history": "#history-table"}
        if tab in tables:
            self.query_one(tables[tab]).focus()

    def action_log_scale(self) -> None:
        """Toggle the loss chart's log scale."""
        try:
            from clmtune.tui.widgets.loss_chart import LossChart

            chart = self.query_one("#metrics-chart", LossChart)
        except (ImportError, NoMatches):  # no chart widget: the summary stands alone
            return
        chart.toggle_log()

    def action_reload(self) -> None:
        """Read the run dir again."""
        self.reload()
