"""``clmtune preview FILE.toml [--json] [--samples K] [--measure]``: argparse only."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clmtune.backend.cli_text import EXIT_OK, console
from clmtune.backend.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``preview`` to the ``clmtune`` subcommands."""
    p = sub.add_parser("preview", help="what the data makes (rows, tokens, blocks, steps), "
                       "sample blocks, warnings, and a memory estimate, before training")
    p.add_argument("file", help="the run settings (TOML)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--samples", type=int, default=2, metavar="K",
                   help="decoded training blocks to show (default 2)")
    p.add_argument("--measure", action="store_true",
                   help="load the model and time a few training steps for a time estimate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Preview a settings file: the report, or ``--json``."""
    from clmtune.backend.events import _sanitize
    from clmtune.backend.tools.preview import preview
    from clmtune.backend.tools.quiet import quiet_libraries

    path = Path(args.file)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give the path of a settings file (TOML)")
    if not path.is_file():
        raise UsageError(f"{path}: no such file (create one with: clmtune init {path})")
    quiet_libraries(datasets=True)
    report = preview(path, samples=args.samples, measure=args.measure)
    if args.json:
        print(json.dumps(_sanitize(report), indent=2))
        return EXIT_OK
    from clmtune.backend.tools.preview_text import report_lines

    out = console()
    for line in report_lines(report):
        out.print(line, markup=False)
    return EXIT_OK
