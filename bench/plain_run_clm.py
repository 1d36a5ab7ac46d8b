"""A plain run_clm-style training script: the baseline of ``bench/bench_vs_run_clm.py``.

It does what transformers' ``examples/pytorch/language-modeling/run_clm.py`` does for a
local model and local text files, written against transformers, datasets and evaluate
only (no clmtune code): ``from_pretrained`` of the model and tokenizer, ``load_dataset
("text")``, tokenize, ``group_texts`` into blocks with ``labels = input_ids``, the first
``max_eval_samples`` validation blocks, token accuracy through ``evaluate`` (the same
local metric module clmtune loads, by path, since the hub is offline), ``Trainer.train``,
then ``save_model``, the train/eval metrics files, ``save_state`` and a final evaluation.

The ``TrainingArguments`` keywords come from a JSON file so that both sides of the
benchmark use exactly the same arguments. Torch threads are left at their default.

    python bench/plain_run_clm.py --model DIR --train FILE --validation FILE \\
        --block-size 64 --max-eval-samples 64 --metric PATH --training-args ARGS.json \\
        --result OUT.json

``OUT.json`` gets ``train_samples_per_second``, ``eval_loss`` and ``first_step_time``
(UNIX time at the end of the first optimizer step, read by a tiny callback).
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import chain
from pathlib import Path
from typing import Any


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--block-size", type=int, required=True)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--metric", required=True, help="path of an evaluate metric module")
    parser.add_argument("--training-args", required=True, help="JSON file of TrainingArguments")
    parser.add_argument("--result", required=True)
    return parser.parse_args()


def main() -> None:
    opts = parse()
    import evaluate
    import numpy as np
    from datasets import load_dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    class FirstStep(TrainerCallback):
        """Records when the first optimizer step ended (time to first step)."""

        at: float | None = None

        def __init__(self) -> None:
            self.logs: list[tuple[int, float]] = []  # (step, time) at each log: bench_gpu.py

        def on_step_end(self, args, state, control, **kwargs):
            if self.at is None:
                self.at = time.time()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.logs.append((int(state.global_step), time.time()))

    args = TrainingArguments(**json.loads(Path(opts.training_args).read_text()))
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(opts.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(opts.model)

    raw = load_dataset(
        "text", data_files={"train": opts.train, "validation": opts.validation},
        keep_linebreaks=True,
    )  # fmt: skip
    with args.main_process_first(desc="tokenizing"):
        tokenized = raw.map(
            lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=["text"]
        )
    block = opts.block_size

    def group_texts(examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        joined = {k: list(chain(*examples[k])) for k in examples}
        total = len(joined["input_ids"]) // block * block
        result = {k: [v[i : i + block] for i in range(0, total, block)] for k, v in joined.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    with args.main_process_first(desc="grouping"):
        blocks = tokenized.map(group_texts, batched=True)
    train, evaluation = blocks["train"], blocks["validation"]
    if opts.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(len(evaluation), opts.max_eval_samples)))

    metric = evaluate.load(opts.metric, keep_in_memory=True)

    def preprocess_logits_for_metrics(logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.argmax(dim=-1)

    def compute_metrics(eval_preds):
        preds, labels = eval_preds
        preds = np.asarray(preds)[:, :-1].reshape(-1)
        labels = np.asarray(labels)[:, 1:].reshape(-1)
        keep = labels != -100
        return metric.compute(predictions=preds[keep], references=labels[keep])

    first = FirstStep()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation if args.do_eval else None,
        processing_class=tokenizer,
        data_collator=default_data_collator,
        compute_metrics=compute_metrics if args.do_eval else None,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics if args.do_eval else None,
        callbacks=[first],
    )
    result = trainer.train()
    trainer.save_model()
    train_metrics = dict(result.metrics)
    train_metrics["train_samples"] = len(train)
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()
    eval_metrics: dict[str, Any] = {}
    if args.do_eval:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(evaluation)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    Path(opts.result).write_text(json.dumps({
        "train_samples_per_second": train_metrics["train_samples_per_second"],
        "eval_loss": eval_metrics.get("eval_loss"),
        "first_step_time": first.at,
        "log_times": first.logs,
        "train_runtime": train_metrics.get("train_runtime"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
