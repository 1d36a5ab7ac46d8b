"""Data preparation: block size rules, packing, sample limits, file types, errors, cache."""

from __future__ import annotations

import csv
import json
from itertools import chain
from pathlib import Path
from types import SimpleNamespace

import pytest

from clmtune.backend.data import (
    IGNORE_INDEX,
    group_texts,
    pad_lines,
    prepare_datasets,
    resolve_block_size,
)
from clmtune.backend.demo import DemoAssets
from clmtune.backend.model import TrainingSetupError, load_model_and_tokenizer
from clmtune.backend.settings.run_config import RunConfig

# ------------------------------------------------------------------ block size rules


def _cfg(max_pos: int | None) -> SimpleNamespace:
    if max_pos is None:
        return SimpleNamespace()
    return SimpleNamespace(max_position_embeddings=max_pos)


def test_block_size_unset_uses_tokenizer_length_without_warning():
    size, warnings = resolve_block_size(None, _cfg(512), SimpleNamespace(model_max_length=256))
    assert (size, warnings) == (256, [])


def test_block_size_unset_with_huge_tokenizer_length_uses_min_1024_max_pos():
    huge = SimpleNamespace(model_max_length=int(1e30))
    size, warnings = resolve_block_size(None, _cfg(2048), huge)
    assert size == 1024
    assert len(warnings) == 1 and "1024" in warnings[0] and "block_size" in warnings[0]
    size, warnings = resolve_block_size(None, _cfg(128), huge)
    assert size == 128 and len(warnings) == 1


def test_block_size_unset_without_max_position_embeddings_defaults_to_1024():
    size, warnings = resolve_block_size(None, _cfg(None), SimpleNamespace(model_max_length=10**9))
    assert size == 1024 and len(warnings) == 1


def test_block_size_set_is_capped_by_tokenizer_length_with_warning():
    size, warnings = resolve_block_size(300, _cfg(1024), SimpleNamespace(model_max_length=256))
    assert size == 256
    assert len(warnings) == 1 and "300" in warnings[0] and "256" in warnings[0]


def test_block_size_set_within_limits_is_kept():
    assert resolve_block_size(64, _cfg(128), SimpleNamespace(model_max_length=128)) == (64, [])


def test_block_size_set_beyond_model_positions_is_capped():
    # run_clm would crash inside the model here; clmtune lowers it and says so.
    size, warnings = resolve_block_size(512, _cfg(128), SimpleNamespace(model_max_length=10**9))
    assert size == 128 and len(warnings) == 1 and "max_position_embeddings" in warnings[0]


# ------------------------------------------------------------------ pure map functions


def test_group_texts_cuts_full_blocks_and_copies_labels():
    examples = {
        "input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]],
        "attention_mask": [[1] * 3, [1] * 2, [1] * 4],
    }
    out = group_texts(examples, block_size=4)
    assert out["input_ids"] == [[1, 2, 3, 4], [5, 6, 7, 8]]  # 9 is the dropped remainder
    assert out["labels"] == out["input_ids"]
    assert out["labels"][0] is not out["input_ids"][0]
    assert out["attention_mask"] == [[1] * 4, [1] * 4]


def test_pad_lines_masks_padding_and_drops_empty_lines():
    out = pad_lines({"input_ids": [[5, 6], [], [1, 2, 3, 4, 5]]}, block_size=4, pad_token_id=0)
    assert out["input_ids"] == [[5, 6, 0, 0], [1, 2, 3, 4]]
    assert out["attention_mask"] == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert out["labels"] == [[5, 6, IGNORE_INDEX, IGNORE_INDEX], [1, 2, 3, 4]]


# ------------------------------------------------------------------ the pipeline


@pytest.fixture(scope="module")
def loaded(tiny_assets: DemoAssets):
    cfg = RunConfig(model={"model_name_or_path": str(tiny_assets.model_dir)})
    model, tokenizer, _ = load_model_and_tokenizer(cfg)
    return model.config, tokenizer


