"""``python -m clmtune.backend.settings``: dump the schema, print or write the reference."""

from __future__ import annotations

import argparse
import sys

from clmtune.backend.settings.reference import reference_markdown, write_readme
from clmtune.backend.settings.schema import schema
from clmtune.backend.settings.schema_cache import schema_to_json


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m clmtune.backend.settings")
    parser.add_argument("--dump-schema", action="store_true",
                        help="print the schema of the installed transformers as JSON")
    parser.add_argument("--reference", action="store_true",
                        help="print a Markdown reference of every setting")
    parser.add_argument("--write-readme", metavar="README",
                        help="regenerate the settings reference section of this README")
    args = parser.parse_args(argv)
    if args.dump_schema:
        print(schema_to_json(schema()))
        return 0
    if args.reference:
        print(reference_markdown(schema()))
        return 0
    if args.write_readme:
        changed = write_readme(args.write_readme, schema())
        print(f"{args.write_readme}: {'updated' if changed else 'already up to date'}")
        return 0
    parser.print_usage(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
