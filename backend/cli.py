"""The headless command line: ``clmtune train | stop | runs | show | compare | check | init``.

Exit codes (``clmtune train`` mirrors the run's final status):

- 0: success (run ``completed``)
- 1: the run ``failed`` or ``crashed`` (or ``stop`` found nothing running)
- 2: bad input (unknown file or run name, invalid settings, no complete checkpoint, a
  complete run resumed, a folder that holds another run or a checkpoint, …):
  one line per problem on stderr, never a traceback; also a run that the worker
  refused on its settings or data once loaded (a block size the data cannot fill)
- 3: the run ``stopped`` on request (a complete checkpoint was saved; resume
  with ``--resume last``). Not 130: a stop is asked for, not an abort, and may
  come from another terminal or the TUI.
- 130: aborted with a second Ctrl-C (the worker was killed; its run reads as
  ``crashed`` and resumes from the newest complete checkpoint).

Heavy or display imports (rich's progress display, the config schema, torch
through the worker) happen inside the commands, so ``import clmtune.backend.cli`` is
cheap and never pulls in a live display.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from clmtune import backend
from clmtune.backend.cli_text import (
    EXIT_ABORTED,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    RUNS_DIR_HELP,
    fmt_eval_at,
)
from clmtune.backend.cli_text import console as _console
from clmtune.backend.cli_text import esc as _esc
from clmtune.backend.cli_text import fmt_duration as _fmt_duration
from clmtune.backend.cli_text import fmt_float as _fmt_float
from clmtune.backend.cli_text import fmt_size as _fmt_size
from clmtune.backend.cli_text import fmt_time as _fmt_time
from clmtune.backend.errors import ClmtuneError, UsageError
from clmtune.backend.tools import COMMANDS as TOOL_COMMANDS

STATUS_EXIT = {"completed": EXIT_OK, "stopped": EXIT_STOPPED, "failed": EXIT_FAILED,
               "crashed": EXIT_FAILED, "unknown": EXIT_FAILED, "running": EXIT_FAILED}  # fmt: skip
POLL_S = 0.2


class BadInput(UsageError):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block.
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------ train


class _Interrupts:
    """Counts Ctrl-C presses during a foreground run instead of raising."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def _describe(state: Any) -> str:
    if state.phase == "finished":
        return state.status
    detail = f" ({state.phase_detail})" if state.phase_detail and state.phase != "training" else ""
    return f"{state.phase.replace('_', ' ')}{detail}"


#: Short names of the loss kinds for narrow table cells (the full ones are the labels).
LOSS_SHORT = {"last train log": "last log", "mean train loss": "mean", "last eval": "last eval"}


def _fmt_loss(value: Any, kind: str) -> str:
    """A loss with which loss it is: ``2.341 (last log)``."""
    if value is None:
        return "-"
    return f"{_fmt_float(value)} ({LOSS_SHORT.get(kind, kind)})"


def _report_event(console: Any, event: dict) -> None:
    """Lines printed above the progress bar (and the whole log when not on a terminal)."""
    kind = event.get("type")
    if kind == "phase" and event.get("phase") != "training":
        detail = f": {event['detail']}" if event.get("detail") else ""
        console.print(f"[dim]{_esc(event.get('phase'))}{_esc(detail)}[/]")
    elif kind == "eval":
        metrics = event.get("metrics") or {}
        console.print(
            f"eval at step {event.get('step')}: loss {_fmt_float(metrics.get('eval_loss'))}"
            f", perplexity {_fmt_float(metrics.get('perplexity'))}"
            + (
                f", accuracy {_fmt_float(metrics.get('eval_accuracy'))}"
                if "eval_accuracy" in metrics
                else ""
            )
        )
    elif kind == "checkpoint":
        state = "complete" if event.get("complete") else "incomplete"
        console.print(f"checkpoint {_esc(Path(str(event.get('path'))).name)} saved ({state})")
    elif kind == "warning":
        console.print(f"[yellow]warning:[/] {_esc(event.get('message'))}")
    elif kind == "log":
        console.print(f"[dim]{_esc(event.get('message'))}[/]")


