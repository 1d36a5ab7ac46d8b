from __future__ import annotations

import argparse
import json

from clmtune.backend.cli_text import EXIT_OK, RUNS_DIR_HELP, console, esc, fmt_float
from clmtune.backend.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``inspect-eval`` to the ``clmtune`` subcommands."""
    p = sub.add_parser("inspect-eval",
                       help="the evaluation blocks with the highest loss, decoded")
    p.add_argument("run", metavar="RUN", help="a run name or path")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=int, metavar="N", help="use checkpoint-N")
    which.add_argument("--final", action="store_true", help="use the final model")
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many blocks (default 5)")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the ``--top`` hardest evaluation blocks (or --json)."""
    from pathlib import Path

    from clmtune.backend.run_names import DEFAULT_RUNS_DIR, resolve_run
    from clmtune.backend.tools.generate import pick_device
    from clmtune.backend.tools.generate_io import pick
    from clmtune.backend.tools.inspect_eval import hardest_blocks
    from clmtune.backend.tools.quiet import quiet_libraries

    if args.top < 1:
        raise UsageError(f"--top: must be 1 or more, got {args.top}")
    run_dir = resolve_run(args.run, Path(args.runs_dir or DEFAULT_RUNS_DIR))
    choice = pick(run_dir, checkpoint=args.checkpoint, final=args.final)
    quiet_libraries(datasets=True)
    blocks, summary = hardest_blocks(run_dir, choice, top=args.top,
                                     device=pick_device(args.device))
    if args.json:
        print(json.dumps({"run": str(run_dir), "checkpoint": choice.label,
                          "eval": summary.to_json(),
                          "blocks": [b.to_json() for b in blocks]}, ensure_ascii=False))
        return EXIT_OK
    out = console()
    out.print(f"[bold]{esc(run_dir.name)}[/bold] · {choice.label} · the {len(blocks)} "
              "evaluation blocks with the highest loss (per predicted token)")
    out.print(f"[dim]{esc(summary.note())}[/dim]")
    for rank, block in enumerate(blocks, 1):
        out.print(f"\n[bold]#{rank}[/bold] block {block.index} · loss {fmt_float(block.loss)}")
        out.print(esc(block.text), markup=True)
    return EXIT_OK
