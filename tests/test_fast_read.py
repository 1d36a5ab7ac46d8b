"""The fast paths of the reader and the reducer give what the slow ones give.

``EventTailer`` parses a block of whole lines with orjson when it is installed, else with
the stdlib's scanner, and gives a line either refuses to ``json.loads``; both must read
exactly what ``json.loads`` per line reads. ``RunState.apply_all`` folds a
stretch of train logs in one call. Both must agree with the one-at-a-time reading,
event for event and field for field.
"""

from __future__ import annotations

import json
import math
import random
import re

import pytest

from clmtune.backend import events as events_mod
from clmtune.backend.events import EventTailer, make_event, read_json
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
    # What the stdlib reads and orjson refuses or reads otherwise: NaN and infinities,
    # out-of-range floats, lone surrogates, integers beyond 64 bits.
    "nan and infinities": '{"type":"t","a":NaN,"b":Infinity,"c":-Infinity}\n' + f"{GOOD}\n",
    "an out-of-range float": '{"type":"t","a":1e400,"b":-2e999}\n',
    "a lone surrogate": '{"type":"t","m":"\\ud800x"}\n',
    "a long integer": '{"type":"t","seed":123456789012345678901234567890}\n' + f"{GOOD}\n",
    "the largest 64-bit integers": '{"type":"t","a":18446744073709551615,'
                                   '"b":-9223372036854775808,"c":999999999999999999}\n',
    "long integers in other places": '{"type":"t","a":[12345678901234567890123],'
                                     '"b":-12345678901234567890123, "c":\t98765432109876543210}\n'
                                     "12345678901234567890123\n",
    "an integer just above 64 bits": '{"type":"t","a":18446744073709551616}\n',
    "an integer just below 64 bits": '{"type":"t","b":-9223372036854775809}\n',
    "a long negative integer in an array": '{"type":"t","c":[-10000000000000000000]}\n',
    "duplicate keys": '{"type":"t","a":1,"a":2}\n',
    "long decimals": '{"type":"t","a":0.1000000000000000055511151231257827,"b":5e-324}\n',
}


@pytest.fixture(params=["orjson", "stdlib"])
def parser(request, monkeypatch):
    """The reader with orjson (when installed; for any size) and with the stdlib alone."""
    if request.param == "orjson":
        monkeypatch.setattr(events_mod, "ORJSON_MIN_BYTES", 0)
        if events_mod._fast_parser(0) is None:
            pytest.skip("orjson is not installed")
    else:
        monkeypatch.setattr(events_mod, "orjson", None)
    return request.param


@pytest.mark.parametrize("text", list(CASES.values()), ids=list(CASES))
def test_the_block_reader_reads_what_a_line_by_line_reader_reads(tmp_path, text, parser):
    path = tmp_path / "events.jsonl"
    path.write_bytes(text.encode())
    tailer = EventTailer(path)
    expected, bad = _line_by_line(text.encode())
    got = tailer.read_new()
    # repr: NaN never equals itself; and it tells 1e29 from 10**29
    assert repr(got) == repr(expected)
    assert tailer.bad_lines == bad


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-300, 300)
    if kind == 1:
        return rng.randint(-(2**70), 2**70) if rng.random() < 0.2 else rng.randint(-999, 999)
    if kind == 2:
        return "".join(rng.choice("ab\\\"\u00e9\u4e2d\U0001f600 \t\n") for _ in range(5))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice([float("nan"), float("inf"), -0.0, 5e-324, 1.7976931348623157e308])
    if kind == 5:
        return rng.random()
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def test_random_lines_read_as_json_loads_reads_them(tmp_path, parser):
    rng = random.Random(20261203)
    for round_ in range(40):
        lines = []
        for _ in range(50):
            event = {"type": "t", **{f"f{i}": _random_value(rng) for i in range(4)}}
            line = json.dumps(event, ensure_ascii=rng.random() < 0.5)
            if rng.random() < 0.05:
                line = line[: rng.randrange(len(line))]  # torn
            lines.append(line)
        data = ("\n".join(lines) + "\n").encode()
        path = tmp_path / f"events-{round_}.jsonl"
        path.write_bytes(data)
        tailer = EventTailer(path)
        expected, bad = _line_by_line(data)
        assert repr(tailer.read_new()) == repr(expected)
        assert tailer.bad_lines == bad


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": 123456789012345678901234567890}',
                                  '{"a": "\\ud800"}', '{"a": [1, 2.5, "x"]}', "\ufeff{}", "{",
                                  ""])  # fmt: skip
def test_read_json_reads_what_json_loads_reads(tmp_path, text, parser):
    path = tmp_path / "f.json"
    path.write_bytes(text.encode())
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    assert repr(read_json(path)) == repr(expected)


def test_a_block_that_is_not_utf8_is_read_line_by_line(tmp_path, parser):
    data = f"{GOOD}\n".encode() + b'{"type":"log","message":"\xff"}\n' + f"{OTHER}\n".encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    tailer = EventTailer(path)
    expected, bad = _line_by_line(data)
    assert tailer.read_new() == expected and len(expected) == 2
    assert tailer.bad_lines == bad == 1


def test_long_fractions_and_64_bit_integers_keep_the_fast_parser(tmp_path, monkeypatch):
    """Learning rates between 1e-4 and 1 print up to 21 digits after the point, and stat
    times in nanoseconds have 19 digits: orjson reads both as the stdlib does."""
    monkeypatch.setattr(events_mod, "ORJSON_MIN_BYTES", 0)
    if events_mod._fast_parser(0) is None:
        pytest.skip("orjson is not installed")
    calls = []
    monkeypatch.setattr(events_mod, "_parse_lines_stdlib", lambda block: calls.append(block))
    lines = [json.dumps(make_event("train_log", step=s, learning_rate=3e-4 * (1 - s / 7),
                                   loss=0.1 + 0.2, mtime_ns=1764772000123456789 + s,
                                   large=10**19 - 1, negative=-(10**17)))
             for s in range(1, 7)]  # fmt: skip
    assert any(re.search(r"\.[0-9]{19}", line) for line in lines)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert len(EventTailer(path).read_new()) == 6
    assert calls == []


def test_small_reads_do_not_import_orjson(tmp_path):
    """The import costs more than it saves on small files (the dashboard's start reads some)."""
    import subprocess
    import sys

    (tmp_path / "run.json").write_text('{"status": "completed"}')
    (tmp_path / "events.jsonl").write_text(GOOD + "\n" + OTHER + "\n")
    code = ("import sys\nfrom clmtune.backend.events import read_json, read_events\n"
            f"read_json({str(tmp_path / 'run.json')!r})\n"
            f"read_events({str(tmp_path / 'events.jsonl')!r})\n"
            "print('orjson' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