def _data_cfg(assets: DemoAssets, **data) -> RunConfig:
    settings = {
        "train_file": str(assets.train_file),
        "validation_file": str(assets.validation_file),
    }
    settings.update(data)
    return RunConfig(model={"model_name_or_path": str(assets.model_dir)}, data=settings)


def _prepare(cfg: RunConfig, loaded, tmp_path: Path, **kwargs):
    config, tokenizer = loaded
    return prepare_datasets(cfg, tokenizer, config, cache_dir=str(tmp_path / "cache"), **kwargs)


def test_group_packing_blocks_are_the_token_stream(tiny_assets, loaded, tmp_path):
    cfg = _data_cfg(tiny_assets, block_size=16)
    events: list[dict] = []
    data = _prepare(cfg, loaded, tmp_path, emit=events.append)
    _, tokenizer = loaded
    lines = tiny_assets.validation_file.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) < 1000  # one map batch: the stream is cut once, at its end
    stream = list(chain.from_iterable(tokenizer(lines)["input_ids"]))
    blocks = [row["input_ids"] for row in data.eval_dataset]
    assert all(len(b) == 16 for b in blocks)
    assert len(blocks) == len(stream) // 16
    assert list(chain.from_iterable(blocks)) == stream[: len(blocks) * 16]
    assert all(row["labels"] == row["input_ids"] for row in data.eval_dataset)
    assert data.block_size == 16 and data.train_samples == len(data.train_dataset)
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert {"loading_data", "tokenizing", "grouping"} <= set(phases)
    assert not [e for e in events if e["type"] == "warning"]


def test_line_packing_masks_padding(tiny_assets, loaded, tmp_path):
    cfg = _data_cfg(tiny_assets, block_size=24, packing="line")
    data = _prepare(cfg, loaded, tmp_path)
    _, tokenizer = loaded
    padded_rows = 0
    for row in data.train_dataset.select(range(300)):
        assert len(row["input_ids"]) == len(row["labels"]) == len(row["attention_mask"]) == 24
        for token, mask, label in zip(
            row["input_ids"], row["attention_mask"], row["labels"], strict=True
        ):
            if mask == 0:
                assert label == IGNORE_INDEX and token == tokenizer.pad_token_id
            else:
                assert label == token
        assert row["attention_mask"][0] == 1  # empty lines were dropped
        padded_rows += row["attention_mask"][-1] == 0
    assert padded_rows > 0


def test_block_size_warning_is_emitted(tiny_assets, loaded, tmp_path):
    events: list[dict] = []
    data = _prepare(_data_cfg(tiny_assets, block_size=4096), loaded, tmp_path, emit=events.append)
    assert data.block_size == 64  # the tiny tokenizer's model_max_length
    warnings = [e for e in events if e["type"] == "warning"]
    assert [w["code"] for w in warnings] == ["block_size"]
    assert data.warnings == [warnings[0]["message"]]


def test_sample_limits_take_the_first_blocks_after_grouping(tiny_assets, loaded, tmp_path):
    full = _prepare(_data_cfg(tiny_assets, block_size=16), loaded, tmp_path)
    limited = _prepare(
        _data_cfg(tiny_assets, block_size=16, max_train_samples=7, max_eval_samples=3),
        loaded,
        tmp_path,
    )
    assert (limited.train_samples, limited.eval_samples) == (7, 3)
    assert limited.train_dataset["input_ids"][:] == full.train_dataset["input_ids"][:7]
    assert limited.eval_dataset["input_ids"][:] == full.eval_dataset["input_ids"][:3]
    cfg = _data_cfg(tiny_assets, block_size=16, max_eval_samples=10**6)
    bigger = _prepare(cfg, loaded, tmp_path)
    assert bigger.eval_samples == full.eval_samples


