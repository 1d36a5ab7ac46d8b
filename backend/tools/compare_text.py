"""``clmtune compare`` as text: the aligned terminal table and the CSV.

Kept apart from :mod:`.compare` so the dashboard never loads rich's table code for it.
The CLI passes its number and duration formatters in, so ``clmtune runs`` and
``clmtune compare`` print figures alike without this module importing the CLI back.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Any

from clmtune.backend.tools.compare import (
    ComparedRun,
    Row,
    best_of,
    config_diff,
    csv_table,
    setting_text,
    table,
)


def print_csv(runs: Sequence[ComparedRun], metric: str = "eval_loss") -> None:
    """The per-run table and the settings that differ, as CSV with a header row, on stdout.

    A ``--metric`` other than eval loss adds ``best_METRIC`` and ``best_METRIC_step``
    after the eval-loss columns, as the table and ``--json`` show it."""
    header, body = csv_table(table(runs), config_diff(runs))
    if metric != "eval_loss":
        at = header.index("best_eval_step") + 1
        header[at:at] = [f"best_{metric}", f"best_{metric}_step"]
        for run, row in zip(runs, body, strict=True):
            best = best_of(run, metric)
            row[at:at] = ["", ""] if best is None else [best[0], best[1]]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)


Format = Callable[..., str]


def _esc(value: Any) -> str:
    from rich.markup import escape  # names like [training] are not style tags

    return escape(str(value))


def _columns(runs: Sequence[ComparedRun], metric: str, number: Format,
             duration: Format) -> dict[str, Callable[[Row], str]]:
    best = {run.name: best_of(run, metric) for run in runs}

    def best_value(row: Row) -> str:
        found = best[row.name]
        return number(found[0]) if found else "-"

    def best_step(row: Row) -> str:
        found = best[row.name]
        return str(found[1]) if found else "-"

    return {
        "name": lambda r: r.name, "status": lambda r: r.status, "steps": lambda r: str(r.steps),
        "time": lambda r: duration(r.runtime_s),
        "samples/s": lambda r: number(r.samples_per_second, 3),
        "last loss": lambda r: number(r.final_train_loss),
        f"best {metric}": best_value, "at step": best_step,
        "last ppl": lambda r: number(r.final_perplexity),
    }  # fmt: skip


def print_table(runs: Sequence[ComparedRun], metric: str, console: Any, *, number: Format,
                duration: Format) -> None:
    """The per-run table, then the settings that differ (key × run).

    ``number(value, digits)`` and ``duration(seconds)`` format the cells (the CLI's own).
    """
    from rich import box  # only for the terminal output: --json / --csv stay lean
    from rich.table import Table

    if not console.is_terminal:
        console.width = 1000  # piped to a file or grep: whole lines
    columns = _columns(runs, metric, number, duration)
    figures = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        figures.add_column(name, justify="left" if name in ("name", "status") else "right",
                           no_wrap=True)
    for row in table(runs):
        figures.add_row(*(_esc(cell(row)) for cell in columns.values()))
    console.print(figures)
    diff = config_diff(runs)
    if not diff:
        missing = "" if any(run.settings for run in runs) else " (no run has a config.toml)"
        console.print(f"settings: no differences{missing}")
        return
    settings = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                     title="settings that differ", title_justify="left")
    settings.add_column("setting", no_wrap=True)
    for run in runs:
        settings.add_column(_esc(run.name), justify="right", no_wrap=True)
    for key, values in diff.items():
        settings.add_row(_esc(key), *(_esc(setting_text(v)) for v in values.values()))
    console.print(settings)
