"""Saving in the settings editor: where to, never over a run's record or someone
else's changes, and the demo's assets before a demo preset's first save.

A mixin of :class:`~clmtune.tui.screens.editor.EditorScreen` (the attributes below are
the screen's); writing TOML is the backend's ``save_config``, never done here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.tui.screens.confirm import ChoiceScreen, ConfirmScreen
from clmtune.tui.screens.editor_dialogs import PathPrompt
from clmtune.tui.screens.editor_files import (
    FileStamp,
    _preset_text_if_unchanged,
    _run_demo_init,
    _save_text,
    _toml_suggestions,
    build_config,
    changed_on_disk,
    copy_of_frozen,
    demo_assets_present,
    file_stamp,
    frozen_run_dir,
    preset_builds_assets,
    rebase_paths,
    unique_path,
)
from clmtune.tui.widgets.config_form import ConfigForm, Document


def refusal(verb: str, problems: Any) -> str:
    """"Not saved: [data] train_file: no such file … (f8 jumps to it)": what stops a save
    or a start, naming the first field at fault rather than only counting."""
    errors = problems.all_errors()
    first = errors[0] if errors else "the settings have errors"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Not {verb}: {first}{more} — f8 jumps to {'each' if more else 'it'}."


class EditorSaving:
    """Save, save as, copy a run's settings, and the changed-on-disk question."""

    app: Any
    form: ConfigForm | None
    busy: bool
    path: Path | None
    preset: str | None
    runs_dir: Path
    schema: Any
    stamp: FileStamp | None
    _saved_doc: Document | None
    base_dir: Path

    if TYPE_CHECKING:  # provided by the screen (stubs here would shadow Screen's own)
        def _refuse(self, message: str) -> None: ...
        def show_banner(self, text: str, *, info: bool = False) -> None: ...
        def hide_banner(self) -> None: ...
        def _update_title(self) -> None: ...
        def _update_status(self, note: str = "") -> None: ...
        def notify(self, message: str, **kwargs: Any) -> None: ...
        def focused_field(self) -> tuple[str, str] | None: ...
        async def open_file(self, path: Path, *, missing_ok: bool = False) -> bool: ...
        async def show_document(self, doc: Document, *, base_dir: Path,
                                saved: Document | None,
                                focus: tuple[str, str] | None = None) -> None: ...

    async def save(self, *, ask: bool = False) -> bool:
        """Validate and save atomically. Returns True when the file was written.

        Dialogs (file name, overwrite) need a worker: call from one when ``ask``
        or when the document has no file yet.
        """
        form = self.form
        if form is None or self.busy:
            return False
        problems = form.validate_now()
        if problems.error_count:
            self._refuse(refusal("saved", problems))
            return False
        target = self.path
        frozen = frozen_run_dir(self.path)
        if ask or target is None or frozen is not None:
            # A run's frozen settings are its record: only ever copied to a new file.
            default = unique_path(Path.cwd() / f"{frozen.name}.toml") if frozen else (
                target or Path.cwd() / "run.toml")
            target = await self.app.push_screen_wait(
                PathPrompt(
                    "Copy the run's settings to a new settings file:" if frozen
                    else "Save settings as (TOML file):",
                    str(default),
                    _toml_suggestions(self.runs_dir),
                )
            )
            if target is None:
                return False
            if frozen_run_dir(target) is not None:
                self._refuse(f"Not saved: {target} is a run's settings record (read-only); "
                             "pick a new file name.")
                return False
            if target.exists() and target != self.path:
                ok = await self.app.push_screen_wait(
                    ConfirmScreen(
                        "Overwrite?", f"{target} exists. Replace it with these settings?", "Replace"
                    )
                )
                if not ok:
                    return False
        elif await asyncio.to_thread(changed_on_disk, target, self.stamp):
            choice = await self.app.push_screen_wait(ChoiceScreen(
                "Changed on disk",
                f"{target} was changed by something else since it was opened here. "
                "Reload it (drops the edits made here), overwrite it with these settings, "
                "or save these settings under another name?",
                [("reload", "r", "Reload"), ("overwrite", "o", "Overwrite"),
                 ("elsewhere", "e", "Save elsewhere"), ("cancel", "c", "Cancel")],
            ))
            if choice == "reload":
                await self.open_file(target)
                self._update_status(f"reloaded {target.name}")
                return False
            if choice == "elsewhere":
                return await self.save(ask=True)
            if choice != "overwrite":
                return False
        doc = form.document
        if frozen is not None:
            doc = copy_of_frozen(doc, frozen)
        unsaved_preset = self.preset is not None and self._saved_doc is None
        if (
            not unsaved_preset
            and self.path is not None
            and target.parent.resolve() != self.base_dir
        ):
            # A preset's relative paths are meant for wherever it lands; a file's are not.
            doc = rebase_paths(doc, self.path, target.parent)
        if unsaved_preset and self._needs_demo_assets(target):
            if not await self._build_demo_assets(target):
                return False
        text = None
        if unsaved_preset and self.preset is not None:
            text = _preset_text_if_unchanged(self.preset, doc, target)
        return await self._write(doc, target, text)

    async def _write(self, doc: Document, target: Path, text: str | None = None) -> bool:
        """Save ``doc`` (or a preset's commented ``text`` holding the same settings)."""
        from clmtune.backend.settings.problems import ConfigError
        from clmtune.backend.settings.toml_io import save_config

        self.busy = True
        try:
            if text is None:
                await asyncio.to_thread(save_config, build_config(doc, target), target,
                                        layout_from=self.path)
            else:
                await asyncio.to_thread(_save_text, doc, self.schema, text, target)
        except ConfigError as exc:
            first = exc.errors[0] if exc.errors else exc
            self._refuse(f"Not saved: {first}")
            return False
        except OSError as exc:
            self._refuse(f"Not saved: {target}: {exc.strerror or exc}")
            return False
        finally:
            self.busy = False
        moved = self.path is None or target.resolve() != self.path.resolve()
        self.path = target
        self.stamp = await asyncio.to_thread(file_stamp, target)
        if moved or self._saved_doc is None:
            # Relative paths now resolve from the file's folder: rebuild the form around it,
            # keeping the focus where it was.
            focus = self.focused_field()
            await self.show_document(doc, base_dir=self.base_dir, saved=doc, focus=focus)
        else:
            self._saved_doc = doc
        self.hide_banner()
        self._update_title()
        self._update_status(f"saved {target.name}")
        self.notify(f"Saved {target}", timeout=3)
        return True

    def _needs_demo_assets(self, target: Path) -> bool:
        return (
            self.preset is not None
            and preset_builds_assets(self.preset)
            and not demo_assets_present(target)
        )

    async def _build_demo_assets(self, target: Path) -> bool:
        """Build the demo's tiny model and texts beside ``target`` in a subprocess.

        Building them imports torch and transformers, which the TUI process never
        does; ``clmtune init --preset demo`` writes them into ``clmtune-demo/``.
        """
        self.busy = True
        self.show_banner("Building the offline demo model and data (first time only)…", info=True)
        self._update_status("building the demo…")
        try:
            code, output = await asyncio.to_thread(_run_demo_init, target)
        finally:
            self.busy = False
        if code != 0 or not demo_assets_present(target):
            last = (output.strip().splitlines() or [f"exit code {code}"])[-1]
            self._refuse(f"Building the demo failed: {last}")
            return False
        return True
