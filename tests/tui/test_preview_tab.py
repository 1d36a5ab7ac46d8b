"""The editor's Preview (f6): the real ``clmtune preview`` subprocess, the report, the sample
blocks, and the batch size recomputing steps and memory without reloading the data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, Static

from clmtune.tui.screens.editor import EditorScreen
from clmtune.tui.screens.editor_preview import PreviewScreen, _without_batch
from tests.run_helpers import write_config
from tests.tui.conftest import wait_until

pytestmark = pytest.mark.anyio


class _App(App):
    def __init__(self, editor: EditorScreen) -> None:
        super().__init__()
        self.editor = editor

    def on_mount(self) -> None:
        self.push_screen(self.editor)


def _text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


async def test_preview_tab_reports_and_rebatches_without_reloading(
    tiny_assets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "run.toml", tiny_assets)
    editor = EditorScreen(path)
    app = _App(editor)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, editor.ready.is_set, timeout=120)
        await pilot.press("f6")
        await wait_until(pilot, lambda: isinstance(app.screen, PreviewScreen))
        screen = app.screen
        assert isinstance(screen, PreviewScreen)
        await wait_until(pilot, lambda: screen.report is not None
                         or "failed" in _text(screen, "#preview-status"), timeout=400)
        report = screen.report
        assert report is not None, _text(screen, "#preview-status")
        text = _text(screen, "#preview-report")
        assert f"train {report['train_blocks']:,}" in text and "peak" in text
        samples = _text(screen, "#preview-samples-text")
        assert "--- block 0 (32 tokens" in samples and "<||>" in samples
        assert report["per_device_train_batch_size"] == 4

        before = screen.shown["estimate"]["memory"]["total"]
        screen.query_one("#preview-batch", Input).value = "8"
        await wait_until(pilot, lambda: screen.shown["per_device_train_batch_size"] == 8)
        assert screen.shown["steps_per_epoch"] == math.ceil(report["train_blocks"] / 8)
        assert screen.shown["estimate"]["memory"]["total"] > before
        assert "(batch 8 x" in _text(screen, "#preview-report")
        assert screen.loads == 1  # recomputed, not reloaded

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor)
        await pilot.press("f6")  # the same settings again: the last report, no subprocess
        await wait_until(pilot, lambda: isinstance(app.screen, PreviewScreen)
                         and app.screen is not screen)
        again = app.screen
        await wait_until(pilot, lambda: again.report is not None)
        assert again.loads == 0 and again.report is report


def test_only_the_batch_size_keeps_the_data():
    doc = {"data": {"block_size": 32}, "training": {"per_device_train_batch_size": 4}}
    other_batch = {"data": {"block_size": 32}, "training": {"per_device_train_batch_size": 16}}
    other_block = {"data": {"block_size": 64}, "training": {"per_device_train_batch_size": 4}}
    assert _without_batch(doc) == _without_batch(other_batch)
    assert _without_batch(doc) != _without_batch(other_block)
    assert doc["training"]["per_device_train_batch_size"] == 4  # the document is not changed


def _canned_report(batch: int) -> dict[str, Any]:
    """A ``clmtune preview --json`` report of 25 training blocks, without the subprocess."""
    from clmtune.backend.estimate import plan_steps
    from clmtune.backend.tools.preview import data_warnings

    report: dict[str, Any] = {
        "packing": "group", "block_size": 32, "text_column": "text", "train_rows": 40,
        "eval_rows": 5, "train_tokens": 800, "eval_tokens": 100, "train_blocks": 25,
        "eval_blocks": 3, "lengths": {"min": 5, "p50": 20, "p90": 30, "p99": 31, "max": 31},
        "longer_than_block": 0, "dropped_tokens": 0, "padded_tokens": 0, "truncated_tokens": 0,
        "samples": [], "estimate": None,
        **plan_steps(25, batch_size=batch), "tokens_per_step": batch * 32,
    }
    report["warnings"] = ["a warning of the settings check"] + data_warnings(report, report)
    return report


async def test_preview_batch_field_refuses_bad_sizes_and_warns_as_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from clmtune.tui.app import ClmtuneApp
    from clmtune.tui.screens import editor_preview

    monkeypatch.setattr(editor_preview, "run_preview", lambda doc, path: _canned_report(4))
    doc = {"data": {"block_size": 32}, "training": {"per_device_train_batch_size": 4}}
    app = ClmtuneApp(tmp_path / "runs", remember_theme=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = PreviewScreen(doc, tmp_path / "refuse.toml")
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.shown is not None)
        note = screen.query_one("#preview-batch-note", Static)
        assert not note.display
        report = _text(screen, "#preview-report")
        assert "warning: a warning of the settings check" in report
        assert "fewer than one batch" not in report and "(batch 4 x" in report

        await pilot.press("b")
        field = screen.query_one("#preview-batch", Input)
        assert field.has_focus
        for typed, why in (("0", "must be 1 or more, got 0"), ("-3", "must be 1 or more, got -3"),
                           ("-", "'-' is not a whole number"),
                           ("", "type a whole number, 1 or more")):
            field.value = ""
            await pilot.press(*typed)
            await pilot.pause()
            assert field.value == typed
            assert note.display and note.region.height == 1
            assert _text(screen, "#preview-batch-note") == (
                f"Batch size refused: {why} (figures below: batch 4)")
            assert len(_text(screen, "#preview-batch-note")) <= 78  # one line at 80 columns
            assert screen.shown["per_device_train_batch_size"] == 4  # the figures stay

        field.value = "100000"  # the CLI's warning for this size, from the same function
        await pilot.pause()
        assert not note.display
        report = _text(screen, "#preview-report")
        assert ("warning: only 25 training blocks, fewer than one batch (100000 x 1 devices):"
                " lower the batch size or add data") in report
        assert "warning: a warning of the settings check" in report
        field.value = "8"
        await pilot.pause()
        assert "fewer than one batch" not in _text(screen, "#preview-report")

        keys = [(key.key, key.description) for key in screen.query("FooterKey")]
        assert [k for k in keys if k[1] == "Help"] == [("f1", "Help")]  # not ? Help as well
        await pilot.press("f1")  # in the field
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        screen.query_one("#preview-body").focus()
        await pilot.press("question_mark")  # ? still opens it too, out of the field
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
