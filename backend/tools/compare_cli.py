"""``clmtune compare RUN RUN […]``: runs side by side (the table, --json or --csv)."""

from __future__ import annotations

import argparse
import json
import sys

from clmtune.backend.cli_text import EXIT_OK, RUNS_DIR_HELP, console, fmt_duration, fmt_float
from clmtune.backend.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compare`` to the ``clmtune`` subcommands."""
    p = sub.add_parser("compare", help="runs side by side: figures and the settings that differ")
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run names or paths")
    p.add_argument("--metric", default="eval_loss", help="the metric whose best is shown"
                   " (eval_loss, train_loss, perplexity, learning_rate, eval_accuracy, …)")
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object")
    out.add_argument("--csv", action="store_true", help="the table as CSV with a header row")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs side by side: the table (or --json / --csv) and the settings that differ."""
    from clmtune.backend.events import _sanitize
    from clmtune.backend.run_names import resolve_runs
    from clmtune.backend.tools import compare

    if len(args.runs) < 2:
        raise UsageError("compare: give two or more runs (names under --runs-dir, or paths)")
    runs = compare.load_runs(resolve_runs(args.runs, args.runs_dir))
    for line in compare.unreadable_settings(runs):  # the figures still compare: exit 0
        print(f"clmtune: warning: {line}", file=sys.stderr)
    metric = compare.need_metric(runs, args.metric)
    if args.json:
        print(json.dumps(_sanitize(compare.to_json(runs, metric)), indent=2))
        return EXIT_OK
    from clmtune.backend.tools.compare_text import print_csv, print_table

    if args.csv:
        print_csv(runs, metric)
    else:
        print_table(runs, metric, console(), number=fmt_float, duration=fmt_duration)
    return EXIT_OK
