"""Every test runs offline with a private Hugging Face home.

The environment is set when this file is imported, before any test module
imports transformers or datasets (they read HF_HOME at import time).
"""

from __future__ import annotations

import os
import shutil
import tempfile

pytest_plugins = ["tests.fixtures"]

_HF_HOME = tempfile.mkdtemp(prefix="clmtune-test-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_HOME, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Busy-waiting OpenMP threads slow training several-fold when another process shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["CLMTUNE_CACHE"] = os.path.join(_HF_HOME, "clmtune-cache")
os.environ.pop("HF_TOKEN", None)


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_HF_HOME, ignore_errors=True)
