"""The editor's Preview: what the settings being edited make, before training (``f6``).

The report is ``clmtune preview --json`` run in a subprocess on a temporary copy of the
settings (the dashboard never imports datasets or torch): rows, tokens, blocks, steps, the
memory estimate, warnings, and the sample blocks in a scrollable pane. The batch size field
recomputes steps, the memory estimate and the data warnings at once (``backend.estimate`` and
``backend.tools.preview.data_warnings`` are pure arithmetic: the same warnings as the CLI);
a batch size that is not a whole number of 1 or more is refused in a line by the field. Only
a change to anything else (block size, data, model…) reloads the data, and a preview opened
again with only the batch size changed reuses the last report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState

from clmtune import themes
from clmtune.backend.estimate import rebatch
from clmtune.backend.tools.preview import data_warnings
from clmtune.backend.tools.preview_text import data_lines, estimate_lines, sample_lines
from clmtune.tui.screens.editor_files import binding_commands, build_config, display_path
from clmtune.tui.widgets.footer import AppFooter
from clmtune.tui.widgets.text_input import TextInput

SAMPLES = 3
TIMEOUT_S = 900.0
BATCH_KEY = ("training", "per_device_train_batch_size")
#: The last report per settings file: (the document without its batch size, the report).
_LAST: dict[str, tuple[str, dict[str, Any]]] = {}


class PreviewFailed(Exception):
    """``clmtune preview`` refused the settings or failed; ``str()`` is its one line."""


def _without_batch(doc: dict[str, Any]) -> str:
    sections = {name: dict(values) for name, values in doc.items() if isinstance(values, dict)}
    sections.get(BATCH_KEY[0], {}).pop(BATCH_KEY[1], None)
    return json.dumps(sections, sort_keys=True, default=str)


def _batch_of(doc: dict[str, Any], default: int = 8) -> int:
    value = doc.get(BATCH_KEY[0], {}).get(BATCH_KEY[1], default)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def batch_problem(text: str) -> str | None:
    """Why the batch size field's ``text`` is refused (None when it is a usable size)."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        return f"{text!r} is not a whole number" if text else "type a whole number, 1 or more"
    return None if value > 0 else f"must be 1 or more, got {value}"


def rebatched(report: dict[str, Any], batch: int) -> dict[str, Any]:
    """``report`` for another batch size: steps and memory (``rebatch``), and the data
    warnings ``clmtune preview`` gives for that size (fewer blocks than one batch…) in place
    of those it gave for the loaded one; the other warnings (the settings check) kept."""
    shown = rebatch(report, batch)
    loaded = data_warnings(report, report)
    kept = [w for w in report.get("warnings") or [] if w not in loaded]
    shown["warnings"] = kept + data_warnings(shown, shown)
    return shown


def run_preview(doc: dict[str, Any], path: Path | None, samples: int = SAMPLES) -> dict:
    """``python -m clmtune.backend.tools.preview COPY --json`` on a copy of ``doc``."""
    from clmtune.backend.settings.toml_io import save_config

    source = path if path is not None else Path.cwd() / "run.toml"
    with tempfile.TemporaryDirectory(prefix="clmtune-preview-") as tmp:
        copy = Path(tmp) / "preview.toml"
        save_config(build_config(doc, source), copy)  # other folder: paths made absolute
        done = subprocess.run(
            [sys.executable, "-m", "clmtune.backend.tools.preview", str(copy), "--json",
             "--samples", str(samples)],
            capture_output=True, text=True, timeout=TIMEOUT_S, cwd=source.parent,
        )  # fmt: skip
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("clmtune: error:")]
        message = (errors or lines or [f"exit code {done.returncode}"])[-1]
        raise PreviewFailed(message.removeprefix("clmtune: error: ").replace(str(copy), "settings"))
    return json.loads(done.stdout)


