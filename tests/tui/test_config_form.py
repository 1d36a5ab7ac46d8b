"""The settings form: text <-> value rules, one widget per kind, lazy advanced rows, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Collapsible, Input, Select, Static, Switch

from clmtune.backend.settings.schema_cache import load_schema_for_ui
from clmtune.tui.widgets.config_form import (
    UNSET,
    ConfigForm,
    FieldRow,
    ParseError,
    format_value,
    group_schema,
    parse_text,
)
from tests.tui.conftest import wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def schema() -> Any:
    # The first call introspects TrainingArguments in a subprocess (a few seconds).
    return load_schema_for_ui()


async def settle(pilot: Any, form: ConfigForm, condition: Any = lambda: True) -> None:
    """Wait until ``condition()`` holds and the validation after the last edit has run."""
    await wait_until(pilot, lambda: condition() and not form.validation_pending)


class FormApp(App):
    def __init__(self, schema: Any, doc: dict, base_dir: Path) -> None:
        super().__init__()
        self.schema, self.doc, self.base_dir = schema, doc, base_dir
        self.changes = 0

    def compose(self) -> ComposeResult:
        yield ConfigForm(self.schema, self.doc, base_dir=self.base_dir, id="form")

    def on_config_form_changed(self) -> None:
        self.changes += 1


# ----------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("", "int", UNSET),
        ("  ", "str", UNSET),
        ("12", "int", 12),
        ("1_000", "int", 1000),
        ("5e-5", "float", 5e-5),
        ("3", "float", 3.0),
        ("tensorboard, wandb", "list", ["tensorboard", "wandb"]),
        ('["a,b", "c"]', "list", ["a,b", "c"]),
        ("1, 2", "list", [1, 2]),
        ('{"a": 1}', "dict", {"a": 1}),
        ("{ a = 1, b = 'x' }", "dict", {"a": 1, "b": "x"}),
        ("runs/out", "path", "runs/out"),
    ],
)
def test_parse_text(text: str, kind: str, value: Any) -> None:
    assert parse_text(text, kind) == value


def test_a_whole_number_in_a_float_field_stays_whole() -> None:
    # eval_steps / save_steps are floats to Trainer (a ratio below 1): "20" typed there
    # was saved as eval_steps = 20.0 and shown back as "20.0".
    for text, value in (("20", 20), ("-1", -1), ("1_000", 1000)):
        parsed = parse_text(text, "float")
        assert parsed == value and type(parsed) is int
        assert format_value(parsed, "float") == str(value)
    assert type(parse_text("20.0", "float")) is float and parse_text("0.5", "float") == 0.5


@pytest.mark.parametrize(
    ("text", "kind"),
    [("x", "int"), ("1.5", "int"), ("abc", "float"), ("[1,", "list"), ("not a table", "dict")],
)
def test_parse_text_rejects(text: str, kind: str) -> None:
    with pytest.raises(ParseError):
        parse_text(text, kind)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (["a", "b"], "list"),
        (["a,b"], "list"),
        ({"x": [1, 2]}, "dict"),
        (5e-5, "float"),
        (8, "int"),
        ("out", "path"),
    ],
)
def test_format_round_trips(value: Any, kind: str) -> None:
    assert parse_text(format_value(value, kind), kind) == value


def test_group_schema_orders_sections(schema: Any) -> None:
    grouped = group_schema(schema)
    assert list(grouped)[:4] == ["model", "data", "training", "launch"]
    flat = [spec for specs in grouped.values() for spec in specs]
    assert group_schema(flat).keys() == grouped.keys()


# ----------------------------------------------------------------- the widget


@pytest.mark.parametrize(
    "size", [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
)
async def test_every_section_and_a_widget_per_kind(schema: Any, tmp_path: Path, size) -> None:
    (tmp_path / "train.txt").write_text("hello\n")
    doc = {
        "data": {"train_file": "train.txt", "validation_file": "missing.txt"},
        "training": {"learning_rate": 1e-4, "report_to": ["tensorboard"]},
    }
    app = FormApp(schema, doc, tmp_path)
    async with app.run_test(size=size) as pilot:
        form = app.query_one(ConfigForm)
        await pilot.pause()
        for section in ("model", "data", "training", "launch"):
            assert app.query_one(f"#section-{section}", Collapsible)
        common = {
            "training-bf16": Switch,  # bool with a bool default
            "training-activation_checkpointing": Select,  # bool defaulting to None: 3 states
            "training-lr_scheduler_type": Select,  # choice
            "training-max_steps": Input,  # int
            "training-learning_rate": Input,  # float
            "data-train_file": Input,  # path
            "training-report_to": Input,  # list
            "model-model_name_or_path": Input,  # str
        }
        for name, widget_type in common.items():
            assert isinstance(app.query_one(f"#in-{name}"), widget_type), name
        # Numbers are typed in plain text fields: a restricting Input dropped characters
        # ("2.0" became 20); parse_text checks them instead.
        assert app.query_one("#in-training-max_steps", Input).type == "text"
        assert app.query_one("#in-training-learning_rate", Input).type == "text"
        assert app.query_one("#in-training-learning_rate", Input).value == "0.0001"
        assert app.query_one("#in-training-report_to", Input).value == "tensorboard"
        # Unset fields show their default as the placeholder.
        assert app.query_one("#in-training-max_steps", Input).placeholder == "default: -1"
        # Path hints: green when the file exists, red when it does not.
        ok = app.query_one("#f-data-train_file .field-hint", Static)
        bad = app.query_one("#f-data-validation_file .field-hint", Static)
        assert ok.has_class("-ok") and "exists" in str(ok.content)
        assert bad.has_class("-bad") and "not found" in str(bad.content)

        # The advanced rows are mounted only when their group is opened.
        assert form.row("training", "lr_scheduler_kwargs") is None
        n_rows = len(form.rows())
        assert await form.focus_field("training", "lr_scheduler_kwargs")
        await pilot.pause()
        assert len(form.rows()) > n_rows + 50
        assert isinstance(app.query_one("#in-training-lr_scheduler_kwargs"), Input)  # dict


async def test_typing_validates_next_to_the_field(schema: Any, tmp_path: Path) -> None:
    app = FormApp(schema, {"training": {"learning_rate": 1e-4}}, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(ConfigForm)
        await settle(pilot, form, lambda: form.validations >= 1)
        errors_before = form.error_count
        await form.focus_field("training", "learning_rate")
        row = form.row("training", "learning_rate")
        assert row is not None
        await pilot.press("end", *["backspace"] * 10, "minus", "1")
        await settle(pilot, form, lambda: form.value("training", "learning_rate") == -1.0)
        message = row.query_one(".field-message", Static)
        assert message.has_class("-shown")
        assert "must be > 0" in str(message.content)
        assert row.has_class("-error")
        assert form.error_count == errors_before + 1
        assert form.document["training"]["learning_rate"] == -1.0
        # Emptying a field unsets it: the default applies and nothing is written.
        await pilot.press("backspace", "backspace")
        await settle(pilot, form, lambda: form.value("training", "learning_rate") is UNSET)
        assert "learning_rate" not in form.document.get("training", {})
        assert not message.has_class("-shown")
        assert form.error_count == errors_before


async def test_switch_select_and_parse_errors(schema: Any, tmp_path: Path) -> None:
    app = FormApp(schema, {}, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        await pilot.pause()
        switch = app.query_one("#in-training-bf16", Switch)
        switch.value = True
        await pilot.pause()
        assert form.value("training", "bf16") is True
        switch.value = False  # back at the default: unset again
        await pilot.pause()
        assert form.value("training", "bf16") is UNSET

        select = app.query_one("#in-training-lr_scheduler_type", Select)
        select.value = "cosine"
        await pilot.pause()
        assert form.document["training"]["lr_scheduler_type"] == "cosine"
        select.clear()
        await pilot.pause()
        assert "lr_scheduler_type" not in form.document.get("training", {})

        # A dict field that does not parse: the message appears at once and counts.
        await form.focus_field("training", "lr_scheduler_kwargs")
        await pilot.press(*"{oops")
        await settle(pilot, form, lambda: len(form.error_fields()) > 0)
        row = form.row("training", "lr_scheduler_kwargs")
        assert row is not None
        assert "not a table" in str(row.query_one(".field-message", Static).content)
        assert ("training", "lr_scheduler_kwargs") in form.error_fields()
        assert app.changes > 0


async def test_unknown_keys_are_shown_and_removable(schema: Any, tmp_path: Path) -> None:
    app = FormApp(schema, {"training": {"learning_rat": 0.1}}, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(ConfigForm)
        await wait_until(pilot, lambda: form.validations >= 1)
        row = form.row("training", "learning_rat")
        assert isinstance(row, FieldRow)
        assert "unknown key" in str(row.query_one(".field-message", Static).content)
        assert "learning_rate" in str(row.query_one(".field-message", Static).content)
        await form.focus_field("training", "learning_rat")
        await pilot.press("end", *["backspace"] * 5)
        await settle(pilot, form, lambda: form.value("training", "learning_rat") is UNSET)
        assert "learning_rat" not in form.document.get("training", {})
        assert ("training", "learning_rat") not in form.error_fields()
