"""``clmtune preview``: the numbers training will log, the warnings, the JSON keys, the estimate.

Expected block counts are computed here independently, the run_clm way (``datasets`` loads
the files, the tokenizer counts tokens, each batch of 1000 examples makes
``tokens // block_size`` blocks, or one block per non-empty example for line packing), and
for two cases compared with what a real training run logs (``train_samples`` /
``eval_samples``).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from clmtune.backend import estimate as est
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.toml_io import save_config
from clmtune.backend.tools.preview import KEYS, data_report, distribution
from clmtune.backend.tools.preview_text import report_lines
from tests.fixtures import make_tiny_config
from tests.run_helpers import clmtune

BLOCK = 32


@pytest.fixture(scope="module")
def files(tiny_assets, tmp_path_factory) -> dict[str, Path]:
    """Small txt / json / csv train and validation files cut from the tiny demo text."""
    root = tmp_path_factory.mktemp("preview-data")
    train = tiny_assets.train_file.read_text(encoding="utf-8").splitlines(keepends=True)[:1500]
    valid = tiny_assets.validation_file.read_text(encoding="utf-8").splitlines(keepends=True)
    valid = valid[:200]
    out: dict[str, Path] = {}
    for name, lines in (("train", train), ("valid", valid)):
        (root / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
        texts = [line.rstrip("\n") for line in lines if line.strip()]
        with (root / f"{name}.json").open("w", encoding="utf-8") as f:
            for text in texts:
                f.write(json.dumps({"text": text}) + "\n")
        with (root / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text"])
            writer.writerows([f"row{i}", text] for i, text in enumerate(texts))
        for kind in ("txt", "json", "csv"):
            out[f"{name}.{kind}"] = root / f"{name}.{kind}"
    return out


def _config(tiny_assets, files, kind: str, packing: str, validation: bool,
            **data: Any) -> RunConfig:
    cfg = make_tiny_config(tiny_assets, max_steps=1, eval_strategy="no", save_strategy="no",
                           logging_steps=1)
    section = dict(cfg.section("data"))
    section.pop("max_eval_samples", None)
    section.update(train_file=str(files[f"train.{kind}"]), block_size=BLOCK, packing=packing)
    section.pop("validation_file", None)
    if validation:
        section["validation_file"] = str(files[f"valid.{kind}"])
    if kind == "csv":
        section["text_column"] = "text"
    section.update(data)
    return RunConfig(model=cfg.section("model"), data=section, training=cfg.section("training"))


def _expected_blocks(cfg: RunConfig) -> tuple[int, int]:
    """run_clm's counts, computed without clmtune's data code."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    data = cfg.settings.data
    tokenizer = AutoTokenizer.from_pretrained(cfg.settings.model.model_name_or_path)
    builder = {".txt": "text", ".json": "json", ".csv": "csv"}[Path(data.train_file).suffix]
    files = {"train": data.train_file}
    if data.validation_file:
        files["validation"] = data.validation_file
    load: dict[str, Any] = {"data_files": files}
    if builder == "text":
        load["keep_linebreaks"] = data.keep_linebreaks
    if data.validation_file:
        splits = {"train": "train", "validation": "validation"}
    else:
        pct = data.validation_split_percentage
        splits = {"train": f"train[{pct}%:]", "validation": f"train[:{pct}%]"}
    counts = []
    for split, limit in (("train", data.max_train_samples), ("validation", data.max_eval_samples)):
        texts = load_dataset(builder, split=splits[split], **load)[data.text_column]
        lengths = [len(tokenizer(text)["input_ids"]) for text in texts]
        if data.packing == "group":
            blocks = sum(sum(lengths[i:i + 1000]) // BLOCK for i in range(0, len(lengths), 1000))
        else:
            blocks = sum(1 for n in lengths if n > 0)
        counts.append(blocks if limit is None else min(blocks, limit))
    return counts[0], counts[1]


CASES = {
    "txt-group-validation": ("txt", "group", True, {}),
    "txt-group-split-max-train": ("txt", "group", False, {"max_train_samples": 100}),
    "json-group-max-eval": ("json", "group", True, {"max_eval_samples": 5}),
    "csv-line-validation": ("csv", "line", True, {}),
    "json-line-split-limits": ("json", "line", False,
                               {"max_train_samples": 50, "max_eval_samples": 3}),
    "txt-line-max-train": ("txt", "line", True, {"max_train_samples": 70}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_blocks_are_run_clms_counts(case, tiny_assets, files):
    kind, packing, validation, data = CASES[case]
    cfg = _config(tiny_assets, files, kind, packing, validation, **data)
    report, _ = data_report(cfg, samples=1)
    assert (report["train_blocks"], report["eval_blocks"]) == _expected_blocks(cfg)
    assert report["train_rows"] > report["train_blocks"] * 0 and report["eval_rows"] > 0
    if packing == "group":
        dropped = report["train_tokens"] - report["train_blocks_before_limit"] * BLOCK
        assert report["dropped_tokens"] == dropped >= 0 and report["padded_tokens"] == 0
    else:
        assert report["padded_tokens"] > 0 and report["dropped_tokens"] == 0
    assert report["steps_per_epoch"] == -(-report["train_blocks"] // 4)  # batch 4, 1 device
    assert report["total_steps"] == 1 and report["tokens_per_step"] == 4 * BLOCK


@pytest.mark.parametrize("case", ["txt-group-max-train", "csv-line-split-max-eval"])
def test_preview_equals_what_training_logs_and_fills_its_cache(case, tiny_assets, files,
                                                               tmp_path):
    from clmtune.backend.train import run_training

    if case == "txt-group-max-train":
        cfg = _config(tiny_assets, files, "txt", "group", True, max_train_samples=40)
    else:
        cfg = _config(tiny_assets, files, "csv", "line", False, max_eval_samples=7)
    report, _ = data_report(cfg, samples=0)
    cache = Path(os.environ["HF_DATASETS_CACHE"])
    before = sorted(cache.rglob("cache-*.arrow"))
    outcome = run_training(cfg, tmp_path / "run", emit=lambda event: None)
    assert outcome.train_metrics["train_samples"] == report["train_blocks"]
    assert outcome.eval_metrics["eval_samples"] == report["eval_blocks"]
    # The run tokenized and packed nothing itself: the preview had filled the cache.
    assert sorted(cache.rglob("cache-*.arrow")) == before


def _warnings(tiny_assets, files, tmp_path, setup: str) -> list[str]:
    if setup == "empty-validation":
        (tmp_path / "v.txt").write_text("hi\n", encoding="utf-8")
        cfg = _config(tiny_assets, files, "txt", "group", True,
                      validation_file=str(tmp_path / "v.txt"))
    elif setup == "fewer-than-a-batch":
        (tmp_path / "t.txt").write_text("one two three four five six seven eight\n" * 10,
                                        encoding="utf-8")
        cfg = _config(tiny_assets, files, "txt", "group", True, train_file=str(tmp_path / "t.txt"))
        cfg = RunConfig(model=cfg.section("model"), data=cfg.section("data"),
                        training=cfg.section("training") | {"per_device_train_batch_size": 64})
    elif setup == "block-above-model":
        cfg = _config(tiny_assets, files, "txt", "group", True, block_size=128)
    elif setup == "column-not-text":
        for name in ("t", "v"):
            rows = [{"id": str(i), "body": f"line {i} of some text"} for i in range(40)]
            (tmp_path / f"{name}.json").write_text(
                "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        cfg = _config(tiny_assets, files, "json", "group", True, block_size=8,
                      train_file=str(tmp_path / "t.json"),
                      validation_file=str(tmp_path / "v.json"))
    elif setup == "long-examples":
        cfg = _config(tiny_assets, files, "txt", "line", True, block_size=8)
    else:
        cfg = _config(tiny_assets, files, "txt", "group", True)
    report, _ = data_report(cfg, samples=0)
    return report["warnings"]


WARNINGS = {
    "empty-validation": "empty validation",
    "fewer-than-a-batch": "fewer than one batch",
    "block-above-model": "block_size = 128 is larger",
    "column-not-text": "holds numbers",
    "long-examples": "longer than block_size 8",
}


@pytest.mark.parametrize("setup", [*WARNINGS, "clean"])
def test_warnings_fire(setup, tiny_assets, files, tmp_path):
    warnings = _warnings(tiny_assets, files, tmp_path, setup)
    if setup == "clean":
        assert warnings == []
    else:
        assert any(WARNINGS[setup] in w for w in warnings), warnings
    if setup == "column-not-text":
        assert any("text_column is not set" in w and "'id'" in w for w in warnings)


def test_cli_json_keys_samples_and_bad_input(tiny_assets, files, tmp_path):
    cfg = _config(tiny_assets, files, "txt", "group", True)
    path = tmp_path / "run.toml"
    save_config(cfg, path)
    done = clmtune("preview", str(path), "--json", "--samples", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(KEYS) <= set(report)
    assert set(report["lengths"]) >= {"min", "p50", "p90", "p99", "max"}
    samples = report["samples"]
    assert len(samples) == 3 and all(s["tokens"] == BLOCK for s in samples)
    # Boundaries fall where a line of the .txt file ends (keep_linebreaks: it ends with \n).
    marked = [seg for s in samples for seg in s["segments"][:-1]]
    assert marked and all(seg.endswith("\n") for seg in marked)
    assert all(s["text"].count("<||>") == len(s["segments"]) - 1 for s in samples)
    memory = report["estimate"]["memory"]
    assert memory["params"] == report["estimate"]["model"]["params"] > 0
    assert memory["fits"] in (True, False) and memory["max_batch_size"] >= 1
    text = list(report_lines(report))  # what the command prints without --json
    assert any(line.startswith("blocks    train") for line in text)
    assert any(": fits" in line or "does NOT fit" in line for line in text)
    assert any("--- block 2 (32 tokens" in line for line in text)

    missing = clmtune("preview", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text(encoding="utf-8").replace("block_size = 32",
                                                            'block_size = "big"'))
    done = clmtune("preview", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and "block_size" in done.stderr and "Traceback" not in done.stderr


def test_piped_bad_input_after_loading_the_data_is_the_only_stderr_line(tiny_assets, files,
                                                                        tmp_path):
    # A fresh copy of the data: datasets generates its split (a progress bar) before the
    # column is found missing.
    train = tmp_path / "fresh.csv"
    train.write_text(files["train.csv"].read_text(encoding="utf-8"), encoding="utf-8")
    cfg = _config(tiny_assets, files, "csv", "group", False, train_file=str(train),
                  text_column="nope")
    path = tmp_path / "run.toml"
    save_config(cfg, path)
    done = clmtune("preview", str(path), cwd=tmp_path, env={**os.environ, "CI": "true"})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "clmtune: error: [data] text_column = 'nope' is not a column of the training data; "
        "use one of 'id', 'text'"]


def test_library_output_is_kept_only_for_a_terminal(monkeypatch):
    from clmtune.backend.tools.quiet import watched

    class Terminal:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    monkeypatch.delenv("CI", raising=False)
    assert watched(Terminal()) and not watched(Pipe()) and not watched(object())
    for ci, seen in (("true", False), ("1", False), ("false", True), ("", True)):
        monkeypatch.setenv("CI", ci)
        assert watched(Terminal()) is seen, ci


# ------------------------------------------------------------------ the estimate


def test_param_count_formula_matches_the_real_model(tiny_assets):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_assets.model_dir)
    real = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    assert est.count_params(est.shape_from_config(config.to_dict())) == real


def _shape() -> est.ModelShape:
    config = {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
              "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 8192,
              "vocab_size": 128256, "max_position_embeddings": 4096,
              "tie_word_embeddings": True, "dtype": "bfloat16"}
    return est.shape_from_config(config)


def test_estimate_parts_follow_the_settings():
    shape = _shape()
    assert 1.2e9 < shape.params < 1.3e9  # Llama-3.2-1B
    base = est.estimate_memory(shape, batch_size=4, block_size=1024, param_dtype="float32")
    assert base.parts["weights"] == base.parts["gradients"] == 4 * shape.params
    assert base.parts["optimizer"] == 8 * shape.params
    lora = est.estimate_memory(shape, batch_size=4, block_size=1024, param_dtype="float32",
                               trainable_params=shape.params // 100)
    assert lora.parts["optimizer"] == 8 * (shape.params // 100) and lora.total < base.total
    for optim in ("adafactor", "sgd", "adamw_8bit"):
        other = est.estimate_memory(shape, batch_size=4, block_size=1024, optim=optim,
                                    param_dtype="float32")
        assert other.parts["optimizer"] < base.parts["optimizer"]
    ckpt = est.estimate_memory(shape, batch_size=4, block_size=1024, param_dtype="float32",
                               gradient_checkpointing=True)
    assert ckpt.parts["activations"] < base.parts["activations"] / 4
    mixed = est.estimate_memory(shape, batch_size=4, block_size=1024, param_dtype="float32",
                                precision="bf16")
    assert mixed.parts["autocast_copies"] > 0
    assert mixed.parts["activations"] < base.parts["activations"]
    auto = est.estimate_memory(shape, batch_size=4, block_size=1024)  # checkpoint dtype: bf16
    assert auto.parts["weights"] == 2 * shape.params
    bigger = est.estimate_memory(shape, batch_size=8, block_size=1024, param_dtype="float32")
    assert bigger.parts["activations"] == 2 * base.parts["activations"]


def test_fits_and_the_largest_batch_that_fits():
    shape = _shape()
    limit = 40 * est.GIB
    result = est.estimate_memory(shape, batch_size=4, block_size=1024, device_memory=limit)
    best = result.max_batch_size
    assert best and best >= 1
    at = est.estimate_memory(shape, batch_size=best, block_size=1024, device_memory=limit)
    over = est.estimate_memory(shape, batch_size=best + 1, block_size=1024, device_memory=limit)
    assert at.fits is True and over.fits is False
    tiny = est.estimate_memory(shape, batch_size=1, block_size=1024, device_memory=est.GIB)
    assert tiny.fits is False and tiny.max_batch_size == 0


def test_distribution_is_nearest_rank():
    stats = distribution(list(range(1, 101)))
    assert (stats["min"], stats["p50"], stats["p90"], stats["p99"], stats["max"]) == \
        (1, 50, 90, 99, 100)


def test_activation_estimate_matches_what_autograd_keeps():
    """The activations + logits of the estimate against the bytes autograd really saves for
    backward in a GPT-2 forward on CPU (the demo model's shape, random weights), ±25%."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("gpt2", vocab_size=1024, n_positions=128, n_embd=96,
                                  n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    model = AutoModelForCausalLM.from_config(config).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    ids = torch.randint(0, 1024, (8, 128))
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        out = model(input_ids=ids, labels=ids)
    # What backward starts from: the saved tensors, the logits and their gradient.
    measured = sum(n for ptr, n in saved.items() if ptr not in params) + 2 * out.logits.nbytes
    estimate = est.estimate_memory(est.shape_from_config(config), batch_size=8, block_size=128)
    guess = estimate.parts["activations"] + estimate.parts["logits"]
    assert abs(guess - measured) / measured < 0.25, (guess, measured)