def _metrics_tables(console: Any, metrics: dict[str, Any]) -> None:
    """One table per split ("train", "eval") of final metrics."""
    from rich.table import Table
    from rich.text import Text

    for split in ("train", "eval"):
        values = metrics.get(split)
        if not values:
            continue
        table = Table(title=f"{split} metrics", show_header=True, header_style="bold")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in sorted(values.items()):
            shown = value if isinstance(value, str) else _fmt_float(value)
            table.add_row(Text(str(key)), Text(shown))
        console.print(table)


def _final_table(console: Any, state: Any, summary: Any) -> None:
    """The final metrics: the results files, else what the run's events reported."""
    metrics = dict(summary.metrics)
    for split, values in state.final_metrics.items():
        metrics.setdefault(split, values)
    _metrics_tables(console, metrics)


def _tail_until_exit(launched: Any, console: Any, interrupts: _Interrupts) -> tuple[str, Any]:
    """Follow the worker's events until its process exits; returns ('aborted' or '', view)."""
    from rich.progress import BarColumn, Progress, TextColumn

    from clmtune.backend.events import EVENTS_FILE, EventTailer
    from clmtune.backend.launch import kill_run, request_stop
    from clmtune.backend.rundir.state import RunState

    tailer = EventTailer(launched.run_dir / EVENTS_FILE)
    view = RunState()
    since = launched.started - 1.0
    handled = 0
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.fields[steps]}"),
        TextColumn("{task.fields[loss]}"),
        TextColumn("eta {task.fields[eta]}"),
    )
    # Redrawn only when events arrive: on a CPU box every wake-up of this process can stall
    # the worker's OpenMP threads at their next barrier (bench/bench_vs_run_clm.py).
    with Progress(*columns, console=console, transient=False, auto_refresh=False) as progress:
        task = progress.add_task("starting", total=None, steps="", loss="loss -", eta="-")
        while True:
            exited = launched.process.poll() is not None
            events = tailer.read_final() if exited else tailer.read_new()
            for event in events:
                view.apply(event)
                # A resumed run dir holds the earlier attempts' events: fold, don't reprint.
                if (event.get("time") or 0) >= since:
                    _report_event(progress.console, event)
            training = view.phase == "training" and view.max_steps
            finished = view.phase == "finished"
            # A stopped or failed run's bar shows how far it got, never a full bar.
            counted = (training or finished) and view.max_steps
            loss = view.loss
            progress.update(
                task,
                description=_describe(view),
                total=view.max_steps if counted else (1 if finished else None),
                completed=view.step if counted else (1 if finished else 0),
                steps=f"{view.step}/{view.max_steps}" if view.max_steps else "",
                loss=f"{loss.label} {_fmt_float(loss.value)}",
                eta=_fmt_duration(view.eta()) if training else "-",
                refresh=bool(events),
            )
            if interrupts.count > handled:
                handled = interrupts.count
                if handled == 1:
                    if request_stop(launched.run_dir):
                        progress.console.print(
                            "stopping: a checkpoint is saved at the next step"
                            " (Ctrl-C again to abort without saving)"
                        )
                else:
                    # The worker leads its own session: its pid is the process group id.
                    try:
                        os.killpg(launched.pid, signal.SIGKILL)
                    except OSError:
                        kill_run(launched.run_dir)
                    launched.process.wait()
                    progress.console.print("[red]aborted[/]: the worker was killed")
                    return "aborted", view
            if exited:
                return "", view
            time.sleep(POLL_S)


