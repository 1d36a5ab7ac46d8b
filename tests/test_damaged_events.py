"""A run whose files hold wrong values (hand edits, other tools, damage) never breaks a reader.

Every view folds ``events.jsonl`` through one reducer and reads ``run.json`` beside it;
one event with a string for a step, a list for metrics or a float for a pid must not
stop ``clmtune runs`` / ``show`` / ``compare``, nor the figures of the state. The
events here are the recorded ones the dashboard tests replay, each damaged at random
(seeded) in one field at a time, and then in many at once.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from clmtune.backend.cli import main
from clmtune.backend.rundir.layout import RUN_JSON
from clmtune.backend.rundir.state import RunState, fold

DATA = Path(__file__).parent / "tui" / "data"
RECORDINGS = sorted(DATA.glob("*.jsonl"))
WRONG: tuple[Any, ...] = (
    "abc", "", "nan", "-inf", "12", None, True, False, [], [1, "x"], {}, {"a": [1]},
    -1, 0, 10**30, -(10**30), 1e308, -1e308, math.nan, math.inf, 3.5, -7.25,
)
RUN_JSON_KEYS = ("status", "pid", "host", "start_time", "end_time", "world_size",
                 "global_step", "max_steps", "error", "hint", "resumed_from", "run_name")


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _damage(events: list[dict[str, Any]], rng: random.Random, times: int) -> None:
    for _ in range(times):
        event = rng.choice(events)
        target = event
        inner = [v for v in event.values() if isinstance(v, dict) and v]
        inner += [x for v in event.values() if isinstance(v, list)
                  for x in v if isinstance(x, dict) and x]  # e.g. a gpu event's devices
        if inner and rng.random() < 0.4:
            target = rng.choice(inner)
        key = rng.choice(sorted(target))
        if key in ("v", "type") and target is event:
            continue
        if rng.random() < 0.15:
            del target[key]
        else:
            target[key] = rng.choice(WRONG)


def _exercise(state: RunState) -> None:
    """Every figure and method a view reads."""
    for name in dir(RunState):
        attr = getattr(RunState, name)
        if isinstance(attr, property):
            getattr(state, name)
    for status in (None, "running", "crashed", "completed"):
        state.elapsed(1.8e9, status)
        state.eta(status)
    state.status_with("crashed")
    state.run_samples_per_second()
    state.run_tokens_per_second()
    state.run_mfu()
    state.history_rows()


def _write_run(run: Path, events: list[dict[str, Any]], info: dict[str, Any] | None) -> None:
    run.mkdir(parents=True)
    with open(run / "events.jsonl", "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")
    if info is not None:
        (run / RUN_JSON).write_text(json.dumps(info))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.stem)
def test_damaged_events_fold_and_every_figure_reads(recording: Path) -> None:
    rng = random.Random(recording.stem)
    original = _events(recording)
    for round_ in range(200):
        events = json.loads(json.dumps(original))
        _damage(events, rng, 1 if round_ < 80 else rng.randint(2, 12))
        for compact in (False, True):
            state = fold(events, compact=compact)
            _exercise(state)
            incremental = RunState(compact=compact)
            for event in events:
                incremental.apply(event)
            _exercise(incremental)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.stem)
def test_damaged_runs_list_show_and_compare(recording: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(f"cli-{recording.stem}")
    original = _events(recording)
    root = tmp_path / "runs"
    names = []
    for i in range(16):
        events = json.loads(json.dumps(original))
        _damage(events, rng, rng.randint(1, 6))
        info: dict[str, Any] | None = None
        if i % 2:
            info = {"status": "completed", "pid": 4242, "host": "gpu-box",
                    "start_time": 1.7e9, "world_size": 1, "global_step": 60}
            info[rng.choice(RUN_JSON_KEYS)] = rng.choice(WRONG)
        name = f"r{i}"
        _write_run(root / name, events, info)
        names.append(name)
    for argv in (("runs", str(root), "--json"), ("runs", str(root))):
        code, out, err = _cli(capsys, *argv)
        assert code == 0, err
        assert "Traceback" not in err
    listed = json.loads(_cli(capsys, "runs", str(root), "--json")[1])
    assert sorted(r["name"] for r in listed) == sorted(names)
    for name in names:
        for extra in ((), ("--json",)):
            code, out, err = _cli(capsys, "show", name, "--runs-dir", str(root), *extra)
            assert code == 0, f"show {name}: {err}"
            if extra:
                json.loads(out)
    for fmt in ((), ("--json",), ("--csv",)):
        code, out, err = _cli(capsys, "compare", *names[:4], "--runs-dir", str(root), *fmt)
        assert code == 0, err