class PreviewScreen(Screen[None]):
    """The preview report of the settings being edited; escape goes back to the form."""

    CSS_PATH = str(themes.EDITOR_CSS_FILE)
    HELP_TITLE = "Preview"
    HELP = (
        "What these settings make before any training: raw rows, tokens, blocks (the "
        "train_samples / eval_samples the run will log), example lengths, steps, the memory "
        "estimate per device against the memory found, and the first training blocks as the "
        "model sees them (<||> marks where one example ends and the next begins). Loading "
        "runs `clmtune preview` in the background. The batch size field recomputes steps, "
        "memory and the warnings at once; r reloads the data after other changes."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the settings"),
        Binding("r", "reload", "Reload", tooltip="Load the tokenizer and data again"),
        Binding("b", "focus_batch", "Batch size", tooltip="Edit the per-device batch size"),
        Binding("f1", "app.help", "Help", tooltip="What this screen does and all its keys"),
        # One Help in the footer: f1, which works in the batch field too (a field takes ?).
        Binding("question_mark", "app.help", "Help", show=False),
    ]

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield from binding_commands(self, "Preview: ")

    def __init__(self, doc: dict[str, Any], path: Path | None) -> None:
        super().__init__()
        self.doc = doc
        self.path = path
        self.key = str(path.resolve()) if path is not None else ""
        self.report: dict[str, Any] | None = None  # as loaded (its own batch size)
        self.shown: dict[str, Any] | None = None  # for the batch size in the field
        self.loads = 0  # subprocess runs (tests count them)

    def compose(self) -> ComposeResult:
        name = display_path(self.path) if self.path is not None else "(new file)"
        yield Static(f"Preview · {name}", id="preview-title", markup=False)
        yield Static("", id="preview-status", markup=False)
        with Horizontal(id="preview-batch-row"):
            yield Label("per_device_train_batch_size ", id="preview-batch-label")
            yield TextInput(str(_batch_of(self.doc)), id="preview-batch", type="integer")
        yield Static("", id="preview-batch-note", markup=False)  # shown while refused
        with VerticalScroll(id="preview-body"):  # report then samples: all reachable at 80x24
            yield Static("", id="preview-report", markup=False)
            yield Static("", id="preview-samples-text", markup=False)
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one("#preview-body").focus()  # r and b work at once; arrows scroll
        last = _LAST.get(self.key)
        if last is not None and last[0] == _without_batch(self.doc):
            self.report = last[1]  # only the batch size changed: no reload
            self._show()
            self._status("Data unchanged since the last preview; r reloads it.")
        else:
            self.action_reload()

    def _status(self, text: str) -> None:
        self.query_one("#preview-status", Static).update(text)

    def action_reload(self) -> None:
        """Run ``clmtune preview`` on the settings (in a thread)."""
        self._status("Loading the tokenizer and the data as training will… (clmtune preview)")
        self.loads += 1
        self._load()

    @work(thread=True, exclusive=True, group="preview")
    def _load(self) -> dict[str, Any]:
        return run_preview(self.doc, self.path)

    @on(Worker.StateChanged)
    def _loaded(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "_load":
            return
        if event.worker.state == WorkerState.SUCCESS:
            self.report = event.worker.result
            _LAST[self.key] = (_without_batch(self.doc), self.report)
            self._show()
            self._status("Preview of the settings as edited (not saved).")
        elif event.worker.state == WorkerState.ERROR:
            self._status(f"Preview failed: {event.worker.error}")

    def _batch(self) -> int | None:
        text = self.query_one("#preview-batch", Input).value
        return None if batch_problem(text) else int(text.strip())

    def _show(self) -> None:
        if self.report is None:
            return
        batch = self._batch() or self.report["per_device_train_batch_size"]
        self.shown = rebatched(self.report, batch)
        report = self.shown
        lines = [f"warning: {w}" for w in report.get("warnings") or []]
        lines += list(estimate_lines(report.get("estimate"))) + list(data_lines(report))
        self.query_one("#preview-report", Static).update("\n".join(lines))
        samples = list(sample_lines(report)) or ["(no sample blocks)"]
        self.query_one("#preview-samples-text", Static).update("\n".join(samples))

    @on(Input.Changed, "#preview-batch")
    def _batch_changed(self) -> None:
        problem = batch_problem(self.query_one("#preview-batch", Input).value)
        note = self.query_one("#preview-batch-note", Static)
        note.display = problem is not None
        if problem is not None:
            shown = (f" (figures below: batch {self.shown['per_device_train_batch_size']})"
                     if self.shown is not None else "")
            note.update(f"Batch size refused: {problem}{shown}")
        else:
            self._show()  # steps, memory and data warnings: arithmetic only, no reload

    def action_focus_batch(self) -> None:
        """Focus the batch size field."""
        self.query_one("#preview-batch", Input).focus()

    def action_back(self) -> None:
        """Back to the settings."""
        self.dismiss(None)
