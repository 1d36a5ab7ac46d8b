"""``clmtune generate``: the same tokens as a direct from_pretrained + generate, from the final
model and from a checkpoint; bad checkpoints in one line; seeded sampling; samples.jsonl."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clmtune.backend.errors import UsageError
from clmtune.backend.settings.toml_io import save_config
from clmtune.backend.tools.generate_io import SAMPLES_FILE, choices, read_samples
from tests.fixtures import make_tiny_config
from tests.run_helpers import clmtune

PROMPT = "The cat sat on the"
TRAIN_PROMPTS = ["Once upon a", "The cat"]


@pytest.fixture(scope="module")
def trained(tiny_assets, tmp_path_factory) -> Path:
    """One finished tiny run with checkpoint-4 and checkpoint-8 and the final model, and
    ``[samples]`` prompts completed at each evaluation (steps 4 and 8, then the final one)."""
    root = tmp_path_factory.mktemp("generate")
    cfg = make_tiny_config(tiny_assets, max_steps=8, save_steps=4)
    cfg.samples = {"prompts": TRAIN_PROMPTS, "max_new_tokens": 8}
    config = root / "gen.toml"
    save_config(cfg, config)
    done = clmtune("train", str(config), "--run-dir", str(root / "runs" / "gen"), cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "runs" / "gen"


def _direct(folder: Path, prompt: str, **kwargs) -> str:
    """What a user's own script gets: from_pretrained(folder) + generate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    seed = kwargs.pop("seed", None)
    if seed is not None:
        set_seed(seed)
    with torch.no_grad():
        out = model.generate(**inputs, pad_token_id=tokenizer.eos_token_id, **kwargs)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


class Done:
    def __init__(self, returncode: int, captured) -> None:
        self.returncode, self.stdout, self.stderr = returncode, captured.out, captured.err


@pytest.fixture
def cli(capsys):
    """``clmtune ARGS`` in this process (the model loads in a fraction of a subprocess's time)."""
    from clmtune.backend.cli import main

    def call(*args: str) -> Done:
        capsys.readouterr()
        code = main(list(args))
        return Done(code, capsys.readouterr())

    return call


