"""Saving from the editor keeps the user's comments and key order (tomlkit round trip)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from clmtune.tui.screens.editor import EditorScreen, PathPrompt
from tests.tui.conftest import wait_until
from tests.tui.editor_harness import EditorApp, make_project, ready

pytestmark = pytest.mark.anyio

COMMENTED = """\
# Notes for the next person: lr was tuned by hand.
[model]
model_name_or_path = "./model"  # a local folder

[data]
# one example per line
train_file = "train.txt"

[training]
max_steps = 20  # short on purpose
learning_rate = 0.0001
seed = 3
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a commented run.toml, a stub local model and a training text."""
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path, COMMENTED)


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


async def test_save_keeps_comments_and_order(project: Path) -> None:
    path = project / "run.toml"
    editor = EditorScreen(path)
    app = EditorApp(editor)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot, editor)
        assert await form.focus_field("training", "max_steps")
        await pilot.pause()
        await pilot.press("end", *["backspace"] * 10, "4", "0")
        await wait_until(pilot, lambda: form.value("training", "max_steps") == 40)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not editor.is_dirty)
    text = path.read_text()
    assert text == COMMENTED.replace("max_steps = 20", "max_steps = 40")


async def test_save_as_keeps_the_comments_of_the_opened_file(project: Path) -> None:
    (project / "sub").mkdir()
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, editor)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one(Input).value = str(project / "sub" / "copy.toml")
        await pilot.press("enter")
        copy = project / "sub" / "copy.toml"
        await wait_until(pilot, lambda: copy.exists() and not editor.is_dirty)
    assert _comments(copy.read_text()) == _comments(COMMENTED)
    assert (project / "run.toml").read_text() == COMMENTED
