"""The settings editor screen: open, validate, refuse/save, presets, start, guards, snapshots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, OptionList, Static

from clmtune.tui.screens.confirm import ConfirmScreen
from clmtune.tui.screens.editor import EditorScreen, PathPrompt, PresetPicker
from clmtune.tui.widgets.config_form import UNSET
from tests.tui.conftest import frozen_clock, wait_until
from tests.tui.editor_harness import (
    GOOD_TOML,
    EditorApp,
    banner,
    ready,
    retype,
    settled,
    text_of,
)

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

pytestmark = pytest.mark.anyio
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

@pytest.mark.parametrize("size", SIZES)
async def test_opens_a_file_and_shows_the_command(project: Path, size) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=size) as pilot:
        form = await ready(pilot, editor)
        assert form.document == tomllib.loads(GOOD_TOML)
        assert form.error_count == 0
        assert "run.toml" in text_of(editor, "#editor-title")
        assert "modified" not in text_of(editor, "#editor-title")
        assert text_of(editor, "#editor-command") == "$ clmtune train run.toml"
        assert "valid" in text_of(editor, "#editor-status")
        assert banner(editor) == ""
        # The focused field's help is shown below the form.
        assert "[model] model_name_or_path" in text_of(editor, "#editor-help")
        # ...as the focus moves, not some queue hops later (0.9 s after a Tab, seen).
        editor.set_focus(editor.query_one("#in-training-max_steps"))
        assert text_of(editor, "#editor-help").startswith("[training] max_steps:")
        # Every action is in the command palette.
        titles = [c.title for c in editor.palette_commands()]
        for name in ("Save", "Start", "Open", "Preset", "Next error", "Save as"):
            assert f"Settings: {name}" in titles


async def test_bad_learning_rate_is_refused_then_saved_when_fixed(project: Path) -> None:
    path = project / "run.toml"
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    editor = EditorScreen(path)
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        await retype(pilot, form, "training", "learning_rate", "-1")
        await settled(pilot, form, lambda: form.value("training", "learning_rate") == -1.0)
        row = form.row("training", "learning_rate")
        assert row is not None
        assert "must be > 0" in str(row.query_one(".field-message", Static).content)
        assert "1 error" in text_of(editor, "#editor-status")
        assert "modified" in text_of(editor, "#editor-title")
        # The message is on screen, right under the field.
        message = row.query_one(".field-message")
        assert message.region.y == row.query_one("#in-training-learning_rate").region.y + 1
        assert editor.screen.region.contains_region(message.region)

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "Not saved" in banner(editor))
        # The refusal names the field and what is wrong, not only a count.
        assert banner(editor).startswith("Not saved: [training] learning_rate: must be > 0")
        assert banner(editor).endswith("f8 jumps to it.")
        assert path.read_bytes() == before
        assert path.stat().st_mtime_ns == mtime

        await retype(pilot, form, "training", "learning_rate", "0.001")
        await settled(pilot, form, lambda: form.value("training", "learning_rate") == 0.001)
        assert form.error_count == 0
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not editor.is_dirty)
        saved = tomllib.loads(path.read_text())
        assert saved["training"] == {"learning_rate": 0.001, "max_steps": 20}
        assert saved["model"] == {"model_name_or_path": "./model"}
        assert "modified" not in text_of(editor, "#editor-title")
        assert not list(project.glob(".*.tmp")), "the atomic write left its temp file"


async def test_f8_walks_the_errors(project: Path) -> None:
    (project / "run.toml").write_text(
        GOOD_TOML.replace("learning_rate = 0.0001", "learning_rate = -0.5").replace(
            '"train.txt"', '"nope.txt"'
        )
    )
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        fields = form.error_fields()
        assert fields == [("data", "train_file"), ("training", "learning_rate")]
        await pilot.press("f8")
        await wait_until(
            pilot,
            lambda: (
                editor.focused is not None
                and editor.focused.id == f"in-{fields[0][0]}-{fields[0][1]}"
            ),
        )
        await pilot.press("f8")
        await wait_until(
            pilot,
            lambda: (
                editor.focused is not None
                and editor.focused.id == f"in-{fields[1][0]}-{fields[1][1]}"
            ),
        )


async def test_missing_and_broken_files_are_reported(project: Path) -> None:
    editor = EditorScreen(Path("nope.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, editor)
        assert "nope.toml: no such file" in banner(editor)

    (project / "broken.toml").write_text("[training\nlearning_rate = \n")
    editor = EditorScreen(Path("broken.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        assert "not valid TOML" in banner(editor)
        assert form.document == {}
        # Opening another missing file through the dialog: still no crash, a message.
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one(Input).value = str(project / "missing" / "x.toml")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "x.toml: no such file" in banner(editor))
        assert app.screen is editor


async def test_unknown_preset_is_reported(project: Path) -> None:
    editor = EditorScreen(preset="nope")
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, editor)
        text = banner(editor)
        assert "unknown preset 'nope'" in text and "demo" in text and "gpt2-text" in text


async def test_preset_from_the_picker(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, editor)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetPicker))
        options = app.screen.query_one(OptionList)
        options.highlighted = [o.id for o in options.options].index("gpt2-text")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        assert app.screen.query_one(Input).value == str(project / "gpt2-text.toml")
        await pilot.press("enter")
        await wait_until(pilot, lambda: editor.preset == "gpt2-text")
        form = editor.form
        assert form is not None
        assert form.value("model", "model_name_or_path") == "gpt2"
        assert form.value("training", "learning_rate") == 5e-5
        assert form.value("data", "train_file") == "train.txt"
        assert editor.is_dirty and not (project / "gpt2-text.toml").exists()
        assert "gpt2-text.toml" in text_of(editor, "#editor-title")


async def test_start_saves_and_posts_start_run_requested(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"), runs_dir=Path("runs"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        await retype(pilot, form, "training", "max_steps", "7")
        await settled(pilot, form, lambda: form.value("training", "max_steps") == 7)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(app.started))
        message = app.started[0]
        assert message.config_path == Path("run.toml")
        assert tomllib.loads(message.config_path.read_text())["training"]["max_steps"] == 7
        # The launcher picks the folder by the CLI's rule (no output_dir: runs/NAME-DATE),
        # and the editor says so before the start.
        assert message.run_dir is None
        assert editor.destination_text().startswith("runs in runs/run-<date>")


async def test_an_error_under_the_last_visible_field_scrolls_into_view(project: Path) -> None:
    # At 80x24 the field on the form's last visible line got its error below the fold.
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        visible = [row for row in form.rows() if row.spec.kind in ("int", "float")
                   and form.region.contains_region(row.region)]
        row = max(visible, key=lambda r: r.region.y)
        assert row.region.bottom >= form.region.bottom - 2  # it is the bottom line
        row.focus_editor()
        await pilot.pause()
        await pilot.press("end", *["backspace"] * 30, *"zz")
        message = row.query_one(".field-message")
        await wait_until(pilot, lambda: message.has_class("-shown"))
        await wait_until(pilot, lambda: form.region.contains_region(message.region))


async def test_start_refuses_invalid_settings(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        await retype(pilot, form, "data", "train_file", "gone.txt")
        await settled(pilot, form, lambda: form.value("data", "train_file") == "gone.txt")
        await pilot.press("f5")
        await wait_until(pilot, lambda: "Not started" in banner(editor))
        assert banner(editor).startswith("Not started: [data] train_file:")
        assert app.started == []
        assert (
            tomllib.loads((project / "run.toml").read_text())["data"]["train_file"] == "train.txt"
        )


async def test_unsaved_changes_guard(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        await retype(pilot, form, "training", "max_steps", "9")
        await settled(pilot, form, lambda: form.value("training", "max_steps") == 9)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is editor)
        assert form.value("training", "max_steps") == 9
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: editor not in app.screen_stack)
    assert "max_steps = 20" in (project / "run.toml").read_text()


async def test_save_as_keeps_relative_paths_working(project: Path) -> None:
    (project / "sub").mkdir()
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, editor)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one(Input).value = str(project / "sub" / "copy.toml")
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: (project / "sub" / "copy.toml").exists() and not editor.is_dirty
        )
    copy = tomllib.loads((project / "sub" / "copy.toml").read_text())
    assert copy["data"]["train_file"] == os.path.join("..", "train.txt")
    assert (project / "run.toml").read_text() == GOOD_TOML


@pytest.mark.slow  # builds the demo's tiny model in a subprocess (torch import)
async def test_demo_preset_builds_its_assets_on_save(project: Path) -> None:
    editor = EditorScreen(preset="demo")
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        assert form.error_count == 0  # the missing demo files are built on save
        assert "builds the offline demo" in banner(editor)
        await pilot.press("ctrl+s")
        # A subprocess builds the tiny model and texts (imports torch): seconds.
        await wait_until(pilot, lambda: (project / "demo.toml").exists(), timeout=300)
        await wait_until(pilot, lambda: not editor.is_dirty)
        text = (project / "demo.toml").read_text()
        assert text.startswith("# clmtune preset 'demo'")  # the commented preset
        assert (project / "clmtune-demo" / "model" / "config.json").exists()
        assert not list(project.glob(".demo.init.toml"))
        assert form.value("training", "max_steps") is not UNSET
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(app.started))
        assert app.started[0].config_path == project / "demo.toml"


# ----------------------------------------------------------------- snapshots


def _snapshot_app(screen_factory: Any) -> App:
    from clmtune.tui.app import ClmtuneApp

    class SnapApp(ClmtuneApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.push_screen(screen_factory())

    return SnapApp(Path("runs"), clock=frozen_clock, remember_theme=False)


async def _editor_settled(pilot: Any) -> None:
    editor = pilot.app.screen
    assert isinstance(editor, EditorScreen)
    await ready(pilot, editor)
    for field in editor.query(Input):
        field.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_editor_demo_preset(project: Path, snap_compare: Any, size) -> None:
    app = _snapshot_app(lambda: EditorScreen(preset="demo"))
    assert snap_compare(app, terminal_size=size, run_before=_editor_settled)


HYGIENE = """
import asyncio, sys
from pathlib import Path
from textual.app import App
from clmtune.tui.screens.editor import EditorScreen
from clmtune.tui.screens.metrics import MetricsScreen

