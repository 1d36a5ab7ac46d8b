"""What a new user runs into: help, the footer at 80 columns, double starts, where escape
goes, which checkpoint resume picks, narrow layouts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import clmtune.backend.launch as launch
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived, StartRunRequested
from clmtune.tui.screens.help import HelpScreen
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.widgets.checkpoint_table import CheckpointRow, CheckpointTable
from clmtune.tui.widgets.phase_bar import PhaseBar
from tests.tui.conftest import (
    fake_checkpoint,
    frozen_clock,
    recorded_run,
    recording,
    standard_runs,
    wait_until,
)

pytestmark = pytest.mark.anyio


def _app(root: Path) -> ClmtuneApp:
    return ClmtuneApp(root, clock=frozen_clock, remember_theme=False)


def _messages(app: ClmtuneApp) -> list[str]:
    return [n.message for n in app._notifications]


def _footer_keys(app: ClmtuneApp) -> list[str]:
    return [key.key for key in app.screen.query("FooterKey")]


async def _footer(pilot, app: ClmtuneApp) -> list[str]:
    await pilot.pause()
    await wait_until(pilot, lambda: bool(_footer_keys(app)))
    return _footer_keys(app)


async def test_help_lists_the_screen_keys_then_the_common_ones(runs_root):
    recorded_run(runs_root, "demo", "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.selected is not None)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert help_screen.keys[0] == ("⏎", "Watch the selected run, live or finished")
        assert ("d", "Delete the selected run folder (asks first; never a running run)") in (
            help_screen.keys
        )
        assert [key for key, _ in help_screen.common] == ["n", "o", "t", "?", "q", "^p"]
        assert str(runs_root) in help_screen.intro
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_help_on_the_live_screen_explains_the_chart_keys(runs_root):
    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(LiveScreen(run_dir, follow=False))
        await pilot.press("question_mark")
        keys = dict(app.screen.keys)
        assert keys["s"].startswith("Save a checkpoint and stop")
        assert "+ / -" in keys and "0" in keys
        await pilot.press("question_mark")  # ? toggles it closed again
        assert isinstance(app.screen, LiveScreen)


@pytest.mark.parametrize("empty", [True, False], ids=["empty", "with-runs"])
async def test_footer_at_80_columns_keeps_help_and_quit(runs_root, empty):
    if not empty:
        recorded_run(runs_root, "demo", "completed", status="completed")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        if not empty:
            await wait_until(pilot, lambda: app.screen.selected is not None)
        keys = await _footer(pilot, app)
        assert "question_mark" in keys and "q" in keys and "n" in keys
        assert "t" not in keys  # optional at 80 columns ...
        per_run = {"enter", "r", "f", "d", "m"}
        if empty:
            assert per_run.isdisjoint(keys)
        else:  # a complete run offers Extend (train further), not Resume
            assert {"enter", "f", "d", "m"} <= set(keys) and "r" not in keys
        await pilot.press("t")  # ... but the key still works
        assert app.theme == "clmtune-light"


async def test_runs_footer_offers_resume_or_extend_for_the_run_under_the_cursor(runs_root):
    recorded_run(runs_root, "a-done", "completed", status="completed")
    recorded_run(runs_root, "b-crashed", "crashed", status="crashed", shift=-60)
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.screen.table.runs) == 2)
        seen = {}
        for _ in range(2):
            run = app.screen.selected
            keys = await _footer(pilot, app)
            seen[run.status] = ("r" in keys, "f" in keys)
            await pilot.press("down")
        assert seen == {"completed": (False, True), "crashed": (True, False)}


async def test_footer_shows_every_key_when_wide_and_follows_a_resize(runs_root):
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        assert "t" in await _footer(pilot, app)
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "t" not in _footer_keys(app))
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: "t" in _footer_keys(app))


async def test_live_footer_at_80_columns(runs_root):
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(LiveScreen(run_dir, follow=False))
        keys = await _footer(pilot, app)
        assert {"escape", "s", "r", "l", "m", "question_mark", "q"} <= set(keys)


async def test_a_second_start_while_one_is_starting_is_refused(runs_root, monkeypatch):
    run_dir = recorded_run(runs_root, "new", "tokenizing")
    release = threading.Event()
    calls = []

    def slow_start(config_path=None, **kwargs):
        calls.append(config_path)
        release.wait(10)  # the worker process takes seconds to come up
        return launch.LaunchedRun(run_dir=run_dir, pid=1, command=["x"], process=None)

    monkeypatch.setattr(launch, "start_run", slow_start)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(StartRunRequested(Path("demo.toml"), None))
        await wait_until(pilot, lambda: app.launching)
        app.post_message(StartRunRequested(Path("demo.toml"), None))
        await wait_until(pilot, lambda: any("Already starting" in m for m in _messages(app)))
        release.set()
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen))
        assert calls == [Path("demo.toml")]


async def test_start_from_the_editor_leaves_the_live_view_above_the_runs(runs_root, monkeypatch):
    from clmtune.tui.screens.editor import EditorScreen

    run_dir = recorded_run(runs_root, "new", "tokenizing")
    monkeypatch.setattr(launch, "start_run", lambda config_path=None, **kw: launch.LaunchedRun(
        run_dir=run_dir, pid=1, command=["x"], process=None))
    monkeypatch.setattr(EditorScreen, "on_mount", lambda self: None)  # no schema needed
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(EditorScreen(runs_dir=runs_root))
        app.post_message(StartRunRequested(Path("demo.toml"), None))
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen))
        assert [type(s).__name__ for s in app.screen_stack] == ["RunsScreen", "LiveScreen"]
        await pilot.press("escape")  # the footer says "esc Runs"
        # (the pop lands a few message hops after the key on a loaded machine)
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen")
        assert [type(s).__name__ for s in app.screen_stack] == ["RunsScreen"]


async def test_open_toml_asks_for_the_file_and_escape_goes_back(runs_root, monkeypatch):
    from clmtune.tui.screens.editor import EditorScreen, PathPrompt

    monkeypatch.chdir(runs_root.parent)
    Path("mine.toml").write_text("[training]\nmax_steps = 5\n")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt), timeout=90)
        prompt = app.screen
        assert "mine.toml" in prompt.suggestions and "Found: mine.toml" in prompt.hint
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen")
        assert not any(isinstance(s, EditorScreen) for s in app.screen_stack)


async def test_new_asks_for_the_preset_before_building_a_form(runs_root, monkeypatch):
    # n built an empty form (1.5-2.5 s on a busy machine) before the preset list opened.
    from clmtune.tui.screens.editor import EditorScreen, PathPrompt, PresetPicker

    monkeypatch.chdir(runs_root.parent)
    standard_runs(runs_root)  # with runs, n asks which preset (the first run is the demo)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.screen.query_one("RunTable").runs) == 4)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetPicker), timeout=90)
        editor = next(s for s in app.screen_stack if isinstance(s, EditorScreen))
        assert editor.form is None  # nothing built behind the question
        await pilot.press("enter")  # the first preset
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")  # its proposed file name
        await wait_until(pilot, lambda: app.screen is editor and editor.form is not None,
                         timeout=60)
        assert editor.preset is not None and editor.form.document


def _rows(*steps: int) -> list[CheckpointRow]:
    return [CheckpointRow(s, Path(f"/r/checkpoint-{s}"), "complete", None, None) for s in steps]


async def test_checkpoint_cursor_follows_the_newest_unless_moved(runs_root):
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(LiveScreen(run_dir, follow=False))
        table = app.screen.query_one(CheckpointTable)
        table.update_checkpoints(_rows(4))
        table.update_checkpoints(_rows(4, 8))
        await pilot.pause()
        assert table.selected.step == 8  # resume picks the newest by default
        table.move_cursor(row=1)
        table.update_checkpoints(_rows(4, 8, 12))
        await pilot.pause()
        assert table.selected.step == 4  # a cursor the user moved stays put


async def test_phase_bar_drops_details_before_it_overflows(runs_root):
    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, recording("running_gpu")))
        bar = screen.query_one(PhaseBar)
        await wait_until(pilot, lambda: "step 35/100" in str(bar.render()))
        text = str(bar.render())
        assert len(text) <= bar.content_size.width
        assert "ETA" in text and "step 35/100" in text
        await pilot.resize_terminal(160, 40)
        await wait_until(pilot, lambda: "elapsed" in str(bar.render()))


async def test_runs_are_not_rescanned_while_hidden(runs_root, monkeypatch):
    import clmtune.tui.screens.runs as runs_screen

    run_dir = recorded_run(runs_root, "demo", "completed", status="completed")
    fake_checkpoint(run_dir, 20)
    scans = []
    real = runs_screen.RunsLister.refresh

    def counted(self, *args, **kwargs):
        scans.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(runs_screen.RunsLister, "refresh", counted)
    monkeypatch.setattr(runs_screen, "REFRESH_S", 0.05)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(scans) >= 2)
        await app.push_screen(LiveScreen(run_dir, follow=False))
        await pilot.pause(0.2)
        hidden = len(scans)
        await pilot.pause(0.4)
        assert len(scans) == hidden
        app.pop_screen()
        await wait_until(pilot, lambda: len(scans) > hidden)


async def test_quit_names_each_live_run_once(runs_root, monkeypatch, capsys):
    monkeypatch.chdir(runs_root.parent)
    recorded_run(runs_root, "live", "running_gpu", status="running")
    app = _app(Path("runs"))  # relative, as typed: the listing says runs/live
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(app.listed_running))
        app.live_status[(runs_root / "live").resolve()] = "running"  # what a launch records
        assert len(app.running_runs) == 1
        await pilot.press("q", "q")
        await pilot.pause()
    out = capsys.readouterr()
    assert "Training keeps running: live.\n" in out.out + out.err


async def test_run_keys_on_an_empty_list_say_what_to_do(runs_root):
    app = _app(runs_root)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await wait_until(pilot, lambda: not app.screen.loading)
        for key in ("enter", "space", "c", "g", "m", "r", "f", "d", "x", "c", "enter"):
            await pilot.press(key)
        await pilot.pause()
        # One toast per hint however many keys said it, not one per key.
        hints = [m for m in _messages(app) if m.startswith("No runs yet: press n")]
        assert len(hints) == 1
        toasts = [str(t.render()) for t in app.screen.query("Toast")]
        assert len(toasts) == 2 and sum(t.startswith("No runs yet: press n") for t in toasts) == 1
        assert "Mark two or more runs with space, then press c." in toasts
        assert type(app.screen).__name__ == "RunsScreen"
        app.clear_notifications()  # gone (timed out, clicked): the next key says it again
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.screen.query("Toast")) == 1)
        assert _messages(app) == [hints[0]]


def test_prefetch_warms_the_live_view_and_the_schema(monkeypatch):
    import sys

    from clmtune.backend.settings import schema_cache
    from clmtune.tui import app as app_module

    calls = []
    monkeypatch.setattr(schema_cache, "load_schema_for_ui", lambda: calls.append(1))
    app_module._prefetch()
    assert calls == [1] and "clmtune.tui.screens.live" in sys.modules
    monkeypatch.setattr(schema_cache, "load_schema_for_ui", lambda: 1 / 0)
    app_module._prefetch()  # a failure is left for the editor to report


def test_only_the_real_cli_prefetches(runs_root, monkeypatch):
    from clmtune.tui import app as app_module

    made = []

    class Recorder(ClmtuneApp):
        def run(self, *args, **kwargs):  # no terminal in tests
            made.append(self)

    monkeypatch.setattr(app_module, "ClmtuneApp", Recorder)
    monkeypatch.setattr(app_module.terminal, "interactive", lambda: True)  # as on a terminal
    monkeypatch.setattr(app_module.terminal, "exit_on_hangup", lambda app: None)
    assert app_module.main([str(runs_root)]) == 0
    assert made[0].prefetch is True
    assert ClmtuneApp(runs_root).prefetch is False  # tests and embedders: no background work
