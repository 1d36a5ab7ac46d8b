"""LoRA vs full fine-tuning through the CLI: peak memory and step time, ratio printed.

Builds the offline demo tokenizer and data, then a randomly initialised GPT-2 of the chosen
shape saved locally (default: GPT-2 small, 124M parameters: 12 layers, width 768), and trains
it twice with ``clmtune train`` (a real worker process each): ``[peft] method = "none"`` (the
baseline, measured in the same run) and ``"lora"`` (r=8, target_modules="auto"). Both arms
use the same data, batch, block size and steps; no evaluation, no checkpoints.

Figures come from the run's own events: peak RSS of the worker (``memory`` events, sampled at
every log; logging_steps = 1) and, on a GPU, the peak allocated CUDA memory; the step time is
the median gap between consecutive ``train_log`` events after ``--warmup`` steps.

    python bench/bench_lora.py [--steps 12] [--layers 12] [--width 768] [--batch 4]
                               [--block 128] [--device cpu|auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from clmtune.backend.events import read_events, to_float  # noqa: E402


def build_model(root: Path, args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """The demo tokenizer + data, and a random GPT-2 of the requested shape beside them."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from clmtune.backend.demo import build_demo_assets

    assets = build_demo_assets(root / "assets", size="demo")
    tokenizer = AutoTokenizer.from_pretrained(assets.model_dir)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=max(args.block, 128),
                        n_embd=args.width, n_layer=args.layers, n_head=args.heads,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model_dir = root / "model"
    GPT2LMHeadModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir, Path(assets.train_file), Path(assets.validation_file)


def write_config(path: Path, model_dir: Path, train: Path, args: argparse.Namespace,
                 method: str) -> None:
    use_cpu = "use_cpu = true\n" if args.device == "cpu" else ""
    path.write_text(f"""[model]
model_name_or_path = "{model_dir}"

[data]
train_file = "{train}"
block_size = {args.block}
validation_split_percentage = 1

[training]
max_steps = {args.steps}
per_device_train_batch_size = {args.batch}
learning_rate = 0.0002
logging_steps = 1
eval_strategy = "no"
save_strategy = "no"
seed = 0
disable_tqdm = true
report_to = "none"
dataloader_num_workers = 0
{use_cpu}
[peft]
method = "{method}"
""", encoding="utf-8")


def measure(run_dir: Path, warmup: int) -> dict[str, float | None]:
    events = read_events(run_dir / "events.jsonl")
    started = next(e for e in events if e.get("type") == "run_started")
    logs = [(int(e["step"]), float(e["time"])) for e in events if e.get("type") == "train_log"]
    pairs = zip(logs, logs[1:], strict=False)
    gaps = [(t2 - t1) / max(s2 - s1, 1) for (s1, t1), (s2, t2) in pairs if s1 >= warmup]
    rss = [to_float(e.get("process_rss")) for e in events if e.get("type") == "memory"]
    gpu = [to_float(d.get("peak_allocated")) for e in events if e.get("type") == "memory"
           for d in (e.get("devices") or [])]
    return {
        "trainable": float(started["trainable_params"]),
        "params": float(started["num_params"]),
        "step_s": statistics.median(gaps) if gaps else None,
        "peak_rss": max((r for r in rss if r), default=None),
        "peak_gpu": max((g for g in gpu if g), default=None),
    }


def train(root: Path, model_dir: Path, train_file: Path, args: argparse.Namespace,
          method: str) -> dict[str, float | None]:
    config = root / f"{method}.toml"
    write_config(config, model_dir, train_file, args, method)
    run_dir = root / f"run-{method}"
    proc = subprocess.run([sys.executable, "-m", "clmtune.backend.cli", "train", str(config),
                           "--run-dir", str(run_dir)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{method}: clmtune train failed:\n{proc.stderr[-2000:]}")
    return measure(run_dir, args.warmup)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--device", choices=("cpu", "auto"), default="auto",
                        help="cpu forces use_cpu = true; auto takes a GPU when there is one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        root = Path(tmp)
        model_dir, train_file, _ = build_model(root, args)
        full = train(root, model_dir, train_file, args, "none")
        lora = train(root, model_dir, train_file, args, "lora")
    print(f"GPT-2 shape: {args.layers} layers, width {args.width}, "
          f"{full['params'] / 1e6:.1f}M parameters; batch {args.batch} x block {args.block}, "
          f"{args.steps} steps ({args.warmup} warm-up)")
    print(f"{'':12}{'trainable':>16}{'step time':>12}{'peak RSS':>14}{'peak GPU':>14}")
    for name, r in (("full", full), ("LoRA r=8", lora)):
        step = f"{r['step_s']:.3f} s" if r["step_s"] is not None else "-"
        print(f"{name:12}{r['trainable'] / 1e6:>14.2f}M {step:>11}{_mb(r['peak_rss']):>14}"
              f"{_mb(r['peak_gpu']):>14}")

    def ratio(key: str) -> str:
        a, b = lora[key], full[key]
        return f"{a / b:.2f}" if a and b else "-"

    print(f"LoRA / full: step time {ratio('step_s')}, peak RSS {ratio('peak_rss')}, "
          f"peak GPU {ratio('peak_gpu')}, trainable {ratio('trainable')}")


if __name__ == "__main__":
    main()
