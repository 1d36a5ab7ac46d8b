"""The editor never damages saved work and uses exactly the values typed.

A run's frozen settings stay read-only, outside changes are never overwritten
silently, whole numbers are whole, keys typed fast all arrive, and the start goes
where ``clmtune train`` would go.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from clmtune.tui.screens.confirm import ChoiceScreen
from clmtune.tui.screens.editor import EditorScreen, PathPrompt, PresetPicker
from clmtune.tui.screens.editor_files import _toml_suggestions
from clmtune.tui.widgets.config_form import ParseError, parse_text
from tests.tui.conftest import wait_until
from tests.tui.editor_harness import GOOD_TOML, EditorApp, banner, ready, retype, settled, text_of

pytestmark = pytest.mark.anyio


def frozen_run(project: Path) -> Path:
    """runs/base: a run folder with its frozen config.toml (absolute paths, output_dir)."""
    run_dir = project / "runs" / "base"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "completed"}))
    (run_dir / "config.toml").write_text(
        "# frozen by clmtune\n[model]\n"
        f'model_name_or_path = "{project / "model"}"\n[data]\n'
        f'train_file = "{project / "train.txt"}"\n[training]\n'
        f'output_dir = "{run_dir}"\nmax_steps = 20\n'
    )
    return run_dir


# ----------------------------------------------------------------- whole numbers


@pytest.mark.parametrize(
    ("text", "message"),
    [("2.0", "write 2"), ("3.5", "got 3.5"), ("1e3", "write 1000"), ("x", "not a whole")],
)
def test_whole_numbers_refuse_what_a_toml_file_refuses(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_text(text, "int")
    assert parse_text("1_000", "int") == 1000


async def test_typed_decimal_point_is_kept_and_refused(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        await retype(pilot, form, "training", "max_steps", "2.0")
        await settled(pilot, form)
        field = editor.query_one("#in-training-max_steps", Input)
        assert field.value == "2.0"  # was "20", shown valid
        row = form.row("training", "max_steps")
        assert row is not None and row.parse_error and "whole number" in row.parse_error
        assert form.error_count >= 1


async def test_bf16_on_a_machine_without_a_gpu_is_a_warning_on_its_field(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # clmtune check warns, a start refuses: the editor said "valid".
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    (project / "run.toml").write_text(GOOD_TOML + "bf16 = true\n")
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await ready(pilot, editor)
        assert form.error_count == 0 and form.warning_count == 1
        assert form.problems.warnings_by_field[("training", "bf16")][0].startswith(
            "needs a CUDA GPU")
        assert "1 warning" in text_of(editor, "#editor-status")


async def test_eight_keys_in_a_burst_all_arrive(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        assert await form.focus_field("training", "max_steps")
        await pilot.pause()
        await pilot.press("end", *["backspace"] * 10)
        await pilot.press(*"1.5e+3x7")  # no pause between the keys
        assert editor.query_one("#in-training-max_steps", Input).value == "1.5e+3x7"


async def test_bad_value_from_a_file_is_not_an_edit(project: Path) -> None:
    Path("run.toml").write_text(GOOD_TOML.replace("max_steps = 20", "max_steps = 2.0"))
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        assert form.value("training", "max_steps") == 2.0  # the file's value, not dropped
        assert form.error_count >= 1
        assert "modified" not in text_of(editor, "#editor-title")
        assert not editor.is_dirty


# ----------------------------------------------------------------- saved work


async def test_a_runs_frozen_settings_are_read_only(project: Path) -> None:
    run_dir = frozen_run(project)
    frozen = run_dir / "config.toml"
    before = frozen.read_bytes()
    editor = EditorScreen(frozen)
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        assert editor.read_only and "read-only" in text_of(editor, "#editor-title")
        assert "copies them to a new settings file" in banner(editor)
        await retype(pilot, form, "training", "max_steps", "30")
        await settled(pilot, form)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        prompt = app.screen.query_one("#prompt-input", Input)
        assert prompt.value == str(project / "base.toml")
        await pilot.press("enter")
        await wait_until(pilot, lambda: Path("base.toml").exists())
        await wait_until(pilot, lambda: not editor.read_only)
    assert frozen.read_bytes() == before  # the run's record is untouched
    copy = Path("base.toml").read_text()
    assert "max_steps = 30" in copy
    assert "output_dir" not in copy  # a new run must not aim at the old run's folder


async def test_save_asks_when_the_file_changed_on_disk(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        outside = GOOD_TOML.replace("max_steps = 20", "max_steps = 99")
        Path("run.toml").write_text(outside)  # another editor, a git pull
        await retype(pilot, form, "training", "learning_rate", "0.001")
        await settled(pilot, form)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert Path("run.toml").read_text() == outside  # nothing written yet
        await pilot.press("r")  # reload
        await wait_until(pilot, lambda: form is not editor.form and editor.form is not None)
        await settled(pilot, editor.form)
        assert editor.form.value("training", "max_steps") == 99
        assert Path("run.toml").read_text() == outside

        Path("run.toml").write_text(GOOD_TOML)
        await retype(pilot, editor.form, "training", "max_steps", "5")
        await settled(pilot, editor.form)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("o")  # overwrite
        await wait_until(pilot, lambda: "max_steps = 5" in Path("run.toml").read_text())
        focused = app.focused
        assert isinstance(focused, Input) and focused.id == "in-training-max_steps"


async def test_save_as_keeps_the_focus_and_clears_a_stale_banner(project: Path) -> None:
    editor = EditorScreen(Path("run.toml"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        await retype(pilot, form, "training", "max_steps", "x")
        await settled(pilot, form)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: banner(editor).startswith("Not saved"))
        await retype(pilot, form, "training", "max_steps", "8")
        await settled(pilot, form)
        assert banner(editor) == ""  # the refusal it explained is fixed
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        prompt = app.screen.query_one("#prompt-input", Input)
        prompt.value = str(project / "sub" / "other.toml")
        (project / "sub").mkdir()
        await pilot.press("enter")
        await wait_until(pilot, lambda: (project / "sub" / "other.toml").exists())
        await wait_until(pilot, lambda: editor.form is not form)
        await pilot.pause()
        focused = app.focused
        assert isinstance(focused, Input) and focused.id == "in-training-max_steps"


# ----------------------------------------------------------------- where a run goes


async def test_start_goes_where_clmtune_train_goes(project: Path) -> None:
    Path("run.toml").write_text(GOOD_TOML + 'output_dir = "out/exp1"\n')
    editor = EditorScreen(Path("run.toml"), runs_dir=Path("runs"))
    app = EditorApp(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot, editor)
        status = str(editor.query_one("#editor-status", Static).content)
        assert "runs in out/exp1 (output_dir; will be created)" in status
        row = form.row("training", "output_dir")
        assert row is not None
        assert str(row.query_one(".field-hint", Static).content) == "will be created"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(app.started))
    assert app.started[0].run_dir is None  # the launcher applies output_dir, as the CLI
    from clmtune.backend.launch import _choose_run_dir
    from clmtune.backend.settings.toml_io import load_config

    cfg = load_config(project / "run.toml")
    assert _choose_run_dir(cfg, project / "run.toml", None, Path("runs")) == project / "out/exp1"


# ----------------------------------------------------------------- dialogs


def test_open_dialog_offers_settings_files_only(project: Path) -> None:
    frozen_run(project)
    (project / ".hidden.init.toml").write_text("")
    suggestions = _toml_suggestions(Path("runs"))
    assert "run.toml" in suggestions
    assert not any("config.toml" in s or ".hidden" in s for s in suggestions)


async def test_new_run_with_runs_starts_from_a_template(project: Path) -> None:
    from clmtune.tui.app import ClmtuneApp
    from tests.tui.conftest import standard_runs

    root = project / "runs"
    root.mkdir()
    standard_runs(root)
    app = ClmtuneApp(root, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.screen.query_one("RunTable").runs) == 4)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetPicker), timeout=120)
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen")
