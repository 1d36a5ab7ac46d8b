from __future__ import annotations

import argparse
import json

from clmtune.backend.cli_text import EXIT_OK, RUNS_DIR_HELP, console, esc


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``generate`` to the ``clmtune`` subcommands."""
    p = sub.add_parser("generate",
                       help="complete a prompt with a run's final model or a checkpoint")
    p.add_argument("run", metavar="RUN", help="a run name or path (a plain Hugging Face output "
                   "folder works too)")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="the text to continue (repeat for several)")
    p.add_argument("--prompt-file", metavar="FILE", help="one prompt per line")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=int, metavar="N", help="load checkpoint-N")
    which.add_argument("--final", action="store_true", help="load the final model")
    p.add_argument("--max-new-tokens", type=int, default=32, metavar="N")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T",
                   help="0 (the default) is greedy; above 0 samples")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P")
    p.add_argument("--seed", type=int, metavar="S", help="makes sampling reproducible")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: cuda when "
                   "there is one)")
    p.add_argument("--json", action="store_true", help="one JSON object per prompt, one a line")
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    p.set_defaults(func=run)


def _run_folder(text: str, runs_dir: str | None):
    from pathlib import Path

    from clmtune.backend.run_names import DEFAULT_RUNS_DIR, resolve_run
    from clmtune.backend.tools.generate_io import holds_model

    path = Path(text).expanduser()
    if path.is_dir() and holds_model(path):  # a bare saved model (no trainer_state) works too
        return path
    return resolve_run(text, Path(runs_dir or DEFAULT_RUNS_DIR))


def run(args: argparse.Namespace) -> int:
    """Complete each prompt; print it (or --json) and append it to the run's samples.jsonl
    (a run folder only: an export or other model folder is left as it was)."""
    from clmtune.backend.tools import generate as g
    from clmtune.backend.tools.generate_io import SAMPLES_FILE, append_sample, keeps_samples, pick
    from clmtune.backend.tools.quiet import quiet_libraries

    settings = g.GenSettings(args.max_new_tokens, args.temperature, args.top_p, args.seed).check()
    picked_seed = settings.sampling and settings.seed is None
    settings = g.with_seed(settings)  # one seed for every prompt: --seed S repeats them all
    prompts = g.read_prompts(args.prompt, args.prompt_file)
    run_dir = _run_folder(args.run, args.runs_dir)
    choice = pick(run_dir, checkpoint=args.checkpoint, final=args.final)
    keep = keeps_samples(run_dir)
    quiet_libraries()  # before torch / transformers load: bars and warnings are noise here
    device = g.pick_device(args.device)
    dtype = g.pick_dtype(run_dir, device)
    model, tokenizer = g.load_for_generation(choice.path, device, dtype)
    out = console()
    if picked_seed and not args.json:
        out.print(f"[dim]seed {settings.seed} (pass --seed {settings.seed} to repeat)[/dim]")
    for prompt in prompts:
        gen = g.generate(model, tokenizer, prompt, settings)
        rec = g.record(choice=choice, prompt=prompt, gen=gen, settings=settings, device=device,
                       dtype=dtype, source="cli")
        if keep:
            rec = append_sample(run_dir, rec)
        if args.json:
            print(json.dumps({"run": str(run_dir), "checkpoint": choice.label, "prompt": prompt,
                              "completion": gen.completion, "tokens": gen.tokens,
                              "seconds": rec["seconds"], "seed": settings.seed,
                              "samples_file": str(run_dir / SAMPLES_FILE) if keep else None},
                             ensure_ascii=False), flush=True)
        else:
            out.print(f"[bold]{esc(prompt)}[/bold]{esc(gen.completion)}")
            out.print(f"[dim]{choice.label} · {gen.tokens} tokens · {gen.seconds:.2f} s · "
                      f"{device}[/dim]")
    if not keep and not args.json:
        out.print(f"[dim]not recorded: {esc(str(run_dir))} is not a run folder "
                  f"({SAMPLES_FILE} is kept in run folders only)[/dim]")
    return EXIT_OK
