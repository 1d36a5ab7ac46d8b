"""Shared pytest fixtures: tiny offline model assets, a matching run config, and a spy on
the full reads of run folders.

Registered for every test module by ``pytest_plugins = ["tests.fixtures"]`` in
``tests/conftest.py``. The assets are built once per test session (a few
seconds) with :func:`backend.demo.build_demo_assets` at size ``"tiny"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clmtune.backend.demo import DemoAssets, build_demo_assets
from clmtune.backend.settings.run_config import RunConfig


def build_tiny_assets(dest: Path) -> DemoAssets:
    """Tokenizer + tiny GPT-2 + train/validation text in ``dest`` (reused when complete)."""
    return build_demo_assets(dest, size="tiny")


def make_tiny_config(assets: DemoAssets, **training: Any) -> RunConfig:
    """A run config that trains the tiny model for a handful of steps in seconds.

    Keyword arguments override ``[training]`` keys.
    """
    settings: dict[str, Any] = {
        "max_steps": 8,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "learning_rate": 1e-3,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 4,
        "save_strategy": "steps",
        "save_steps": 4,
        "seed": 42,
        "disable_tqdm": True,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,  # no accelerator on CI: avoid the warning
    }
    settings.update(training)
    return RunConfig(
        model={"model_name_or_path": str(assets.model_dir)},
        data={
            "train_file": str(assets.train_file),
            "validation_file": str(assets.validation_file),
            "block_size": 32,
            "max_eval_samples": 16,
        },
        training=settings,
    )


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory: pytest.TempPathFactory) -> DemoAssets:
    """Tiny offline model assets, built once per test session."""
    return build_tiny_assets(tmp_path_factory.mktemp("tiny-assets") / "assets")


@pytest.fixture
def tiny_config(tiny_assets: DemoAssets) -> RunConfig:
    """A fresh :class:`RunConfig` for the tiny assets (tests may edit it freely)."""
    return make_tiny_config(tiny_assets)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run folders read in full (``read_run``) from now on, by name, in order."""
    from clmtune.backend.rundir import summary as summary_mod

    calls: list[str] = []
    real = summary_mod.read_run

    def spy(path: Path, **kw: Any) -> Any:
        calls.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(summary_mod, "read_run", spy)
    return calls