def _generate(cli, run: Path, *args: str) -> list[dict]:
    done = cli("generate", str(run), "--json", "--device", "cpu", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_greedy_equals_direct_generate_from_final_and_checkpoint(cli, trained):
    assert [c.label for c in choices(trained)] == ["final", "checkpoint-8", "checkpoint-4"]
    (final,) = _generate(cli, trained, "--prompt", PROMPT, "--max-new-tokens", "12")
    assert final["checkpoint"] == "final" and final["prompt"] == PROMPT
    assert final["completion"] == _direct(trained, PROMPT, max_new_tokens=12, do_sample=False)
    assert final["tokens"] == 12 and final["seconds"] >= 0
    # by name under --runs-dir, from a checkpoint, two prompts from a file: one line each
    prompts = trained.parent.parent / "prompts.txt"
    prompts.write_text(f"{PROMPT}\n\nOnce upon a\n")
    done = cli("generate", "gen", "--runs-dir", str(trained.parent), "--checkpoint", "4",
               "--prompt-file", str(prompts), "--json", "--device", "cpu",
               "--max-new-tokens", "12")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == [PROMPT, "Once upon a"]
    ckpt = trained / "checkpoint-4"
    for row in rows:
        assert row["checkpoint"] == "checkpoint-4"
        assert row["completion"] == _direct(ckpt, row["prompt"], max_new_tokens=12,
                                            do_sample=False)


def test_bad_checkpoint_is_one_line_listing_the_existing(cli, trained):
    done = clmtune("generate", str(trained), "--prompt", PROMPT, "--checkpoint", "5",
                   cwd=trained.parent)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "checkpoint-5 does not exist" in lines[0]
    assert "final, checkpoint-8, checkpoint-4" in lines[0]


def test_incomplete_checkpoint_is_refused(cli, trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "checkpoint-8" / ".clmtune-complete").unlink()
    done = cli("generate", str(copy), "--prompt", PROMPT, "--checkpoint", "8")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "checkpoint-8 is incomplete" in done.stderr
    assert "checkpoint-8 (weights-only)" in done.stderr


def test_seeded_sampling_is_reproducible_and_recorded(cli, trained):
    args = ("--prompt", PROMPT, "--temperature", "1.5", "--top-p", "0.95", "--seed", "7",
            "--max-new-tokens", "16", "--checkpoint", "8")
    first, second = _generate(cli, trained, *args), _generate(cli, trained, *args)
    assert first[0]["completion"] == second[0]["completion"]
    assert first[0]["completion"] == _direct(trained / "checkpoint-8", PROMPT, seed=7,
                                             max_new_tokens=16, do_sample=True,
                                             temperature=1.5, top_p=0.95)
    other = _generate(cli, trained, *args[:-6], "--seed", "8", "--max-new-tokens", "16",
                      "--checkpoint", "8")
    assert other[0]["completion"] != first[0]["completion"]
    cli = [s for s in read_samples(trained) if s["source"] == "cli"]
    last = cli[-1]
    assert last["checkpoint"] == "checkpoint-8" and last["step"] == 8
    assert last["settings"]["seed"] == 8 and last["settings"]["temperature"] == 1.5
    assert last["completion"] == other[0]["completion"]


def test_a_picked_seed_is_printed_and_repeats_the_sample(cli, trained):
    # Sampling without --seed: the seed picked is said (text: a line, --json: a field), and
    # passing it back gives the same completion.
    args = ("--prompt", PROMPT, "--temperature", "1.5", "--max-new-tokens", "16",
            "--device", "cpu")
    done = cli("generate", str(trained), *args)
    assert done.returncode == 0, done.stderr
    said = re.search(r"^seed (\d+) \(pass --seed \1 to repeat\)$", done.stdout, re.M)
    assert said, done.stdout
    seed = int(said.group(1))
    picked = read_samples(trained)[-1]
    assert picked["settings"]["seed"] == seed
    (again,) = _generate(cli, trained, *args, "--seed", str(seed))
    assert again["completion"] == picked["completion"] and again["seed"] == seed
    (other,) = _generate(cli, trained, *args)
    assert isinstance(other["seed"], int)
    assert read_samples(trained)[-1]["settings"]["seed"] == other["seed"]
    greedy = cli("generate", str(trained), "--prompt", PROMPT, "--max-new-tokens", "4",
                 "--device", "cpu")
    assert greedy.returncode == 0 and "seed" not in greedy.stdout  # greedy needs none
    (row,) = _generate(cli, trained, "--prompt", PROMPT, "--max-new-tokens", "4")
    assert row["seed"] is None


def _listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_an_export_stays_clean_only_run_folders_record_samples(cli, trained, tmp_path):
    # `clmtune export` makes "a clean model folder to share": generating from it (the CLI or
    # the dashboard's helper) leaves it as it was; so does a checkpoint given by its path.
    from clmtune.backend.tools import generate_server as gs

    out = tmp_path / "exported"
    done = cli("export", str(trained), str(out))
    assert done.returncode == 0, done.stderr
    before = _listing(out)
    assert SAMPLES_FILE not in before
    (row,) = _generate(cli, out, "--prompt", PROMPT, "--max-new-tokens", "4")
    assert row["checkpoint"] == "final" and row["samples_file"] is None
    done = cli("generate", str(out), "--prompt", PROMPT, "--max-new-tokens", "4",
               "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert f"not recorded: {out} is not a run folder" in " ".join(done.stdout.split())
    sent: list[tuple[str, dict]] = []

    class Replies:
        def send(self, kind: str, **fields) -> None:
            sent.append((kind, fields))

    gs.Server(Replies()).handle(json.dumps({
        "op": "generate", "id": 1, "run": str(out), "checkpoint": "final", "prompt": PROMPT,
        "max_new_tokens": 4, "device": "cpu"}))  # fmt: skip
    assert [kind for kind, _ in sent][-1] == "done", sent
    assert _listing(out) == before
    checkpoint = trained / "checkpoint-4"
    ckpt_before = _listing(checkpoint)
    _generate(cli, checkpoint, "--prompt", PROMPT, "--max-new-tokens", "4")
    assert _listing(checkpoint) == ckpt_before
    # the run folder itself records, and says where
    (row,) = _generate(cli, trained, "--prompt", PROMPT, "--max-new-tokens", "4")
    assert row["samples_file"] == str(trained / SAMPLES_FILE)
    assert read_samples(trained)[-1]["completion"] == row["completion"]


def test_samples_survive_a_torn_line_and_reopening(cli, trained):
    before = read_samples(trained)
    with open(trained / SAMPLES_FILE, "a") as fh:
        fh.write('{"prompt": "torn')  # a crash mid-write
    assert read_samples(trained) == before


def test_usage_errors_are_one_line(cli, trained):
    for args, text in ((("--prompt", "x", "--max-new-tokens", "0"), "--max-new-tokens"),
                       ((), "give --prompt"), (("--prompt", "x", "--top-p", "2"), "--top-p"),
                       (("--prompt", "x", "--seed", "-5"), "--seed: must be 0 … 4294967295"),
                       (("--prompt", "x", "--seed", str(2**32)), "--seed: must be 0"),
                       (("--prompt", "x", "--temperature", "nan"), "--temperature"),
                       (("--prompt", "x", "--temperature", "inf"), "--temperature"),
                       (("--prompt", "x", "--top-p", "nan"), "--top-p"),
                       (("--prompt", "x", "--device", "bogus"), "cpu, cuda, cuda:N or mps")):
        done = cli("generate", str(trained), *args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert text in done.stderr


def test_a_missing_device_is_one_line(cli, trained):
    import torch

    from clmtune.backend.tools.generate import pick_device

    if not torch.cuda.is_available():
        done = cli("generate", str(trained), "--prompt", "x", "--device", "cuda")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
        assert "--device cuda: no CUDA device on this machine" in done.stderr
    else:  # one past the last GPU
        count = torch.cuda.device_count()
        with pytest.raises(UsageError, match=f"has {count} CUDA device"):
            pick_device(f"cuda:{count}")
    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match="--device mps: no Apple GPU"):
            pick_device("mps")
    assert pick_device("cpu") == "cpu"


def _positions(run: Path) -> int:
    return json.loads((run / "config.json").read_text())["n_positions"]


def _prompt_tokens(run: Path, prompt: str) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(run)(prompt)["input_ids"])


def test_prompt_and_new_tokens_past_the_positions_are_one_line(cli, trained):
    limit, used = _positions(trained), _prompt_tokens(trained, PROMPT)
    room = limit - used
    done = clmtune("generate", str(trained), "--prompt", PROMPT, "--max-new-tokens", "500",
                   cwd=trained.parent)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"clmtune: error: prompt ({used} tokens) + --max-new-tokens 500 exceeds the model's "
        f"{limit} positions; lower --max-new-tokens to ≤ {room}"]
    # a prompt alone too long (the tokenizer's own length warning is silenced too)
    long = " ".join(["cat"] * (limit + 10))
    done = clmtune("generate", str(trained), "--prompt", long, cwd=trained.parent)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "alone fills the model's" in done.stderr and f"{limit} positions" in done.stderr
    # exactly up to the limit works
    (row,) = _generate(cli, trained, "--prompt", PROMPT, "--max-new-tokens", str(room))
    assert row["tokens"] <= room


