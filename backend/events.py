"""The event stream of a run: THE schema (version ``SCHEMA_VERSION``), writer, reader.

This module is pure Python (no torch, no transformers, no textual) because the
TUI imports it. ``events.jsonl`` in a run directory is append-only, one JSON
object per line, flushed per event. Every event carries ``v`` (schema version),
``type`` and ``time`` (UNIX seconds); the other keys depend on the type:

``run_started``   run_dir, pid, host, world_size, devices (list[str]), num_params,
                  trainable_params, max_steps, num_train_epochs, train_samples,
                  eval_samples, block_size, resumed_from (checkpoint path or None),
                  resume_step (int or None), settings (dict summary); for MFU
                  (backend.mfu): flops_per_token, peak_flops (per device, None on CPU),
                  precision (bf16|fp16|tf32|fp32), gpu_name (all optional); peft (None,
                  or for a LoRA run a dict: method, r, lora_alpha, target_modules,
                  quantization ("4bit" | "8bit" | None), modules_to_save)
``phase``         phase (one of PHASES), progress (0..1 or None), detail (str)
``train_log``     step, epoch, loss, learning_rate, grad_norm, tokens_per_second,
                  samples_per_second, eta_seconds (any may be None)
``eval``          step, epoch, metrics (dict of eval_* floats, incl. eval_loss,
                  eval_accuracy when computed, and perplexity); ``final: true`` on the
                  evaluation after training (of the best checkpoint's weights with
                  load_best_model_at_end)
``memory``        step, devices (list of dicts: index, name, allocated, reserved,
                  peak_allocated, used, total; bytes), process_rss, system_used,
                  system_total (bytes; None when unknown)
``gpu``           step, interval (s), samples, devices (list of dicts from NVML, one per
                  GPU, over the window: index, name, util/util_max (%), mem_used,
                  mem_used_max, mem_total (bytes, all processes), power/power_max,
                  power_limit (W), temp/temp_max (C), sm_clock (MHz, mean), throttle
                  (list of short reason names)); see backend.telemetry
``checkpoint``    step, path, complete (bool)
``warning``       code (short slug), message
``log``           message (free text from the worker, e.g. a library warning)
``final_metrics`` split ("train" | "eval"), metrics (dict)
``run_finished``  status (completed | stopped | failed), error, hint
``sample``        step, seconds (time the generation took), samples (list of dicts: prompt,
                  completion, tokens): ``[samples]`` prompts completed after an evaluation

Numbers that are not finite are written as the strings ``"nan"``, ``"inf"``,
``"-inf"`` (read them with :func:`to_float`). Notes for readers:

- A run dir holds every attempt of a run: the first start and each resume append to
  the same file. A worker's first event is a ``phase`` (``loading_model``);
  ``run_started`` follows once the model and data are ready; its ``resume_step`` says
  which steps the earlier attempts logged that this one logs again.
- A ``warning`` with ``code`` ``nan_loss`` carries the worker's hint for a loss that
  became NaN/inf; it has ``step`` too. ``notify_failed``: the ``[notify]`` command failed
  (backend/notify.py; training goes on); ``fsdp_ignored``: ``[training] fsdp`` is set but
  accelerate did not shard (CPU processes); its output, when it prints any, is a ``log``.
  ``resume_settings_applied``: a resume put the settings' optimizer values over the
  checkpoint's; ``step`` and ``applied`` ({setting: [checkpoint's value, now]}).
- The one reducer from events to state is :mod:`clmtune.backend.rundir.state`
  (``fold(events)`` / ``RunState.apply(event)``); add a field there when you add one here,
  and bump ``SCHEMA_VERSION`` when a change is not backward compatible.
"""

from __future__ import annotations

import json
import json.scanner
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

#: orjson, a C JSON parser several times faster than the stdlib's (see _parse_lines):
#: imported on the first read of at least ORJSON_MIN_BYTES (the import costs about 20 ms,
#: more than it saves on small files, and the dashboard's first paint waits for none of it).
#: None where it is not installed: the stdlib reads alone.
orjson: Any = ...
ORJSON_MIN_BYTES = 64 * 1024


def _fast_parser(size: int) -> Any:
    """orjson for ``size`` bytes of JSON, or None (small, or not installed)."""
    global orjson
    if size < ORJSON_MIN_BYTES:
        return None
    if orjson is ...:
        try:
            import orjson as module
        except ImportError:  # pragma: no cover - a platform without its wheel
            module = None
        orjson = module
    return orjson

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"

