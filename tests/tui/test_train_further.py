"""The dashboard never resumes a complete run as it is; it offers "train further" instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import clmtune.backend.launch as launch
from clmtune.tui.app import ClmtuneApp
from clmtune.tui.messages import EventsArrived
from clmtune.tui.screens.live import LiveScreen
from clmtune.tui.screens.train_further import TrainFurtherScreen, parse_max_steps
from tests.tui.conftest import fake_checkpoint, frozen_clock, recorded_run, recording, wait_until

pytestmark = pytest.mark.anyio


def _complete_run(root: Path) -> Path:
    run_dir = recorded_run(root, "done", "completed", status="completed")
    (run_dir / "config.toml").write_text(
        '[model]\nmodel_name_or_path = "tiny-gpt2"\n[training]\nmax_steps = 60\n'
    )
    fake_checkpoint(run_dir, 40)
    fake_checkpoint(run_dir, 60)
    (run_dir / "trainer_state.json").write_text(json.dumps({"global_step": 60, "max_steps": 60}))
    return run_dir


def _footer_actions(app: ClmtuneApp) -> set[str]:
    return {key.action for key in app.screen.query("FooterKey")}


async def test_a_complete_run_offers_train_further_not_resume(runs_root, monkeypatch):
    run_dir = _complete_run(runs_root)
    started = []
    monkeypatch.setattr(launch, "start_run", lambda config_path=None, **kw: started.append(kw)
                        or launch.LaunchedRun(run_dir=run_dir, pid=1, command=[], process=None))
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, recording("completed")))
        await wait_until(pilot, lambda: screen.status == "completed")
        await pilot.pause()
        actions = _footer_actions(app)
        assert "train_further" in actions and "resume" not in actions
        # r on a complete run: no "Resume from …?" confirmation, the train-further dialog.
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, TrainFurtherScreen), [n.message for n in app._notifications]
        dialog = app.screen
        assert "step 60 (max_steps = 60)" in str(dialog.query_one("#further-body").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        assert started == []  # cancelled: nothing started
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainFurtherScreen))
        field = app.screen.query_one("#further-steps")
        field.value = ""
        await pilot.press("5", "0", "enter")  # not above the step reached: refused in place
        await pilot.pause()
        assert isinstance(app.screen, TrainFurtherScreen)
        assert "more than 60" in str(app.screen.query_one("#further-error").render())
        field.value = ""
        await pilot.press("9", "0", "enter")
        await wait_until(pilot, lambda: bool(started))
        assert started[0]["run_dir"] == run_dir
        assert started[0]["resume"] == str((run_dir / "checkpoint-60").resolve())
        assert started[0]["overrides"] == {"training": {"max_steps": 90}}


async def test_a_stopped_run_still_resumes_and_hides_train_further(runs_root):
    run_dir = recorded_run(runs_root, "paused", "completed", status="stopped")
    fake_checkpoint(run_dir, 40)
    events = [e for e in recording("completed") if e["type"] != "run_finished"]
    events.append({**recording("completed")[-1], "status": "stopped"})
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, events))
        await wait_until(pilot, lambda: screen.status == "stopped")
        await pilot.pause()
        actions = _footer_actions(app)
        assert "resume" in actions and "train_further" not in actions


def test_new_max_steps_must_be_a_whole_number_above_the_step_reached():
    assert parse_max_steps("900", 600) == (900, "")
    assert parse_max_steps("600", 600)[0] is None
    assert parse_max_steps("9.5", 600)[0] is None
    assert parse_max_steps("", 600)[0] is None


@pytest.mark.parametrize("typed", ["120.0", "1e3"])
async def test_a_typed_decimal_is_refused_not_read_as_another_number(runs_root, monkeypatch,
                                                                       typed):
    # An integer-only Input drops the "." and the "e": "120.0" arrived as 1200, "1e3" as 13.
    run_dir = _complete_run(runs_root)
    started = []
    monkeypatch.setattr(launch, "start_run", lambda config_path=None, **kw: started.append(kw)
                        or launch.LaunchedRun(run_dir=run_dir, pid=1, command=[], process=None))
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(TrainFurtherScreen("done", 60, 60, "checkpoint-60"))
        await pilot.pause()
        field = app.screen.query_one("#further-steps")
        field.value = ""
        await pilot.press(*typed, "enter")
        await pilot.pause()
        assert field.value == typed
        assert isinstance(app.screen, TrainFurtherScreen) and started == []
        assert "whole number" in str(app.screen.query_one("#further-error").render())


def _stopped_with_a_later_checkpoint(root: Path) -> Path:
    """Stopped at step 60 with checkpoints 40 and 60: a resume from 40 leaves 60 behind."""
    run_dir = recorded_run(root, "paused", "completed", status="stopped")
    (run_dir / "config.toml").write_text(
        '[model]\nmodel_name_or_path = "tiny-gpt2"\n[training]\nmax_steps = 120\n')
    fake_checkpoint(run_dir, 40)
    fake_checkpoint(run_dir, 60)
    return run_dir


def test_the_resume_question_of_a_real_plan_has_no_settings_heading_for_a_move(runs_root):
    from clmtune.backend.resume_plan import plan_run, run_settings
    from clmtune.tui.screens.confirm import SETTINGS_HEADING, resume_body

    run_dir = _stopped_with_a_later_checkpoint(runs_root)
    plan = plan_run(run_dir, run_settings(run_dir), str(run_dir / "checkpoint-40"))
    assert [p.name for p in plan.superseded] == ["checkpoint-60"]
    assert any("checkpoint-60" in w for w in plan.warnings)  # the backend words it as one
    body = resume_body("paused", plan)
    assert SETTINGS_HEADING not in body  # no setting changed
    assert body.split("\n\n")[-1].startswith("Later checkpoint (the history this resume")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_resuming_from_an_earlier_checkpoint_asks_without_a_false_settings_heading(
        runs_root, size):
    from clmtune.tui.screens.confirm import SETTINGS_HEADING

    run_dir = _stopped_with_a_later_checkpoint(runs_root)
    app = ClmtuneApp(runs_root, clock=frozen_clock, remember_theme=False)
    async with app.run_test(size=size) as pilot:
        screen = LiveScreen(run_dir, follow=False)
        await app.push_screen(screen)
        screen.post_message(EventsArrived(run_dir, recording("completed")))
        table = screen.query_one("CheckpointTable")
        await wait_until(pilot, lambda: len(table.rows_shown) == 2)
        await pilot.press("1", "down", "r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "checkpoint-60" in body and SETTINGS_HEADING not in body
