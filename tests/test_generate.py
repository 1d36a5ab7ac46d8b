"""``clmtune generate``: the same tokens as a direct from_pretrained + generate, from the final
model and from a checkpoint; bad checkpoints in one line; seeded sampling; samples.jsonl."""

from __future__ import annotations

import json
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
    done = cli("inspect-eval", str(trained), "--top", "0")
    assert done.returncode == 2 and "--top" in done.stderr


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
