"""The fast paths of the reader and the reducer give what the slow ones give.

``EventTailer`` parses a block of whole lines with one ``json.loads`` and falls back to a
line-by-line parse when that could read differently; ``RunState.apply_all`` folds a
stretch of train logs in one call. Both must agree with the one-at-a-time reading,
event for event and field for field.
"""

from __future__ import annotations

import json
import math

import pytest

from clmtune.backend.events import EventTailer, make_event
from clmtune.backend.rundir.state import RunState


def _varied_events() -> list[dict]:
    """Two attempts, train logs with every odd value a writer or a hand may leave."""
    events = [make_event("phase", phase="loading_model", progress=None, detail="")]
    events.append(make_event("run_started", max_steps=40, resume_step=None, resumed_from=None))
    odd = [
        {},  # nothing but the step
        {"loss": 2, "epoch": 0, "learning_rate": 1, "grad_norm": 3},  # ints
        {"loss": "nan", "grad_norm": "inf", "tokens_per_second": "12.5"},  # strings
        {"loss": None, "learning_rate": None, "eta_seconds": "7"},
        {"loss": 1.5, "epoch": None, "samples_per_second": 3.0, "eta_seconds": 4.0},
        {"loss": True, "learning_rate": False},  # booleans are not numbers
        {"loss": 1.25, "epoch": 0.5, "learning_rate": 1e-4, "grad_norm": None,
         "tokens_per_second": 100.0, "samples_per_second": None},
    ]
    for step in range(1, 22):
        fields = dict(odd[step % len(odd)])
        event = make_event("train_log", step=step, **fields)
        if step == 9:
            event["time"] = None  # a hand-made line without a clock
        if step == 10:
            event["time"] = "1700000000.5"
        if step == 11:
            event["step"] = "11"  # JSON has strings where a writer had ints
        events.append(event)
        if step % 7 == 0:
            events.append(make_event("eval", step=step, epoch=None,
                                     metrics={"eval_loss": 1.0 + step / 100}))
        if step == 14:
            events.append(make_event("checkpoint", step=14, path="checkpoint-14", complete=True))
    events.append(make_event("run_finished", status="failed", error="boom", hint=None))
    # The resume: the steps after 14 are logged again, by a new attempt.
    events.append(make_event("phase", phase="loading_model", progress=None, detail=""))
    events.append(make_event("run_started", max_steps=40, resume_step=14,
                             resumed_from="checkpoint-14"))
    for step in range(15, 30):
        events.append(make_event("train_log", step=step, loss=1.0 / step, epoch=step / 10,
                                 learning_rate=1e-4, grad_norm=0.5))
    events.append(make_event("log", message="a line"))
    events.append(make_event("train_log", step=30, loss=0.1))
    return events


@pytest.mark.parametrize("compact", [False, True])
def test_folding_all_at_once_equals_folding_one_by_one(compact):
    events = _varied_events()
    one_by_one = RunState(compact=compact)
    for event in events:
        one_by_one.apply(event)
    at_once = RunState(compact=compact)
    at_once.apply_all(events)
    # repr, not ==: NaN never equals itself, and both sides hold NaNs.
    assert repr(at_once) == repr(one_by_one)
    assert at_once.events_folded == len(events)
    assert len(at_once.attempts) == 2
    assert at_once.step == 30 and at_once.train_steps[-1] == 30
    assert math.isnan(at_once.train_loss[list(at_once.train_steps).index(2)])


def test_folding_in_pieces_equals_folding_at_once():
    events = _varied_events()
    whole = RunState()
    whole.apply_all(events)
    pieces = RunState()
    for start in range(0, len(events), 5):  # what a live view gets, poll after poll
        pieces.apply_all(events[start:start + 5])
    assert repr(pieces) == repr(whole)


def _line_by_line(data: bytes) -> tuple[list, int]:
    events, bad = [], 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict) and "type" in obj:
            events.append(obj)
        else:
            bad += 1
    return events, bad


GOOD = json.dumps({**make_event("train_log", step=1, loss=2.0), "time": 1.0})
OTHER = json.dumps({**make_event("eval", step=1, metrics={"eval_loss": 1.0}), "time": 2.0})


CASES = {
    "whole lines": f"{GOOD}\n{OTHER}\n",
    "an empty line": f"{GOOD}\n\n{OTHER}\n",
    "an empty first line": f"\n{GOOD}\n",
    "spaces only": f"{GOOD}\n   \n{OTHER}\n",
    "crlf": f"{GOOD}\r\n{OTHER}\r\n",  # written on Windows
    "two values on one line": f"{GOOD}\n1, 2\n{OTHER}\n",  # bad, not two events
    "an array over two lines": f"{GOOD}\n[{GOOD}\n{OTHER}]\n",  # two bad lines
    "json but not events": f"{GOOD}\n{{\"no\": \"type\"}}\n[1]\n\"text\"\n",
    "not json": f"{GOOD}\nnot json\n{OTHER}\n",
    "a torn line": f"{GOOD[:20]}{OTHER}\n{GOOD}\n",  # a killed writer, then the next one
    # A value that would run into the next line once lines are joined, beside a line with
    # two values (the counts of values and lines then agree: a count is no check).
    "a string over two lines": '{"type":"log","message":"x\ny"}, 5\n',
    "an object over two lines": '{"type":"log"\n"m":1}\n1, 2\n',
    "braces in strings": '{"type":"a","m":"}\n{"}\n{"type":"b"},{"type":"c"}\n',
    "spaces around a value": f"  {GOOD}\t\n{OTHER}  \n",
    "a byte order mark": f"\ufeff{GOOD}\n{OTHER}\n",
    "a raw control character": '{"type":"log","message":"a\tb"}\n',
}


@pytest.mark.parametrize("text", list(CASES.values()), ids=list(CASES))
def test_the_block_reader_reads_what_a_line_by_line_reader_reads(tmp_path, text):
    path = tmp_path / "events.jsonl"
    path.write_bytes(text.encode())
    tailer = EventTailer(path)
    expected, bad = _line_by_line(text.encode())
    assert tailer.read_new() == expected
    assert tailer.bad_lines == bad


def test_a_block_that_is_not_utf8_is_read_line_by_line(tmp_path):
    data = f"{GOOD}\n".encode() + b'{"type":"log","message":"\xff"}\n' + f"{OTHER}\n".encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    tailer = EventTailer(path)
    expected, bad = _line_by_line(data)
    assert tailer.read_new() == expected and len(expected) == 2
    assert tailer.bad_lines == bad == 1
