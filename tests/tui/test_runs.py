"""Pilot tests of the runs screen over hand-made run dirs (read by the real backend.rundir)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from clmtune.backend.rundir.listing import list_runs
from clmtune.tui import fmt
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import RunsRefreshed
from clmtune.tui.widgets.run_table import COLUMNS, RunTable
from tests.tui.conftest import (
    FROZEN_NOW,
    fake_checkpoint,
    frozen_clock,
    recorded_run,
    standard_runs,
    wait_until,
)

pytestmark = pytest.mark.anyio


def _app(root: Path) -> ClmtuneApp:
    return ClmtuneApp(root, clock=frozen_clock, remember_theme=False)


async def _loaded(app: ClmtuneApp, pilot, count: int) -> RunTable:
    table = app.screen.query_one(RunTable)
    await wait_until(pilot, lambda: len(table.runs) == count)
    # Rows can land before the table's first resize (a loaded machine): its columns are
    # then the wide ones until that resize rebuilds them for the width.
    await wait_until(pilot, lambda: table.size.width > 0
                     and table._columns_shown == table.column_spec())  # fmt: skip
    return table


def _cells(table: RunTable, row: int) -> dict[str, str]:
    """The cells of a row by column key (the columns shown depend on the width)."""
    keys = [column.key.value for column in table.ordered_columns]
    return dict(zip(keys, (str(c) for c in table.get_row_at(row)), strict=True))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_lists_every_run_newest_first_with_status(runs_root, size):
    standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        table = await _loaded(app, pilot, 4)
        names = [r.name for r in table.runs]
        assert names == ["gpt2-live", "lost-worker", "big-oom", "demo-completed"]
        status = {r.name: r.status for r in table.runs}
        assert status == {"gpt2-live": "running", "lost-worker": "crashed",
                          "big-oom": "failed", "demo-completed": "completed"}
        live = _cells(table, 0)
        assert live["name"] == "gpt2-live" and "35/100" in live["progress"]
        assert live["duration"] == "1h00m"  # running: duration from the injected clock
        done = _cells(table, 3)
        assert done["ppl"] == "11.13" and done["duration"] == "20s"
        if size[0] >= 100:
            assert done["started"] == "3h00m ago" and "model" in done
        else:  # 80 columns: the least needed columns go, nothing scrolls sideways
            assert set(done) == {"mark", "name", "status", "progress", "loss", "ppl",
                                 "duration"}
            # The table's width follows its columns a frame later under load: wait for it
            # (a table that stays wider than the screen still fails).
            await wait_until(pilot, lambda: table.virtual_size.width <= table.size.width,
                             timeout=5.0)
        assert app.running_runs == {runs_root / "gpt2-live"}
        assert not app.screen.has_class("-empty")


async def test_empty_folder_shows_the_hint(runs_root):
    app = _app(runs_root / "missing")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-empty")
        assert "press n to set up the offline demo" in str(
            app.screen.query_one("#runs-empty").render()
        ).replace("Press", "press")


async def test_refresh_keeps_cursor_on_the_same_run(runs_root):
    runs = standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 4)
        await pilot.press("down", "down")
        assert table.selected.name == "big-oom"
        fake_checkpoint(runs["completed"], 10)
        app.screen.post_message(RunsRefreshed(list_runs(runs_root)))
        await pilot.pause()
        assert table.selected.name == "big-oom"


async def test_enter_opens_the_live_view(runs_root):
    standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "LiveScreen"
        assert app.screen.run_dir == runs_root / "gpt2-live"


async def test_delete_refuses_running_and_deletes_after_confirm(runs_root):
    runs = standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 4)
        await pilot.press("d")  # cursor on the running run
        await pilot.pause()
        assert type(app.screen).__name__ == "RunsScreen"
        assert any("stop it first" in n.message for n in app._notifications)
        await pilot.press("down", "down", "down", "d")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        await pilot.press("y")
        await wait_until(pilot, lambda: len(table.runs) == 3)
        assert not runs["completed"].exists()


async def test_delete_cancelled_keeps_the_run(runs_root):
    runs = standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("down", "down", "down", "d")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert runs["completed"].exists()


async def test_metrics_key_opens_saved_metrics(runs_root):
    standard_runs(runs_root)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("down", "down", "down", "m")
        await pilot.pause()
        assert type(app.screen).__name__ == "MetricsScreen"


async def test_new_opens_the_editor(runs_root):
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "EditorScreen"


# ------------------------------------------------------------------ large folders, keys


def _plain_run(root: Path, name: str, start: float, step: int = 10, max_steps: int = 10) -> Path:
    """A small finished run: run.json and an HF trainer_state.json (no events)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(
        {"status": "completed", "start_time": start, "end_time": start + 5.0, "pid": 1}))
    (run_dir / "trainer_state.json").write_text(json.dumps(
        {"global_step": step, "max_steps": max_steps, "log_history": []}))
    return run_dir


