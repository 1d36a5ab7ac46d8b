"""Every screen paints: in every theme, under NO_COLOR, on an ASCII terminal, with text
from files that looks like Rich markup, and on small terminals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from clmtune.tui import terminal
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.screens.confirm import ConfirmScreen
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.widgets.log_view import LogView, clean_line
from clmtune.tui.widgets.loss_chart import LossChart
from tests.tui.conftest import frozen_clock, recorded_run, standard_runs, wait_until

pytestmark = pytest.mark.anyio

THEME_NAMES = sorted(ClmtuneApp(Path("runs"), remember_theme=False).available_themes)


def _chart_drawn(app: ClmtuneApp) -> bool:
    """The live view's chart holds points (waited for, not slept on: CI machines are slow)."""
    charts = app.screen.query(LossChart)
    return bool(charts) and charts.first().plotted_points > 0


async def visit_every_screen(app: ClmtuneApp, pilot: Any, runs: dict[str, Path]) -> None:
    """Runs list, live view, metrics, editor, help and a dialog, one after the other."""
    await wait_until(pilot, lambda: len(app.screen.query_one("RunTable").runs) == 4)
    app.open_live(runs["failed"])  # chart, error panel, memory panel, tabs
    await pilot.pause(0.3)
    app.pop_screen()
    app.open_metrics(runs["completed"])
    await pilot.pause(0.3)
    app.pop_screen()
    # The editor asks for a file once it is mounted: wait for that prompt, then close the
    # prompt and the editor in turn (popping on a timer raced the editor's own push).
    app.action_open_toml()
    await wait_until(pilot, lambda: type(app.screen).__name__ == "PathPrompt", timeout=30)
    app.pop_screen()
    await wait_until(pilot, lambda: type(app.screen).__name__ == "EditorScreen", timeout=30)
    app.pop_screen()
    await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", timeout=30)
    app.action_help()
    await pilot.pause()
    app.pop_screen()
    app.push_screen(ConfirmScreen("Delete [run]?", "[/data/train.txt] goes"))
    await pilot.pause()
    app.pop_screen()
    await pilot.pause()


