"""The schema as JSON, and the cache file that lets the TUI skip importing transformers.

``active_schema()`` is what every reader calls: it returns the schema as cheaply as
the process allows (already loaded, the cache file, a subprocess from the TUI, or
``schema()`` in a process that imports transformers anyway).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from clmtune.backend.errors import SchemaUnavailable
from clmtune.backend.settings import schema as schema_module
from clmtune.backend.settings.atomic_write import atomic_write_text
from clmtune.backend.settings.schema import (
    SCHEMA_FORMAT,
    FieldSpec,
    Schema,
    loaded_schema,
    remember_schema,
    schema,
)


def schema_to_json(sch: Schema) -> str:
    """The schema as JSON text (what the cache file holds)."""
    return json.dumps({
        "format": SCHEMA_FORMAT,
        "transformers": _transformers_version(),
        "sections": {s: [spec.to_json() for spec in fields.values()] for s, fields in sch.items()},
    })


def schema_from_json(data: str | dict[str, Any]) -> Schema:
    """Inverse of ``schema_to_json`` (accepts the text or the parsed dict)."""
    if isinstance(data, str):
        data = json.loads(data)
    if data.get("format") != SCHEMA_FORMAT:
        raise ValueError(f"schema format {data.get('format')!r}, expected {SCHEMA_FORMAT}")
    return {s: {d["name"]: FieldSpec.from_json(d) for d in fields}
            for s, fields in data["sections"].items()}


def _transformers_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "missing"


def schema_cache_path() -> Path:
    """Where ``load_schema_for_ui`` keeps the schema of the installed transformers."""
    root = Path(os.environ.get("CLMTUNE_CACHE") or "~/.cache/clmtune").expanduser()
    # The schema module's hash is in the name so an upgraded clmtune never reads a stale one.
    fingerprint = hashlib.sha1(Path(schema_module.__file__).read_bytes()).hexdigest()[:10]
    return root / f"schema-transformers-{_transformers_version()}-{fingerprint}.json"


def load_schema_for_ui() -> Schema:
    """The schema without importing transformers in this process (what the TUI calls).

    Reads the JSON cache; when it is missing, runs ``python -m clmtune.backend.settings
    --dump-schema`` once (a few seconds: call it from a worker thread) and writes
    the cache atomically. Raises SchemaUnavailable when that fails.
    """
    known = loaded_schema()
    if known is not None:
        return known
    sch = _read_schema_cache()
    if sch is None:
        text = _dump_schema_in_subprocess()
        sch = schema_from_json(text)
        _write_schema_cache(text)
    return remember_schema(sch)


def _read_schema_cache() -> Schema | None:
    try:
        return schema_from_json(schema_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_schema_cache(text: str) -> None:
    path = schema_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError:
        pass  # the cache only saves time; the schema itself is fine


def _dump_schema_in_subprocess() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "clmtune.backend.settings", "--dump-schema"],
        capture_output=True, text=True, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SchemaUnavailable(f"could not read the TrainingArguments schema: {last}")
    return lines[-1]


def active_schema() -> Schema:
    """The schema, as cheaply as this process allows.

    Already loaded → that; transformers already imported → ``schema()``; a cache file
    → read it (milliseconds); inside the TUI (textual loaded) → ``load_schema_for_ui()``;
    otherwise (CLI, worker: they import transformers anyway) → ``schema()`` in-process,
    and the cache is written for next time.
    """
    known = loaded_schema()
    if known is not None:
        return known
    if "transformers" in sys.modules:
        return schema()
    cached = _read_schema_cache()
    if cached is not None:
        return remember_schema(cached)
    if "textual" in sys.modules:
        return load_schema_for_ui()
    try:
        sch = schema()
    except ImportError as exc:
        raise SchemaUnavailable(f"could not import transformers: {exc}") from None
    _write_schema_cache(schema_to_json(sch))
    return sch