def test_block_larger_than_dataset_is_a_clear_error(tmp_path, tiny_assets, loaded):
    small = tmp_path / "small.txt"
    small.write_text("def f():\n    return 1\n", encoding="utf-8")
    cfg = _data_cfg(tiny_assets, train_file=str(small), validation_file=str(small), block_size=64)
    with pytest.raises(TrainingSetupError) as info:
        _prepare(cfg, loaded, tmp_path)
    message = str(info.value)
    assert "[data] block_size = 64" in message and "\n" not in message
    assert "train" in message


def test_a_file_too_small_for_the_validation_split_says_so(tmp_path, tiny_assets, loaded):
    # 3 lines, 5 % held out: datasets says 'Instruction "train[:5%]" corresponds to no
    # data!', which read as a file that does not parse ("check the path or name").
    small = tmp_path / "small.txt"
    small.write_text("def f():\n    return 1\nprint(f())\n", encoding="utf-8")
    cfg = _data_cfg(tiny_assets, train_file=str(small), validation_split_percentage=5)
    del cfg.data["validation_file"]
    with pytest.raises(TrainingSetupError) as info:
        _prepare(cfg, loaded, tmp_path)
    message = str(info.value)
    assert "too few examples to hold out 5% for validation" in message
    assert "validation_file" in message and "\n" not in message


def test_validation_split_is_carved_from_train(tiny_assets, loaded, tmp_path):
    cfg = _data_cfg(tiny_assets, block_size=16, validation_split_percentage=10)
    del cfg.data["validation_file"]
    data = _prepare(cfg, loaded, tmp_path)
    full = _prepare(_data_cfg(tiny_assets, block_size=16), loaded, tmp_path)
    assert data.eval_samples and data.train_samples
    assert data.train_samples < full.train_samples


ROWS = [
    {"body": "def add(a, b):\n    return a + b\n", "label": 1},
    {"body": "class Point:\n    x: int = 0\n    y: int = 0\n", "label": 2},
    {"body": "for i in range(10):\n    print(i)\n", "label": 3},
] * 4


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        path.write_text("".join(r["body"] for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".txt", ".json", ".jsonl", ".csv"])
def test_each_file_type_loads_and_falls_back_to_the_first_column(
    suffix, tiny_assets, loaded, tmp_path
):
    train = _write(tmp_path / f"train{suffix}", ROWS)
    cfg = _data_cfg(tiny_assets, train_file=str(train), validation_file=str(train), block_size=8)
    data = _prepare(cfg, loaded, tmp_path)
    _, tokenizer = loaded
    # the text loader yields lines, the others one example per row: the same code either way
    bodies = [r["body"] for r in ROWS]
    units = "".join(bodies).splitlines(keepends=True) if suffix == ".txt" else bodies
    expected = sum(len(ids) for ids in tokenizer(units)["input_ids"])
    assert data.train_samples == expected // 8
    decoded = tokenizer.decode(data.train_dataset[0]["input_ids"])
    assert decoded.startswith("def add")


def test_unknown_text_column_is_an_error(tiny_assets, loaded, tmp_path):
    train = _write(tmp_path / "train.jsonl", ROWS)
    cfg = _data_cfg(tiny_assets, train_file=str(train), validation_file=str(train), text_column="x")
    with pytest.raises(TrainingSetupError, match=r"\[data\] text_column = 'x'.*'body'"):
        _prepare(cfg, loaded, tmp_path)


def test_non_text_column_is_an_error(tiny_assets, loaded, tmp_path):
    train = _write(tmp_path / "train.jsonl", ROWS)
    cfg = _data_cfg(
        tiny_assets, train_file=str(train), validation_file=str(train), text_column="label"
    )
    with pytest.raises(TrainingSetupError, match="not text"):
        _prepare(cfg, loaded, tmp_path)


def test_unsupported_file_type_is_refused_by_name(tiny_assets, loaded, tmp_path):
    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"x")
    cfg = _data_cfg(tiny_assets, train_file=str(bad))
    with pytest.raises(TrainingSetupError, match=r"\[data\] train_file = .*train.parquet"):
        _prepare(cfg, loaded, tmp_path)


def _cache_files(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("cache-*.arrow")}


