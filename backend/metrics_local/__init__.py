"""Evaluation modules shipped with clmtune and loaded by file path (no hub access).

``evaluate.load("accuracy")`` downloads a script from the hub; these files are
loaded with ``evaluate.load(str(path))`` instead. See :mod:`backend.metrics`.
"""

from __future__ import annotations

from pathlib import Path

TOKEN_ACCURACY = Path(__file__).with_name("token_accuracy.py")
