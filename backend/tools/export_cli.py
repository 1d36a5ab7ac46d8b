"""``clmtune export RUN OUT``: a clean model folder to share (merged LoRA, adapter or full)."""

from __future__ import annotations

import argparse
import json
import sys

from clmtune.backend.cli_text import EXIT_OK, RUNS_DIR_HELP


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``clmtune`` subcommands."""
    p = sub.add_parser("export", help="a clean model folder from a run: merged LoRA, adapter, "
                       "or the fine-tuned model, with a model card")
    p.add_argument("run", metavar="RUN", help="a run name or path")
    p.add_argument("out", metavar="OUT", help="the folder to write (must not exist or be empty)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=int, metavar="N", help="export checkpoint-N")
    which.add_argument("--final", action="store_true",
                       help="export the final model (default: it, else the last checkpoint)")
    p.add_argument("--merge", action="store_true",
                   help="LoRA runs: merge the adapter into the base weights")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                   help="weights dtype of the exported model (default: as saved)")
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export a run; progress lines on stderr, the result on stdout."""
    from pathlib import Path

    from clmtune.backend.run_names import resolve_runs
    from clmtune.backend.tools.export import export_run
    from clmtune.backend.tools.quiet import quiet_libraries

    run_dir = resolve_runs([args.run], args.runs_dir)[0]
    quiet_libraries()  # our own "export: …" lines say what happens; the libraries' bars not

    def progress(line: str) -> None:
        print(f"export: {line}", file=sys.stderr, flush=True)

    result = export_run(run_dir, Path(args.out), checkpoint=args.checkpoint, final=args.final,
                        merge=args.merge, dtype=args.dtype, progress=progress)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(f"{result.kind} model from {result.source} written to {result.out}")
    return EXIT_OK
