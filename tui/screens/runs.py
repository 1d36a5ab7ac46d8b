"""Home screen: every run under the runs folder, refreshed every couple of seconds.

The folder is read by :class:`tui.listing.RunsLister` in a thread: the newest rows
first, the rest after, and later only the runs whose files changed. Until the first
rows arrive the screen says "Loading runs…" (never "No runs yet").
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from clmtune.tui.listing import RunsLister
from clmtune.tui.messages import RunsRefreshed
from clmtune.tui.widgets import footer
from clmtune.tui.widgets.footer import AppFooter
from clmtune.tui.widgets.run_table import RunTable, fit_names

REFRESH_S = 2.0
CLOCK_S = 30.0  # "5m ago" follows the clock: the started cells only, nothing read
LOADING = "Loading runs…"
EMPTY_HINT = (
    "No runs yet in {root}\n\n"
    "Press [b]n[/b] to set up the offline demo (a tiny model that trains in a minute or\n"
    "two on a CPU), [b]o[/b] to open a run settings TOML file, [b]?[/b] for help."
)


RUN_ACTIONS = ("open_run", "resume", "train_further", "delete", "metrics", "try_model",
               "export")


def shown_path(path: Path) -> str:
    """``./runs`` for a relative folder (clearer in a sentence than a bare ``runs``)."""
    text = str(path)
    return text if path.is_absolute() or text.startswith(".") else f"./{text}"


def marked_title(base: str, names: list[str], width: int) -> str:
    """The title line in ``width`` cells: ``base``, then how many runs are marked, their
    names (cut with … to fit, left out when even that does not fit) and the keys.

    ``clmtune · runs in ./runs · 2 marked: demo-2…181358, lr-sweep… · c compares ·
    space unmarks``: the count and the keys always show; ``base`` shrinks to ``clmtune``
    before the names go.
    """
    if not names:
        return base
    keys = ("c compares · space unmarks" if len(names) >= 2
            else "space marks another · c compares")
    count = f"{len(names)} marked"
    for head in (base, "clmtune"):
        fixed = f"{head} · {count} · {keys}"
        fitted = fit_names(names, width - len(fixed) - 2)  # 2: ": "
        if fitted is not None:
            return f"{head} · {count}: {', '.join(fitted)} · {keys}"
    return f"clmtune · {count} · {keys}"  # the title bar cuts it (with …) below that


class RunsScreen(Screen):
    """The table of runs and the actions on the selected one."""

    HELP_TITLE = "Runs"
    HELP = (
        "Every run in {runs_dir}, newest first, refreshed every two seconds. Move with "
        "↑/↓, PgUp/PgDn, Home/End (or the mouse) and press enter to watch a run, live or "
        "finished. Eval is the best evaluation loss and PPL its perplexity (as `clmtune "
        "runs` shows them); the run's own view has the last evaluation too.\n\n"
        "Training runs in its own process: quitting this dashboard leaves it running, and "
        "opening the run again shows its whole history."
    )
    HELP_KEYS = (
        ("↑ / ↓", "Select a run"),
        ("PgUp / PgDn", "A page up or down"),
        ("Home / End", "The newest / the oldest run"),
    )

    BINDINGS = [
        Binding("enter", "open_run", "Open", tooltip="Watch the selected run, live or finished"),
        Binding(
            "r", "resume", "Resume",
            tooltip="Resume the selected run from its newest complete checkpoint",
        ),
        Binding(
            "f", "train_further", "Extend",
            tooltip="Train the selected complete run further (asks for a new max_steps)",
        ),
        Binding(
            "d", "delete", "Delete",
            tooltip="Delete the selected run folder (asks first; never a running run)",
        ),
        Binding(
            "m", "metrics", "Metrics",
            tooltip="Saved metrics of the selected run: results files and log history",
        ),
        Binding("space", "mark", "Mark",
                tooltip="Mark or unmark the selected run for Compare (● in the list)"),
        Binding("c", "compare", "Compare",
                tooltip="Compare the marked runs (mark them with space)"),
        Binding("g", "try_model", "Try", show=False,
                tooltip="Try the selected run's model: a prompt, checkpoints side by side"),
        Binding("x", "export", "Export", show=False,
                tooltip="Export a finished run: merged LoRA, adapter or model, with a card"),
    ]

    loading = True  # until the first rows of the listing arrive

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marked: list[Path] = []  # the runs marked for Compare, in marking order

    def compose(self) -> ComposeResult:
        root = shown_path(self.app.runs_dir)
        # The message area shows "Loading runs…" until the list: set before the children
        # mount so that the first styling pass is the only one.
        self.add_class("-empty")
        yield Static(f"clmtune · runs in {root}", classes="title-bar", id="runs-title")
        yield RunTable(clock=self.app.clock, id="runs-table")
        yield Static(LOADING, id="runs-empty")
        yield AppFooter()

    def on_mount(self) -> None:
        # The first rows read are the ones a screen shows: the rest come after them.
        self._lister = RunsLister(self.app.runs_dir, first=max(10, self.app.size.height))
        # List after the first paint: the scan must not compete with it for the GIL.
        self.call_after_refresh(self.refresh_runs)
        self._timer = self.set_interval(REFRESH_S, self.refresh_runs)
        # A finished run's files never change, so the listing never repaints its row:
        # the relative start times are brought up to the clock apart (cheap, no disk).
        self._clock_timer = self.set_interval(CLOCK_S, self.table.tick)

    def on_resize(self) -> None:
        # The footer leaves optional keys out below footer.WIDE columns: recompose it when
        # the width crosses that line (the list no longer refreshes it every two seconds).
        wide = self.app.size.width >= footer.WIDE
        if wide != getattr(self, "_footer_wide", wide):
            self.refresh_bindings()
        self._footer_wide = wide
        self._show_title()

    def on_screen_suspend(self) -> None:
        # Nobody sees the list under a live view: stop scanning the disk for it.
        self._timer.pause()
        self._clock_timer.pause()

    def on_screen_resume(self) -> None:
        if self.is_mounted and hasattr(self, "_timer"):
            self.refresh_runs()
            self.table.tick()
            self._timer.resume()
            self._clock_timer.resume()

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    @property
    def selected(self) -> Any | None:
        return self.table.selected

    def footer_hidden(self) -> tuple[str, ...]:
        """No run to act on: the per-run keys leave the footer (room for n, ? and q).

        Space (mark) shows with runs, c (compare) once two are marked; below
        ``footer.WIDE`` columns "Open TOML" (and, while c shows, "Metrics") make room
        for them. The keys left out still work.
        """
        run = self.selected
        if run is None:
            return (*RUN_ACTIONS, "mark", "compare")
        # A complete run is never resumed as it is: it offers "train further" instead.
        hidden = ["resume" if run.status == "completed" else "train_further"]
        comparing = len(self.marked) >= 2
        if not comparing:
            hidden.append("compare")
        if self.app.size.width < footer.WIDE:
            hidden += ["open_toml", "metrics"] if comparing else ["open_toml"]
        return tuple(hidden)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        status = getattr(self.selected, "status", None)
        if status != getattr(self, "_footer_status", "(none yet)"):
            # Resume or Extend for the run under the cursor; and the first highlight (after
            # the rows came) brings the per-run keys, space Mark among them.
            self.refresh_bindings()
        self._footer_status = status

    @work(thread=True, group="runs-refresh", exit_on_error=False)
    def refresh_runs(self) -> None:
        """Bring the list up to date in a thread (disk scans can be slow on network file
        systems); posts only when something changed."""
        worker = get_current_worker()
        self._lister.refresh(
            lambda runs: self.post_message(RunsRefreshed(runs)),
            cancelled=lambda: worker.is_cancelled,
        )

    @on(RunsRefreshed)
    def show_runs(self, message: RunsRefreshed) -> None:
        if self.loading:
            self.loading = False
            root = shown_path(self.app.runs_dir)
            self.query_one("#runs-empty", Static).update(EMPTY_HINT.format(root=root))
        self.set_class(not message.runs, "-empty")
        self.table.update_runs(message.runs)
        self.refresh_bindings()
        self.app.listed_running = {Path(r.path) for r in message.runs if r.status == "running"}

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def _need_selection(self) -> Any | None:
        run = self.selected
        # Each run key says so: one toast, however many keys are pressed (notify_once).
        if run is None and self.loading:
            self.app.notify_once(LOADING, severity="information")
        elif run is None:
            self.app.notify_once("No runs yet: press n to set up the offline demo, or o to "
                                 "open a TOML file.", severity="warning")
        return run

    def action_open_run(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.open_live(Path(run.path))

    def action_resume(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.resume_run(Path(run.path), None, status=run.status)

    def action_train_further(self) -> None:
        run = self._need_selection()
        if run is None:
            return
        if run.status != "completed":
            self.notify("Only a complete run trains further; resume this one (r).",
                        severity="warning")
            return
        self.app.train_further(Path(run.path))

    def action_metrics(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.open_metrics(Path(run.path))

    def action_try_model(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.open_try(Path(run.path))

    def action_mark(self) -> None:
        run = self._need_selection()
        if run is None:
            return
        path = Path(run.path)
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked.append(path)
        self._show_marks()

    def _show_marks(self) -> None:
        self.table.set_marked(str(p) for p in self.marked)
        self._show_title()
        self.refresh_bindings()  # c Compare shows from two marked runs on

    def _show_title(self) -> None:
        base = f"clmtune · runs in {shown_path(self.app.runs_dir)}"
        title = marked_title(base, [p.name for p in self.marked], self.app.size.width - 2)
        self.query_one("#runs-title", Static).update(title)

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.app.notify_once("Mark two or more runs with space, then press c.",
                                 severity="warning")
            return
        from clmtune.tui.screens.compare import CompareScreen  # loaded when first used

        self.app.push_screen(CompareScreen(list(self.marked)))

    def action_export(self) -> None:
        run = self._need_selection()
        if run is None:
            return
        if run.status == "running":
            self.notify(f"{run.name} is running: export it once it has finished.",
                        severity="warning")
            return
        from clmtune.tui.screens.export import ExportScreen  # loaded when first used

        self.app.push_screen(ExportScreen(Path(run.path)))

    def action_delete(self) -> None:
        run = self._need_selection()
        if run is None:
            return
        if run.status == "running":
            self.notify(
                f"{run.name} is running: stop it first (open it, then s).", severity="warning"
            )
            return
        from clmtune.tui.screens.confirm import ConfirmScreen  # the editor helper's module

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(Path(run.path))

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {run.name}?",
                f"This removes {run.path} with its checkpoints and metrics. It cannot be undone.",
                yes="Delete",
            ),
            done,
        )

    @work(thread=True, group="runs-delete", exit_on_error=False)
    def _delete(self, run_dir: Path) -> None:
        from clmtune.backend.errors import ClmtuneError
        from clmtune.backend.rundir.summary import delete_run

        try:
            delete_run(run_dir)
        except (ClmtuneError, OSError) as exc:  # refused (running, not a run) or the disk said no
            self.app.report_failure(f"delete {run_dir.name}", exc)
            return
        self._lister.forget(run_dir)
        self.app.call_from_thread(self._unmark, run_dir)  # the marks are the UI thread's
        self.notify(f"Deleted {run_dir.name}.")  # notify is thread-safe (post_message)
        self.refresh_runs()

    def _unmark(self, run_dir: Path) -> None:
        if run_dir in self.marked:
            self.marked.remove(run_dir)
            self._show_marks()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Open run", "Live view of the selected run (enter)", self.action_open_run
        )
        yield SystemCommand(
            "Resume run", "Resume the selected run from its last checkpoint (r)", self.action_resume
        )
        yield SystemCommand(
            "Train further", "Continue a complete run to a new max_steps (f)",
            self.action_train_further,
        )
        yield SystemCommand(
            "Delete run", "Delete the selected run after confirming (d)", self.action_delete
        )
        yield SystemCommand(
            "Saved metrics", "Inspect the selected run's saved metrics (m)", self.action_metrics
        )
        yield SystemCommand(
            "Try the model", "Complete a prompt with the selected run's model (g)",
            self.action_try_model,
        )
        yield SystemCommand(
            "Export run", "Export the selected finished run (x)", self.action_export
        )
        yield SystemCommand(
            "Mark run", "Mark or unmark the selected run for Compare (space)", self.action_mark
        )
        yield SystemCommand(
            "Compare runs", "The marked runs on one chart (c)", self.action_compare
        )
