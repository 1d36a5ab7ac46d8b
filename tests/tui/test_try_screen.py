"""The Try screen with the real helper process on the tiny demo model: opened from the runs
list, two folders side by side, the completions equal `clmtune generate`'s, history kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Select, Static

from clmtune.backend.tools.generate_io import read_samples
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.screens.try_model import TryScreen
from tests.tui.conftest import fake_checkpoint, frozen_clock, wait_until

PROMPT = "Once upon a"


def _plain_run(root: Path, model_dir: Path) -> Path:
    """A plain Hugging Face output folder: the demo model as the final model and as a
    complete checkpoint-2 (same weights: what matters here is which folder loads)."""
    run = root / "plain"
    run.mkdir()
    for item in model_dir.iterdir():
        shutil.copy(item, run / item.name)
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 2, "log_history": []}))
    ckpt = fake_checkpoint(run, 2)
    (ckpt / ".clmtune-complete").unlink()  # not ours: no marker needed
    for item in model_dir.iterdir():
        shutil.copy(item, ckpt / item.name)
    return run


def _direct(folder: Path, tokens: int) -> str:
    from clmtune.backend.tools.generate import GenSettings, generate, load_for_generation

    model, tokenizer = load_for_generation(folder, "cpu")
    return generate(model, tokenizer, PROMPT, GenSettings(max_new_tokens=tokens)).completion


@pytest.mark.anyio
async def test_try_two_checkpoints_side_by_side_with_the_real_helper(runs_root, tiny_assets):
    run = _plain_run(runs_root, tiny_assets.model_dir)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.screen.query_one("RunTable").runs) == 1)
        await pilot.press("g")
        screen = app.screen
        assert isinstance(screen, TryScreen) and screen.run_dir == run
        await wait_until(pilot, lambda: [c.label for c in screen.choices] ==
                         ["final", "checkpoint-2"])
        assert screen.query_one("#try-a", Select).value == "final"
        screen.query_one("#try-b", Select).value = "checkpoint-2"
        screen.query_one("#try-tokens", Input).value = "6"
        await pilot.pause()
        assert screen.query_one("#try-pane-B").display
        await pilot.press("ctrl+o")  # CPU, as the direct calls below (a GPU may be there)
        assert screen.device == "cpu" and screen.notice == "Device: CPU"
        screen.query_one("#try-prompt", Input).value = PROMPT
        await pilot.press("enter")
        assert screen.busy == {"A", "B"}
        await wait_until(pilot, lambda: not screen.busy, timeout=120)
        assert screen.notice == "Done", screen.notice
        want = _direct(run, 6)
        assert screen.texts == {"A": want, "B": _direct(run / "checkpoint-2", 6)}
        assert "final · 6 tokens" in str(screen.query_one("#try-title-A", Static).render())
        tried = [s for s in read_samples(run) if s["source"] == "try"]
        assert [(s["checkpoint"], s["prompt"], s["completion"]) for s in tried] == [
            ("final", PROMPT, want), ("checkpoint-2", PROMPT, screen.texts["B"])]
        assert {s["settings"]["device"] for s in tried} == {"cpu"}
        history = screen.query_one("#try-history", DataTable)
        await wait_until(pilot, lambda: history.row_count == 2)

        await pilot.press("escape")  # the helper ends with the screen
        proc = screen._proc
        assert proc is None
        await pilot.press("g")  # reopened: the history is read back from samples.jsonl
        again = app.screen
        assert isinstance(again, TryScreen) and again is not screen
        table = again.query_one("#try-history", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        assert {table.get_row_at(i)[1] for i in range(2)} == {"final", "checkpoint-2"}
        await pilot.press("escape")


@pytest.mark.anyio
async def test_live_view_shows_the_latest_samples_under_the_chart(runs_root):
    from clmtune.backend.events import EventWriter, make_event
    from clmtune.tui.screens.live import LiveScreen
    from tests.tui.conftest import recorded_run

    run_dir = recorded_run(runs_root, "live", "running_gpu", status="running")
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = LiveScreen(run_dir, poll_s=0.05)
        await app.push_screen(screen)
        panel = screen.query_one("#live-samples", Static)
        await wait_until(pilot, lambda: screen.view.step > 0)
        assert not panel.display  # no [samples]: nothing takes room from the chart
        with EventWriter(run_dir / "events.jsonl") as writer:
            for step, text in ((40, " the old"), (50, " a time,\nthere")):
                writer.emit(make_event("sample", step=step, seconds=0.2, samples=[
                    {"prompt": PROMPT, "completion": text, "tokens": 3}]))
        await wait_until(pilot, lambda: screen.view.samples_step == 50)
        await wait_until(pilot, lambda: panel.display)  # at the next render tick
        assert str(panel.render()).splitlines() == [
            "samples at step 50:", f"{PROMPT} → a time, there"]
        await pilot.press("g")  # the Try screen for this run, from the live view
        assert isinstance(app.screen, TryScreen) and app.screen.run_dir == run_dir
        await pilot.press("escape")
        assert app.screen is screen


# ---- without the helper process: what the screen shows and sends ---------------------


@pytest.fixture
def no_helper(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The Try screen without its helper process: the requests it would send, kept."""
    sent: list[dict] = []
    monkeypatch.setattr(TryScreen, "_helper", lambda self: None)
    monkeypatch.setattr(TryScreen, "_send", lambda self, request: sent.append(request))
    return sent


def _two_checkpoints(root: Path) -> Path:
    run = root / "two"
    fake_checkpoint(run, 2)
    fake_checkpoint(run, 4)
    return run


