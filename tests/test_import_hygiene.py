"""The seams: the TUI side never loads the training stack, the backend never loads Textual.

Each check runs in a fresh interpreter so nothing imported by other tests hides a leak.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.run_helpers import REPO, cli_env

HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate")
LIGHT = ("events", "rundir.listing", "rundir.summary", "rundir.state", "launch", "resume_plan",
         "settings.toml_io", "settings.validate", "settings.schema_cache", "errors",
         "tools.compare", "tools.generate_io")
LIGHT_BACKEND = tuple(f"clmtune.backend.{m}" for m in LIGHT)
EVERY_BACKEND = ("clmtune.backend",) + tuple(
    f"clmtune.backend.{m}"
    for m in (*LIGHT, "presets", "cli", "worker", "memory", "callback", "train", "data", "model",
              "metrics", "demo", "samples", "tools.generate", "tools.generate_server",
              "tools.inspect_eval")
)  # fmt: skip


def loaded_after(modules: tuple[str, ...], code: str = "") -> set[str]:
    """The set of top-level modules loaded after importing ``modules`` (and running code)."""
    script = "\n".join(
        ["import importlib, json, sys"]
        + [f"importlib.import_module({m!r})" for m in modules]
        + [code, "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"]
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=cli_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_light_backend_modules_do_not_load_the_training_stack():
    assert not loaded_after(LIGHT_BACKEND) & set(HEAVY)


def test_listing_and_stopping_runs_stays_light(tmp_path):
    # What the TUI calls at runtime, not only at import time.
    code = (
        "from pathlib import Path\n"
        "from clmtune.backend.rundir.listing import list_runs\n"
        "from clmtune.backend.rundir.summary import read_run\n"
        "from clmtune.backend.launch import request_stop\n"
        f"list_runs(Path({str(tmp_path)!r}))\n"
        f"request_stop(Path({str(tmp_path)!r}))\n"
    )
    assert not loaded_after(("clmtune.backend.rundir.listing",), code) & set(HEAVY)


def test_tui_app_does_not_load_the_training_stack():
    if importlib.util.find_spec("clmtune.tui.app") is None:
        pytest.skip("tui.app is not there yet")
    assert not loaded_after(("clmtune.tui.app",)) & set(HEAVY)


def test_backend_never_loads_textual():
    present = tuple(m for m in EVERY_BACKEND if importlib.util.find_spec(m) is not None)
    assert "textual" not in loaded_after(present)


def test_cli_import_loads_no_live_display():
    loaded = loaded_after(("clmtune.backend.cli",))
    assert "textual" not in loaded and not loaded & set(HEAVY)
