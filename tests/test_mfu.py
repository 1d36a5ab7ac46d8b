"""MFU: the FLOPs count against a hand computation, the GPU table, and a real run's figures."""

from __future__ import annotations

import pytest

from clmtune.backend import mfu
from clmtune.backend.events import read_json
from clmtune.backend.rundir.state import fold
from tests.fixtures import make_tiny_config


def test_gpt2_small_flops_per_token_by_hand():
    # GPT-2 small: L=12, H=12, d=768 (Q=64), T=1024, vocab 50257, 1024 positions.
    # Parameters: 124,439,808 in all; the position embedding (1024*768 = 786,432) is a
    # lookup, the token embedding is tied to the output layer and counts:
    #   N = 124,439,808 - 786,432 = 123,653,376
    #   6N          = 741,920,256
    #   12*L*H*Q*T  = 12*12*12*64*1024 = 113,246,208
    #   total       = 855,166,464 FLOPs per token
    per_token = mfu.flops_per_token(123_653_376, 12, 12, 64, 1024)
    assert per_token == 855_166_464
    # 400k tokens/s on one H100 SXM in bf16 (989.5 TFLOP/s dense):
    #   400,000 * 855,166,464 = 342,066,585,600,000 FLOP/s; / 989.5e12 = 0.345696...
    peak = mfu.peak_flops("NVIDIA H100 80GB HBM3", "bf16")
    assert peak == 989.5e12
    assert mfu.mfu(400_000, per_token, peak) == pytest.approx(0.3456969, abs=1e-6)
    # The same throughput spread over 2 GPUs is half the utilisation.
    assert mfu.mfu(400_000, per_token, peak, devices=2) == pytest.approx(0.1728484, abs=1e-6)
    assert mfu.mfu(400_000, per_token, None) is None  # CPU: no peak, no MFU


def test_matmul_params_counts_a_tied_embedding_once_and_no_lookups():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_head=2, n_embd=8, vocab_size=10, n_positions=16)
    tied = GPT2LMHeadModel(config)
    total = sum(p.numel() for p in tied.parameters())  # wte counted once (tied to lm_head)
    assert mfu.matmul_params(tied) == total - 16 * 8  # minus the position lookup only
    assert mfu.model_shape(config) == (2, 2, 4)
    untied = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=8, vocab_size=10,
                                        n_positions=16, tie_word_embeddings=False))
    total = sum(p.numel() for p in untied.parameters())  # wte and lm_head both
    assert mfu.matmul_params(untied) == total - 16 * 8 - 10 * 8


@pytest.mark.parametrize(("name", "precision", "tflops"), [
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
    ("NVIDIA A100-PCIE-40GB", "tf32", 156.0),
    ("NVIDIA H100 PCIe", "bf16", 756.0),
    ("NVIDIA H100 NVL", "bf16", 835.0),
    ("NVIDIA H200", "bf16", 989.5),
    ("NVIDIA L4", "fp16", 121.0),
    ("NVIDIA L40S", "bf16", 362.05),
    ("NVIDIA A10G", "bf16", 125.0),
    ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
    ("NVIDIA GeForce RTX 3090", "fp32", 35.6),
    ("Tesla V100-SXM2-16GB", "fp16", 125.0),
    ("Tesla T4", "fp16", 65.0),
])
def test_peak_table_by_nvml_name(name, precision, tflops):
    assert mfu.peak_flops(name, precision) == pytest.approx(tflops * 1e12)


def test_peak_unknown_missing_and_override():
    assert mfu.peak_flops("Tesla T4", "bf16") is None  # no bf16 on Turing
    assert mfu.peak_flops("Some Future GPU", "bf16") is None
    assert mfu.peak_flops(None, "fp32") is None
    assert mfu.peak_flops("Some Future GPU", "bf16", override_tflops=500) == 500e12
    assert mfu.precision_of(bf16=True, tf32=True) == "bf16"
    assert mfu.precision_of(tf32=True) == "tf32" and mfu.precision_of() == "fp32"


@pytest.fixture(scope="module")
def peak_run(tiny_assets, tmp_path_factory):
    """A real tiny run on CPU with [launch] peak_tflops set, so MFU is computed."""
    from clmtune.backend.callback import EventCallback
    from clmtune.backend.train import run_training

    run_dir = tmp_path_factory.mktemp("mfu") / "run"
    cfg = make_tiny_config(tiny_assets, max_steps=4, logging_steps=1,
                           eval_strategy="no", save_strategy="no")
    cfg.launch["peak_tflops"] = 0.5
    events: list[dict] = []
    run_training(cfg, run_dir, emit=events.append, callbacks=[EventCallback(events.append)])
    return run_dir, events


def test_a_run_reports_flops_per_token_and_mfu(peak_run):
    run_dir, events = peak_run
    started = next(e for e in events if e["type"] == "run_started")
    # The tiny model: its shape and matmul parameters, T = block size 32.
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = started["settings"]["model"]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    layers, heads, head_dim = mfu.model_shape(AutoConfig.from_pretrained(model_dir))
    expected = 6 * mfu.matmul_params(model) + 12 * layers * heads * head_dim * 32
    assert started["flops_per_token"] == expected
    assert started["peak_flops"] == 0.5e12 and started["precision"] == "fp32"
    assert started["gpu_name"] is None  # CPU
    state = fold(events)
    assert state.tokens_per_second and state.mfu == pytest.approx(
        state.tokens_per_second * expected / 0.5e12)
    results = read_json(run_dir / "train_results.json")
    tokens = results["train_tokens_per_second"]
    # 4 steps x 4 sequences x 32 tokens over the train runtime.
    assert tokens == pytest.approx(4 * 4 * 32 / results["train_runtime"])
    assert results["train_mfu"] == pytest.approx(tokens * expected / 0.5e12)
    assert state.final_metrics["train"]["train_mfu"] == results["train_mfu"]


def test_cpu_run_without_a_peak_has_tokens_per_second_and_no_mfu():
    events = [
        {"type": "run_started", "time": 1.0, "world_size": 1, "block_size": 32,
         "flops_per_token": 1e6, "peak_flops": None},
        {"type": "train_log", "time": 2.0, "step": 1, "loss": 2.0, "tokens_per_second": 100.0},
    ]
    state = fold(events)
    assert state.tokens_per_second == 100.0 and state.mfu is None
    assert mfu.final_figures(4, 128, 2.0, events[0]) == {"train_tokens_per_second": 256.0}