def _many_runs(root: Path, count: int) -> list[str]:
    """``count`` runs started a minute apart; their names newest first."""
    names = [f"sweep-{i:03d}" for i in range(count)]
    for i, name in enumerate(names):
        _plain_run(root, name, FROZEN_NOW - 7200 + 60 * i)
    return names[::-1]


def _rendered_row(table: RunTable, row: int) -> str:
    """The text of a row as painted (cells cut to their column widths)."""
    return table.render_line(row + 1 - table.scroll_offset.y).text  # +1: the header


async def test_loading_runs_is_said_until_the_listing_arrives(runs_root, monkeypatch):
    from clmtune.backend.rundir import listing, summary

    standard_runs(runs_root)
    release = threading.Event()
    real_read, real_list = summary.read_run, listing.list_runs

    def slow_read(path):
        release.wait(10)
        return real_read(path)

    def slow_list(root):
        release.wait(10)
        return real_list(root)

    monkeypatch.setattr(summary, "read_run", slow_read)
    monkeypatch.setattr(listing, "list_runs", slow_list)
    app = _app(runs_root)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)
            message = str(app.screen.query_one("#runs-empty").render())
            assert "Loading runs" in message and "No runs yet" not in message
            # n while loading is not a first start: no demo preset forced on the user
            assert app._has_runs()
            release.set()
            await _loaded(app, pilot, 4)
            assert not app.screen.has_class("-empty")
    finally:
        release.set()


async def test_lands_on_the_newest_run_and_paging_keys_move(runs_root):
    names = _many_runs(runs_root, 40)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 40)
        assert table.selected.name == names[0]
        await pilot.press("end")
        assert table.selected.name == names[-1]
        await pilot.press("home")
        assert table.selected.name == names[0]
        await pilot.press("pagedown")
        assert table.cursor_row > 5
        await pilot.press("pageup")
        assert table.selected.name == names[0]
        # A run started now (e.g. from the editor) is where the list lands next.
        _plain_run(runs_root, "started-now", FROZEN_NOW)
        app.screen.refresh_runs()
        await _loaded(app, pilot, 41)
        assert table.selected.name == "started-now"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_step_column_never_cuts_digits(runs_root, size):
    _plain_run(runs_root, "long-run", FROZEN_NOW - 60, step=2384, max_steps=4000)
    _plain_run(runs_root, "short-run", FROZEN_NOW - 120, step=5, max_steps=10)
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        table = await _loaded(app, pilot, 2)
        await pilot.pause()
        assert "2384/4000" in _rendered_row(table, 0)
        assert "5/10" in _rendered_row(table, 1)
        assert table.virtual_size.width <= table.size.width  # nothing scrolls sideways