def _cmd_train(args: argparse.Namespace) -> int:
    from clmtune.backend.launch import start_run
    from clmtune.backend.rundir.layout import read_run_json
    from clmtune.backend.rundir.summary import read_run

    console = _console()
    config_path = Path(args.file) if args.file else None
    if config_path is None and args.run_dir is None:
        raise BadInput("train: give a config file, or --run-dir of an existing run with --resume")
    if config_path is not None:
        _need_settings_file(config_path)
    if config_path is None and args.resume is None:
        raise BadInput("train: without a config file, --resume last|auto|PATH is needed")
    if args.run_dir:
        from clmtune.backend.settings.validate import name_problem
        problem = name_problem(Path(args.run_dir).absolute())
        if problem is not None:
            raise BadInput(f"--run-dir {problem}")
    if args.print_command:  # what would run, shell-quoted; nothing trained, nothing written
        from clmtune.backend.launch import command_text
        print(command_text(config_path, run_dir=args.run_dir and Path(args.run_dir),
                           resume=args.resume))
        return EXIT_OK
    def announce(plan: Any) -> None:
        # Loading torch, the model and the data takes a while: say at once what happens.
        if plan.checkpoint is not None:
            console.print(
                f"resuming from {_esc(plan.checkpoint)}: loading {_esc(plan.checkpoint.name)} …"
            )
        elif args.resume == "auto":
            console.print("no complete checkpoint yet: starting from the beginning")

    # Ctrl-C is counted from here on, not raised: the worker starts in its own session,
    # so a KeyboardInterrupt while it is being started would leave it training unwatched.
    # A press before the worker runs is handled as soon as it does (a safe stop).
    with _Interrupts() as interrupts:
        launched = start_run(
            config_path,
            run_dir=Path(args.run_dir) if args.run_dir else None,
            resume=args.resume,
            announce=announce,
        )
        for warning in launched.warnings:
            _console(stderr=True).print(f"[yellow]warning:[/] {_esc(warning)}")
        console.print(f"run dir: {_esc(launched.run_dir)}")
        if args.detach:
            return _detached(console, launched, interrupted=interrupts.count > 0)
        outcome, view = _tail_until_exit(launched, console, interrupts)
    if outcome == "aborted":
        console.print(
            f"resume later with: clmtune train --run-dir {_esc(launched.run_dir)} --resume last"
        )
        return EXIT_ABORTED
    summary = read_run(launched.run_dir)
    _final_table(console, view, summary)
    code = _print_status(summary)
    if summary.status == "failed" and read_run_json(launched.run_dir).get("bad_input"):
        return EXIT_BAD_INPUT  # e.g. a block size the data cannot fill: found only by the run
    return code


def _detached(console: Any, launched: Any, *, interrupted: bool) -> int:
    """``train --detach``: say where the run is; a Ctrl-C while starting asks it to stop."""
    from clmtune.backend.launch import request_stop

    if interrupted and request_stop(launched.run_dir):
        console.print(f"interrupted: the run was asked to stop (pid {launched.pid}); "
                      f"resume later with: clmtune train --run-dir {_esc(launched.run_dir)} "
                      "--resume auto")
        return EXIT_ABORTED
    console.print(
        f"training in the background (pid {launched.pid}).\n"
        f"  watch: clmtune-tui {_esc(launched.run_dir.parent)}"
        f"   or   clmtune show {_esc(launched.run_dir)}\n"
        f"  stop:  clmtune stop {_esc(launched.run_dir)}"
    )
    return EXIT_OK


def _print_status(summary: Any) -> int:
    err = _console(stderr=True)
    status = summary.status
    if status == "completed":
        _console().print(f"[green]completed[/] at step {summary.global_step}: {_esc(summary.path)}")
    elif status == "stopped":
        resumable = [c for c in summary.checkpoints if c.resumable]
        where = f" ({resumable[-1].path.name})" if resumable else ""
        _console().print(
            f"[yellow]stopped[/] at step {summary.global_step}{_esc(where)}; continue with:"
            f" clmtune train --run-dir {_esc(summary.path)} --resume last"
        )
    else:
        error = summary.error or "the worker ended without a status"
        err.print(f"[red]{status}[/]: {_esc(error)}")
        if summary.hint:
            err.print(f"hint: {_esc(summary.hint)}")
        if status == "crashed":
            err.print(f"resume with: clmtune train --run-dir {_esc(summary.path)} --resume last")
    return STATUS_EXIT.get(status, EXIT_FAILED)


# ------------------------------------------------------------------ stop / runs / show


def _need_settings_file(path: Path) -> None:
    if path.is_dir():
        raise BadInput(f"{path}: is a folder; give the path of a settings file (TOML)")
    if path.exists() and not path.is_file():
        raise BadInput(f"{path}: is not a regular file (a device, pipe or socket); give the"
                       " path of a settings file (TOML)")
    if not path.is_file():
        raise BadInput(f"{path}: no such file (create one with: clmtune init {path})")


def _need_run_dir(args: argparse.Namespace) -> Path:
    """The run ``args.run_dir`` names: a path, or a name under ``--runs-dir`` (one helper)."""
    from clmtune.backend.run_names import DEFAULT_RUNS_DIR, resolve_run

    return resolve_run(args.run_dir, Path(args.runs_dir or DEFAULT_RUNS_DIR))