async def _open_try(pilot, app: ClmtuneApp, run: Path) -> TryScreen:
    app.open_try(run)
    await wait_until(pilot, lambda: isinstance(app.screen, TryScreen)
                     and len(app.screen.choices) == 2)
    return app.screen


@pytest.mark.anyio
async def test_sampling_fields_show_their_whole_value_at_80_columns(runs_root, no_helper):
    run = _two_checkpoints(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_try(pilot, app, run)
        values = {"tokens": "1024", "temperature": "0.95", "seed": "1234567"}
        for name, value in values.items():
            field = screen.query_one(f"#try-{name}", Input)
            field.focus()
            field.value = ""
            await pilot.press(*value)
            assert field.value == value
            await pilot.pause()
            assert value in field.render_line(0).text, (name, field.render_line(0).text)
        screen.query_one("#try-prompt", Input).focus()
        await pilot.pause()
        for name, value in values.items():  # and once the cursor has left them
            assert value in screen.query_one(f"#try-{name}", Input).render_line(0).text
        # The checkpoint pickers keep their room.
        assert screen.query_one("#try-b", Select).region.right <= 80


def _write_samples(run: Path, *pairs: tuple[str, str]) -> None:
    with open(run / "samples.jsonl", "w", encoding="utf-8") as fh:
        for prompt, completion in pairs:
            fh.write(json.dumps({"time": 1.7e9, "source": "try", "checkpoint": "checkpoint-4",
                                 "prompt": prompt, "completion": completion}) + "\n")


async def _history(pilot, screen: TryScreen, rows: int) -> list[list[str]]:
    table = screen.query_one("#try-history", DataTable)
    await wait_until(pilot, lambda: table.row_count == rows)
    return [[str(cell) for cell in table.get_row_at(i)[2:]] for i in range(rows)]


@pytest.mark.anyio
async def test_history_shows_brackets_as_written(runs_root, no_helper):
    run = _two_checkpoints(runs_root)
    _write_samples(run, ("Hi [/i]", "[/b] not [bold]markup"))  # MarkupError before
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_try(pilot, app, run)
        assert await _history(pilot, screen, 1) == [["Hi [/i]", "[/b] not [bold]markup"]]


@pytest.mark.anyio
async def test_a_blank_completion_is_shown_as_such(runs_root, no_helper):
    from clmtune.tui.screens.try_model import HelperLine

    run = _two_checkpoints(runs_root)
    _write_samples(run, ("Hi", "\n      "), ("Hi", "a cat"))
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_try(pilot, app, run)
        assert await _history(pilot, screen, 2) == [  # newest first
            ["Hi", "a cat"], ["Hi", r"(only whitespace: '\n      ')"]]

        screen.query_one("#try-prompt", Input).value = "Hi"
        await pilot.press("enter")
        assert screen.busy == {"A"}
        screen.post_message(HelperLine({"type": "token", "id": "A1", "text": "\n  "}))
        await pilot.pause()
        pane = screen.query_one("#try-text-A", Static)
        assert str(pane.render()).strip() == ""  # still coming: the text as it is
        screen.post_message(HelperLine({"type": "done", "id": "A1", "completion": "\n      ",
                                        "tokens": 2, "seconds": 0.1}))
        await wait_until(pilot, lambda: not screen.busy)
        assert str(pane.render()) == r"(only whitespace: '\n      ')"
        assert screen.texts["A"] == "\n      "  # what was generated, unchanged
        screen.post_message(HelperLine({"type": "done", "id": "A1", "completion": "",
                                        "tokens": 0, "seconds": 0.1}))
        await pilot.pause()
        assert str(pane.render()) == "(empty: nothing generated)"


@pytest.mark.anyio
async def test_sampling_draws_one_seed_for_both_sides(runs_root, no_helper):
    from clmtune.tui.screens.try_model import HelperLine

    run = _two_checkpoints(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_try(pilot, app, run)
        screen.query_one("#try-b", Select).value = "checkpoint-2"
        screen.query_one("#try-temperature", Input).value = "0.9"
        screen.query_one("#try-prompt", Input).value = "Hi"
        await pilot.pause()
        seeds = []
        for _ in range(3):
            screen.busy.clear()
            await pilot.press("ctrl+g")
            a, b = no_helper[-2:]
            assert (a["checkpoint"], b["checkpoint"]) == ("checkpoint-4", "checkpoint-2")
            assert isinstance(a["seed"], int) and a["seed"] == b["seed"]
            assert f"(seed {a['seed']})" in screen.notice
            seeds.append(a["seed"])
        for pane in ("A", "B"):  # each side's record names the seed it was given
            screen.post_message(HelperLine({
                "type": "done", "id": f"{pane}3", "completion": " x", "tokens": 1,
                "seconds": 0.1, "record": {"settings": {"seed": seeds[-1]}}}))
        await wait_until(pilot, lambda: not screen.busy)
        for pane in ("A", "B"):
            title = str(screen.query_one(f"#try-title-{pane}", Static).render())
            assert title.endswith(f"1 tokens · 0.1 s · seed {seeds[-1]}"), title
        assert len(set(seeds)) > 1  # a new draw per press (2**31 values: never thrice equal)

        screen.busy.clear()
        screen.query_one("#try-seed", Input).value = "7"  # a seed typed in is used as it is
        await pilot.press("ctrl+g")
        assert [r["seed"] for r in no_helper[-2:]] == [7, 7]

        screen.busy.clear()
        screen.query_one("#try-seed", Input).value = ""
        screen.query_one("#try-temperature", Input).value = "0"  # greedy: no seed at all
        await pilot.press("ctrl+g")
        assert [r["seed"] for r in no_helper[-2:]] == [None, None]
        assert "seed" not in screen.notice