def test_lister_reads_only_what_changed(runs_root):
    from clmtune.tui.listing import RunsLister

    names = _many_runs(runs_root, 12)
    lister = RunsLister(runs_root, first=5)
    got: list[list[str]] = []
    assert lister.refresh(lambda runs: got.append([r.name for r in runs]))
    # The newest rows come first, then the whole folder, newest first.
    assert got == [names[:5], names]
    assert lister.reads == 12
    got.clear()
    assert not lister.refresh(got.append)  # nothing changed: nothing read, nothing sent
    assert lister.reads == 12 and got == []
    run_json = runs_root / names[3] / "run.json"
    info = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**info, "status": "failed", "error": "boom"}))
    os.utime(run_json, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert lister.refresh(lambda runs: got.append(runs))
    assert lister.reads == 13
    assert {r.name: r.status for r in got[-1]}[names[3]] == "failed"
    shutil.rmtree(runs_root / names[0])
    assert lister.refresh(lambda runs: got.append(runs))
    assert [r.name for r in got[-1]] == names[1:] and lister.reads == 13


def test_newest_started_reads_start_times_when_every_mtime_is_the_same(tmp_path):
    """A sweep of hard-linked or copied runs: every run.json has one mtime, so the start
    times decide; a damaged run.json and a folder without one rank by their mtimes."""
    import random

    from clmtune.tui.listing import newest_started

    starts = list(range(40))
    random.Random(3).shuffle(starts)
    stamp = 1_700_000_100
    children = []
    for i, start in enumerate(starts):
        run_dir = tmp_path / f"run-{i:02d}"
        run_dir.mkdir()
        (run_dir / "run.json").write_text(json.dumps({"start_time": 1_700_000_000 + start}))
        os.utime(run_dir / "run.json", (stamp, stamp))
        children.append(str(run_dir))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")
    os.utime(damaged / "run.json", (stamp, stamp))  # its mtime: newer than every start
    plain = tmp_path / "plain-hf"
    plain.mkdir()
    os.utime(plain, (1_600_000_000, 1_600_000_000))  # an old folder without run.json
    children += [str(damaged), str(plain)]
    by_start = sorted(range(40), key=lambda i: -starts[i])
    expected = [str(damaged)] + [children[i] for i in by_start[:4]]
    assert newest_started(children, 5) == expected
    assert newest_started(children, 100)[-1] == str(plain)


async def test_a_refused_delete_says_why(runs_root, monkeypatch):
    from clmtune.backend.errors import RunDirError
    from clmtune.backend.rundir import summary

    runs = standard_runs(runs_root)

    def refuse(run_dir):
        raise RunDirError(f"{run_dir.name}: its worker started again; stop it first")

    monkeypatch.setattr(summary, "delete_run", refuse)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot, 4)
        await pilot.press("down", "down", "down", "d")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: any("Could not delete" in (n.title or "")
                                            for n in app._notifications))
        (note,) = [n for n in app._notifications if "Could not delete" in (n.title or "")]
        assert "stop it first" in note.message
        assert runs["completed"].exists()


async def test_a_resumed_running_run_took_leaves_out_the_gap_between_attempts(runs_root):
    # Attempt 1 ran 10 s, the resume started 1011 s after the first start; the clock
    # reads an hour after it. Took counts the attempts, as the live view's elapsed does,
    # not the hour since the first start.
    run = recorded_run(runs_root, "resumed-live", "resumed", status="running")
    events = (run / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["type"] == "run_finished"
    (run / "events.jsonl").write_text("\n".join(events[:-1]) + "\n")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 1)
        assert table.runs[0].status == "running" and table.runs[0].attempts == 2
        run_summary = table.runs[0]
        live_view = run_summary.state.elapsed(FROZEN_NOW, "running")  # the phase bar's figure
        assert 43 * 60 <= live_view < 44 * 60  # 10 s + (3600 - 1011) s, not 3600 s
        assert _cells(table, 0)["duration"] == fmt.duration(live_view)


async def test_a_run_whose_loss_became_nan_is_flagged_in_the_list(runs_root):
    recorded_run(runs_root, "diverged", "nan", status="completed")
    recorded_run(runs_root, "fine", "completed", status="completed", shift=-600)
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 2)
        cells = {r.name: _cells(table, i) for i, r in enumerate(table.runs)}
        assert cells["diverged"]["loss"].startswith("⚠")
        assert len(cells["diverged"]["loss"]) <= 6  # the column's width: nothing cut
        assert "⚠" not in cells["fine"]["loss"]


async def test_long_default_names_keep_their_time_at_80_columns(runs_root):
    # Cut at the end, both read "blocksize-20261202-1231…": which run is which?
    for stamp in ("123115", "123144"):
        recorded_run(runs_root, f"blocksize-20261202-{stamp}", "failed", status="failed")
    app = _app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(app, pilot, 2)
        width = dict(table.column_spec())["name"]
        names = [_cells(table, i)["name"] for i in range(2)]
        assert all(len(name) <= width for name in names), (names, width)
        assert {name[-6:] for name in names} == {"123115", "123144"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.24, "4.2s"), (45, "45s"), (725, "12m05s"), (11220, "3h07m"), (187200, "2d04h"),
     (9 * 86400 + 23 * 3600, "9d23h"), (1113 * 86400 + 15 * 3600, "1113d")],
)
def test_durations_fit_the_took_column(seconds, text):
    assert fmt.duration(seconds) == text
    width = dict((key, w) for key, _, w in COLUMNS)["duration"]
    assert len(text) <= width


