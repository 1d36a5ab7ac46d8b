"""GPU throughput and MFU: a plain run_clm-style Trainer loop against `clmtune train`.

Builds everything locally, no network: a byte-level BPE tokenizer trained on Python's
standard-library sources, a model with random weights from a config, and text (the same
sources, repeated until there are enough tokens for the run). Then, each side in its own
process, with the same ``TrainingArguments`` (the ``gpu-fast`` preset's training settings,
steps / batch / block from the options):

* plain: ``bench/plain_run_clm.py`` (transformers/datasets/evaluate only);
* clmtune: ``clmtune train FILE --run-dir DIR`` (the worker, its callback, the events,
  the GPU telemetry thread when ``nvidia-ml-py`` is installed).

Printed per side: tokens/s over the whole train runtime (first steps and compilation
included), the steady tokens/s between the first and the last loss log (the warm-up
excluded), and the MFU of the steady figure (backend.mfu: 6N + 12·L·H·Q·T FLOPs per
token over the GPU's dense peak for the precision); then clmtune/plain ratios.

    python bench/bench_gpu.py [--model gpt2-small|1b|tiny] [--steps 200] [--batch 16]
                              [--block 1024] [--accum 1] [--pairs 1] [--compile]
                              [--peak-tflops X] [--work DIR]

``gpt2-small``: GPT-2 small (124M, 12 layers, 768 wide, vocab 50257). ``1b``: a
Llama-3.2-1B-shaped model (16 layers, 2048 wide, 32 heads / 8 KV heads, MLP 8192, vocab
32000, tied embeddings: ~1.0B). ``tiny``: a CPU smoke test (``--model tiny --steps 3``).
On a machine without CUDA the run is fp32 on the CPU and MFU is left out (unless
``--peak-tflops`` is given). Nothing here gates anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
VOCAB_TOKENIZER = 8192  # BPE vocabulary trained on the local text (the model's may be larger)
MAX_EVAL_SAMPLES = 32


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("gpt2-small", "1b", "tiny"), default="gpt2-small")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=None,
                        help="sequences per device per micro-batch (default: 16; 1b: 8)")
    parser.add_argument("--block", type=int, default=None,
                        help="tokens per sequence (default: 1024; tiny: 64)")
    parser.add_argument("--accum", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--logging-steps", type=int, default=None,
                        help="default: steps / 10 (at least 1)")
    parser.add_argument("--pairs", type=int, default=1, help="runs per side, interleaved")
    parser.add_argument("--compile", action="store_true", help="torch_compile = true, both sides")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense peak TFLOP/s of one device (default: from backend.mfu's table)")
    parser.add_argument("--work", type=Path, default=None, help="keep the files here")
    opts = parser.parse_args()
    opts.batch = opts.batch or (8 if opts.model == "1b" else 4 if opts.model == "tiny" else 16)
    opts.block = opts.block or (64 if opts.model == "tiny" else 1024)
    opts.logging_steps = opts.logging_steps or max(1, opts.steps // 10)
    return opts


# ----------------------------------------------------------------- local assets


def model_config(name: str, block: int) -> Any:
    from transformers import GPT2Config, LlamaConfig

    if name == "gpt2-small":
        return GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257,
                          n_positions=max(1024, block))
    if name == "1b":
        return LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                           num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                           max_position_embeddings=max(2048, block), tie_word_embeddings=True,
                           rope_theta=500000.0)
    return GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=VOCAB_TOKENIZER,
                      n_positions=block, bos_token_id=0, eos_token_id=0)


def local_text(chars: int) -> str:
    """Python's standard-library sources, in a fixed order, repeated up to ``chars``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    parts: list[str] = []
    total = 0
    while total < chars:
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(text)
            total += len(text)
            if total >= chars:
                break
    return "\n\n".join(parts)


def build_assets(opts: argparse.Namespace, work: Path) -> tuple[Path, Path, Path]:
    """(model dir, train file, validation file) in ``work``; reused when already there."""
    model_dir, train, validation = work / "model", work / "train.txt", work / "validation.txt"
    marker = work / f"assets-{opts.model}-{opts.block}-{opts.steps}x{opts.batch}x{opts.accum}"
    if marker.exists():
        return model_dir, train, validation
    import torch

    from clmtune.backend.demo import _train_tokenizer

    tokens = opts.steps * opts.batch * opts.accum * opts.block
    text = local_text(int(tokens * 4.5) + 200_000)  # ~3-4 characters per token of code
    train.write_text(text, encoding="utf-8")
    validation.write_text(local_text(200_000)[-100_000:], encoding="utf-8")
    tokenizer = _train_tokenizer([text[:3_000_000]], VOCAB_TOKENIZER, opts.block)
    config = model_config(opts.model, opts.block)
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    marker.write_text("ok")
    return model_dir, train, validation