def test_helper_replies_an_error_for_too_many_tokens_and_keeps_serving(trained):
    from clmtune.backend.tools import generate_server as gs

    sent: list[tuple[str, dict]] = []

    class Replies:
        def send(self, kind: str, **fields) -> None:
            sent.append((kind, fields))

    server = gs.Server(Replies())
    request = {"op": "generate", "run": str(trained), "checkpoint": "checkpoint-8",
               "prompt": PROMPT, "device": "cpu"}
    assert server.handle(json.dumps({**request, "id": 1, "max_new_tokens": 500}))
    errors = [f for kind, f in sent if kind == "error"]
    assert len(errors) == 1 and errors[0]["id"] == 1
    assert errors[0]["message"].startswith("prompt (") and "lower --max-new-tokens" in errors[0][
        "message"]
    assert server.handle(json.dumps({**request, "id": 2, "max_new_tokens": 4}))
    done = [f for kind, f in sent if kind == "done"]
    assert len(done) == 1 and done[0]["id"] == 2 and done[0]["tokens"] == 4


def test_samples_are_generated_at_each_evaluation(trained):
    from clmtune.backend.rundir.state import fold
    from tests.run_helpers import events_of

    events = [e for e in events_of(trained) if e["type"] == "sample"]
    assert [e["step"] for e in events] == [4, 8, 8]  # eval at 4 and 8, then the final eval
    train = [s for s in read_samples(trained) if s["source"] == "train"]
    assert [(s["step"], s["prompt"]) for s in train] == [
        (step, p) for step in (4, 8, 8) for p in TRAIN_PROMPTS]
    # the weights at the evaluation of step 4 are the ones saved in checkpoint-4
    for row in train[:2]:
        assert row["checkpoint"] == "step-4" and row["tokens"] == 8
        assert row["completion"] == _direct(trained / "checkpoint-4", row["prompt"],
                                            max_new_tokens=8, do_sample=False)
    logs = [e["message"] for e in events_of(trained) if e["type"] == "log"]
    assert sum(m.startswith("samples: 2 prompt(s) at step") for m in logs) == 3
    state = fold(events_of(trained))
    assert state.samples_step == 8 and [s["prompt"] for s in state.samples] == TRAIN_PROMPTS
    assert state.samples[0]["completion"] == train[-2]["completion"]