# ------------------------------------------------------- marking, clock, cut cells

LONG_NAME = ("lr-sweep-with-a-very-long-descriptive-name-for-the-cosine-schedule-warmup-"
             "ablation-run-07x")  # 90 characters, no time stamp


def _footer_keys(app: ClmtuneApp) -> list[str]:
    return [key.key for key in app.screen.query("FooterKey")]


@pytest.mark.parametrize(("size", "no_color", "theme"),
                         [((80, 24), False, "clmtune-dark"), ((120, 40), True, "clmtune-light")],
                         ids=["80x24", "120x40-no-color-light"])
async def test_marked_runs_show_a_mark_their_count_and_the_keys(runs_root, monkeypatch, size,
                                                                no_color, theme):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    _plain_run(runs_root, "demo-20261203-181358", FROZEN_NOW - 60)
    _plain_run(runs_root, LONG_NAME, FROZEN_NOW - 120)
    _plain_run(runs_root, "unmarked", FROZEN_NOW - 180)
    assert len(LONG_NAME) == 90
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        table = await _loaded(app, pilot, 3)
        # The footer recomposes a few message hops after the rows land.
        await wait_until(pilot, lambda: "space" in _footer_keys(app))
        keys = _footer_keys(app)
        assert "space" in keys and "c" not in keys  # c shows once two are marked
        await pilot.press("space", "down", "space")
        await pilot.pause()
        # A glyph on each marked row (not a colour alone: NO_COLOR and every theme show it).
        assert [_cells(table, i)["mark"] for i in range(3)] == ["●", "●", ""]
        assert [_rendered_row(table, i).lstrip()[:1] for i in range(3)] == ["●", "●", "u"]
        title = str(app.screen.query_one("#runs-title").render())
        assert "2 marked" in title and "c compares" in title and "space unmarks" in title
        assert "…" in title and len(title) <= size[0] - 2  # the long name cut to fit
        await wait_until(pilot, lambda: "c" in _footer_keys(app))
        keys = _footer_keys(app)
        assert {"space", "c", "question_mark", "q"} <= set(keys)
        for key in app.screen.query("FooterKey"):  # nothing pushed off the footer
            assert key.region.right <= size[0]
        await pilot.press("space")  # unmark the second
        await pilot.pause()
        assert [_cells(table, i)["mark"] for i in range(3)] == ["●", "", ""]
        title = str(app.screen.query_one("#runs-title").render())
        assert "1 marked: demo-20261203-181358" in title and "c compares" in title
        await wait_until(pilot, lambda: "c" not in _footer_keys(app))


def test_marked_title_keeps_the_count_and_keys_and_cuts_names():
    from clmtune.tui.screens.runs import marked_title

    base = "clmtune · runs in ./runs"
    names = ["demo-20261203-181358", LONG_NAME]
    for width in (60, 78, 118, 200):
        title = marked_title(base, names, width)
        assert len(title) <= width, (width, title)
        assert "2 marked" in title and "c compares" in title
    assert marked_title(base, names, 200) == (
        f"{base} · 2 marked: demo-20261203-181358, {LONG_NAME} · c compares · space unmarks")
    assert marked_title(base, [], 80) == base