@pytest.mark.parametrize("theme", THEME_NAMES)
async def test_every_theme_paints_every_screen(runs_root: Path, theme: str) -> None:
    runs = standard_runs(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = theme  # undefined $status-stopped ended the app for all but ours
        await pilot.pause()
        await visit_every_screen(app, pilot, runs)
        assert app.theme == theme
    assert app.return_code in (None, 0)


async def test_no_color_paints_every_screen(runs_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # the live chart crashed Textual's monochrome filter
    runs = standard_runs(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.no_color
        await visit_every_screen(app, pilot, runs)
    assert app.return_code in (None, 0)


# ----------------------------------------------------------------- text is never markup


async def test_error_text_that_looks_like_markup(runs_root: Path) -> None:
    run_dir = recorded_run(runs_root, "bad[1]", "failed", status="failed")
    info = json.loads((run_dir / "run.json").read_text())
    info["error"] = "cannot read [/data/train.txt]: [int] expected"
    info["hint"] = "check [data] train_file"
    (run_dir / "run.json").write_text(json.dumps(info))
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_metrics(run_dir)  # a MarkupError ended the app here
        await wait_until(pilot, lambda: app.screen.ready.is_set())
        await pilot.pause()
        app.pop_screen()
        app.open_live(run_dir)
        await pilot.pause(0.5)
        assert "bad[1]" in str(app.screen.query_one("#live-title").content)
        app.notify("Not saved: [data] train_file: [int] must be [/bold]")
        await pilot.pause()
        shown = [n for n in app._notifications if "[data]" in n.message]  # noqa: SLF001
    # Shown as typed: a markup toast drops "[data]"/"[int]" and fails on "[/bold]".
    assert shown and all(not n.markup for n in shown)
    assert app.return_code in (None, 0)


# ----------------------------------------------------------------- ASCII terminals


@pytest.mark.parametrize(
    ("env", "setting", "expected"),
    [
        ({"TERM": "xterm-256color", "LANG": "en_US.UTF-8"}, None, False),
        ({"TERM": "linux", "LANG": "en_US.UTF-8"}, None, True),
        ({"TERM": "xterm", "LANG": "en_US.ISO-8859-1"}, None, True),
        ({"TERM": "xterm", "LC_ALL": "de_DE.utf8", "LANG": "C"}, None, False),
        ({"TERM": "xterm"}, True, True),  # tui.toml ascii = true
        ({"TERM": "linux", "CLMTUNE_ASCII": "0"}, True, False),  # the variable wins
        ({"TERM": "xterm", "CLMTUNE_ASCII": "1"}, None, True),
    ],
)
def test_ascii_mode_from_the_terminal(env: dict, setting: Any, expected: bool) -> None:
    assert terminal.ascii_mode(env, setting) is expected


def test_ascii_table_keeps_widths() -> None:
    text = "━╌│┏┓⠱⡀•✓✗⚠…·▼▶▁▄█"
    out = terminal.to_ascii(text)
    assert out.isascii() and len(out) == len(text)


async def test_ascii_terminal_draws_only_ascii(runs_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLMTUNE_ASCII", "1")
    runs = standard_runs(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.ascii
        app.open_live(runs["completed"])
        await wait_until(pilot, lambda: _chart_drawn(app))  # the tailer replayed the file
        shot = app.export_screenshot()
    texts = [t for t in shot.split(">") if t and not t.startswith("<")]
    shown = "".join(t.split("<", 1)[0] for t in texts).replace("&#160;", " ")
    braille = [ch for ch in shown if 0x2800 <= ord(ch) <= 0x28FF]
    boxes = [ch for ch in shown if 0x2500 <= ord(ch) <= 0x259F]
    assert not braille and not boxes


# ----------------------------------------------------------------- chart and log


async def test_chart_label_and_small_legend(runs_root: Path) -> None:
    runs = standard_runs(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_live(runs["completed"])
        await wait_until(pilot, lambda: _chart_drawn(app))
        for _ in range(2):
            await pilot.press("l")
            await pilot.pause(0.2)
        margin = app.screen.query_one("#margin-top")
        top = "".join(margin._buffer[0])  # noqa: SLF001 - the label's row
        assert "loss" in top and "(log)" not in top and "los" + "sl" not in top
        legend = app.screen.query_one(LossChart).query_one("#legend")
        assert legend.display
        await pilot.resize_terminal(50, 15)
        await pilot.pause(0.3)
        assert not legend.display  # it would cover most of a small chart
        assert not app.screen.query_one("#live-side").display


def test_clean_log_lines() -> None:
    raw = ("Map:   0%|          | 0/100 [00:00<?, ? examples/s]\r"
           "Map:  40%|████      | 40/100 [00:01<00:01, 40 examples/s]")
    assert clean_line(raw) == "Map:  40% 40/100 [00:01<00:01, 40 examples/s]"
    assert clean_line("\x1b[31mred\x1b[0m and [data]") == "red and [data]"


async def test_log_tab_is_clean_and_scrolls(runs_root: Path) -> None:
    err = "".join(f"line {i}\n" for i in range(120))
    err += "".join(f"Map: {p}%|{'#' * (p // 10)}| {p}/100\n" for p in range(0, 101, 10))
    run_dir = recorded_run(runs_root, "r", "completed", status="completed", err=err)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_live(run_dir)
        await wait_until(pilot, lambda: _chart_drawn(app))
        await pilot.press("2")
        log = app.screen.query_one(LogView)
        await wait_until(pilot, lambda: log.scroll_y > 0)  # the log loaded, at its end
        lines = [strip.text for strip in log.lines]
        assert not any("|#" in line or "\r" in line for line in lines)
        assert sum("Map:" in line for line in lines) == 1  # one line for the whole bar
        bottom = log.scroll_y
        assert bottom > 0
        for key in ("up", "pageup", "home"):
            await pilot.press(key)  # the chart held the focus and panned instead
            await pilot.pause(0.1)
        assert log.scroll_y == 0 < bottom


async def test_live_view_says_its_run_was_deleted(runs_root: Path) -> None:
    runs = standard_runs(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_live(runs["running"])
        await pilot.pause(0.5)
        shutil.rmtree(runs["running"])
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        await wait_until(pilot, lambda: screen.status == "deleted", timeout=15)
        await pilot.pause()
        panel = screen.query_one("#error-panel")
        assert panel.has_class("-shown") and "deleted elsewhere" in str(panel.content)


async def test_question_mark_is_help_not_a_character(runs_root: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text('[model]\nmodel_name_or_path = "gpt2"\n')
    app = ClmtuneApp(runs_root, tmp_path / "run.toml", remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_open_toml()
        editor = app.screen
        await wait_until(pilot, editor.ready.is_set, timeout=120)
        await pilot.pause()
        assert isinstance(app.focused, Input)
        field = app.focused
        before = field.value
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        assert field.value == before