def test_a_sample_prompt_past_the_positions_is_skipped_not_fatal(trained, tmp_path):
    # [samples] runs inside training: a prompt the model cannot complete is a warning.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clmtune.backend.samples import SampleCallback

    events: list[dict] = []
    model = AutoModelForCausalLM.from_pretrained(trained)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    limit = model.config.n_positions
    callback = SampleCallback(tmp_path, events.append, ["def ", "x " * (limit + 5)],
                              every_n_evals=1, max_new_tokens=4)
    rows = callback.sample(model, tokenizer, step=3)
    assert [r["prompt"] for r in rows] == ["def "]
    (skipped,) = [e for e in events if e.get("code") == "sample_skipped"]
    assert "skipped" in skipped["message"] and f"{limit} positions" in skipped["message"]
    assert [e["type"] for e in events].count("sample") == 1


def test_inspect_eval_lists_the_blocks_training_evaluated_hardest_first(cli, trained):
    done = cli("inspect-eval", str(trained), "--checkpoint", "8", "--top", "16", "--json",
               "--device", "cpu")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    blocks = out["blocks"]
    assert out["checkpoint"] == "checkpoint-8" and len(blocks) == 16  # max_eval_samples
    assert [b["loss"] for b in blocks] == sorted((b["loss"] for b in blocks), reverse=True)
    assert sorted(b["index"] for b in blocks) == list(range(16))
    assert all(b["tokens"] == 31 and b["text"] for b in blocks)  # block_size 32, shifted
    # The same blocks as training's evaluation at step 8: Trainer's eval_loss is the summed
    # token loss over every label token (transformers 5 counts all 32 per block).
    state = json.loads((trained / "checkpoint-8" / "trainer_state.json").read_text())
    eval_loss = next(e["eval_loss"] for e in state["log_history"]
                     if e.get("step") == 8 and "eval_loss" in e)
    summed = sum(b["loss"] * b["tokens"] for b in blocks)
    assert summed / (16 * 32) == pytest.approx(eval_loss, rel=1e-4)
    # The header says so: the blocks' mean per predicted token, and that the run's eval_loss
    # (Trainer, GPT-2 in transformers 5) divides the same sum by 32 tokens a block, not 31.
    summary = out["eval"]
    mean = sum(b["loss"] for b in blocks) / 16
    assert summary["blocks"] == 16 and summary["tokens_per_block"] == 32
    assert summary["loss_per_predicted_token"] == pytest.approx(mean, rel=1e-6)
    assert summary["mean_block_loss"] == pytest.approx(mean, rel=1e-6)
    assert summary["run_eval_loss"] == eval_loss and summary["run_eval_step"] == 8
    assert summary["run_eval_loss_divides_by"] == "label_tokens"
    assert mean * 31 / 32 == pytest.approx(eval_loss, rel=1e-4)
    assert summary["note"] == (f"mean over these 16 blocks {mean:.4g} per predicted token (31 a "
                               f"block); Trainer's eval_loss {eval_loss:.4g} at step 8 divides "
                               "the same summed loss by 32 tokens a block, not 31")
    done = cli("inspect-eval", str(trained), "--checkpoint", "8", "--top", "1", "--device", "cpu")
    assert done.returncode == 0 and summary["note"] in " ".join(done.stdout.split())
    done = cli("inspect-eval", str(trained), "--top", "0")
    assert done.returncode == 2 and "--top" in done.stderr


