"""``[training] report_to``: each named integration needs its package installed.

Trainer imports an integration's package only when it builds its callbacks, after the model
and the data have loaded, and then fails with a traceback (``WandbCallback requires wandb``).
``check_report_to`` says so before anything loads. Pure Python: ``find_spec`` imports nothing,
so the TUI runs it as the user types.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from clmtune.backend.settings.validate_peft import installed

if TYPE_CHECKING:
    from clmtune.backend.settings.run_config import Settings

#: transformers' integration name -> (what must import: every tuple needs one of its modules;
#: the pip packages). The names are those of ``transformers.integrations.INTEGRATION_TO_CALLBACK``,
#: each checked the way transformers' own ``is_*_available`` checks it.
INTEGRATIONS: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]] = {
    "azure_ml": ((("azureml.core.run",),), ("azureml-core",)),
    "comet_ml": ((("comet_ml",),), ("comet-ml",)),
    "mlflow": ((("mlflow",),), ("mlflow",)),
    "neptune": ((("neptune",),), ("neptune",)),
    "tensorboard": ((("tensorboard", "tensorboardX"),), ("tensorboard",)),
    "trackio": ((("trackio",),), ("trackio",)),
    "wandb": ((("wandb",),), ("wandb",)),
    "codecarbon": ((("codecarbon",),), ("codecarbon",)),
    "clearml": ((("clearml",),), ("clearml",)),
    "dagshub": ((("dagshub",), ("mlflow",)), ("dagshub", "mlflow")),
    "flyte": ((("flytekit",), ("flytekitplugins.deck",)),
              ("flytekit", "flytekitplugins-deck-standard")),
    "dvclive": ((("dvclive",),), ("dvclive",)),
    "swanlab": ((("swanlab",),), ("swanlab",)),
    "kubeflow": ((), ()),  # no package: it reports to a server named by an environment variable
}

#: Values that name no integration: "all" is whatever is installed, so it never fails.
_SPECIAL = ("none", "all")


def _importable(module: str) -> bool:
    # find_spec of "a.b" imports "a": a missing or broken parent reads as "not installed".
    try:
        return installed(module)
    except Exception:  # noqa: BLE001 - whatever a broken parent package raises
        return False


def missing_packages(name: str) -> tuple[str, ...]:
    """The pip packages integration ``name`` needs when they are not importable here."""
    needs, packages = INTEGRATIONS[name]
    if all(any(_importable(m) for m in options) for options in needs):
        return ()
    return packages


def report_to_names(value: Any) -> list[str]:
    """The integration names of a ``report_to`` value (a string or a list of strings)."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    return [n.strip() for n in names if isinstance(n, str) and n.strip()]


def check_report_to(ctx: Any, settings: Settings) -> None:
    """An integration whose package is missing: a warning while editing (the file may be
    trained on another machine), an error for ``clmtune check`` and a launch. A name this
    list lacks is only a warning: a newer transformers may know it."""
    names = report_to_names(settings.training.report_to)
    several = len(names) > 1
    for name in names:
        if name in _SPECIAL:
            continue
        if name not in INTEGRATIONS:
            close = difflib.get_close_matches(name, [*INTEGRATIONS, *_SPECIAL], n=1)
            mean = f"did you mean '{close[0]}'? " if close else ""
            ctx.warn("training", "report_to",
                     f"'{name}' is not a known integration; {mean}use \"none\", "
                     f"\"all\" or one of: {', '.join(INTEGRATIONS)}")
            continue
        packages = missing_packages(name)
        if packages:
            what = (f"the {packages[0]} package" if len(packages) == 1
                    else f"the {' and '.join(packages)} packages")
            fix = f"remove '{name}' from report_to" if several else 'set report_to = "none"'
            ctx.soft("training", "report_to",
                     f"'{name}' needs {what} (pip install {' '.join(packages)}), or {fix}")