async def test_started_times_follow_the_clock_without_reading_the_runs(runs_root, monkeypatch):
    from clmtune.tui.screens import runs as runs_screen

    monkeypatch.setattr(runs_screen, "CLOCK_S", 0.1)
    _plain_run(runs_root, "finished", FROZEN_NOW - 240)
    now = [FROZEN_NOW]
    app = ClmtuneApp(runs_root, clock=lambda: now[0], remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await _loaded(app, pilot, 1)
        assert _cells(table, 0)["started"] == "4m ago"
        reads = app.screen._lister.reads
        now[0] += 600
        await wait_until(pilot, lambda: _cells(table, 0)["started"] == "14m ago", timeout=2)
        assert "14m ago" in _rendered_row(table, 0)
        assert app.screen._lister.reads == reads  # nothing read again for it


async def test_marking_a_run_does_not_leave_its_started_time_behind(runs_root, monkeypatch):
    # A mark repaints the mark and the name only; its bookkeeping took the whole row as
    # painted, so the next clock tick saw "14m ago" as shown and left "4m ago" on screen.
    from clmtune.tui.screens import runs as runs_screen

    monkeypatch.setattr(runs_screen, "CLOCK_S", 3600)  # the test ticks by hand
    _plain_run(runs_root, "finished", FROZEN_NOW - 240)
    now = [FROZEN_NOW]
    app = ClmtuneApp(runs_root, clock=lambda: now[0], remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await _loaded(app, pilot, 1)
        now[0] += 600
        await pilot.press("space")
        await wait_until(pilot, lambda: _cells(table, 0)["mark"] == "●")
        assert _cells(table, 0)["started"] == "4m ago"  # not repainted by the mark
        table.tick()
        await pilot.pause()
        assert _cells(table, 0)["started"] == "14m ago"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_cut_names_and_models_end_in_an_ellipsis_and_keep_their_end(runs_root, size):
    long_model = "/data/org/models/a-rather-long-model-family-name/checkpoint-12000"
    for name, model, age in ((LONG_NAME, "clmtune-demo/model", 60),
                             ("other", long_model, 120)):
        run = _plain_run(runs_root, name, FROZEN_NOW - age)
        (run / "config.toml").write_text(f'[model]\nmodel_name_or_path = "{model}"\n')
    _plain_run(runs_root, "old", FROZEN_NOW - 86400 * 3)  # started days ago: a whole date
    app = _app(runs_root)
    async with app.run_test(size=size) as pilot:
        table = await _loaded(app, pilot, 3)
        await pilot.pause()
        widths = dict(table.column_spec())
        rows = {r.name: _cells(table, i) for i, r in enumerate(table.runs)}
        name = rows[LONG_NAME]["name"]
        assert len(name) <= widths["name"] and "…" in name and name.endswith("run-07x")
        assert table.virtual_size.width <= table.size.width  # nothing scrolls sideways
        if size[0] < 100:
            return  # no Model or Started column at 80 columns
        assert rows[LONG_NAME]["model"] == "clmtune-demo/model"  # it fits: whole
        model = rows["other"]["model"]
        assert len(model) <= widths["model"]
        assert model.startswith("…") and model.endswith("/checkpoint-12000")
        started = rows["old"]["started"]
        assert len(started) == 10 and started in _rendered_row(table, 2)  # 2023-11-11


@pytest.mark.parametrize(("value", "text"), [
    (2.583, "2.583"), (11.13, "11.13"), (49020.3, "49020"), (123456.7, "123457"),
    (4.85e8, "4.85e8"), (1.234e-4, "1.2e-4"), (float("nan"), "nan"), (None, "-"),
])
def test_figures_keep_what_fits_their_column(value, text):
    from clmtune.tui.widgets.run_table import NUMBER_WIDTH, fit_num

    # The perplexity of an untrained model (~vocabulary size) read "4.902e" (cut).
    assert fit_num(value) == text and len(text) <= NUMBER_WIDTH


async def test_ppl_is_the_perplexity_of_the_eval_beside_it(runs_root):
    # An overfitting run: its best eval (6.433 at step 5) sat beside the perplexity of its
    # last (exp 8.421 = 4541); the CLI's runs table says "best ppl" for the same figure.
    import math

    run_dir = _plain_run(runs_root, "overfit", FROZEN_NOW - 60)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    state["log_history"] = [{"step": 5, "eval_loss": 6.433}, {"step": 10, "eval_loss": 8.421}]
    (run_dir / "trainer_state.json").write_text(json.dumps(state))
    app = _app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await _loaded(app, pilot, 1)
        cells = _cells(table, 0)
        assert cells["eval"] == "6.433"
        assert cells["ppl"] == f"{math.exp(6.433):.0f}" == "622"  # not 4541