def test_inspect_eval_says_which_count_reproduces_a_plain_trainer_evaluate(tmp_path):
    # Trainer.evaluate on two tiny models, and the same blocks scored like inspect-eval: the
    # count the summary names reproduces Trainer's eval_loss (which one is Trainer's choice:
    # transformers 5.24 divides GPT-2's by every label, Llama's by the predicted tokens).
    import torch
    from datasets import Dataset
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from clmtune.backend.tools.inspect_eval import block_losses, summarize, trainer_loss

    torch.manual_seed(0)
    ids = torch.randint(0, 300, (10, 24)).tolist()
    data = Dataset.from_dict({"input_ids": ids, "labels": ids, "attention_mask": [[1] * 24] * 10})
    models = (GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=300,
                                         n_positions=24)),
              LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, hidden_size=32,
                                           intermediate_size=64, num_attention_heads=2,
                                           num_key_value_heads=2, vocab_size=300)))
    for model in models:
        args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=4,
                                 report_to="none", use_cpu=True, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, eval_dataset=data,
                          data_collator=default_data_collator)
        eval_loss = trainer.evaluate()["eval_loss"]
        rows = block_losses(model.eval(), data)
        assert [(r.predicted, r.labels) for r in rows] == [(23, 24)] * 10
        summary = summarize(rows, batch_size=4, recorded=eval_loss, step=None)
        way = summary.run_eval_loss_divides_by
        assert way in ("label_tokens", "predicted_tokens"), summary
        assert trainer_loss(rows, 4, way) == pytest.approx(eval_loss, rel=1e-5)
        if way == "label_tokens":
            assert "divides the same summed loss by 24 tokens a block, not 23" in summary.note()
        else:
            assert summary.loss_per_predicted_token == pytest.approx(eval_loss, rel=1e-5)
            assert summary.note().endswith("is the same figure")


def test_inspect_eval_claims_no_count_it_did_not_reproduce():
    from clmtune.backend.tools.inspect_eval import Row, summarize

    rows = [Row(i, 2.0 + i / 10, 63, 64, []) for i in range(8)]
    assert summarize(rows, batch_size=8, recorded=None, step=None).note().endswith(
        "the run recorded no eval_loss for these weights")
    off = summarize(rows, batch_size=8, recorded=9.0, step=40)
    assert off.run_eval_loss_divides_by is None
    assert off.note().endswith("Trainer's eval_loss 9 at step 40 is not reproduced here "
                               "(within 0.2%)")


def test_inspect_eval_piped_prints_no_library_progress(trained):
    # stderr is a pipe here: no "Running tokenizer on dataset" / "Loading weights" frames
    done = clmtune("inspect-eval", str(trained), "--checkpoint", "4", "--top", "1",
                   "--device", "cpu", cwd=trained.parent)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "#1" in done.stdout


def test_helper_says_how_much_gpu_memory_is_free_and_falls_back_to_cpu(monkeypatch, trained):
    from clmtune.backend.tools import generate_server as gs

    sent: list[tuple[str, dict]] = []

    class Replies:
        def send(self, kind: str, **fields) -> None:
            sent.append((kind, fields))

    server = gs.Server(Replies())
    gib = 1 << 30
    monkeypatch.setattr(gs, "gpu_memory", lambda: (gib // 2, 80 * gib))  # training holds it
    assert server.device_for("auto", trained, 1) == "cpu"
    assert sent[-1][0] == "notice" and sent[-1][1]["gpu_free"] == gib // 2
    assert "GPU busy: 0.5 GiB free of 80.0 GiB" in sent[-1][1]["message"]
    monkeypatch.setattr(gs, "gpu_memory", lambda: (40 * gib, 80 * gib))  # room, but shared
    assert server.device_for("auto", trained, 2) == "cuda"
    assert "GPU shared: 40.0 GiB free" in sent[-1][1]["message"]
    monkeypatch.setattr(gs, "gpu_memory", lambda: (80 * gib, 80 * gib))
    count = len(sent)
    assert server.device_for("auto", trained, 3) == "cuda" and len(sent) == count  # idle GPU
    assert server.device_for("cpu", trained, 4) == "cpu"
    monkeypatch.setattr(gs, "gpu_memory", lambda: (None, None))
    assert server.device_for("auto", trained, 5) == "cpu"


def test_bf16_is_read_from_the_frozen_settings(tmp_path):
    from clmtune.backend.tools.generate import pick_dtype
    from clmtune.backend.tools.generate_io import trained_bf16

    assert not trained_bf16(tmp_path)  # a plain folder: no config.toml
    (tmp_path / "config.toml").write_text("[training]\nbf16 = true\n")
    assert trained_bf16(tmp_path)
    assert pick_dtype(tmp_path, "cpu") is None  # bf16 only on a GPU that has it