PHASES = (
    "starting",
    "loading_model",
    "loading_data",
    "tokenizing",
    "grouping",
    "training",
    "evaluating",
    "saving",
    "finished",
)

EVENT_TYPES = (
    "run_started",
    "phase",
    "train_log",
    "eval",
    "memory",
    "checkpoint",
    "warning",
    "log",
    "final_metrics",
    "run_finished",
    "gpu",
    "sample",
)

Event = dict[str, Any]
Emit = Callable[[Event], None]


def make_event(type_: str, **fields: Any) -> Event:
    """Build an event dict with the version, type and timestamp filled in."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {"v": SCHEMA_VERSION, "type": type_, "time": time.time(), **fields}


def _json_default(value: Any) -> Any:
    # numpy / torch scalars and paths show up in metrics dicts; keep the writer total.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _sanitize(value: Any) -> Any:
    """Replace NaN/inf by strings so every line is strict JSON that any reader parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def to_float(value: Any) -> float | None:
    """Read a number written by :class:`EventWriter` back (``"nan"``/``"inf"`` included)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


INT_LIMIT = 2**63  # steps and counts beyond a 64-bit integer are damage, not data


def to_int(value: Any) -> int | None:
    """A whole number (a step, a count) as written, or None when it is not a finite number.

    Events and run.json may be edited by hand or written by another tool: a step of
    ``"abc"`` or ``[]`` reads as missing instead of stopping every view of the run.
    """
    if value.__class__ is int and -INT_LIMIT < value < INT_LIMIT:
        return value
    number = to_float(value)
    return int(number) if number is not None and abs(number) < INT_LIMIT else None


def as_text(value: Any) -> str | None:
    """A message or a path as written; None for none, text for any other JSON value."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a damaged field reads as empty)."""
    return value if isinstance(value, dict) else {}


