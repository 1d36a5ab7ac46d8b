"""Home screen: every run under the runs folder, refreshed every couple of seconds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.messages import RunsRefreshed
from tui.widgets.run_table import RunTable

if TYPE_CHECKING:
    from tui.app import ClmtuneApp

REFRESH_S = 2.0
EMPTY_HINT = (
    "No runs yet in {root}\n\n"
    "Press [b]n[/b] to start the offline demo (a tiny model, trains in seconds on a CPU),\n"
    "or [b]o[/b] to open a run settings TOML file."
)


def list_runs(root: Path) -> list[Any]:
    """``backend.runs.list_runs``, imported on first use (keeps startup lean)."""
    from backend.runs import list_runs as _list_runs

    return _list_runs(root)


class RunsScreen(Screen):
    """The table of runs and the actions on the selected one."""

    BINDINGS = [
        Binding("enter", "open_run", "Open"),
        Binding("r", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("m", "metrics", "Metrics"),
    ]

    app: ClmtuneApp

    def compose(self) -> ComposeResult:
        yield Static(f"clmtune · runs in {self.app.runs_dir}", classes="title-bar", id="runs-title")
        yield RunTable(clock=self.app.clock, id="runs-table")
        yield Static(EMPTY_HINT.format(root=self.app.runs_dir), id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.add_class("-empty")
        # List after the first paint: the scan must not compete with it for the GIL.
        self.call_after_refresh(self.refresh_runs)
        self.set_interval(REFRESH_S, self.refresh_runs)

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    @property
    def selected(self) -> Any | None:
        return self.table.selected

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Dim the per-run keys in the footer while there is no run to act on.
        if action in ("open_run", "resume", "delete", "metrics") and self.selected is None:
            return None
        return True

    @work(thread=True, exclusive=True, group="runs-refresh", exit_on_error=False)
    def refresh_runs(self) -> None:
        """List the runs in a thread (disk scans can be slow on network file systems)."""
        self.post_message(RunsRefreshed(list_runs(self.app.runs_dir)))

    @on(RunsRefreshed)
    def show_runs(self, message: RunsRefreshed) -> None:
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
        if run is None:
            self.notify("No run selected.", severity="warning")
        return run

    def action_open_run(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.open_live(Path(run.path))

    def action_resume(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.resume_run(Path(run.path), None, status=run.status)

    def action_metrics(self) -> None:
        run = self._need_selection()
        if run is not None:
            self.app.open_metrics(Path(run.path))

    def action_delete(self) -> None:
        run = self._need_selection()
        if run is None:
            return
        if run.status == "running":
            self.notify(
                f"{run.name} is running: stop it first (open it, then s).", severity="warning"
            )
            return
        from tui.screens.confirm import ConfirmScreen  # the editor helper's module

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
        from backend.runs import delete_run

        delete_run(run_dir)
        self.notify(f"Deleted {run_dir.name}.")  # notify is thread-safe (post_message)
        self.refresh_runs()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Open run", "Live view of the selected run (enter)", self.action_open_run
        )
        yield SystemCommand(
            "Resume run", "Resume the selected run from its last checkpoint (r)", self.action_resume
        )
        yield SystemCommand(
            "Delete run", "Delete the selected run after confirming (d)", self.action_delete
        )
        yield SystemCommand(
            "Saved metrics", "Inspect the selected run's saved metrics (m)", self.action_metrics
        )