def _runs_root(args: argparse.Namespace) -> Path:
    """The runs folder ``clmtune runs`` lists: a missing one named on the command line is bad
    input (exit 2); the default ``./runs`` may not exist yet."""
    from clmtune.backend.run_names import DEFAULT_RUNS_DIR, need_runs_dir

    given = args.dir or args.runs_dir
    return need_runs_dir(Path(given or DEFAULT_RUNS_DIR), given=bool(given))


def _cmd_stop(args: argparse.Namespace) -> int:
    from clmtune.backend.launch import request_stop
    from clmtune.backend.rundir.summary import read_run

    run_dir = _need_run_dir(args)
    if not request_stop(run_dir):
        status = read_run(run_dir).status
        raise BadInput(f"{run_dir}: not running (status {status}); nothing to stop")
    print(f"stop requested: {run_dir} saves a checkpoint at the next step and exits")
    if not args.wait:
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        summary = read_run(run_dir)
        if summary.status != "running":
            return _print_status(summary)
        time.sleep(POLL_S)
    _console(stderr=True).print(f"{_esc(run_dir)}: still running after {args.timeout:.0f} s")
    return EXIT_FAILED


def _short_model(model: str | None) -> str:
    # A local path is long and its last part is what people recognise.
    return Path(model).name if model and Path(model).is_absolute() else (model or "-")


def _checkpoint_text(summary: Any) -> str:
    if not summary.checkpoints:
        return "-"
    complete = sum(1 for c in summary.checkpoints if c.resumable)
    return f"{complete}/{len(summary.checkpoints)} ok"


def _cmd_runs(args: argparse.Namespace) -> int:
    from clmtune.backend.rundir.listing import list_runs, list_runs_json

    root = _runs_root(args)
    if args.json:
        # One run per line, as the listing cache keeps them (never parsed again).
        lines = ",\n".join(list_runs_json(root))
        sys.stdout.write(f"[\n{lines}\n]\n" if lines else "[]\n")
        return EXIT_OK
    runs = list_runs(root)
    if not runs:
        print(f"no runs under {root}")
        return EXIT_OK
    from rich import box  # only for the table: --json stays lean
    from rich.table import Table
    from rich.text import Text

    rows = [
        {
            "name": run.name, "model": _short_model(run.model),
            "status": f"{run.status} (nan)" if run.nan_flag else run.status,
            "step": f"{run.global_step}/{run.max_steps}" if run.max_steps else str(run.global_step),
            "loss": _fmt_loss(run.loss, run.loss_kind), "best eval": _fmt_float(run.best_eval_loss),
            "best ppl": _fmt_float(run.best_perplexity),
            "started": _fmt_time(run.started, "%m-%d %H:%M"),
            "time": _fmt_duration(run.duration), "ckpts": _checkpoint_text(run),
        }
        for run in runs
    ]  # fmt: skip
    console = _console()
    if not console.is_terminal:
        # Piped to grep/awk or a file: whole lines, never cut to 80 columns.
        console.width = 1000
    columns = ["name", "status", "model", "step", "loss", "best eval", "best ppl", "started",
               "time", "ckpts"]  # fmt: skip
    # On a narrow terminal whole columns give way, least useful first; cells are never cut
    # (the name is what people type next: clmtune show runs/NAME).
    optional = ["started", "model", "best ppl", "time", "best eval"]
    while True:
        table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)  # fmt: skip
        for name in columns:
            right = name in ("step", "loss", "best eval", "best ppl", "time")
            table.add_column(name, justify="right" if right else "left", no_wrap=True)
        for row in rows:
            table.add_row(*(Text(row[name]) for name in columns))
        unbounded = console.options.update_width(100_000)
        if not optional or console.measure(table, options=unbounded).maximum <= console.width:
            break
        columns.remove(optional.pop(0))
    console.print(table)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from clmtune.backend.rundir.summary import read_run

    summary = read_run(_need_run_dir(args))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
        return EXIT_OK
    console = _console()
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column()
    steps = f"{summary.global_step}/{summary.max_steps}" if summary.max_steps else "-"
    rows = [
        ("run", str(summary.path)), ("source", summary.source), ("status", summary.status),
        ("model", summary.model or "-"), ("step", steps),
        (summary.loss_label, _fmt_float(summary.loss)),
        ("best eval loss", _fmt_float(summary.best_eval_loss)),
        ("best perplexity", _fmt_float(summary.best_perplexity)),
        ("last eval loss", _fmt_float(summary.last_eval_loss)),
        ("perplexity (last eval)", _fmt_float(summary.perplexity)),
        ("world size", str(summary.world_size)),
        ("started", _fmt_time(summary.started)), ("duration", _fmt_duration(summary.duration)),
        ("eta", _fmt_duration(summary.eta)), ("attempts", str(summary.attempts or "-")),
        ("train set", f"{summary.train_samples} samples" if summary.train_samples else "-"),
        ("samples/s (training)", _fmt_float(summary.samples_per_second)),
        ("resumed from", summary.resumed_from or "-"), ("trainable", summary.trainable or "-"),
    ]  # fmt: skip
    if summary.nan_flag:
        rows.append(("loss flag", summary.nan_flag))
    if not summary.controllable:
        rows.append(("note", "a plain Hugging Face folder: nothing to stop or resume"))
    if summary.error:
        rows += [("error", summary.error), ("hint", summary.hint or "-")]
    for key, value in rows:
        facts.add_row(key, Text(str(value)))
    console.print(facts)
    if summary.checkpoints:
        table = Table(title="checkpoints", header_style="bold")
        for name in ("step", "state", "saved", "eval loss", "size", "note"):
            table.add_column(name)
        for c in summary.checkpoints:
            table.add_row(
                str(c.step), c.state, _fmt_time(c.mtime),
                fmt_eval_at(c.eval_loss, c.eval_step, c.step), _fmt_size(c.size_bytes),
                Text(c.reason or ""),
            )  # fmt: skip
        console.print(table)
    _metrics_tables(console, summary.metrics)
    if summary.settings:
        table = Table(title="settings", header_style="bold")
        table.add_column("setting")
        table.add_column("value")
        for section, values in summary.settings.items():
            if isinstance(values, dict):
                for key, value in values.items():
                    table.add_row(Text(f"[{section}] {key}"), Text(str(value)))
        console.print(table)
    return EXIT_OK