def with_device_list(e: Event) -> Event:
    """A ``memory`` / ``gpu`` event whose ``devices`` is a list of objects, as views index it.

    A damaged one keeps its readable devices (none when the field is not a list).
    """
    devices = e.get("devices")
    if devices is None or (isinstance(devices, list)
                           and all(isinstance(d, dict) for d in devices)):  # fmt: skip
        return e
    kept = [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []
    return {**e, "devices": kept}


def perplexity(loss: float | None) -> float | None:
    """exp(loss), ``inf`` on overflow, None without a loss (the one definition for all)."""
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def read_json(path: str | os.PathLike[str]) -> Any:
    """A small JSON file's content, or None when it is missing, unreadable or torn."""
    try:
        with open(path, "rb") as fh:  # bytes, decoded at once: a third faster than text mode
            data = fh.read()
        fast = _fast_parser(len(data))
        if fast is not None and not _long_integer(data):
            try:
                return fast.loads(data)
            except ValueError:
                pass  # what the stdlib reads and orjson refuses (NaN, ...): see _parse_lines
        return json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return None


class EventWriter:
    """Append events to ``events.jsonl``; one ``write`` + ``flush`` per event.

    Each event is written as a single ``write`` of one full line so a reader
    never sees two half events interleaved; a writer killed mid-write leaves at
    most one torn last line, which :class:`EventTailer` skips.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        # The worker emits from the training thread and the memory thread.
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        """Write one event (built with :func:`make_event`)."""
        if self._fh is None:
            return
        line = json.dumps(_sanitize(event), default=_json_default, separators=(",", ":"))
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(line + "\n")
            self._fh.flush()

    def __call__(self, event: Event) -> None:
        self.emit(event)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventTailer:
    """Incremental reader of an events file that may still be growing.

    ``read_new()`` returns the complete events appended since the last call.
    It tolerates a file that does not exist yet, a partial last line (kept
    until its newline arrives) and lines that are not valid JSON (skipped and
    counted in ``bad_lines``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]  # b"" when the chunk ended on a newline
        parsed, bad = _parse_lines(data[:end])
        self.bad_lines += bad
        events = [obj for obj in parsed if isinstance(obj, dict) and "type" in obj]
        self.bad_lines += len(parsed) - len(events)
        return events

    def read_final(self) -> list[Event]:
        """Like :meth:`read_new`, then also parse a last line without newline if valid."""
        events = self.read_new()
        if self._partial.strip():
            try:
                obj = json.loads(self._partial)
            except ValueError:
                self.bad_lines += 1  # torn by a killed writer
            else:
                if isinstance(obj, dict) and "type" in obj:
                    events.append(obj)
            self._partial = b""
        return events


#: The JSON decoder's own scanner (C): one value from a position in a string.
_SCAN = json.scanner.make_scanner(json.JSONDecoder())
#: What ``json.loads`` accepts around a value (its ``WHITESPACE``; ``\n`` ends a line).
_JSON_SPACE = " \t\r"


#: An integer orjson reads differently: beyond 64 bits (above 2**64 - 1, below -2**63) it
#: gives a float, where the stdlib keeps the integer exact. Such a number has 20 digits or
#: more after one of the bytes that may come before a JSON number, or 19 after a minus
#: sign; a fraction's digits (after ".", up to 21 in Python's repr of 0.0001 to 1) do not
#: count. Mapping the digits to "0" and those bytes to "!" finds one with plain searches
#: (a regular expression over a long block costs more than parsing it). A hit inside a
#: string or an exponent only sends the block to the stdlib: slower, same values.
_NUMBER_START = b":,[ \t\r\n"
_DIGITS_AND_STARTS = bytes.maketrans(b"0123456789" + _NUMBER_START,
                                     b"0" * 10 + b"!" * len(_NUMBER_START))
_LONG_POSITIVE = b"0" * 20
_LONG_NEGATIVE = b"-" + b"0" * 19


def _long_integer(data: bytes) -> bool:
    """Whether ``data`` may hold an integer beyond 64 bits (see _DIGITS_AND_STARTS)."""
    marked = data.translate(_DIGITS_AND_STARTS)
    return (b"!" + _LONG_POSITIVE in marked or _LONG_NEGATIVE in marked
            or marked.startswith(_LONG_POSITIVE))


def _parse_lines(block: bytes) -> tuple[list[Any], int]:
    """The JSON value of every non-blank line of ``block`` (whole lines, each ending in a
    newline) and the number of lines that are not JSON, exactly as ``json.loads`` per
    line reads them.

    With orjson each line is read by it, and a line it refuses goes to ``json.loads``:
    orjson accepts a subset of what the stdlib accepts (no ``NaN``/``Infinity``, no
    lone surrogates, no out-of-range floats, UTF-8 only) and reads it to the same
    values, except integers beyond 64 bits, so a block holding a long run of digits is
    read by the stdlib alone (tests/test_fast_read.py compares both with ``json.loads``).
    """
    fast = _fast_parser(len(block))
    if fast is not None and not _long_integer(block):
        return _parse_lines_orjson(block, fast.loads)
    return _parse_lines_stdlib(block)


def _parse_lines_orjson(block: bytes, loads: Callable[[bytes], Any]) -> tuple[list[Any], int]:
    values: list[Any] = []
    append, bad = values.append, 0
    for raw in block.split(b"\n"):
        try:
            append(loads(raw))
        except ValueError:  # orjson.JSONDecodeError; blank lines land here too
            bad += _parse_one(raw, values)
    return values, bad


def _parse_lines_stdlib(block: bytes) -> tuple[list[Any], int]:
    """The stdlib's reading: the block is decoded once and the decoder's scanner reads
    each line where it starts (~1.3x faster than ``json.loads`` per line). A line the
    scanner does not read to its end (leading spaces, bad JSON, two values) is given to
    ``json.loads`` as bytes, as before."""
    values: list[Any] = []
    bad = 0
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # not UTF-8 as a whole: every line on its own (json guesses encodings)
    if text is None:
        for raw in block.split(b"\n"):
            bad += _parse_one(raw, values)
        return values, bad
    scan, find, append = _SCAN, text.find, values.append
    pos, size = 0, len(text)
    while pos < size:
        stop = find("\n", pos)
        try:
            value, end = scan(text, pos)
        except (StopIteration, ValueError):
            end = -1
        if end == stop or (end > pos and not text[end:stop].strip(_JSON_SPACE)):
            append(value)
        else:
            bad += _parse_one(text[pos:stop].encode("utf-8"), values)
        pos = stop + 1
    return values, bad


def _parse_one(raw: bytes, values: list[Any]) -> int:
    """Parse one line onto ``values``; 1 when it is not JSON, 0 otherwise (blank too)."""
    if not raw.strip():
        return 0
    try:
        values.append(json.loads(raw))
    except ValueError:
        return 1
    return 0


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """Every readable event of a (finished or live) events file."""
    return EventTailer(path).read_final()


def iter_events(run_dir: str | os.PathLike[str]) -> Iterator[Event]:
    yield from read_events(Path(run_dir) / EVENTS_FILE)