def settings_toml(opts: argparse.Namespace, assets: tuple[Path, Path, Path], cuda: bool) -> str:
    """The run's settings: the gpu-fast preset's training keys, this benchmark's sizes."""
    import tomli_w

    from clmtune.backend.presets import preset_sections

    model_dir, train, validation = assets
    training = dict(preset_sections("gpu-fast", _FakeAssets(*assets))["training"])
    training.update(
        max_steps=opts.steps, per_device_train_batch_size=opts.batch,
        per_device_eval_batch_size=opts.batch, gradient_accumulation_steps=opts.accum,
        learning_rate=6e-4, warmup_steps=min(100, opts.steps // 10),
        logging_steps=opts.logging_steps, eval_strategy="no", save_strategy="no",
        seed=42, report_to="none", disable_tqdm=True,
    )
    if opts.compile:
        training["torch_compile"] = True
    if not cuda:  # the CPU smoke test: no mixed precision, no pinned memory, no workers
        training.update(bf16=False, tf32=False, optim="adamw_torch",
                        dataloader_pin_memory=False, dataloader_num_workers=0,
                        dataloader_persistent_workers=False)
    doc = {
        "model": {"model_name_or_path": str(model_dir)},
        "data": {"train_file": str(train), "validation_file": str(validation),
                 "block_size": opts.block, "max_eval_samples": MAX_EVAL_SAMPLES,
                 "packing": "group",
                 "preprocessing_num_workers": max(1, min(8, os.cpu_count() or 1))},
        "training": training,
    }
    if opts.peak_tflops:
        doc["launch"] = {"peak_tflops": opts.peak_tflops}
    return tomli_w.dumps(doc)


class _FakeAssets:
    """The demo asset paths ``preset_sections`` fills in (only the training keys are used)."""

    def __init__(self, model_dir: Path, train: Path, validation: Path) -> None:
        self.model_dir, self.train_file, self.validation_file = model_dir, train, validation


# ----------------------------------------------------------------- the two sides


def steady_tokens_per_s(logs: list[tuple[int, float]], tokens_per_step: int) -> float | None:
    """Tokens/s between the first and the last loss log (the warm-up before it excluded)."""
    if len(logs) < 2:
        return None
    (s0, t0), (s1, t1) = logs[0], logs[-1]
    return (s1 - s0) * tokens_per_step / (t1 - t0) if t1 > t0 and s1 > s0 else None


def run_plain(config: Path, assets: tuple[Path, Path, Path], opts: argparse.Namespace,
              work: Path, name: str) -> dict[str, Any]:
    from clmtune.backend.metrics_local import TOKEN_ACCURACY
    from clmtune.backend.settings.toml_io import load_config
    from clmtune.backend.settings.training_args import training_arguments_kwargs

    out_dir = work / name
    args_file, result = work / f"{name}.args.json", work / f"{name}.result.json"
    kwargs = training_arguments_kwargs(load_config(config), str(out_dir), has_validation=True)
    args_file.write_text(json.dumps(kwargs))
    model_dir, train, validation = assets
    command = [
        sys.executable, str(BENCH / "plain_run_clm.py"), "--model", str(model_dir),
        "--train", str(train), "--validation", str(validation),
        "--block-size", str(opts.block), "--max-eval-samples", str(MAX_EVAL_SAMPLES),
        "--metric", str(TOKEN_ACCURACY), "--training-args", str(args_file),
        "--result", str(result),
    ]  # fmt: skip
    with open(work / f"{name}.log", "w") as log:
        code = subprocess.call(command, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not result.exists():
        raise SystemExit(f"the plain script failed (exit {code}); see {work / name}.log")
    got = json.loads(result.read_text())
    return {"samples_per_s": got["train_samples_per_second"],
            "logs": [tuple(x) for x in got.get("log_times") or []]}


def run_clmtune(config: Path, work: Path, name: str) -> dict[str, Any]:
    from clmtune.backend.events import read_events

    run_dir = work / "runs" / name
    script = Path(sys.executable).with_name("clmtune")
    command = [str(script) if script.exists() else "clmtune", "train", str(config),
               "--run-dir", str(run_dir)]
    with open(work / f"{name}.log", "w") as log:
        code = subprocess.call(command, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    results = run_dir / "train_results.json"
    if code != 0 or not results.exists():
        raise SystemExit(f"clmtune train failed (exit {code}); see {work / name}.log and "
                         f"{run_dir}/logs")
    events = read_events(run_dir / "events.jsonl")
    logs = [(int(e["step"]), float(e["time"])) for e in events
            if e.get("type") == "train_log" and e.get("loss") is not None]
    started = next((e for e in events if e.get("type") == "run_started"), {})
    gpu = [d for e in events if e.get("type") == "gpu" for d in e.get("devices") or []]
    utils = [d["util"] for d in gpu if d.get("util") is not None]
    return {"samples_per_s": json.loads(results.read_text())["train_samples_per_second"],
            "logs": logs, "started": started,
            "gpu_util": statistics.fmean(utils) if utils else None}


# ----------------------------------------------------------------- report


def main() -> None:
    opts = parse()
    import torch

    from clmtune.backend import mfu

    cuda = torch.cuda.is_available()
    work = opts.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    t = time.monotonic()
    assets = build_assets(opts, work)
    print(f"assets ({opts.model}) in {work} ({time.monotonic() - t:.0f} s)")
    config = work / "bench.toml"
    config.write_text(settings_toml(opts, assets, cuda))

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(assets[0])
    precision = "bf16" if cuda else "fp32"
    device = torch.cuda.get_device_name(0) if cuda else None
    fields = mfu.run_started_fields(model, opts.block, device_name=device, precision=precision,
                                    override_tflops=opts.peak_tflops)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    tokens_per_step = opts.batch * opts.accum * opts.block  # one process
    print(f"model {opts.model}: {n_params / 1e6:.1f}M parameters, "
          f"{fields['flops_per_token'] / 1e9:.3f} GFLOP/token; device {device or 'cpu'} "
          f"({precision}, peak {fields['peak_flops'] / 1e12 if fields['peak_flops'] else '-'} "
          f"TFLOP/s); {opts.steps} steps x {tokens_per_step} tokens"
          + (", torch.compile" if opts.compile else ""))

    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "clmtune": []}
    order = []
    for i in range(opts.pairs):
        order += [("plain", "clmtune"), ("clmtune", "plain")][i % 2]
    for i, side in enumerate(order):
        name = f"{side}-{i}"
        t = time.monotonic()
        got = (run_plain(config, assets, opts, work, name) if side == "plain"
               else run_clmtune(config, work, name))
        got["steady"] = steady_tokens_per_s(got["logs"], tokens_per_step)
        got["overall"] = got["samples_per_s"] * opts.block
        runs[side].append(got)
        print(f"  {name}: {got['overall']:,.0f} tok/s overall, "
              f"{got['steady'] or float('nan'):,.0f} tok/s steady "
              f"({time.monotonic() - t:.0f} s wall)")

    def median(side: str, key: str) -> float | None:
        values = [r[key] for r in runs[side] if r.get(key)]
        return statistics.median(values) if values else None

    print()
    print(f"{'side':<8} {'tok/s overall':>14} {'tok/s steady':>13} {'MFU steady':>11}")
    for side in ("plain", "clmtune"):
        steady = median(side, "steady")
        value = mfu.mfu(steady, fields["flops_per_token"], fields["peak_flops"])
        print(f"{side:<8} {median(side, 'overall') or 0:>14,.0f} {steady or 0:>13,.0f} "
              f"{f'{value:.1%}' if value is not None else '-':>11}")
    for key, label in (("overall", "overall"), ("steady", "steady")):
        plain, ours = median("plain", key), median("clmtune", key)
        if plain and ours:
            print(f"clmtune / plain ({label}): {ours / plain:.3f} "
                  f"(overhead {100 * (1 - ours / plain):+.1f}%)")
    util = [r["gpu_util"] for r in runs["clmtune"] if r.get("gpu_util") is not None]
    if util:
        print(f"GPU utilisation (NVML, clmtune runs): {statistics.fmean(util):.0f}% mean")


if __name__ == "__main__":
    main()
