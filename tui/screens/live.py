"""Live view of one run: loss chart, signals, memory, checkpoints, log and final metrics.

A thread worker (:class:`tui.tailer.RunFollower`) replays the whole events file, then
follows it, posting :class:`EventsArrived` batches. The screen folds each batch into a
:class:`backend.rundir.state.RunState` (the one reducer every view uses) at once, but renders the
widgets at most about once a second (``RENDER_EVERY_S``; every 3 s while the run trains on the
CPU, whose cores the dashboard shares): a redraw per 0.3 s poll costs
the training next door real throughput on a small machine. What the user must see at
once (the first batch, a phase or status change, a checkpoint, the end) renders
immediately. Finished and live runs take the same path. A plain Hugging Face folder has
no events: its state is folded from its ``trainer_state.json`` (by the same reducer) and
it offers no Stop / Resume.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from clmtune import themes
from clmtune.backend.events import EVENTS_FILE
from clmtune.backend.rundir.state import RunState
from clmtune.tui.messages import CheckpointsListed, EventsArrived, RunStatusChanged, StopRequested
from clmtune.tui.tailer import RunFollower
from clmtune.tui.widgets.checkpoint_table import CheckpointRow, CheckpointTable
from clmtune.tui.widgets.final_table import FinalTable
from clmtune.tui.widgets.footer import AppFooter
from clmtune.tui.widgets.gpu_panel import GpuPanel
from clmtune.tui.widgets.log_view import LogView
from clmtune.tui.widgets.loss_chart import LossChart, SignalsPanel
from clmtune.tui.widgets.memory_panel import MemoryPanel
from clmtune.tui.widgets.phase_bar import PHASE_LABELS, PhaseBar

if TYPE_CHECKING:
    from clmtune.tui.shell import DashboardApp

ENDED = ("completed", "stopped", "failed", "crashed")
RENDER_EVERY_S = 1.0  # coalesce data batches into one redraw per this many seconds
# A run training on the CPU shares its cores with this screen: every wake-up of the
# dashboard stalls the worker's OpenMP threads (issue 16). Redraw and poll less often then.
CPU_RUN_RENDER_EVERY_S = 3.0
CPU_RUN_POLL_S = 1.0
# Event types rendered as soon as they arrive rather than at the next coalesced redraw.
URGENT_EVENTS = frozenset(
    {"run_started", "run_finished", "phase", "checkpoint", "final_metrics", "warning"}
)


TITLE_SEP = "  "


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, its middle replaced by an ellipsis when cut (a run
    name keeps its start and its date or number at the end)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…" if width == 1 else ""
    head, tail = "", ""
    room = width - 1
    chars = list(text)
    while chars and room > 0:  # alternate ends, the head first
        take_head = cell_len(head) <= cell_len(tail)
        ch = chars[0] if take_head else chars[-1]
        if cell_len(ch) > room:
            break
        room -= cell_len(ch)
        if take_head:
            head += chars.pop(0)
        else:
            tail = chars.pop() + tail
    return f"{head}…{tail}"


def title_text(name: str, status: str, extras: list[tuple[int, str, str]], width: int) -> Text:
    """The title line in ``width`` cells: the run's name and its status always, then the
    ``extras`` (``(priority, text, style)``, in the order shown) as room allows, the lowest
    priority left out first. A name too long for the line is shortened in the middle with
    an ellipsis; ``width`` 0 (not laid out yet) fits nothing."""
    status_part = f"{TITLE_SEP}{status}"
    kept = list(extras)

    def needed() -> int:
        return (cell_len(name) + cell_len(status_part)
                + sum(cell_len(TITLE_SEP + text) for _, text, _ in kept))

    while width and kept and needed() > width:
        kept.remove(min(kept, key=lambda extra: extra[0]))
    if width and needed() > width:
        name = shorten_middle(name, max(width - cell_len(status_part), 1))
    title = Text(name, style="bold")
    title.append(status_part)
    for _, text, style in kept:
        title.append(TITLE_SEP + text, style=style or None)
    if width and title.cell_len > width:  # narrower than the status itself
        title.truncate(width, overflow="ellipsis")
    return title


def waiting_text(view: RunState, status: str) -> str:
    """What the empty loss chart says it waits for (or that nothing was logged)."""
    if status in ENDED or not view.controllable:
        return "no loss was logged"
    phase = PHASE_LABELS.get(view.phase, view.phase)
    if view.phase in ("starting", "loading_model", "loading_data", "tokenizing", "grouping"):
        return f"waiting for the first loss\n({phase}…)"
    return "waiting for the first loss"


def list_checkpoint_rows(run_dir: Path) -> list[CheckpointRow] | None:
    """Checkpoints as classified on disk by backend.rundir.checkpoints."""
    from clmtune.backend.rundir.checkpoints import list_checkpoints

    return [CheckpointRow.from_info(info) for info in list_checkpoints(run_dir)]


@dataclass
class StateLoaded(Message):
    """The state of a folder without events (a plain Hugging Face output dir)."""

    run_dir: Path
    state: RunState | None  # None: not a Hugging Face folder; follow its events


class LiveScreen(Screen):
    """Dashboard of one run; works the same for a running and a finished run."""

    CSS_PATH = str(themes.LIVE_CSS_FILE)  # loaded on the first live view, not at startup
    HORIZONTAL_BREAKPOINTS = [(0, "-cramped"), (64, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (20, "-short"), (34, "-tall")]

    HELP_TITLE = "Run"
    HELP = (
        "One run, live or finished. Below the title: phase (tokenizing, training, "
        "evaluating…), progress, speed and ETA. Quitting the dashboard leaves training "
        "running; opening the run again shows its whole history."
    )
    HELP_KEYS = (
        ("+ / -", "Zoom the loss chart (when it has the focus) or use the mouse wheel"),
        ("← → ↑ ↓", "Pan the chart (or drag it with the mouse)"),
        ("0", "Reset the zoom"),
        ("tab", "Move the focus: chart, tabs, tables"),
    )
    # At 80 columns the footer keeps this screen's keys, n, ? and q.
    FOOTER_OPTIONAL = frozenset({"toggle_theme", "open_toml"})

    BINDINGS = [
        Binding("escape", "back", "Runs", tooltip="Back to the runs list (the run goes on)"),
        Binding("s", "stop", "Stop", tooltip="Save a checkpoint and stop the run (asks first)"),
        Binding(
            "r", "resume", "Resume",
            tooltip="Resume from the checkpoint selected in the Checkpoints tab",
        ),
        Binding(
            "f", "train_further", "Extend",
            tooltip="Train a complete run further, to a new max_steps (asks for it)",
        ),
        Binding("l", "log_scale", "Log scale", tooltip="Loss axis: linear / log scale"),
        Binding(
            "m", "metrics", "Metrics",
            tooltip="Saved metrics of this run: results files and log history",
        ),
        Binding("x", "export_checkpoint", "Export", show=False,
                tooltip="Export the checkpoint selected in the Checkpoints tab (clmtune export)"),
        Binding("tab", "app.focus_next", show=False),
        # The tab titles show these keys: keep them out of the footer.
        Binding("1", "tab('tab-checkpoints')", "Checkpoints", show=False),
        Binding("2", "tab('tab-log')", "Log", show=False),
        Binding("3", "tab('tab-final')", "Final metrics", show=False),
        Binding("g", "try_model", "Try", show=False,
                tooltip="Try the model of the checkpoint selected in the Checkpoints tab"),
    ]

    app: DashboardApp

    def __init__(self, run_dir: Path, *, poll_s: float = 0.3, follow: bool = True) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.view = RunState()
        self.poll_s = poll_s
        self.follow = follow  # False in tests that inject EventsArrived themselves
        self.disk_status: RunStatusChanged | None = None
        self._seen_running = False  # shown as running with run.json agreeing (see _render_status)
        self._shown_status: str | None = None
        self._shown_title: Text | None = None
        self._shown_error: Text | None = None
        self._event_marks: list[CheckpointRow] = []
        # Folded into the view but not rendered yet (the log and the flags need them).
        self._pending: list[dict[str, Any]] = []
        self._rendered_data = False  # the first batch (the replay) renders at once
        self._follower: RunFollower | None = None
        self._tick_timer: Any = None
        self.render_every_s = RENDER_EVERY_S

    # ---- layout -------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self.run_dir.name, classes="title-bar", id="live-title", markup=False)
        yield PhaseBar(id="phase-bar")
        yield Static(id="error-panel")
        with Horizontal(id="live-main"):
            yield LossChart(id="loss-chart", waiting=waiting_text(self.view, self.status))
            with Vertical(id="live-side"):
                yield SignalsPanel(id="signals")
                yield GpuPanel(id="gpu")  # hidden until the run has a gpu event
                yield MemoryPanel(id="memory")
        yield Static(id="live-samples", markup=False)  # [samples] completions (issue 12)
        with TabbedContent(id="live-tabs"):
            with TabPane("Checkpoints (1)", id="tab-checkpoints"):
                yield CheckpointTable(id="checkpoints")
            with TabPane("Log (2)", id="tab-log"):
                yield LogView(id="log")
            with TabPane("Final (3)", id="tab-final"):
                yield FinalTable(id="final")
        footer = AppFooter()
        # Textual's footer shows no key until the screen's bindings change after the first
        # refresh; when the dashboard is busy (a run starting next door, the editor it came
        # from being taken down) that took seconds. Its keys are known now: show them at once
        # (Textual 8's flag; tests/tui/test_live.py checks the first frame has the keys).
        ready = getattr(AppFooter, "_bindings_ready", None)
        if ready is not None:
            footer.set_reactive(ready, True)
        yield footer

    def on_mount(self) -> None:
        self._render_header()  # the title and the phase line are there from the first frame
        # After the first refresh every nested widget is composed; start filling then.
        self.call_after_refresh(self._start)

    def on_resize(self, event: Resize) -> None:
        self._render_status()  # the title fits the new width

    def _start(self) -> None:
        self._render_all([])
        if self.follow:
            if (self.run_dir / EVENTS_FILE).exists():
                self._follow()
            else:
                self._load_saved()  # no events (yet): maybe a plain Hugging Face folder
        self._tick_timer = self.set_interval(self.render_every_s, self._tick)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _load_saved(self) -> None:
        from clmtune.backend.rundir.summary import read_run

        state = read_run(self.run_dir).state
        hf = state is not None and state.source == "huggingface"
        self.post_message(StateLoaded(self.run_dir, state if hf else None))

    @on(StateLoaded)
    def _state_loaded(self, message: StateLoaded) -> None:
        message.stop()
        if message.state is None:
            self._follow()  # our run, its events not written yet
            return
        self.view = message.state
        self._pending.append({"type": "run_started"})  # a fresh chart, not an append
        self._rendered_data = False
        self._flush()
        self._list_checkpoints()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "resume", "train_further") and not self.view.controllable:
            return False  # a plain Hugging Face folder: no worker to stop or resume
        return True

    # ---- data in ------------------------------------------------------------

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow(self) -> None:
        worker = get_current_worker()
        self._follower = RunFollower(self.run_dir, self.post_message, poll_s=self.poll_s)
        self._follower.run(lambda: worker.is_cancelled)

    @on(EventsArrived)
    def _events_arrived(self, message: EventsArrived) -> None:
        message.stop()
        if Path(message.run_dir) != self.run_dir:
            return
        view = self.view
        before = (view.phase, view.status)
        view.apply_all(message.events)
        self._pending.extend(message.events)
        if any(e.get("type") == "run_started" for e in message.events):
            self._pace_for_device()
        urgent = (
            not self._rendered_data
            or (view.phase, view.status) != before
            or any(e.get("type") in URGENT_EVENTS for e in message.events)
        )
        if urgent:
            self._flush()
        if any(
            e.get("type") in ("checkpoint", "run_started", "run_finished") for e in message.events
        ):
            self._list_checkpoints()

    def _pace_for_device(self) -> None:
        """Redraw every CPU_RUN_RENDER_EVERY_S while the run trains on the CPU (every
        device it names is a CPU), else every RENDER_EVERY_S."""
        devices = (self.view.started or {}).get("devices") or []
        on_cpu = bool(devices) and all(str(d).startswith("cpu") for d in devices)
        every = CPU_RUN_RENDER_EVERY_S if on_cpu else RENDER_EVERY_S
        if self._follower is not None:
            self._follower.poll_s = CPU_RUN_POLL_S if on_cpu else self.poll_s
        if every != self.render_every_s:
            self.render_every_s = every
            if self._tick_timer is not None:
                self._tick_timer.stop()
                self._tick_timer = self.set_interval(every, self._tick)

    def _flush(self) -> None:
        """Render what arrived since the last render, unless nobody can see this screen."""
        if not self._pending or not self.is_current:
            return  # on_screen_resume renders what piled up meanwhile
        events, self._pending = self._pending, []
        self._rendered_data = True
        with self.app.batch_update():
            self._render_all(events)

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self._flush()

    @on(RunStatusChanged)
    def _status_changed(self, message: RunStatusChanged) -> None:
        message.stop()
        if Path(message.run_dir) != self.run_dir:
            return
        self.disk_status = message
        with self.app.batch_update():
            # A crash found from run.json: no ETA any more, and the elapsed time stops.
            self.query_one(PhaseBar).show(self.view, self.app.clock(), self.status)
            self._render_status()

    @work(thread=True, exclusive=True, group="checkpoints", exit_on_error=False)
    def _list_checkpoints(self) -> None:
        rows = list_checkpoint_rows(self.run_dir)
        if rows is not None:
            self.post_message(CheckpointsListed(self.run_dir, rows))

    @on(CheckpointsListed)
    def _checkpoints_listed(self, message: CheckpointsListed) -> None:
        message.stop()
        self.query_one(CheckpointTable).update_checkpoints(message.checkpoints)

    # ---- rendering ----------------------------------------------------------

    @property
    def status(self) -> str:
        """The run's status: the events' state, unless run.json knows better (crashed)."""
        disk = self.disk_status.status if self.disk_status else None
        if disk == "deleted":  # the folder vanished under the live view
            return disk
        return self.view.status_with(disk)

    def _model_name(self) -> str:
        settings = (self.view.started or {}).get("settings") or {}
        model = settings.get("model_name_or_path") or (settings.get("model") or {})
        if isinstance(model, dict):
            model = model.get("model_name_or_path") or model.get("config_name") or ""
        return str(model or "")

    def _render_header(self) -> None:
        """The phase line and the title (direct children: there from the first frame)."""
        self.query_one(PhaseBar).show(self.view, self.app.clock(), self.status)
        self._render_status()

    def _render_all(self, events: list[dict[str, Any]]) -> None:
        view = self.view
        self.query_one(PhaseBar).show(view, self.app.clock(), self.status)
        truncated = any(e.get("type") == "run_started" for e in events)
        chart = self.query_one(LossChart)
        chart.waiting = waiting_text(view, self.status)
        chart.set_data(
            view.train_steps, view.train_loss, view.eval_steps, view.eval_loss, reset=truncated
        )
        self.query_one(SignalsPanel).update_signals(view.learning_rate, view.grad_norm)
        if any(e.get("type") == "memory" for e in events):
            self.query_one(MemoryPanel).update_memory(view.memory)
        elif not view.memory and (not view.controllable or view.status in ENDED):
            # Nothing is coming: say so instead of "waiting for the first sample".
            self.query_one(MemoryPanel).no_samples(
                "memory: not recorded (a plain Hugging Face folder)" if not view.controllable
                else "memory: no sample was recorded")
        if any(e.get("type") in ("gpu", "train_log", "run_started") for e in events):
            self.query_one(GpuPanel).update_gpu(view)
        self.query_one(LogView).add_events(events)
        if any(e.get("type") == "checkpoint" for e in events):
            self._show_event_checkpoints()
        if any(e.get("type") in ("final_metrics", "run_started", "eval") for e in events):
            self.query_one(FinalTable).update_view(view)
        if any(e.get("type") == "sample" for e in events):
            self._render_samples()
        self._render_status()

    def _render_samples(self) -> None:
        """The latest ``[samples]`` completions under the chart, one line per prompt."""
        panel = self.query_one("#live-samples", Static)
        lines = [f"samples at step {self.view.samples_step}:"] + [
            f"{' '.join(str(s.get('prompt', '')).split())} → "
            f"{' '.join(str(s.get('completion', '')).split())}" for s in self.view.samples]
        panel.update("\n".join(lines) if self.view.samples else "")
        panel.set_class(bool(self.view.samples), "-shown")

    def _show_event_checkpoints(self) -> None:
        # Shown at once from the events; replaced by the on-disk health when listed.
        evals = dict(zip(self.view.eval_steps, self.view.eval_loss, strict=False))
        rows = [CheckpointRow.from_mark(m, evals.get(m.step)) for m in self.view.checkpoints]
        table = self.query_one(CheckpointTable)
        if len(rows) > len(table.rows_shown):
            table.update_checkpoints(rows)

    def _title_width(self) -> int:
        """Cells the title line has (the screen's width less the title bar's padding)."""
        width = self.size.width or self.app.size.width
        return max(width - 2, 0)

    def _render_status(self) -> None:
        status = self.status
        # (priority, text, style): at a narrow width the lowest priorities go first; the
        # name (shortened with an ellipsis if need be) and the status always show.
        extras: list[tuple[int, str, str]] = []
        model = self._model_name()
        if model:
            extras.append((0, model, ""))
        if self.view.trainable_badge:  # LoRA runs: rank and share of weights trained
            extras.append((1, self.view.trainable_badge, ""))
        if self.view.nan_flag:
            extras.append((3, "⚠ loss not finite", "bold"))
        if not self.view.controllable:
            extras.append((2, "(Hugging Face folder)", ""))
        title = title_text(self.run_dir.name, status, extras, self._title_width())
        if title != self._shown_title:
            self._shown_title = title
            self.query_one("#live-title", Static).update(title, layout=False)  # height 1
        error = self.view.error or (self.disk_status.error if self.disk_status else None)
        hint = self.view.hint or (self.disk_status.hint if self.disk_status else None)
        panel = self.query_one("#error-panel", Static)
        if status in ("failed", "crashed", "deleted"):
            body = Text(f"{status}: ", style="bold")
            body.append(
                error
                or (
                    "the worker process is gone without a final event"
                    if status == "crashed"
                    else "no error message"
                )
            )
            if hint:
                body.append(f"\nhint: {hint}")
            elif status == "crashed":
                body.append(
                    "\nhint: see the Log tab (logs/worker.err); resume from a checkpoint with r"
                )
            if self.view.nan_flag:
                body.append(f"\n{self.view.nan_flag}")
            if body != self._shown_error:
                self._shown_error = body
                panel.update(body)
            panel.add_class("-shown")
        elif self.view.nan_flag:
            body = Text("⚠ ", style="bold")
            body.append(self.view.nan_flag)
            if body != self._shown_error:
                self._shown_error = body
                panel.update(body)
            panel.add_class("-shown")
        else:
            panel.remove_class("-shown")
        if status == "running" and self.disk_status is not None:
            self._seen_running = True  # run.json agrees: a run that ends now was watched
        if status != self._shown_status:
            previous, self._shown_status = self._shown_status, status
            self._on_status_change(previous, status)

    def _on_status_change(self, previous: str | None, status: str) -> None:
        self.refresh_bindings()  # a complete run offers "train further", not "resume"
        if status != "unknown":
            self.app.live_status[self.run_dir] = status
        # Only a run seen running (run.json agreeing) ends under the user's eyes: a run
        # that crashed long ago reads "running" from its events until run.json is read.
        if previous == "running" and status in ENDED and self._seen_running:
            self.app.bell()  # a watched run ended: the terminal bell, and a toast
            self.notify(f"{self.run_dir.name}: {status}", title="run ended", timeout=10,
                        severity="information" if status == "completed" else "warning")
        tabs = self.query_one(TabbedContent)
        if status in ("completed", "stopped") and self.view.final_metrics:
            tabs.active = "tab-final"
        elif status in ("failed", "crashed"):
            tabs.active = "tab-log"

    def _tick(self) -> None:
        if self._pending:
            self._flush()  # the coalesced redraw (also moves the elapsed time)
        elif self.status == "running" and self.is_current:
            self.query_one(PhaseBar).show(self.view, self.app.clock(), self.status)

    # ---- actions ------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        """Show one of the tabs under the chart, its content focused: after ``1`` the arrow
        keys move through the checkpoints (for ``r``, ``x``, ``g``), not the chart."""
        tabs = self.query_one(TabbedContent)
        tabs.active = tab
        pane = tabs.get_pane(tab)
        target = next((w for w in pane.query("*") if w.focusable), None)
        if target is not None:
            target.focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_log_scale(self) -> None:
        chart = self.query_one(LossChart)
        chart.toggle_log()
        self.notify(f"Loss axis: {'log' if chart.log_scale else 'linear'} scale", timeout=2)

    def action_metrics(self) -> None:
        self.app.open_metrics(self.run_dir)

    def action_stop(self) -> None:
        if not self.view.controllable:
            self.notify("A plain Hugging Face folder: there is no run to stop.", severity="warning")
            return
        if self.status != "running":
            self.notify("This run is not running.", severity="warning")
            return
        from clmtune.tui.screens.confirm import ConfirmScreen  # the editor helper's module

        def done(yes: bool | None) -> None:
            if yes:
                self.post_message(StopRequested(self.run_dir))

        self.app.push_screen(
            ConfirmScreen(
                f"Stop training {self.run_dir.name}?",
                "The worker saves a checkpoint at the next step and stops. "
                "You can resume from it later (r).",
                yes="Save and stop",
            ),
            done,
        )

    def footer_hidden(self) -> tuple[str, ...]:
        """A complete run is never resumed as it is: it offers "train further" instead."""
        hidden = ["resume"] if self.status == "completed" else ["train_further"]
        if self.status in ENDED:
            hidden.append("stop")  # nothing to stop: the key still explains why
        return tuple(hidden)

    def action_train_further(self) -> None:
        if self.status != "completed":
            self.notify("Only a complete run trains further; resume this one (r).",
                        severity="warning")
            return
        self.app.train_further(self.run_dir)

    def action_try_model(self) -> None:
        row = self.query_one(CheckpointTable).selected
        self.app.open_try(self.run_dir, Path(row.path).name if row is not None else None)

    def action_resume(self) -> None:
        if not self.view.controllable:
            self.notify("A plain Hugging Face folder: clmtune cannot resume it.",
                        severity="warning")
            return
        # A complete run (by its records, not this view) gets app.resume_run's "train further".
        if self.status == "running":
            self.notify("The run is still running: stop it first (s).", severity="warning")
            return
        row = self.query_one(CheckpointTable).selected
        if row is None:
            self.notify("No checkpoint to resume from.", severity="warning")
            return
        # The table may still show what the events said; the disk has the last word
        # (a checkpoint can be half-written, or rotated away by save_total_limit).
        on_disk = {r.step: r for r in list_checkpoint_rows(self.run_dir) or []}
        row = on_disk.get(row.step)
        if row is None:
            self.notify("That checkpoint is no longer on disk.", severity="warning")
            self._list_checkpoints()
            return
        if not row.resumable:
            self.notify(
                f"checkpoint-{row.step} is {row.state}: pick a complete one.", severity="warning"
            )
            return
        self.app.resume_run(self.run_dir, row.path, status=self.status)

    def action_export_checkpoint(self) -> None:
        if self.status == "running":
            self.notify("The run is still running: export it once it has finished.",
                        severity="warning")
            return
        row = self.query_one(CheckpointTable).selected
        if row is None or not row.path.is_dir():
            self.notify("No checkpoint on disk to export.", severity="warning")
            return
        from clmtune.tui.screens.export import ExportScreen  # loaded when first used

        self.app.push_screen(ExportScreen(self.run_dir, checkpoint=row.step))

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Stop run", "Save a checkpoint and stop (s)", self.action_stop)
        yield SystemCommand(
            "Export checkpoint", "Export the checkpoint selected in the table (x)",
            self.action_export_checkpoint,
        )
        yield SystemCommand(
            "Resume from checkpoint",
            "Resume from the checkpoint selected in the table (r)",
            self.action_resume,
        )
        yield SystemCommand(
            "Train further", "Continue a complete run to a new max_steps (f)",
            self.action_train_further,
        )
        yield SystemCommand("Toggle log scale", "Loss axis linear / log (l)", self.action_log_scale)
        yield SystemCommand(
            "Saved metrics", "Inspect this run's saved metrics (m)", self.action_metrics
        )
        yield SystemCommand("Back to runs", "Return to the runs list (escape)", self.action_back)
