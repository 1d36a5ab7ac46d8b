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
