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
