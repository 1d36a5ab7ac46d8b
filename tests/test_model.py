"""Model loading: demo assets round trip, pad policies, from-scratch config, dtype, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clmtune.backend.demo import EOS, build_demo_assets
from clmtune.backend.model import ADDED_PAD_TOKEN, TrainingSetupError, load_model_and_tokenizer
from clmtune.backend.settings.run_config import RunConfig


def _cfg(assets, **model) -> RunConfig:
    return RunConfig(model={"model_name_or_path": str(assets.model_dir), **model})


def test_demo_assets_round_trip_through_from_pretrained(tiny_assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_assets.model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_assets.model_dir)
    text = "def main(argv):\n    return 0\n"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token == tokenizer.bos_token == EOS
    assert model.config.model_type == "gpt2"
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert tiny_assets.train_file.stat().st_size > 10_000
    assert tiny_assets.validation_file.stat().st_size > 1_000


def test_demo_build_is_reused_and_a_partial_build_is_replaced(tiny_assets, tmp_path):
    again = build_demo_assets(tiny_assets.model_dir.parent, size="tiny")
    assert again == tiny_assets
    partial = tmp_path / "assets"
    (partial / "model").mkdir(parents=True)
    (partial / "train.txt").write_text("half", encoding="utf-8")
    built = build_demo_assets(partial, size="tiny")
    assert (built.model_dir / "config.json").is_file()
    assert built.train_file.read_text(encoding="utf-8") == tiny_assets.train_file.read_text(
        encoding="utf-8"
    )
    same_weights = (built.model_dir / "model.safetensors").read_bytes() == (
        tiny_assets.model_dir / "model.safetensors"
    ).read_bytes()
    assert same_weights  # deterministic build


def test_pad_policy_eos_reuses_the_eos_token(tiny_assets):
    model, tokenizer, info = load_model_and_tokenizer(_cfg(tiny_assets))
    assert tokenizer.pad_token == tokenizer.eos_token
    assert model.config.pad_token_id == tokenizer.eos_token_id
    assert not info.pad_token_added and not info.embeddings_resized
    assert info.vocab_size == len(tokenizer)
    assert info.num_params == info.trainable_params == sum(p.numel() for p in model.parameters())


def test_pad_policy_add_adds_a_token_and_resizes_embeddings(tiny_assets):
    _, base_tokenizer, base = load_model_and_tokenizer(_cfg(tiny_assets))
    model, tokenizer, info = load_model_and_tokenizer(_cfg(tiny_assets, pad_token="add"))
    assert tokenizer.pad_token == ADDED_PAD_TOKEN
    assert len(tokenizer) == len(base_tokenizer) + 1
    assert info.pad_token_added and info.embeddings_resized
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id
    assert info.num_params > base.num_params


@pytest.mark.parametrize(
    ("name", "dtype"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)]
)
def test_dtype_is_applied_when_loading(tiny_assets, name, dtype):
    model, _, _ = load_model_and_tokenizer(_cfg(tiny_assets, dtype=name))
    assert next(model.parameters()).dtype == dtype


def test_from_scratch_with_model_type_and_overrides(tiny_assets):
    cfg = RunConfig(
        model={
            "model_type": "gpt2",
            "config_overrides": "n_embd=16,n_layer=1,n_head=2,vocab_size=300",
            "tokenizer_name": str(tiny_assets.model_dir),
        }
    )
    model, tokenizer, info = load_model_and_tokenizer(cfg)
    assert info.from_scratch and info.name is None
    assert (model.config.n_embd, model.config.n_layer) == (16, 1)
    # the tokenizer (400 tokens) is larger than the overridden vocab: run_clm resizes
    assert info.embeddings_resized and info.vocab_size == len(tokenizer)


def test_missing_model_path_is_a_one_line_error(tmp_path: Path):
    cfg = RunConfig(model={"model_name_or_path": str(tmp_path / "nope")})
    with pytest.raises(TrainingSetupError) as info:
        load_model_and_tokenizer(cfg)
    assert "[model] model_name_or_path" in str(info.value)
    assert "\n" not in str(info.value)


def test_from_scratch_without_tokenizer_is_an_error():
    with pytest.raises(TrainingSetupError, match=r"\[model\] tokenizer_name"):
        load_model_and_tokenizer(RunConfig(model={"model_type": "gpt2"}))