async def main():
    app = App()
    async with app.run_test(size=(80, 24)) as pilot:
        editor = EditorScreen(Path("run.toml"))
        await app.push_screen(editor)
        await editor.ready.wait()
        assert await editor.save()  # validation + the backend's atomic save
        metrics = MetricsScreen(Path("hf"))
        await app.push_screen(metrics)
        await metrics.ready.wait()
asyncio.run(main())
print(",".join(m for m in ("torch", "transformers", "datasets", "evaluate") if m in sys.modules))
"""


def test_editor_and_metrics_load_no_training_library(project: Path) -> None:
    import subprocess
    import sys

    (project / "hf").mkdir()
    (project / "hf" / "trainer_state.json").write_text('{"log_history": [{"loss": 1, "step": 1}]}')
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", HYGIENE],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1:] in ([""], []), proc.stdout


async def test_launch_failure_is_shown_in_the_editor(project: Path) -> None:
    from clmtune.tui.messages import LaunchFailed

    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, editor)
        editor.post_message(LaunchFailed("run.toml: [data] train_file: no such file"))
        await wait_until(pilot, lambda: "Not started: run.toml" in banner(editor))


@pytest.mark.parametrize(
    ("keys", "answer"), [(("y",), True), (("n",), False), (("escape",), False), (("enter",), False)]
)
async def test_confirm_screen_keys(keys: tuple[str, ...], answer: bool) -> None:
    answers: list[bool] = []

    class ConfirmApp(App):
        def on_mount(self) -> None:
            self.push_screen(
                ConfirmScreen("Delete run?", "It cannot be undone.", yes="Delete"), answers.append
            )

    app = ConfirmApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "Delete (y)" in str(app.screen.query_one("#confirm-yes").label)
        await pilot.press(*keys)  # enter presses the focused "Cancel": never a stray yes
        await wait_until(pilot, lambda: bool(answers))
    assert answers == [answer]


async def test_leaving_twice_or_from_under_another_screen_is_harmless(project: Path) -> None:
    # Back, a cancelled open/preset and a start can each end the editor; once is enough,
    # and an editor a start already covered with the live view must not pop that view.
    from textual.screen import Screen

    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, editor)
        above = Screen()
        await app.push_screen(above)
        editor._leave()
        await pilot.pause()
        assert app.screen is above and editor in app.screen_stack
        app.pop_screen()
        await wait_until(pilot, lambda: app.screen is editor)
        editor._leave()
        editor._leave()
        await wait_until(pilot, lambda: editor not in app.screen_stack)
        await pilot.pause()
        assert app.is_running and len(app.screen_stack) == 1


async def test_keys_that_arrive_together_act_in_the_order_typed(project: Path) -> None:
    # A terminal delivers ctrl+u and "70" in one read: the clear must not land after the
    # digits (Textual runs a widget's bindings only once the key has bubbled to the app).
    from textual import events

    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await ready(pilot, editor)
        assert await form.focus_field("training", "max_steps")
        field = form.row("training", "max_steps").query_one(Input)
        for n in range(5):
            for key, char in (("ctrl+u", None), ("7", "7"), (str(n), str(n)),
                              ("backspace", None), ("0", "0")):
                app.post_message(events.Key(key, char))  # as the driver posts them
            await wait_until(pilot, lambda: field.value != "" and len(field.value) >= 2)
            await pilot.pause()
            assert field.value == "70"
        await settled(pilot, form, lambda: form.value("training", "max_steps") == 70)


async def test_a_path_typed_in_one_burst_into_a_dialog_is_the_path_typed() -> None:
    # Over a laggy link "ctrl+u, a path, enter" arrives in one read; a plain Input saved
    # the settings as "oml" (the clear and the enter ran after most of the path).
    from textual import events
    from textual.app import App

    from clmtune.tui.screens.editor_dialogs import PathPrompt

    answers: list[Path | None] = []
    app = App()
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(PathPrompt("Save as", "old-name.toml"), answers.append)
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        burst = [("ctrl+u", None), *[(c, c) for c in "sub/abc"], ("backspace", None),
                 ("backspace", None), *[(c, c) for c in "xyz.toml"], ("enter", None)]
        for key, char in burst:
            app.post_message(events.Key(key, char))  # as the driver posts them
        await wait_until(pilot, lambda: answers)
    assert answers == [Path("sub/axyz.toml")]


def test_a_settings_file_with_a_byte_order_mark_opens(tmp_path: Path) -> None:
    from clmtune.tui.screens.editor_files import read_document

    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_TOML.encode())
    assert read_document(path) == tomllib.loads(GOOD_TOML)
