"""Config: schema, validation (one test per rejection), TOML I/O, tool defaults."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clmtune.backend.settings import atomic_write, validate
from clmtune.backend.settings.check import check_file
from clmtune.backend.settings.hardware import hardware_checks
from clmtune.backend.settings.problems import ConfigError, FieldError
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.schema import (
    DataSettings,
    LaunchSettings,
    ModelSettings,
    schema,
)
from clmtune.backend.settings.schema_cache import schema_from_json, schema_to_json
from clmtune.backend.settings.toml_io import dumps_config, load_config, save_config
from clmtune.backend.settings.training_args import (
    command_line,
    torchrun_argv,
    training_arguments_kwargs,
)
from clmtune.backend.settings.validate import validate_document

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sch():
    """The real schema of the installed transformers (imported once for the module)."""
    return schema()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A folder with usable data files and a local model folder."""
    (tmp_path / "train.txt").write_text("hello world\nsecond line\n", encoding="utf-8")
    (tmp_path / "val.txt").write_text("held out\n", encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    return tmp_path


def good_doc() -> dict:
    return {
        "model": {"model_name_or_path": "./model"},
        "data": {"train_file": "train.txt", "validation_file": "val.txt", "block_size": 64},
        "training": {"learning_rate": 3e-4, "max_steps": 10},
    }


def errors_of(sch, ws: Path, **changes: dict) -> list[str]:
    """Validate good_doc() with some sections updated; the error lines."""
    doc = good_doc()
    for section, values in changes.items():
        doc.setdefault(section, {}).update(values)
        doc[section] = {k: v for k, v in doc[section].items() if v is not None}
    errors, _ = validate_document(doc, sch, base_dir=ws)
    return [str(e) for e in errors]


def one_error(sch, ws: Path, **changes: dict) -> str:
    errors = errors_of(sch, ws, **changes)
    assert len(errors) == 1, errors
    return errors[0]


def write(folder: Path, text: str, name: str = "run.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD_TOML = """
[model]
model_name_or_path = "./model"

[data]
train_file = "train.txt"
validation_file = "val.txt"
block_size = 64

[training]
learning_rate = 3e-4
max_steps = 10
report_to = ["none"]

[training.lr_scheduler_kwargs]
power = 2.0
"""


# ---------------------------------------------------------------- schema


def test_schema_introspects_training_arguments(sch):
    training = sch["training"]
    assert training["learning_rate"].kind == "float"
    assert training["learning_rate"].exclusive_minimum == 0
    assert training["per_device_train_batch_size"].kind == "int"
    assert training["lr_scheduler_type"].kind == "choice"
    assert "cosine" in training["lr_scheduler_type"].choices
    assert training["report_to"].kind == "list" and "str" in training["report_to"].accepts
    assert training["output_dir"].kind == "path"
    assert training["bf16"].kind == "bool" and training["bf16"].common
    assert training["logging_steps"].default == 10  # the tool's default, not HF's 500
    assert all(spec.help for spec in training.values())
    for excluded in ("local_rank", "hub_token", "resume_from_checkpoint", "do_train", "do_eval"):
        assert excluded not in training
    assert {"model", "data", "training", "launch", "samples", "notify", "peft"} == set(sch)
    assert sch["launch"]["nproc_per_node"].default == 1
    assert "gpt2" in sch["model"]["model_type"].choices


def test_schema_json_round_trip(sch):
    text = schema_to_json(sch)
    assert schema_from_json(json.loads(text)) == sch
    assert schema_from_json(text) == sch


def test_load_schema_for_ui_never_imports_transformers(tmp_path, sch):
    code = (
        "import sys, json\n"
        "from clmtune.backend.settings.schema_cache import load_schema_for_ui, schema_cache_path\n"
        "s = load_schema_for_ui()\n"
        "print(json.dumps({'heavy': sorted(m for m in ('transformers', 'torch') "
        "if m in sys.modules), 'cache': str(schema_cache_path()), "
        "'lr': s['training']['learning_rate'].default, 'n': len(s['training'])}))\n"
    )
    env = dict(os.environ, CLMTUNE_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["n"] == len(sch["training"])
    assert result["lr"] == sch["training"]["learning_rate"].default
    cache = Path(result["cache"])
    assert cache.parent == tmp_path / "cache" and cache.is_file()
    assert schema_from_json(cache.read_text(encoding="utf-8")) == sch


# ---------------------------------------------------------------- a valid file


def test_valid_file_loads_with_paths_resolved_against_toml_folder(sch, ws, tmp_path_factory,
                                                                  monkeypatch):
    path = write(ws, GOOD_TOML)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    cfg = load_config(path)
    assert cfg.data["train_file"] == str(ws / "train.txt")
    assert cfg.model["model_name_or_path"] == str(ws / "model")
    assert cfg.settings.training.learning_rate == 3e-4
    assert cfg.settings.training.seed == 42  # unset: the default
    assert cfg.settings.data.packing == "group"
    raw = load_config(path, resolve_paths=False)
    assert raw.data["train_file"] == "train.txt"
    assert raw.resolved().data["train_file"] == str(ws / "train.txt")


def test_int_is_fine_for_a_float(sch, ws):
    assert errors_of(sch, ws, training={"learning_rate": 1, "num_train_epochs": 2}) == []


def test_none_in_a_document_means_unset(sch, ws):
    doc = good_doc()
    doc["training"]["seed"] = None
    assert validate_document(doc, sch, base_dir=ws)[0] == []


# ---------------------------------------------------------------- types, ranges, choices


def test_number_written_as_string(sch, ws):
    msg = one_error(sch, ws, training={"learning_rate": "3e-4"})
    assert "[training] learning_rate" in msg and "learning_rate = 3e-4 (no quotes)" in msg


def test_float_for_an_int(sch, ws):
    msg = one_error(sch, ws, training={"per_device_train_batch_size": 8.0})
    assert "per_device_train_batch_size" in msg and "= 8" in msg


def test_bool_written_as_string(sch, ws):
    msg = one_error(sch, ws, training={"bf16": "true"})
    assert "[training] bf16" in msg and "bf16 = true (no quotes)" in msg


def test_number_for_a_string(sch, ws):
    msg = one_error(sch, ws, training={"hub_model_id": 5})
    assert "[training] hub_model_id" in msg and 'hub_model_id = "5"' in msg


def test_list_of_non_strings(sch, ws):
    msg = one_error(sch, ws, training={"report_to": [1, 2]})
    assert "[training] report_to" in msg and "array of strings" in msg


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("training", "learning_rate", 0),
        ("training", "learning_rate", -1e-3),
        ("training", "per_device_train_batch_size", 0),
        ("training", "per_device_eval_batch_size", 0),
        ("training", "gradient_accumulation_steps", 0),
        ("training", "warmup_steps", -1),
        ("data", "block_size", 0),
        ("data", "validation_split_percentage", 0),
        ("data", "validation_split_percentage", 100),
        ("data", "max_train_samples", 0),
        ("launch", "nproc_per_node", 0),
        ("launch", "master_port", 70000),
    ],
)
def test_out_of_range(sch, ws, section, key, value):
    msg = one_error(sch, ws, **{section: {key: value}})
    assert f"[{section}] {key}" in msg and "must be" in msg


def test_nan_is_out_of_range(sch, ws):
    msg = one_error(sch, ws, training={"learning_rate": float("nan")})
    assert "learning_rate" in msg and "finite" in msg


def test_fractional_step_count_above_one(sch, ws):
    msg = one_error(sch, ws, training={"logging_steps": 2.5})
    assert "logging_steps" in msg and "whole number" in msg
    assert errors_of(sch, ws, training={"warmup_steps": 0.1}) == []  # a ratio


def test_zero_epochs_without_max_steps(sch, ws):
    msg = one_error(sch, ws, training={"num_train_epochs": 0, "max_steps": None})
    assert "[training] num_train_epochs" in msg and "max_steps" in msg
    assert errors_of(sch, ws, training={"num_train_epochs": 0, "max_steps": 5}) == []


def test_bad_choice_lists_choices(sch, ws):
    msg = one_error(sch, ws, training={"lr_scheduler_type": "cosin"})
    assert "[training] lr_scheduler_type" in msg
    assert "did you mean 'cosine'" in msg and "linear" in msg


def test_bad_choice_in_hand_written_section(sch, ws):
    msg = one_error(sch, ws, data={"packing": "lines"})
    assert "[data] packing" in msg and "group, line" in msg


# ---------------------------------------------------------------- unknown names


def test_unknown_key_did_you_mean(sch, ws):
    msg = one_error(sch, ws, training={"learning_rte": 1e-3})
    assert "[training] learning_rte" in msg and "did you mean learning_rate" in msg


def test_evaluation_strategy_suggests_eval_strategy(sch, ws):
    msg = one_error(sch, ws, training={"evaluation_strategy": "steps"})
    assert "[training] evaluation_strategy" in msg and "did you mean eval_strategy" in msg


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        ("model", "torch_dtype", "did you mean dtype"),
        ("training", "torch_dtype", "[model] dtype"),
        ("training", "overwrite_output_dir", "removed in transformers 5"),
        ("training", "logging_dir", "removed in transformers 5"),
        ("training", "warmup_ratio", "warmup_steps"),
        ("training", "tokenizer", "processing_class"),
    ],
)
def test_renamed_transformers4_names(sch, ws, section, key, expected):
    msg = one_error(sch, ws, **{section: {key: "x"}})
    assert f"[{section}] {key}" in msg and expected in msg


def test_key_in_the_wrong_section(sch, ws):
    msg = one_error(sch, ws, model={"learning_rate": 1e-3})
    assert "[model] learning_rate" in msg and "belongs in [training]" in msg


def test_unknown_section(sch, ws):
    doc = good_doc()
    doc["trainer"] = {"seed": 1}
    doc["extras"] = {"a": 1}
    errors = [str(e) for e in validate_document(doc, sch, base_dir=ws)[0]]
    assert any("[trainer]" in e and "did you mean [training]" in e for e in errors)
    assert any("[extras]" in e and "[launch]" in e for e in errors)


def test_top_level_setting(sch, ws):
    doc = good_doc()
    doc["seed"] = 3
    (error,) = validate_document(doc, sch, base_dir=ws)[0]
    assert "'seed'" in str(error) and "put it under [training]" in str(error)


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("local_rank", "nproc_per_node"),
        ("resume_from_checkpoint", "--resume"),
        ("do_train", "always trains"),
        ("do_eval", "eval_strategy"),
        ("do_predict", "no prediction"),
    ],
)
def test_keys_the_tool_owns(sch, ws, key, hint):
    msg = one_error(sch, ws, training={key: True})
    assert f"[training] {key}" in msg and hint in msg


@pytest.mark.parametrize(("section", "key"),
                         [("training", "hub_token"), ("model", "token"),
                          ("model", "use_auth_token")])
def test_token_keys_are_refused(sch, ws, section, key):
    msg = one_error(sch, ws, **{section: {key: "hf_abc"}})
    assert f"[{section}] {key}" in msg and "HF_TOKEN" in msg and "hf auth login" in msg


def test_token_looking_value_is_refused(sch, ws):
    msg = one_error(sch, ws, training={"hub_model_id": "hf_" + "a1B2" * 9})
    assert "[training] hub_model_id" in msg and "access token" in msg


# ---------------------------------------------------------------- run_clm cross-field rules


def test_config_overrides_with_a_model_path(sch, ws):
    msg = one_error(sch, ws, model={"config_overrides": "n_embd=10", "model_type": "gpt2"})
    assert "[model] config_overrides" in msg and "model_name_or_path" in msg


def test_config_overrides_without_model_type(sch, ws):
    msg = one_error(sch, ws, model={"model_name_or_path": None, "config_overrides": "n_embd=10",
                                    "tokenizer_name": "./model"})
    assert "[model] config_overrides" in msg and "model_type" in msg
    assert "[model] model_name_or_path" not in msg


def test_config_overrides_format(sch, ws):
    msg = one_error(sch, ws, model={"model_name_or_path": None, "model_type": "gpt2",
                                    "tokenizer_name": "./model", "config_overrides": "n_embd"})
    assert "[model] config_overrides" in msg and "key=value" in msg


def test_need_a_model(sch, ws):
    msg = one_error(sch, ws, model={"model_name_or_path": None})
    assert "[model] model_name_or_path" in msg and "model_type" in msg


def test_from_scratch_needs_a_tokenizer(sch, ws):
    msg = one_error(sch, ws, model={"model_name_or_path": None, "model_type": "gpt2"})
    assert "[model] tokenizer_name" in msg


def test_unknown_model_type(sch, ws):
    msg = one_error(sch, ws, model={"model_name_or_path": None, "model_type": "gtp2",
                                    "tokenizer_name": "./model"})
    assert "[model] model_type" in msg and "did you mean 'gpt2'" in msg


def test_need_training_data(sch, ws):
    msg = one_error(sch, ws, data={"train_file": None, "validation_file": None})
    assert "[data] train_file" in msg and "dataset_name" in msg


def test_dataset_and_train_file_together(sch, ws):
    errors = errors_of(sch, ws, data={"dataset_name": "./train.txt"})
    assert any("[data] dataset_name" in e and "not both" in e for e in errors)


def test_streaming_needs_max_steps(sch, ws):
    msg = one_error(sch, ws, data={"streaming": True}, training={"max_steps": None})
    assert "[training] max_steps" in msg and "streaming" in msg


def test_fp16_and_bf16(sch, ws):
    msg = one_error(sch, ws, training={"fp16": True, "bf16": True})
    assert "[training] fp16" in msg and "bf16" in msg


def test_load_best_model_needs_matching_strategies(sch, ws):
    msg = one_error(sch, ws, training={"load_best_model_at_end": True, "eval_strategy": "epoch"})
    assert "[training] load_best_model_at_end" in msg and "save_strategy" in msg


def test_node_rank_below_nnodes(sch, ws):
    msg = one_error(sch, ws, launch={"nnodes": 2, "node_rank": 2, "master_addr": "10.0.0.1"})
    assert "[launch] node_rank" in msg


# ---------------------------------------------------------------- files and models


def test_data_file_extension_refused_by_name(sch, ws):
    (ws / "train.parquet").write_bytes(b"PAR1")
    errors = errors_of(sch, ws, data={"train_file": "train.parquet", "validation_file": None})
    (msg,) = errors
    assert "[data] train_file" in msg and ".parquet" in msg and ".jsonl" in msg


def test_missing_data_file(sch, ws):
    msg = one_error(sch, ws, data={"validation_file": "nope.txt"})
    assert "[data] validation_file" in msg and "no such file" in msg and "nope.txt" in msg


def test_empty_data_file(sch, ws):
    (ws / "empty.txt").write_text("", encoding="utf-8")
    msg = one_error(sch, ws, data={"train_file": "empty.txt"})
    assert "[data] train_file" in msg and "empty" in msg


def test_empty_validation_file_asks_for_validation_text(sch, ws):
    (ws / "empty.txt").write_text("", encoding="utf-8")
    msg = one_error(sch, ws, data={"validation_file": "empty.txt"})
    assert msg.endswith("empty.txt is empty; give a file with validation text")


@pytest.mark.parametrize("value", [".", "data", "data.txt"])
def test_a_folder_as_data_file_says_it_is_a_folder(sch, ws, value):
    # Before: "files without an extension are not supported ('.')".
    for folder in ("data", "data.txt"):
        (ws / folder).mkdir()
    msg = one_error(sch, ws, data={"train_file": value, "validation_file": None})
    assert msg == (f"[data] train_file: {(ws / value).resolve() if value == '.' else ws / value}"
                   " is a folder; give the path of a .txt, .json, .jsonl or .csv file")


def test_undecodable_data_file(sch, ws):
    (ws / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    msg = one_error(sch, ws, data={"train_file": "latin1.txt"})
    assert "[data] train_file" in msg and "not UTF-8" in msg


def test_utf8_cut_inside_a_character_is_fine(sch, ws, monkeypatch):
    monkeypatch.setattr(validate, "_DECODE_BYTES", 2)
    (ws / "accent.txt").write_text("éé\n", encoding="utf-8")
    assert errors_of(sch, ws, data={"train_file": "accent.txt"}) == []


def test_data_file_is_a_folder(sch, ws):
    (ws / "folder.txt").mkdir()
    msg = one_error(sch, ws, data={"train_file": "folder.txt"})
    assert "[data] train_file" in msg and "folder" in msg


def test_validation_file_of_another_kind(sch, ws):
    (ws / "val.csv").write_text("text\nhi\n", encoding="utf-8")
    msg = one_error(sch, ws, data={"validation_file": "val.csv"})
    assert "[data] validation_file" in msg and ".csv" in msg and ".txt" in msg
    (ws / "val.jsonl").write_text('{"text": "hi"}\n', encoding="utf-8")
    (ws / "train.json").write_text('[{"text": "hi"}]', encoding="utf-8")
    assert errors_of(sch, ws, data={"train_file": "train.json",
                                    "validation_file": "val.jsonl"}) == []


@pytest.mark.parametrize("value", ["./models/mine", "~/no-such-model-dir-xyz", "a/b/c"])
def test_missing_local_model(sch, ws, value):
    msg = one_error(sch, ws, model={"model_name_or_path": value})
    assert "[model] model_name_or_path" in msg and "does not exist" in msg


def test_partially_existing_model_path_is_a_path(sch, ws):
    (ws / "checkpoints").mkdir()
    msg = one_error(sch, ws, model={"model_name_or_path": "checkpoints/final"})
    assert "does not exist" in msg and str(ws / "checkpoints" / "final") in msg


def test_model_folder_without_config(sch, ws):
    (ws / "weights").mkdir()
    msg = one_error(sch, ws, model={"model_name_or_path": "./weights"})
    assert "[model] model_name_or_path" in msg and "config.json" in msg


def test_hub_id_when_offline(sch, ws, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = one_error(sch, ws, model={"model_name_or_path": "someorg/somemodel"})
    assert "[model] model_name_or_path" in msg
    assert "not in the local Hugging Face cache" in msg and "offline" in msg


def test_hub_id_cached_when_offline(sch, ws, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = ws / "hub" / "models--someorg--somemodel"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}", encoding="utf-8")
    model = {"model_name_or_path": "someorg/somemodel", "cache_dir": "hub"}
    assert errors_of(sch, ws, model=model) == []


def test_hub_id_online_is_not_checked(sch, ws, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert errors_of(sch, ws, model={"model_name_or_path": "someorg/somemodel"}) == []


def test_invalid_hub_id(sch, ws):
    msg = one_error(sch, ws, model={"model_name_or_path": "my model"})
    assert "[model] model_name_or_path" in msg and "hub id" in msg


def test_dataset_offline_is_a_warning(sch, ws, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    doc = good_doc()
    doc["data"] = {"dataset_name": "someorg/texts"}
    errors, warnings = validate_document(doc, sch, base_dir=ws)
    assert errors == []
    assert any("[data] dataset_name" in w and "offline" in w for w in warnings)


def test_output_dir_that_is_a_file(sch, ws):
    msg = one_error(sch, ws, training={"output_dir": "train.txt"})
    assert "[training] output_dir" in msg and "is a file" in msg


# ---------------------------------------------------------------- TOML files


def test_toml_syntax_error_names_file_and_line(ws):
    path = write(ws, '[model]\nmodel_name_or_path = "./model"\nbroken = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (error,) = info.value.errors
    assert str(error).startswith(f"{path}:3: invalid TOML")


def test_missing_toml(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert str(info.value) == f"{tmp_path / 'absent.toml'}: no such file; create one with " \
        "`clmtune init FILE`"


def test_toml_is_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_toml_with_a_byte_order_mark_loads_and_saves_without_it(ws):
    # Windows editors write "UTF-8 with BOM"; before: "invalid TOML: Invalid statement".
    path = ws / "run.toml"
    path.write_bytes(b"\xef\xbb\xbf# my notes\n" + GOOD_TOML.encode("utf-8"))
    cfg = load_config(path, resolve_paths=False)
    assert cfg.training["max_steps"] == 10
    cfg.training["max_steps"] = 20
    save_config(cfg, path)
    raw = path.read_bytes()
    assert raw.startswith(b"# my notes\n")  # the comments were kept, the BOM was not
    assert load_config(path).training["max_steps"] == 20


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_toml_that_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    for path in (Path("/dev/null"), fifo):  # a FIFO would block a read forever
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path}: is not a regular file (a device, pipe or socket); " \
            "give the path of a .toml file"


def test_unknown_key_without_a_close_match(sch, ws):
    # Before: "(`clmtune check` lists none by this name)", printed by clmtune check itself.
    msg = one_error(sch, ws, training={"zzqx_flux": 1})
    assert msg == ("[training] zzqx_flux: unknown key: not a setting of [training] (nor a "
                   "TrainingArguments field of the installed transformers); `python -m "
                   "clmtune.backend.settings --reference` lists every setting")
    msg = one_error(sch, ws, launch={"zzqx_flux": 1})
    assert msg.startswith("[launch] zzqx_flux: unknown key: not a setting of [launch], whose "
                          "settings are nproc_per_node, nnodes, ")
    assert "clmtune check" not in msg


def test_toml_not_utf8(tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes(b'[model]\nmodel_name_or_path = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_load_config_reports_every_error(sch, ws):
    path = write(ws, '[training]\nlearning_rate = "3e-4"\nevaluation_strategy = "steps"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.errors) >= 4  # lr, eval name, no model, no data
    assert all(line.startswith(f"{path}: [") for line in lines)


def test_check_file_exit_codes(sch, ws, capsys):
    good = write(ws, GOOD_TOML)
    assert check_file(good) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{good}: ok (") and out.err == ""
    bad = write(ws, GOOD_TOML.replace("learning_rate = 3e-4", 'learning_rate = "x"'), "bad.toml")
    assert check_file(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[training] learning_rate" in err[0]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_bf16_without_cuda_warns_on_check_refuses_on_launch(sch, ws, capsys):
    if _cuda():
        pytest.skip("this machine has CUDA: bf16 may be fine here")
    path = write(ws, GOOD_TOML.replace("max_steps = 10", "max_steps = 10\nbf16 = true"))
    assert check_file(path) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "[training] bf16" in err
    with pytest.raises(ConfigError) as info:
        load_config(path, for_launch=True)
    assert "[training] bf16" in str(info.value) and "CUDA" in str(info.value)
    assert any("bf16" in h for h in hardware_checks(load_config(path)))


# ---------------------------------------------------------------- saving


def test_round_trip(sch, ws):
    path = write(ws, GOOD_TOML)
    first = load_config(path, resolve_paths=False)
    out = ws / "copy.toml"
    save_config(first, out)
    second = load_config(out, resolve_paths=False)
    assert dataclasses.replace(second, source=first.source) == first
    assert second.training["lr_scheduler_kwargs"] == {"power": 2.0}
    assert load_config(out) == dataclasses.replace(load_config(path), source=out.absolute())


def test_save_writes_only_set_keys_in_section_order(sch, ws):
    cfg = RunConfig(training={"max_steps": 10, "seed": None}, data={"train_file": "train.txt"},
                    model={"model_name_or_path": "./model"}, source=ws / "x.toml")
    save_config(cfg, ws / "x.toml")
    text = (ws / "x.toml").read_text(encoding="utf-8")
    keys = [line.split(" =")[0] for line in text.splitlines() if " = " in line]
    assert keys == ["model_name_or_path", "train_file", "max_steps"]
    assert text.index("[model]") < text.index("[data]") < text.index("[training]")
    assert "[launch]" not in text


def test_save_to_another_folder_keeps_paths_working(sch, ws, tmp_path_factory):
    cfg = load_config(write(ws, GOOD_TOML), resolve_paths=False)
    other = tmp_path_factory.mktemp("other") / "run.toml"
    save_config(cfg, other)
    assert load_config(other).data["train_file"] == str(ws / "train.txt")


def test_save_is_atomic(sch, ws, monkeypatch):
    path = write(ws, GOOD_TOML)
    before = path.read_bytes()
    cfg = load_config(path, resolve_paths=False)
    cfg.training["seed"] = 7

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_write.os, "replace", boom)
    with pytest.raises(ConfigError, match="No space left"):
        save_config(cfg, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith(".")) == []


def test_save_refuses_an_invalid_config(sch, ws):
    path = write(ws, GOOD_TOML)
    before = path.read_bytes()
    cfg = load_config(path, resolve_paths=False)
    cfg.training["learning_rate"] = -1.0
    with pytest.raises(ConfigError, match="learning_rate"):
        save_config(cfg, path)
    assert path.read_bytes() == before
    save_config(cfg, ws / "draft.toml", force=True)  # the TUI's draft case
    assert "learning_rate = -1.0" in (ws / "draft.toml").read_text(encoding="utf-8")


def test_tokens_are_never_written(sch, ws):
    cfg = load_config(write(ws, GOOD_TOML), resolve_paths=False)
    secret = "hf_" + "x" * 34
    cfg.training["hub_token"] = secret
    cfg.model["token"] = secret
    cfg.training["hub_model_id"] = secret
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        save_config(cfg, ws / "out.toml")
    save_config(cfg, ws / "out.toml", force=True)
    text = (ws / "out.toml").read_text(encoding="utf-8")
    assert secret not in text and "hub_token" not in text and "token =" not in text
    assert secret not in dumps_config(cfg)


# ---------------------------------------------------------------- what the training code reads


def test_training_arguments_kwargs_are_accepted(sch, ws, tmp_path):
    from transformers import TrainingArguments

    cfg = load_config(write(ws, GOOD_TOML))
    kwargs = training_arguments_kwargs(cfg, tmp_path / "run", has_validation=True)
    assert kwargs["eval_strategy"] == "steps" and kwargs["eval_steps"] == 500
    assert kwargs["report_to"] == ["none"] and kwargs["logging_steps"] == 10
    assert kwargs["logging_nan_inf_filter"] is False and kwargs["do_eval"] is True
    assert kwargs["learning_rate"] == 3e-4  # the user's value wins
    args = TrainingArguments(**kwargs)
    assert args.output_dir == str(tmp_path / "run") and args.eval_steps == 500

    cfg.training["save_steps"] = 40
    assert training_arguments_kwargs(cfg, tmp_path, has_validation=True)["eval_steps"] == 40
    no_val = training_arguments_kwargs(RunConfig(), tmp_path, has_validation=False)
    assert no_val["eval_strategy"] == "no" and no_val["do_eval"] is False
    assert no_val["report_to"] == "none" and no_val["logging_first_step"] is True
    TrainingArguments(**no_val)
    with pytest.raises(ConfigError, match="eval_strategy"):
        training_arguments_kwargs(RunConfig(training={"eval_strategy": "steps"}), tmp_path,
                                    has_validation=False)


def test_settings_fill_defaults(sch, ws):
    cfg = load_config(write(ws, GOOD_TOML))
    settings = cfg.settings
    model, data, launch = settings.model, settings.data, settings.launch
    assert model.pad_token == "eos" and model.dtype == "auto" and not model.trust_remote_code
    assert model.use_fast_tokenizer and model.model_name_or_path == str(ws / "model")
    assert data.packing == "group" and data.text_column == "text" and data.keep_linebreaks
    assert data.validation_split_percentage == 5 and not data.streaming
    assert data.train_file == str(ws / "train.txt") and data.block_size == 64
    assert launch.nproc_per_node == 1 and not launch.distributed
    for cls, section in ((ModelSettings, "model"), (DataSettings, "data"),
                         (LaunchSettings, "launch")):
        assert [f.name for f in dataclasses.fields(cls)] == list(sch[section])
    overrides = RunConfig(model={"config_overrides": "n_embd=10, n_layer=2"})
    assert overrides.settings.model.config_overrides_dict() == {"n_embd": "10",
                                                                "n_layer": "2"}


def test_command_line(sch):
    cfg = RunConfig()
    assert command_line(cfg, Path("my run.toml")) == "clmtune train 'my run.toml'"
    cfg.launch["nproc_per_node"] = 4
    first, second = command_line(cfg, "run.toml", "runs/a").splitlines()
    assert first == "clmtune train run.toml --run-dir runs/a"
    assert second == "torchrun --nproc_per_node=4 --standalone -m clmtune.backend.worker runs/a"
    cfg.launch.update(nnodes=2, node_rank=1, master_addr="10.0.0.1")
    argv = torchrun_argv(cfg, "r", launcher=[sys.executable, "-m", "torch.distributed.run"])
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nnodes=2" in argv and "--node_rank=1" in argv and "--master_addr=10.0.0.1" in argv
    assert argv[-3:] == ["-m", "clmtune.backend.worker", "r"]


def test_field_error_format():
    assert str(FieldError("data", "train_file", "no such file", "a.toml")) == \
        "a.toml: [data] train_file: no such file"
    assert str(FieldError("", "", "bad", "a.toml", 3)) == "a.toml:3: bad"
    assert str(FieldError("", "", "bad")) == "config: bad"


@pytest.mark.parametrize("value", [0, 100])
def test_a_bounded_value_names_its_whole_range_whichever_end_it_crosses(sch, ws, value):
    msg = one_error(sch, ws, data={"validation_split_percentage": value})
    assert msg.endswith(f"must be ≥ 1 and ≤ 99, got {value}")