# ------------------------------------------------------------------ check / init


def _cmd_check(args: argparse.Namespace) -> int:
    from clmtune.backend.settings.check import check_file

    path = Path(args.file)
    _need_settings_file(path)
    return int(check_file(path))


def _cmd_init(args: argparse.Namespace) -> int:
    from clmtune.backend.presets import init_file

    return int(init_file(Path(args.file), args.preset, force=args.force))


# ------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the README's command reference)."""
    parser = _Parser(prog="clmtune", description="Fine-tune causal language models (headless).")
    parser.add_argument("--version", action="version", version=f"clmtune {backend.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("train", help="train from a TOML file (foreground, or --detach)")
    p.add_argument("file", nargs="?", help="the run settings (TOML)")
    p.add_argument("--run-dir", help="where the run goes (default: output_dir or ./runs/NAME-TIME)")
    p.add_argument(
        "--resume", metavar="last|auto|PATH",
        help="continue from a complete checkpoint (auto: start fresh when there is none yet,"
        " the same command on every requeue)",
    )
    p.add_argument("--detach", action="store_true", help="start in the background and return")
    p.add_argument("--print-command", action="store_true", help="print the command it would run")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("stop", help="save a checkpoint at the next step and stop a run")
    p.add_argument("run_dir", metavar="RUN", help="a run's name under --runs-dir, or its path")
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    p.add_argument("--wait", action="store_true", help="wait until the worker has exited")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("runs", help="list the runs under DIR (default ./runs)")
    p.add_argument("dir", nargs="?", default=None)
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("show", help="one run in detail (also plain Hugging Face output dirs)")
    p.add_argument("run_dir", metavar="RUN", help="a run's name under --runs-dir, or its path")
    p.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_show)

    for name in TOOL_COMMANDS:  # compare, …: each registers its own subcommand
        importlib.import_module(f"clmtune.backend.tools.{name}_cli").register(sub)

    p = sub.add_parser("check", help="validate a settings file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("init", help="write a commented starting settings file")
    p.add_argument("--preset", default="demo", help="demo | gpt2-text | gpu-fast (default: demo)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``clmtune``; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ClmtuneError as exc:  # the one place errors become text and an exit code
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"clmtune: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_ABORTED
    except BrokenPipeError:  # `clmtune runs | head`
        return EXIT_OK
    except OSError as exc:  # disk full, permissions: the environment, not the input
        print(f"clmtune: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
