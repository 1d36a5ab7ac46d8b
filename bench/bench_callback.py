"""Training throughput with the event callback on vs off (target: ≤ 1% apart).

Both arms train the same small GPT-2 (from scratch, fixed seed) on the same random
token blocks with the real ``Trainer`` in this process, with identical logging.
The "on" arm adds what the worker adds: :class:`EventCallback` writing to an
``events.jsonl``, the stop-file poll, memory samples at every log and the
background memory thread. Repetitions are interleaved (off, on, on, off, …) so
drift in machine load hits both arms alike; the medians are compared.

A second, noise-free number: the callback's own cost per optimizer step (its
``on_step_end`` timed in a tight loop) relative to the median step time.

    python bench/bench_callback.py [--steps 40] [--repeat 7] [--layers 4] [--width 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
    default_data_collator,
)
from transformers.trainer_callback import PrinterCallback  # noqa: E402

from clmtune.backend.callback import EventCallback, StopControl  # noqa: E402
from clmtune.backend.events import EventWriter  # noqa: E402
from clmtune.backend.memory import MemorySampler, MemoryThread  # noqa: E402


def make_dataset(rows: int, block: int, vocab: int) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (rows, block), generator=gen).tolist()
    return Dataset.from_dict(
        {"input_ids": ids, "labels": ids, "attention_mask": [[1] * block] * rows}
    )


def model_config(args: argparse.Namespace) -> GPT2Config:
    return GPT2Config(vocab_size=args.vocab, n_positions=args.block, n_embd=args.width,
                      n_layer=args.layers, n_head=4, bos_token_id=0, eos_token_id=0)  # fmt: skip


def train_once(
    args: argparse.Namespace, data: Dataset, state_dict: dict, out: Path, on: bool
) -> tuple[float, float]:
    """One training run; optimizer steps per second of wall time and of process CPU time.

    CPU time (every thread of this process, the memory thread included) is what the
    callback costs; wall time also carries whatever else the machine runs.
    """
    config = model_config(args)
    model = GPT2LMHeadModel(config)
    model.load_state_dict(state_dict)
    targs = TrainingArguments(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch,
        logging_steps=args.logging_steps, save_strategy="no", eval_strategy="no",
        report_to="none", disable_tqdm=True, seed=0, use_cpu=not torch.cuda.is_available(),
        logging_nan_inf_filter=False, dataloader_num_workers=0,
    )  # fmt: skip
    callbacks = []
    writer = monitor = None
    if on:
        writer = EventWriter(out / "events.jsonl")
        sampler = MemorySampler()
        callback = EventCallback(writer, StopControl(out), memory=sampler, block_size=args.block)
        monitor = MemoryThread(sampler, writer, interval=5.0).start()
        callbacks.append(callback)
    timer = _Timer()
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=data,
        data_collator=default_data_collator,
        callbacks=[timer, *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # no log lines on stdout in either arm
    trainer.train()
    if monitor is not None:
        monitor.stop()
    if writer is not None:
        writer.close()
    steps = args.steps - 1
    return steps / (timer.end - timer.first_step_end), steps / (timer.cpu_end - timer.cpu_first)


class _Timer(TrainerCallback):  # present in both arms
    """Times from the end of the first step (warm-up excluded) to the end of training."""

    def __init__(self) -> None:
        self.first_step_end = self.end = self.cpu_first = self.cpu_end = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            self.first_step_end = time.perf_counter()
            self.cpu_first = time.process_time()

    def on_train_end(self, args, state, control, **kwargs):
        self.end = time.perf_counter()
        self.cpu_end = time.process_time()


def callback_costs(out: Path, calls: int = 200_000, logs: int = 2_000) -> tuple[float, float]:
    """Seconds one ``on_step_end`` and one ``on_log`` (event + memory sample) cost."""
    writer = EventWriter(out / "micro.jsonl")
    cb = EventCallback(writer, StopControl(out), memory=MemorySampler(), block_size=128)
    targs = argparse.Namespace(output_dir=str(out), world_size=1, per_device_train_batch_size=8,
                               gradient_accumulation_steps=1)  # fmt: skip
    state, control = TrainerState(max_steps=10**9), TrainerControl()
    state.is_world_process_zero = True
    cb.on_train_begin(targs, state, control)
    start = time.perf_counter()
    for step in range(1, calls + 1):
        state.global_step = step
        cb.on_step_end(targs, state, control)
    per_step = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for step in range(1, logs + 1):
        state.global_step = calls + step
        cb.on_log(targs, state, control, logs={"loss": 1.0, "learning_rate": 1e-4,
                                               "grad_norm": 1.0})  # fmt: skip
    per_log = (time.perf_counter() - start) / logs
    writer.close()
    return per_step, per_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=9, help="runs per arm")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: less noise)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--logging-steps", type=int, default=5)
    parser.add_argument("--verbose", action="store_true", help="print every run's rate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = model_config(args)
    state_dict = GPT2LMHeadModel(config).state_dict()
    data = make_dataset(args.batch * (args.steps + 1), args.block, args.vocab)

    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    pairs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="clmtune-bench-") as tmp:
        root = Path(tmp)
        train_once(args, data, state_dict, root / "warmup", on=False)  # import/JIT warm-up
        for rep in range(args.repeat):
            order = (False, True) if rep % 2 == 0 else (True, False)
            got = {}
            for on in order:
                got[on] = train_once(args, data, state_dict, root / f"r{rep}-{on}", on)
                wall[on].append(got[on][0])
                cpu[on].append(got[on][1])
            pairs.append(got[True][0] / got[False][0])
        per_step, per_log = callback_costs(root)

    def spread(xs: list[float]) -> float:
        return (max(xs) - min(xs)) / statistics.median(xs)

    print(f"model: GPT-2 {args.layers}x{args.width}, block {args.block}, batch {args.batch}, "
          f"{args.steps} steps, logging every {args.logging_steps}, {args.repeat} runs per arm, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    for name, rates in (("wall", wall), ("cpu", cpu)):
        off, on = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"{name:>4}: off {off:.3f} steps/s (spread {spread(rates[False]):.1%}), "
              f"on {on:.3f} steps/s (spread {spread(rates[True]):.1%}), "
              f"ratio on/off {on / off:.4f} ({on / off - 1:+.2%})")  # fmt: skip
    if args.verbose:
        for name, rates in (("wall", wall), ("cpu", cpu)):
            for on in (False, True):
                values = " ".join(f"{r:.2f}" for r in rates[on])
                print(f"  {name} {'on ' if on else 'off'}: {values}")
    paired = statistics.median(pairs)
    print(f"wall, median of adjacent on/off pairs: {paired:.4f} ({paired - 1:+.2%})")
    off = statistics.median(cpu[False])
    step_time = 1.0 / off
    print(f"callback on_step_end: {per_step * 1e6:.2f} us per step = "
          f"{per_step / step_time:.4%} of a {step_time * 1e3:.1f} ms step")  # fmt: skip
    per_log_share = per_log / (step_time * args.logging_steps)
    print(f"callback on_log (event + memory sample): {per_log * 1e6:.0f} us per log = "
          f"{per_log_share:.4%} of the {args.logging_steps} steps between logs")  # fmt: skip


if __name__ == "__main__":
    main()