def test_second_run_reuses_the_preprocessing_cache(tiny_assets, loaded, tmp_path):
    cfg = _data_cfg(tiny_assets, block_size=16)
    first = _prepare(cfg, loaded, tmp_path)
    files = _cache_files(tmp_path / "cache")
    assert len(files) >= 4  # tokenized + grouped, train + validation
    second = _prepare(cfg, loaded, tmp_path)
    assert _cache_files(tmp_path / "cache") == files  # nothing recomputed or rewritten
    assert second.train_dataset["input_ids"][:5] == first.train_dataset["input_ids"][:5]
    cfg.data["overwrite_cache"] = True
    _prepare(cfg, loaded, tmp_path)
    assert _cache_files(tmp_path / "cache") != files  # overwrite_cache really recomputes


# ------------------------------------------------------------------ rows without text


def _rows_with_gaps(suffix: str, n: int = 20) -> list[dict]:
    """Every 5th row without text: an empty CSV cell, a JSON null."""
    gap = "" if suffix == ".csv" else None
    return [{"id": i, "text": gap if i % 5 == 0 else f"value_{i} = compute({i}, {i + 1})\n"}
            for i in range(n)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_without_text_are_skipped_counted_and_reported(suffix, tiny_assets, loaded,
                                                            tmp_path):
    # Before: the tokenizer got None for these rows and the run ended in a traceback.
    rows = _rows_with_gaps(suffix)
    train = _write(tmp_path / f"train{suffix}", rows)
    cfg = _data_cfg(tiny_assets, train_file=str(train), validation_file=str(train), block_size=8)
    events: list[dict] = []
    data = _prepare(cfg, loaded, tmp_path, emit=events.append)
    _, tokenizer = loaded
    texts = [r["text"] for r in rows if r["text"]]
    assert len(data.tokenized["train"]) == len(texts) == 16
    expected = sum(len(ids) for ids in tokenizer(texts)["input_ids"])
    assert data.train_samples == expected // 8
    message = f"skipped 4 of 20 rows of train{suffix} with an empty or null 'text'"
    assert data.warnings == [message, message]  # the train file, then the validation file
    assert [e["message"] for e in events if e["type"] == "warning"] == data.warnings


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_data_without_any_text_is_one_error_naming_the_file(suffix, tiny_assets, loaded,
                                                            tmp_path):
    path = tmp_path / f"train{suffix}"
    if suffix == ".txt":
        path.write_text("\n\n\n", encoding="utf-8")
    else:
        _write(path, [{"id": i, "text": "" if suffix == ".csv" else None} for i in range(6)])
    # keep_linebreaks = false: the text loader's lines are then "" (else "\n", a token)
    cfg = _data_cfg(tiny_assets, train_file=str(path), validation_file=str(path),
                    keep_linebreaks=False)
    with pytest.raises(TrainingSetupError) as info:
        _prepare(cfg, loaded, tmp_path)
    message = str(info.value)
    if suffix == ".txt":  # blank lines are no rows to skip: the data just holds no text
        assert message == "the train data holds no text; check [data] train_file"
    else:
        assert message == (f"[data] train_file = {str(path)!r}: every row has an empty or null"
                           " 'text'; fill that column, or set [data] text_column to the column"
                           " with the text")


def test_a_txt_files_blank_lines_stay_silent(tiny_assets, loaded, tmp_path):
    events: list[dict] = []
    data = _prepare(_data_cfg(tiny_assets, block_size=16), loaded, tmp_path, emit=events.append)
    assert "\n\n" in tiny_assets.train_file.read_text(encoding="utf-8")  # it has blank lines
    assert data.warnings == [] and not [e for e in events if e["type"] == "warning"]


# ------------------------------------------------------------------ validation split messages


def _short_lines(tmp_path: Path, n: int = 200) -> Path:
    path = tmp_path / "short.txt"
    path.write_text("".join(f"x{i} = {i}\n" for i in range(n)), encoding="utf-8")
    return path


def test_a_split_leaving_too_little_training_text_names_the_percentage(
    tiny_assets, loaded, tmp_path
):
    # Before: "set [data] block_size below 1"; the file is fine, the 99 % split is not.
    cfg = _data_cfg(tiny_assets, train_file=str(_short_lines(tmp_path)), block_size=48,
                    validation_split_percentage=99)
    del cfg.data["validation_file"]
    with pytest.raises(TrainingSetupError) as info:
        _prepare(cfg, loaded, tmp_path)
    message = str(info.value)
    assert message.startswith("[data] validation_split_percentage = 99 leaves ")
    assert "for training" in message and "lower validation_split_percentage" in message
    assert "block_size below" not in message
    preview = _prepare(cfg, loaded, tmp_path, check_empty=False)
    assert message in preview.warnings


def test_a_split_holding_out_too_little_text_names_the_percentage(tiny_assets, loaded, tmp_path):
    cfg = _data_cfg(tiny_assets, train_file=str(_short_lines(tmp_path)), block_size=64,
                    validation_split_percentage=1)
    del cfg.data["validation_file"]
    with pytest.raises(TrainingSetupError, match=r"^\[data\] validation_split_percentage = 1 "
                                                 r"holds out .* for validation.*raise"):
        _prepare(cfg, loaded, tmp_path)


def test_keep_linebreaks_with_a_folder_dataset_is_ignored_and_warned(tmp_path):
    # run_clm passes keep_linebreaks to the text loader of a .txt train_file only; a folder
    # of .txt files (dataset_name) loads without line breaks whatever it says: one warning.
    from clmtune.backend.data import load_raw_datasets
    from clmtune.backend.settings.schema_cache import active_schema
    from clmtune.backend.settings.validate import validate_document

    folder = tmp_path / "data" / "folder"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("def f():\n    return 1\n" * 200)
    cfg = RunConfig(model={"model_name_or_path": str(tmp_path)},  # not loaded here
                    data={"dataset_name": str(folder), "keep_linebreaks": True})
    raw, _ = load_raw_datasets(cfg, cache_dir=str(tmp_path / "cache"))
    assert raw["train"][0]["text"] == "def f():"  # no "\n": the setting never reached it

    def warned(data: dict) -> list[str]:
        doc = {"model": {"model_type": "gpt2", "tokenizer_name": "gpt2"}, "data": data}
        _, warnings = validate_document(doc, active_schema(), base_dir=tmp_path)
        return [w for w in warnings if "keep_linebreaks" in w]

    (warning,) = warned({"dataset_name": "data/folder", "keep_linebreaks": True})
    assert warning.startswith("[data] keep_linebreaks: ignored with dataset_name")
    assert "without line breaks" in warning and "\n" not in warning
    assert warned({"dataset_name": "data/folder"}) == []  # not asked for: nothing to say
    assert warned({"dataset_name": "data/folder", "keep_linebreaks": False}) == []
    assert warned({"train_file": str(folder / "a.txt"), "keep_linebreaks": True}) == []


def test_check_and_preview_print_the_keep_linebreaks_warning(tiny_assets, tmp_path, capsys):
    from clmtune.backend.cli import main
    from clmtune.backend.settings.toml_io import save_config
    from clmtune.backend.tools.preview import preview

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "train.txt").write_text(tiny_assets.train_file.read_text(encoding="utf-8"))
    cfg = RunConfig(model={"model_name_or_path": str(tiny_assets.model_dir)},
                    data={"dataset_name": str(folder), "keep_linebreaks": True,
                          "block_size": 32},
                    training={"max_steps": 2, "report_to": "none"})
    path = tmp_path / "folder.toml"
    save_config(cfg, path)
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "keep_linebreaks" in line] == [
        f"warning: {path}: [data] keep_linebreaks: ignored with dataset_name, as in run_clm (it "
        "applies to a .txt train_file): a folder of .txt files loads without line breaks"]
    report = preview(path, samples=0)
    assert sum("[data] keep_linebreaks: ignored" in w for w in report["warnings"]) == 1
