"""The editor's test harness: a project folder, an app that mounts one editor, and waits.

Shared by every editor test module (tests/tui/test_editor*.py); the ``project`` fixture in
tests/tui/conftest.py builds its folder with :func:`make_project`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App
from textual.widgets import Static

from clmtune.tui.messages import StartRunRequested
from clmtune.tui.screens.editor import EditorScreen
from clmtune.tui.widgets.config_form import ConfigForm
from tests.tui.conftest import wait_until

GOOD_TOML = """\
# a hand-written file
[model]
model_name_or_path = "./model"

[data]
train_file = "train.txt"

[training]
learning_rate = 0.0001
max_steps = 20
"""


def make_project(folder: Path, toml_text: str = GOOD_TOML) -> Path:
    """``folder`` with a run.toml, a (stub) local model and a training text."""
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "train.txt").write_text("hello world\n" * 10)
    (folder / "run.toml").write_text(toml_text)
    return folder


class EditorApp(App):
    """Mounts one editor and records the StartRunRequested messages it posts."""

    def __init__(self, editor: EditorScreen) -> None:
        super().__init__()
        self.editor = editor
        self.started: list[StartRunRequested] = []

    def on_mount(self) -> None:
        self.push_screen(self.editor)

    def on_start_run_requested(self, message: StartRunRequested) -> None:
        self.started.append(message)


async def ready(pilot: Any, editor: EditorScreen) -> ConfigForm:
    """Wait for the schema, the document and its first validation."""
    await wait_until(pilot, editor.ready.is_set, timeout=120)
    form = editor.form
    assert form is not None
    await settled(pilot, form)
    return form


async def settled(pilot: Any, form: ConfigForm, condition: Any = lambda: True) -> None:
    await wait_until(
        pilot, lambda: condition() and form.validations > 0 and not form.validation_pending
    )


def text_of(editor: EditorScreen, selector: str) -> str:
    return str(editor.query_one(selector, Static).content)


def banner(editor: EditorScreen) -> str:
    widget = editor.query_one("#editor-banner", Static)
    return str(widget.content) if widget.has_class("-shown") else ""


async def retype(pilot: Any, form: ConfigForm, section: str, key: str, text: str) -> None:
    """Focus a field, clear it and type ``text`` as a user would."""
    assert await form.focus_field(section, key)
    await pilot.pause()
    await pilot.press("end", *["backspace"] * 30, *text)
