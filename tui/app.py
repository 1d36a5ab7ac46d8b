"""``clmtune-tui``: the app shell. Screens live in tui/screens, layout in themes/app.tcss.

Startup stays lean (first paint ≤ 0.5 s): only the runs screen is imported here; the
live view (numpy, textual-plot), the editor and the metrics screens are imported when
first shown. Nothing here imports torch, transformers, datasets or evaluate.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.filter import Monochrome
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from clmtune import themes
from clmtune.tui import terminal
from clmtune.tui.messages import LaunchFailed, ResumeRequested, StartRunRequested, StopRequested
from clmtune.tui.screens.runs import RunsScreen
from clmtune.tui.shell import DashboardApp
from clmtune.tui.widgets import footer

if TYPE_CHECKING:
    import subprocess

LAUNCH_WORKER = "launch"
STOP_WORKER = "stop"
REAP_S = 2.0
PREFETCH_AFTER_S = 1.0  # after the first paint, never competing with it
COMMON_KEYS: tuple[tuple[str, str], ...] = (
    ("n", "New run from a template (the offline demo when there are no runs yet)"),
    ("o", "Open a run settings TOML file in the editor"),
    ("t", "Switch the dark / light theme (remembered)"),
    ("?", "This help"),
    ("q", "Quit the dashboard; training keeps running, reopen to reattach"),
    ("^p", "Command palette: every action by name"),
)


def _prefetch() -> None:
    """Warm what the next screens need while the user reads the runs list.

    The live view imports numpy and textual-plot (~0.2 s: enter would feel slow), and the
    editor needs the TrainingArguments schema, which without its cache (the first start
    after an install or upgrade) takes a subprocess that imports transformers.
    """
    try:
        import clmtune.tui.screens.live  # noqa: F401
        from clmtune.backend.settings.schema_cache import load_schema_for_ui

        load_schema_for_ui()
    except Exception:  # noqa: BLE001 - the screens load these again and report problems
        pass


def _same(path: Path) -> Path:
    """One spelling per run dir (absolute, symlinks resolved)."""
    return Path(path).resolve()


def one_line(error: BaseException) -> str:
    """A user-facing message from an exception: its text, or its type when it has none."""
    text = str(error).strip()
    return text or type(error).__name__


class ClmtuneApp(DashboardApp):
    """Runs list, live dashboards, settings editor and saved metrics."""

    CSS_PATH = str(themes.CSS_FILE)
    TITLE = "clmtune"
    BINDINGS = [
        Binding("n", "new_run", "New"),
        Binding("o", "open_toml", "Open TOML"),
        Binding("t", "toggle_theme", "Theme"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        runs_dir: Path = Path("runs"),
        config_path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        remember_theme: bool = True,
        prefetch: bool = False,
    ) -> None:
        super().__init__()
        self.prefetch = prefetch
        self.runs_dir = Path(runs_dir)
        self.config_path = config_path
        self.clock = clock  # every displayed time derives from this or event timestamps
        self.remember_theme = remember_theme
        # Which runs are live: the runs listing, overridden by what an open live view knows.
        self.listed_running: set[Path] = set()
        self.live_status: dict[Path, str] = {}
        self._children: list[subprocess.Popen[Any]] = []
        self._quit_warned = False
        self._footer_wide: bool | None = None
        self._once: dict[tuple[str, str, str], Notification] = {}  # notify_once's last toasts
        # NO_COLOR: Textual's monochrome filter crashes on textual-plot's blank lines.
        self._filters = [
            terminal.SafeMonochrome() if type(f) is Monochrome else f for f in self._filters
        ]
        self.ascii = terminal.ascii_mode(setting=themes.load_setting("ascii"))
        if self.ascii:
            self._filters.append(terminal.AsciiFilter())
        for theme in themes.THEMES:
            self.register_theme(theme)
        name = themes.load_theme_name() if remember_theme else themes.DEFAULT_THEME
        self._start_theme(name if name in self.available_themes else themes.DEFAULT_THEME)

    def _start_theme(self, name: str) -> None:
        """Start in theme ``name``. The stylesheet is first parsed when the app starts, with
        the theme set here; setting ``self.theme`` would also queue a second parse and a
        restyle of every widget right after the first paint (~15 ms of every start, issue
        16). So the value is set without its watcher, and what the watcher does besides
        the CSS parse (its variables, the theme's classes, the ANSI colour filter) is done
        here."""
        refresh_filter = getattr(self, "_refresh_truecolor_filter", None)  # Textual 8
        if refresh_filter is None:  # another Textual inside: the plain way (one parse more)
            self.theme = name
            return
        self.set_reactive(ClmtuneApp.theme, name)
        self.stylesheet.set_variables(self.get_css_variables())  # parsed later, at start
        theme = self.current_theme
        self.update_classes({f"-theme-{theme.name}": True, "-dark-mode": theme.dark,
                             "-light-mode": not theme.dark}, update=False)  # fmt: skip
        refresh_filter(self.ansi_theme)

    @property
    def running_runs(self) -> set[Path]:
        """Runs believed to be training now (quitting warns about them)."""
        # One run may be known by a relative (listing) and an absolute (launch) path.
        status = {_same(p): s for p, s in self.live_status.items()}
        listed = {_same(p) for p in self.listed_running}
        return {p for p in listed if status.get(p, "running") == "running"} | {
            p for p, s in status.items() if s == "running"
        }

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Our own CSS variables for themes that do not define them (every built-in one)."""
        return themes.variable_defaults(self.current_theme.to_color_system().generate())

    def get_default_screen(self) -> Screen:
        return RunsScreen()

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.set_interval(REAP_S, self._reap_children)
        if self.prefetch:
            self.set_timer(PREFETCH_AFTER_S, self._start_prefetch)

    def _start_prefetch(self) -> None:
        # A daemon thread, not a Textual worker: quitting must not wait for it.
        threading.Thread(target=_prefetch, name="clmtune-prefetch", daemon=True).start()

    def on_resize(self) -> None:
        # AppFooter leaves keys out below footer.WIDE columns: recompose it when the
        # width crosses that line (only then: a footer recompose costs a few ms).
        wide = self.size.width >= footer.WIDE
        if self._footer_wide is not None and wide != self._footer_wide:
            self.screen.refresh_bindings()
        self._footer_wide = wide

    # ---- navigation -----------------------------------------------------------

    def open_live(self, run_dir: Path) -> None:
        """Show the live view of ``run_dir`` (reuse it when it is already on top)."""
        from clmtune.tui.screens.live import LiveScreen  # numpy + textual-plot: load on first use

        if isinstance(self.screen, LiveScreen) and self.screen.run_dir == Path(run_dir):
            return
        self.push_screen(LiveScreen(Path(run_dir)))

    def _show_launched(self, run_dir: Path) -> None:
        """After a start: the run's live view, right above the runs list.

        The editor (and any other view) the start came from is closed, so that escape
        from the live view goes back to the runs, as its footer says.
        """
        from clmtune.tui.screens.live import LiveScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, RunsScreen):
            if isinstance(self.screen, LiveScreen) and self.screen.run_dir == Path(run_dir):
                return
            self.pop_screen()
        self.open_live(run_dir)

    def open_metrics(self, run_dir: Path) -> None:
        from clmtune.tui.screens.metrics import MetricsScreen  # the editor helper's module

        self.push_screen(MetricsScreen(Path(run_dir)))

    def open_try(self, run_dir: Path, checkpoint: str | None = None) -> None:
        from clmtune.tui.screens.try_model import TryScreen  # loaded when first used

        self.push_screen(TryScreen(Path(run_dir), checkpoint=checkpoint))

    def action_new_run(self) -> None:
        from clmtune.tui.screens.editor import EditorScreen  # the editor helper's module

        # A first run starts from the offline demo; later ones from a template the user
        # picks (never an empty form that fails validation everywhere).
        if self.running_runs or self._has_runs():
            self.push_screen(EditorScreen(runs_dir=self.runs_dir, ask_preset=True))
        else:
            self.push_screen(EditorScreen(preset="demo", runs_dir=self.runs_dir))

    def action_open_toml(self) -> None:
        from clmtune.tui.screens.editor import EditorScreen  # the editor helper's module

        # --config names the file; otherwise ask (the suggestions list the TOML files
        # here and every run's frozen config.toml).
        path = self.config_path
        self.push_screen(EditorScreen(path=path, runs_dir=self.runs_dir, ask_path=path is None))

    def _has_runs(self) -> bool:
        screen = next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)
        # While the list loads, the folder may well hold runs: not a first start.
        return bool(screen and (screen.table.runs or screen.loading))

    def action_help(self) -> None:
        """What this screen is for and every key that works on it."""
        from clmtune.tui.screens.help import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            screen.dismiss(None)
            return
        title = getattr(screen, "HELP_TITLE", None) or "clmtune"
        intro = (screen.HELP or "").strip().format(runs_dir=self.runs_dir)
        keys = self.screen_keys(screen)
        # Keys the screen binds itself mean something else there (o, n, q in the editor).
        own = {
            self.get_key_display(Binding(key.strip(), b.action))
            for b in type(screen).BINDINGS if isinstance(b, Binding)
            for key in b.key.split(",")
        }
        common = [(key, text) for key, text in COMMON_KEYS if key not in own]
        self.push_screen(HelpScreen(title, intro, keys, common))

    def screen_keys(self, screen: Screen) -> list[tuple[str, str]]:
        """(keys, description) for each action bound on ``screen`` and its help extras."""
        rows: dict[str, tuple[list[str], str]] = {}
        for binding in type(screen).BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            text = binding.tooltip or binding.description
            keys, _ = rows.setdefault(binding.action, ([], text))
            for key in binding.key.split(","):
                shown = self.get_key_display(Binding(key.strip(), binding.action))
                if shown not in keys:
                    keys.append(shown)
        table = [(" / ".join(keys), description) for keys, description in rows.values()]
        return table + list(getattr(screen, "HELP_KEYS", ()))

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A toast, always as plain text.

        Messages carry file paths, error texts and the settings' own ``[data]`` labels,
        which Rich markup would swallow or fail on (MarkupError); no message of this app
        uses markup, so ``markup`` is ignored (screens pass it as True by default).
        """
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def notify_once(
        self, message: str, *, title: str = "", severity: SeverityLevel = "information",
        timeout: float | None = None,
    ) -> None:
        """A toast that is never stacked on an identical one: said again while it is still
        up (a key that cannot work, pressed again and again), the new toast replaces it,
        its time restarted. Plain text, as :meth:`notify`."""
        key = (message, title, severity)
        old = self._once.pop(key, None)
        if old is not None:
            # Queued after the old toast's own Notify, before the new one; forgetting a
            # toast that has expired or was clicked away is a no-op.
            self.call_later(self._unnotify, old)
        self._once = {k: n for k, n in self._once.items() if not n.has_expired}
        note = Notification(message, title, severity,
                            self.NOTIFICATION_TIMEOUT if timeout is None else timeout)
        self._once[key] = note
        self.post_message(Notify(note))

    def report_failure(self, action: str, error: BaseException) -> None:
        """Say why ``action`` failed: screens call this from their worker error handlers
        (a thread worker's error reaches only its own screen, never this app)."""
        self.notify(one_line(error), title=f"Could not {action}", severity="error", timeout=10)

    # ---- theme ----------------------------------------------------------------

    def action_toggle_theme(self) -> None:
        self.theme = (
            themes.LIGHT.name if self.theme == themes.DARK.name else themes.DARK.name
        )

    def _remember_theme(self, theme: Any) -> None:
        if self.remember_theme:
            try:
                themes.save_theme_name(theme.name)
            except OSError as error:
                self.notify(f"Could not remember the theme: {one_line(error)}",
                            severity="warning")

    # ---- launching, resuming, stopping ----------------------------------------

    @property
    def launching(self) -> bool:
        """A start or resume is in flight (the worker process is coming up)."""
        return any(w.name == LAUNCH_WORKER and w.is_running for w in self.workers)

    def _refuse_second_launch(self) -> bool:
        if self.launching:
            self.notify("Already starting a run: wait until its live view opens.",
                        severity="warning")
            return True
        return False

    @on(StartRunRequested)
    def _start_requested(self, message: StartRunRequested) -> None:
        if self._refuse_second_launch():
            return  # the editor keeps saying "starting…": the first start goes on
        self.notify("Starting the worker (loading torch takes a few seconds)…", timeout=4)
        self._launch(config_path=message.config_path, run_dir=message.run_dir)

    @on(ResumeRequested)
    def _resume_requested(self, message: ResumeRequested) -> None:
        if self._refuse_second_launch():
            return
        further = f" to step {message.max_steps}" if message.max_steps else ""
        self.notify(f"Resuming {message.run_dir.name} from {message.checkpoint.name}{further}…",
                    timeout=4)
        overrides = {"training": {"max_steps": message.max_steps}} if message.max_steps else None
        self._launch(run_dir=message.run_dir, resume=str(message.checkpoint), overrides=overrides)

    @work(thread=True, name=LAUNCH_WORKER, group=LAUNCH_WORKER, exit_on_error=False)
    def _launch(
        self, *, config_path: Path | None = None, run_dir: Path | None = None,
        resume: str | None = None, overrides: dict[str, dict[str, Any]] | None = None,
    ) -> Any:
        """Validate and spawn the worker process (backend.launch); raises ConfigError."""
        from clmtune.backend.launch import start_run

        extra = {"overrides": overrides} if overrides else {}
        return start_run(config_path, run_dir=run_dir, runs_root=self.runs_dir, resume=resume,
                         check_hardware=False, **extra)

    def _plan(self, run_dir: Path, spec: str, max_steps: int | None = None) -> Any:
        """backend.resume_plan's decision for resuming ``run_dir`` with its own settings."""
        from clmtune.backend.resume_plan import plan_run, run_settings
        from clmtune.backend.rundir.layout import RunError

        cfg = run_settings(Path(run_dir))
        if cfg is None:
            raise RunError(f"{Path(run_dir).name}: no readable config.toml; it cannot be resumed")
        if max_steps is not None:
            cfg.training["max_steps"] = max_steps
        return plan_run(run_dir, cfg, spec)

    def resume_run(self, run_dir: Path, checkpoint: Path | None, *, status: str) -> None:
        """Confirm (with the backend's settings-change warnings), then resume ``run_dir``.

        A complete run is never resumed as it is: "train further" asks for a new max_steps.
        """
        if status == "running":
            self.notify("The run is still running: stop it first.", severity="warning")
            return
        from clmtune.backend.errors import ClmtuneError
        from clmtune.backend.resume_plan import RunComplete

        try:
            plan = self._plan(run_dir, str(checkpoint) if checkpoint else "last")
        except RunComplete as done:
            self.train_further(run_dir, done)
            return
        except ClmtuneError as error:
            self.notify(one_line(error), severity="error")
            return
        except Exception as error:  # noqa: BLE001 - a damaged run dir must not end the app
            self.notify(f"Cannot resume {run_dir.name}: {one_line(error)}", severity="error")
            return
        from clmtune.tui.screens.confirm import ConfirmScreen, resume_body

        ckpt = plan.checkpoint
        body = resume_body(Path(run_dir).name, plan)

        def done(yes: bool | None) -> None:
            if yes:
                self.post_message(ResumeRequested(Path(run_dir), ckpt))

        self.push_screen(ConfirmScreen(f"Resume from {ckpt.name}?", body, yes="Resume"), done)

    def train_further(self, run_dir: Path, complete: Any = None) -> None:
        """Ask for a new max_steps and continue a complete run from its last checkpoint."""
        from clmtune.backend.errors import ClmtuneError
        from clmtune.backend.resume_plan import RunComplete
        from clmtune.tui.screens.train_further import TrainFurtherScreen

        if complete is None:
            try:
                self._plan(run_dir, "last")
            except RunComplete as done:
                complete = done
            except ClmtuneError as error:
                self.notify(one_line(error), severity="error")
                return
            except Exception as error:  # noqa: BLE001 - a damaged run dir must not end the app
                self.notify(f"Cannot train {run_dir.name} further: {one_line(error)}",
                            severity="error")
                return
        if complete is None:
            self.notify(f"{run_dir.name} is not complete: resume it (r).", severity="warning")
            return
        from clmtune.backend.rundir.checkpoints import list_checkpoints

        resumable = [c for c in list_checkpoints(Path(run_dir)) if c.resumable]
        newest = resumable[-1].path if resumable else None

        def chosen(max_steps: int | None) -> None:
            if not max_steps:
                return
            try:
                plan = self._plan(run_dir, "last", max_steps)
            except ClmtuneError as error:
                self.notify(one_line(error), severity="error")
                return
            self.post_message(ResumeRequested(Path(run_dir), plan.checkpoint, max_steps))

        self.push_screen(
            TrainFurtherScreen(Path(run_dir).name, complete.step or 0, complete.max_steps,
                               newest.name if newest else None),
            chosen,
        )  # fmt: skip

    @on(StopRequested)
    def _stop_requested(self, message: StopRequested) -> None:
        self._stop(message.run_dir)

    @work(thread=True, name=STOP_WORKER, group=STOP_WORKER, exit_on_error=False)
    def _stop(self, run_dir: Path) -> bool:
        from clmtune.backend.launch import request_stop

        return request_stop(run_dir)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        """The one place worker results and failures land."""
        worker = event.worker
        if event.state == WorkerState.SUCCESS:
            if worker.name == LAUNCH_WORKER and worker.result is not None:
                launched = worker.result
                if getattr(launched, "process", None) is not None:
                    self._children.append(launched.process)
                self.live_status[Path(launched.run_dir)] = "running"
                self._quit_warned = False
                self._show_launched(Path(launched.run_dir))
            elif worker.name == STOP_WORKER:
                if worker.result:
                    self.notify("Stop requested: the run saves a checkpoint and stops.")
                else:
                    self.notify("That run is not running.", severity="warning")
        elif event.state == WorkerState.ERROR and worker.error is not None:
            text = one_line(worker.error)
            if worker.name == LAUNCH_WORKER:
                self.notify(text, title="Cannot start the run", severity="error", timeout=12)
                self.screen.post_message(LaunchFailed(text))
            else:
                self.notify(text, title=f"{worker.name or 'background task'} failed",
                            severity="error", timeout=8)

    def _reap_children(self) -> None:
        # A finished worker we spawned stays a zombie (and looks alive to a pid check,
        # hiding a crash) until it is waited for.
        self._children = [p for p in self._children if p.poll() is None]

    # ---- palette and quitting --------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        palette = getattr(screen, "palette_commands", None)
        if palette is not None:
            yield from palette()
        yield SystemCommand("New run", "Settings editor, starting from a template (n)",
                            self.action_new_run)
        yield SystemCommand("Open TOML", "Edit a run settings file (o)", self.action_open_toml)
        yield SystemCommand("Toggle theme", "Switch the dark / light palette (t)",
                            self.action_toggle_theme)
        yield SystemCommand("Help", "What this screen does and all its keys (?)",
                            self.action_help)
        yield from super().get_system_commands(screen)

    def action_help_quit(self) -> None:
        """ctrl+c: say how to quit. (Textual's own toast is written in markup, which this
        app's plain-text notify would show raw: "Press [b]ctrl+q[/b] to quit the app".)"""
        keys: list[str] = []
        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit") and active.enabled:
                keys.append(key)
        keys.sort(key=lambda k: k.startswith("ctrl+"))  # q first, where it quits
        shown = " or ".join(keys) or "ctrl+q"
        self.notify_once(f"Press {shown} to quit the dashboard (training keeps running).",
                         title="Quit?")

    async def action_quit(self) -> None:
        if self.running_runs and not self._quit_warned:
            self._quit_warned = True
            self.notify(
                "Training keeps running in the background after you quit; reopen it with "
                "clmtune-tui. Press q again to quit.",
                title="A run is live",
                timeout=8,
            )
            return
        message = None
        if self.running_runs:
            names = ", ".join(sorted(p.name for p in self.running_runs))
            message = (f"Training keeps running: {names}.\n"
                       f"Reattach with: clmtune-tui {self.runs_dir}")
        self.exit(message=message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clmtune-tui",
        description="Terminal dashboard: configure, start, watch, stop and resume "
        "fine-tuning runs.",
    )
    parser.add_argument("runs_dir", nargs="?", default="runs", type=Path,
                        help="folder holding the runs (default: ./runs)")
    parser.add_argument("--config", type=Path, default=None,
                        help="a run settings TOML to open with 'o'")
    parser.add_argument("--serve", action="store_true",
                        help="serve the dashboard to a browser (needs textual-serve)")
    parser.add_argument("--host", default="127.0.0.1", help="--serve address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="--serve port (default 8000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``clmtune-tui``."""
    args = parse_args(argv)
    if args.runs_dir.exists() and not args.runs_dir.is_dir():
        print(f"clmtune-tui: {args.runs_dir} is a file; pass a folder of runs.", file=sys.stderr)
        return 2
    if args.config is not None and not args.config.is_file():
        print(f"clmtune-tui: --config {args.config} does not exist; pass a TOML file.",
              file=sys.stderr)
        return 2
    if args.serve:  # the same app, one process per browser session (tui/serve.py)
        from clmtune.tui.serve import serve

        return serve(args.runs_dir, args.config, args.host, args.port)
    if not terminal.interactive():
        print("clmtune-tui: needs a terminal (stdin and stdout are not one); use `clmtune` "
              "for scripts, or `clmtune-tui --serve` for a browser.", file=sys.stderr)
        return 2
    app = ClmtuneApp(args.runs_dir, args.config, prefetch=True)
    terminal.exit_on_hangup(app)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
