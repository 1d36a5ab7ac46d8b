"""The settings editor: open, edit, validate and save a run's TOML, start from a preset, launch.

The form comes from the backend's schema, loaded in a thread worker (the first
load introspects ``TrainingArguments`` in a subprocess and takes a few seconds).
Files are read here with ``tomllib`` rather than ``load_config`` so an invalid
file still opens and its problems show next to the fields; saving goes through
``backend.settings.toml_io.save_config``, which writes atomically and refuses invalid
settings, so a good file is never replaced by a broken one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label, LoadingIndicator, Static
from textual.worker import Worker, WorkerState

from clmtune import themes
from clmtune.tui.messages import LaunchFailed, StartRunRequested
from clmtune.tui.screens.confirm import ConfirmScreen
from clmtune.tui.screens.editor_dialogs import PathPrompt, PresetPicker
from clmtune.tui.screens.editor_files import (  # noqa: F401 - metrics imports two of these
    FileProblem,
    FileStamp,
    _is_demo_path,
    _sections_only,
    _toml_hint,
    _toml_suggestions,
    binding_commands,
    build_config,
    display_path,
    file_stamp,
    frozen_run_dir,
    load_schema,
    preset_names,
    read_document,
    render_preset_document,
    run_destination,
    unique_path,
)
from clmtune.tui.screens.editor_save import EditorSaving, refusal
from clmtune.tui.widgets.config_form import ConfigForm, Document, summary_text
from clmtune.tui.widgets.field_row import FieldRow
from clmtune.tui.widgets.footer import AppFooter

# --------------------------------------------------------------------------- the screen


class EditorScreen(EditorSaving, Screen[None]):
    """Edit a run's settings; save them; start the run."""

    CSS_PATH = str(themes.EDITOR_CSS_FILE)  # loaded with the first editor

    HELP_TITLE = "Settings"
    HELP = (
        "The run settings, saved as a TOML file: [model], [data], [training] (any Hugging "
        "Face TrainingArguments field), [launch] (processes, nodes), [samples] (prompts "
        "completed at each evaluation), [peft] (LoRA / QLoRA) and [notify] (a command run "
        "when the run ends, fails or stalls). Common fields come first; the rest "
        "are under each section's Advanced. Values are checked as you type, with the "
        "problem next to the field; the line at the bottom explains the focused field.\n\n"
        "Start saves the file (never while it has errors) and starts the run."
    )
    HELP_KEYS = (("tab / shift+tab", "Next / previous field"),)
    # At 80 columns the footer keeps Start, Save, Back, Open, Preset, Next error and ?.
    FOOTER_OPTIONAL = frozenset({"toggle_theme", "copy_command", "save_as", "preview"})

    BINDINGS = [
        Binding("ctrl+r,f5", "start", "Start", tooltip="Save the settings and start the run"),
        Binding("ctrl+s", "save", "Save", tooltip="Save the TOML file (refused while invalid)"),
        Binding("escape", "back", "Back", tooltip="Back (asks before dropping unsaved changes)"),
        Binding("ctrl+o", "open", "Open", tooltip="Open another TOML file"),
        Binding("ctrl+n", "preset", "Preset", tooltip="Start from a preset (offline demo, GPT-2)"),
        Binding("f8", "next_error", "Next error", tooltip="Focus the next field with an error"),
        Binding("ctrl+y", "copy_command", "Copy cmd",
                tooltip="Copy the equivalent clmtune / torchrun command"),
        Binding("f2", "save_as", "Save as",
                tooltip="Save under another file name (a run's settings: copy to a new file)"),
        Binding("f6", "preview", "Preview", tooltip="What the data makes, and a memory estimate"),
        Binding("f1", "app.help", "Help", tooltip="What this screen does and all its keys"),
        # ? is help everywhere, even in a text field (settings never hold a ?).
        Binding("question_mark", "app.help", "Help", show=False, priority=True),
        # The app's one-letter keys mean the same here when no text field has the focus.
        Binding("o", "open", "Open", show=False),
        Binding("n", "preset", "Preset", show=False),
        Binding("q", "back", "Back", show=False),
    ]

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield from binding_commands(self, "Settings: ")

    def __init__(
        self,
        path: Path | None = None,
        preset: str | None = None,
        runs_dir: Path = Path("runs"),
        ask_path: bool = False,
        ask_preset: bool = False,
    ) -> None:
        super().__init__()
        self.path: Path | None = Path(path) if path is not None else None
        self.initial_preset = preset
        self.ask_path = ask_path  # start by asking which TOML file to open (the app's o)
        self.ask_preset = ask_preset  # start by asking which template (the app's n)
        self.stamp: FileStamp | None = None  # the file as last read or written here
        self.banner_kind: str | None = None  # "error" / "info" while a banner shows
        self.runs_dir = Path(runs_dir)
        self.schema: Any = None
        self.form: ConfigForm | None = None
        self.preset: str | None = None  # the preset the current document came from
        self._saved_doc: Document | None = None  # None: never saved (a new file)
        self.ready = asyncio.Event()  # set when a document is shown (tests await it)
        self._left = False  # dismissed already (see _leave)
        self.busy = False

    # -- layout

    def compose(self) -> ComposeResult:
        yield Static("Settings", id="editor-title", markup=False)
        yield Static("", id="editor-banner", markup=False)
        with Vertical(id="editor-body"):
            with Vertical(id="editor-loading-box"):
                yield LoadingIndicator()
                yield Label(
                    "Reading the settings schema… (the first time after an install or "
                    "upgrade this takes a while: it asks the installed transformers)",
                    id="editor-loading-label",
                    markup=False,
                )
        yield Static("", id="editor-help", markup=False)
        yield Static("", id="editor-command", markup=False)
        yield Static("", id="editor-status", markup=False)
        yield AppFooter()

    def on_mount(self) -> None:
        self._load_schema()

    @work(thread=True, exclusive=True, group="schema")
    def _load_schema(self) -> Any:
        return load_schema()

    @on(Worker.StateChanged)
    async def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name != "_load_schema":
            return
        if worker.state == WorkerState.SUCCESS:
            self.schema = worker.result
            await self._initial_document()
        elif worker.state == WorkerState.ERROR:
            self._loading_text(f"Could not load the settings schema: {worker.error}")
            self.show_banner(
                f"Could not load the settings schema ({worker.error}); "
                "check the installation (python -m clmtune.backend.settings --dump-schema)."
            )

    def _loading_text(self, text: str) -> None:
        for label in self.query("#editor-loading-label").results(Label):
            label.update(text)

    async def _initial_document(self) -> None:
        asking = self.path is None and self.initial_preset is None and (
            self.ask_path or self.ask_preset)
        if self.path is not None:
            await self.open_file(self.path, missing_ok=True)
        elif self.initial_preset is not None:
            await self.load_preset(self.initial_preset)
        if asking:
            # The question first, and one form for its answer: building an empty form
            # first kept the preset list from opening for 1.5-2.5 s.
            self._loading_text("")
            if self.ask_path:
                self._open_flow(leave_if_cancelled=True)
            else:
                self._preset_flow(leave_if_cancelled=True)
            return
        await self._empty_form_if_none()
        if self.ask_path:
            self._open_flow(leave_if_cancelled=True)
        elif self.ask_preset:
            self._preset_flow(leave_if_cancelled=True)

    async def _empty_form_if_none(self) -> None:
        """An empty form when no file or preset could be shown (it failed, or was not
        chosen): the editor never stays on its loading message."""
        if self.form is None:
            await self.show_document({}, base_dir=Path.cwd(), saved=None)

    # -- showing a document

    @property
    def read_only(self) -> bool:
        """A run's frozen config.toml: the record of what the run used, never saved over."""
        return frozen_run_dir(self.path) is not None

    @property
    def base_dir(self) -> Path:
        return (self.path.parent if self.path is not None else Path.cwd()).resolve()

    async def show_document(
        self, doc: Document, *, base_dir: Path, saved: Document | None,
        focus: tuple[str, str] | None = None,
    ) -> None:
        """Replace the form with one editing ``doc`` (``focus``: the field to focus)."""
        body = self.query_one("#editor-body")
        form = ConfigForm(
            self.schema,
            doc,
            base_dir=base_dir,
            source=self.path,
            validator=self._validate,
            id="form",
        )
        self._saved_doc = saved  # before mounting: the first validation reads it
        with self.app.batch_update():
            await body.remove_children()
            await body.mount(form)
        self.form = form
        self._update_title()
        self._update_command()
        if focus is not None and await form.focus_field(*focus):
            row = form.row(*focus)
            if row is not None:
                self._show_help(row)
        else:
            first = next(iter(form.query("FieldRow")), None)
            if first is not None:
                first.focus_editor()
                self._show_help(first)
        self.ready.set()

    def focused_field(self) -> tuple[str, str] | None:
        """(section, key) of the field holding the focus, if any."""
        focused = self.focused
        if self.form is None or focused is None:
            return None
        for row in self.form.query("FieldRow"):
            if focused in row.walk_children():
                return (row.section, row.key)
        return None

    async def open_file(self, path: Path, *, missing_ok: bool = False) -> bool:
        """Open a TOML file; problems are shown in the banner. Returns True when opened."""
        path = Path(path).expanduser()
        if missing_ok and not path.exists():
            self.path = path
            self.preset = None
            self.stamp = None
            await self.show_document({}, base_dir=self.base_dir, saved=None)
            self.show_banner(
                f"{path}: no such file yet; ctrl+s creates it from these settings.", info=True
            )
            return True
        try:
            doc = await asyncio.to_thread(read_document, path)
        except FileProblem as exc:
            self.show_banner(str(exc))
            return False
        self.path = path
        self.preset = None
        self.stamp = await asyncio.to_thread(file_stamp, path)
        await self.show_document(doc, base_dir=self.base_dir, saved=doc)
        self.hide_banner()
        run_dir = frozen_run_dir(path)
        if run_dir is not None:
            self.show_banner(
                f"Read-only: the settings run {run_dir.name} was started with (its record). "
                "f2 or ctrl+s copies them to a new settings file.", info=True
            )
        return True

    async def load_preset(self, name: str, dest: Path | None = None) -> bool:
        """Show a preset's settings, to be saved at ``dest`` (default ./<name>.toml)."""
        dest = Path(dest) if dest is not None else unique_path(Path.cwd() / f"{name}.toml")
        try:
            doc = await asyncio.to_thread(render_preset_document, name, dest)
        except FileProblem as exc:
            self.show_banner(str(exc))
            return False
        except Exception as exc:  # the backend's own error (e.g. a missing preset module)
            self.show_banner(f"preset {name!r}: {exc}")
            return False
        self.path = dest
        self.preset = name
        await self.show_document(doc, base_dir=self.base_dir, saved=None)
        extra = ""
        if self._needs_demo_assets(dest):
            extra = " and builds the offline demo model and data (a few seconds)"
        self.show_banner(
            f"Preset {name!r}, not saved yet: ctrl+r saves {display_path(dest)}{extra}, then "
            "starts the run (ctrl+s only saves).", info=True
        )
        return True

    # -- state display

    @property
    def is_dirty(self) -> bool:
        """Whether the form holds settings that are not in the file."""
        if self.form is None:
            return False
        if self._saved_doc is None:  # a new file: dirty once something is set
            return bool(self.form.document)
        return self.form.document != _sections_only(self._saved_doc)

    def show_banner(self, text: str, *, info: bool = False) -> None:
        """Show ``text`` (plain text) above the form: a refusal, or ``info``."""
        self.banner_kind = "info" if info else "error"
        banner = self.query_one("#editor-banner", Static)
        banner.update(text)
        banner.set_class(True, "-shown")
        banner.set_class(info, "-info")

    def hide_banner(self) -> None:
        self.banner_kind = None
        self.query_one("#editor-banner", Static).set_class(False, "-shown")

    def _update_title(self) -> None:
        name = display_path(self.path) if self.path is not None else "(new file)"
        parts = ["Settings", name]
        if self.preset:
            parts.append(f"preset {self.preset}")
        if self.read_only:
            parts.append("read-only")
        text = " · ".join(parts) + ("  ● modified" if self.is_dirty else "")
        self.query_one("#editor-title", Static).update(text)

    def _update_status(self, note: str = "") -> None:
        if self.form is None:
            return
        summary = summary_text(self.form.error_count, self.form.warning_count)
        if self.form.error_count:
            summary = summary + Content(" — f8 jumps to the next")
        if note:
            summary = summary + Content(f" · {note}")
        elif not self.form.error_count:
            destination = self.destination_text()
            if destination:
                summary = summary + Content(f" · {destination}")
        self.query_one("#editor-status", Static).update(summary)

    def command_text(self) -> str:
        """The equivalent headless command for the current settings."""
        if self.form is None:
            return ""
        path = Path(display_path(self.path)) if self.path is not None else Path("run.toml")
        try:
            from clmtune.backend.settings.training_args import command_line

            return command_line(build_config(self.form.document, path), path)
        except Exception:  # settings half-typed: fall back to the plain form
            return f"clmtune train {path}"

    def destination_text(self) -> str:
        """Where a start writes the run (the launcher's rule), for the command line."""
        if self.form is None or self.path is None or self.read_only:
            return ""
        try:
            folder, named = run_destination(self.form.document, self.path, self.runs_dir)
        except Exception:  # noqa: BLE001 - settings half-typed: the command says enough
            return ""
        if named:
            state = "holds files" if folder.exists() and any(folder.iterdir()) else (
                "exists" if folder.exists() else "will be created")
            return f"runs in {display_path(folder)} (output_dir; {state})"
        return f"runs in {display_path(folder.parent)}/{self.path.stem}-<date>-<time> (new)"

    def _update_command(self) -> None:
        self.query_one("#editor-command", Static).update(f"$ {self.command_text()}")

    @on(ConfigForm.Changed)
    def _changed(self) -> None:
        self._update_title()

    @on(ConfigForm.Validated)
    def _validated(self) -> None:
        if self.banner_kind == "error" and self.form is not None and not self.form.error_count:
            self.hide_banner()  # the refusal it explained is fixed now
        self._update_status()
        self._update_command()
        self._update_title()

    @on(LaunchFailed)
    def _launch_failed(self, message: LaunchFailed) -> None:
        # The app posts this to the active screen when start_run refused or failed.
        self.show_banner(f"Not started: {message.message}")
        self._update_status("not started")

    def watch_focused(self, focused: Widget | None) -> None:
        # At once, as the focus moves: the FieldFocused message reached the screen up to
        # 0.9 s after a Tab on a busy machine (a queue hop per container).
        if focused is None or self.form is None:
            return
        for node in focused.ancestors_with_self:
            if isinstance(node, FieldRow):
                self._show_help(node)
                return

    def _show_help(self, row: Any) -> None:
        self.query_one("#editor-help", Static).update(
            f"[{row.section}] {row.key}: {row.help_text}".replace("\n", " ")
        )

    # -- actions

    def action_save(self) -> None:
        """Save to the current file (asks for a name when there is none)."""
        self._save_flow(False)

    def action_save_as(self) -> None:
        """Save under a new name."""
        self._save_flow(True)

    @work(exclusive=True, group="dialog")
    async def _save_flow(self, ask: bool) -> None:
        await self.save(ask=ask)

    def _validate(
        self, doc: Document, schema: Any, base_dir: Path, source: Path | None
    ) -> tuple[list[Any], list[str]]:
        """The backend's validation, minus the demo files that saving will build."""
        from clmtune.backend.settings.hardware import precision_notes
        from clmtune.backend.settings.validate import validate_document

        errors, warnings = validate_document(
            doc, schema, base_dir=base_dir, for_launch=False, source=source
        )
        warnings = warnings + precision_notes(doc.get("training") or {})
        if self.preset is not None and self._saved_doc is None and self.path is not None:
            if self._needs_demo_assets(self.path):
                errors = [e for e in errors if not _is_demo_path(doc, e)]
        return errors, warnings

    def _refuse(self, message: str) -> None:
        self.show_banner(message)
        self._update_status()
        self.notify(message, severity="error", timeout=5)

    def action_open(self) -> None:
        """Open a TOML file (asks first when there are unsaved changes)."""
        self._open_flow()

    @work(exclusive=True, group="dialog")
    async def _open_flow(self, leave_if_cancelled: bool = False) -> None:
        if not await self._discard_ok():
            return
        suggestions = _toml_suggestions(self.runs_dir)
        path = await self.app.push_screen_wait(
            PathPrompt(
                "Open settings (TOML file):",
                display_path(self.path) if self.path else "",
                suggestions,
                hint=_toml_hint(suggestions),
            )
        )
        if path is not None:
            await self.open_file(path)
        elif leave_if_cancelled and not self.is_dirty and len(self.app.screen_stack) > 1:
            self._leave()  # asked from the runs list: back there, not to an empty form
            return
        await self._empty_form_if_none()

    def action_preset(self) -> None:
        """Start from a preset."""
        self._preset_flow()

    @work(exclusive=True, group="dialog")
    async def _preset_flow(self, leave_if_cancelled: bool = False) -> None:
        try:
            presets = preset_names()
        except Exception as exc:
            await self._empty_form_if_none()
            self.show_banner(f"presets unavailable: {exc}")
            return
        if not await self._discard_ok():
            return
        name = await self.app.push_screen_wait(PresetPicker(presets))
        if name is None:
            if leave_if_cancelled and not self.is_dirty and len(self.app.screen_stack) > 1:
                self._leave()  # asked from the runs list: back there
                return
            await self._empty_form_if_none()
            return
        dest = await self.app.push_screen_wait(
            PathPrompt(
                f"Save the {name!r} settings as:", str(unique_path(Path.cwd() / f"{name}.toml"))
            )
        )
        if dest is not None:
            await self.load_preset(name, dest)
        await self._empty_form_if_none()

    async def _discard_ok(self) -> bool:
        if not self.is_dirty:
            return True
        return bool(
            await self.app.push_screen_wait(
                ConfirmScreen(
                    "Unsaved changes", "Discard the changes to these settings?", yes="Discard"
                )
            )
        )

    async def action_next_error(self) -> None:
        """Focus the next field with an error."""
        if self.form is None:
            return
        fields = self.form.error_fields()
        if not fields:
            self.notify("No errors.", timeout=2)
            return
        focused = self.focused
        current = None
        for row in self.form.query("FieldRow"):
            if focused is not None and focused in row.walk_children():
                current = (row.section, row.key)
        index = 0
        if current in fields:
            index = (fields.index(current) + 1) % len(fields)
        await self.form.focus_field(*fields[index])

    def action_copy_command(self) -> None:
        """Copy the equivalent command line to the clipboard."""
        text = self.command_text()
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied: {text}", timeout=3)

    def action_start(self) -> None:
        """Validate for launch, save, and ask the app to start the run."""
        self._start_flow()

    @work(exclusive=True, group="dialog")
    async def _start_flow(self) -> None:
        form = self.form
        if form is None or self.busy:
            return
        problems = form.validate_now()
        if problems.error_count:
            self._refuse(refusal("started", problems))
            return
        launch_errors = await self._launch_errors()
        if launch_errors:
            self._refuse(f"Not started: {launch_errors[0]}")
            first = launch_errors[0]
            await form.focus_field(
                str(getattr(first, "section", "")), str(getattr(first, "key", ""))
            )
            return
        if self.read_only or self.is_dirty or self.path is None or not self.path.exists():
            if not await self.save():  # a run's own settings: copied to a new file first
                return
        assert self.path is not None
        # No run folder here: the launcher picks it by the same rule as `clmtune train`
        # (output_dir when set, else a new runs/<name>-<date>), shown under the form.
        self.post_message(StartRunRequested(config_path=self.path, run_dir=None))
        self._update_status("starting…")

    async def _launch_errors(self) -> list[Any]:
        """Errors that only matter for a launch (missing data files, hardware)."""
        form = self.form
        assert form is not None
        try:
            from clmtune.backend.settings.validate import validate_document

            errors, _ = await asyncio.to_thread(
                partial(
                    validate_document,
                    form.document,
                    self.schema,
                    base_dir=self.base_dir,
                    for_launch=True,
                    source=self.path,
                )
            )
        except Exception as exc:
            return [f"validation failed: {exc}"]
        # The demo's assets are built on save, so its missing files are not an error yet.
        if self.preset is not None and self._saved_doc is None:
            errors = [e for e in errors if not _is_demo_path(form.document, e)]
        return list(errors)

    def action_preview(self) -> None:
        """The Preview of the settings as edited (tui/screens/editor_preview.py)."""
        from clmtune.tui.screens.editor_preview import PreviewScreen

        if self.form is not None:
            self.app.push_screen(PreviewScreen(self.form.document, self.path))

    def action_back(self) -> None:
        """Leave the editor (asks first when there are unsaved changes)."""
        self._back_flow()

    @work(exclusive=True, group="dialog")
    async def _back_flow(self) -> None:
        if not await self._discard_ok():
            return
        self._leave()

    def _leave(self) -> None:
        """Close the editor, once, and only while it is the screen shown.

        Flows that end in leaving (back, a cancelled open or preset) can overlap, and a
        start closes the editor on its own: a second dismiss would fail on the screen's
        used result, and ``dismiss`` pops whatever screen is on top.
        """
        if self._left or not self.is_active:
            return
        self._left = True
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)
        else:
            self.app.exit()


