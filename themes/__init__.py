"""Palettes of clmtune-tui and the remembered theme choice.

Layout lives in ``app.tcss`` and names colours only as ``$variables``; the values
come from the :class:`~textual.theme.Theme` objects below. Both palettes keep
clearly different hues for the status colours so they stay distinct when a
terminal without true colour maps them to its 256/16-colour palette.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

from textual.theme import Theme

CSS_FILE = Path(__file__).with_name("app.tcss")
LIVE_CSS_FILE = Path(__file__).with_name("live.tcss")  # LiveScreen.CSS_PATH
EDITOR_CSS_FILE = Path(__file__).with_name("editor.tcss")  # EditorScreen.CSS_PATH
TRY_CSS_FILE = Path(__file__).with_name("try.tcss")  # TryScreen.CSS_PATH
CONFIG_ENV = "CLMTUNE_CONFIG_DIR"
CONFIG_FILE = "tui.toml"

DARK = Theme(
    name="clmtune-dark",
    primary="#4f9cf0",
    secondary="#7fb8e8",
    accent="#e0a458",
    warning="#e8b339",
    error="#e5534b",
    success="#57ab5a",
    foreground="#d8dee9",
    background="#14171c",
    surface="#1c2027",
    panel="#262c35",
    dark=True,
    variables={
        "chart-train": "#4f9cf0",
        "chart-eval": "#e0a458",
        "status-stopped": "#b08ce8",
        "footer-key-foreground": "#e0a458",
    },
)

LIGHT = Theme(
    name="clmtune-light",
    primary="#1d5fb4",
    secondary="#3f7cc2",
    accent="#a3560b",
    warning="#9a6700",
    error="#c0262d",
    success="#1f7a32",
    foreground="#1f2328",
    background="#fbfbfc",
    surface="#f0f2f5",
    panel="#e2e6ec",
    dark=False,
    variables={
        "chart-train": "#1d5fb4",
        "chart-eval": "#a3560b",
        "status-stopped": "#6f42c1",
        "footer-key-foreground": "#a3560b",
    },
)

THEMES: list[Theme] = [DARK, LIGHT]
DEFAULT_THEME = DARK.name

# The variables app.tcss uses beyond Textual's own, and which of a theme's generated
# colours stands in for each when the theme (Textual's built-in ones, a user's) has none.
OWN_VARIABLES: dict[str, str] = {
    "chart-train": "primary",
    "chart-eval": "warning",
    "status-stopped": "secondary",
    "footer-key-foreground": "accent",
}


def variable_defaults(generated: dict[str, str]) -> dict[str, str]:
    """Values of :data:`OWN_VARIABLES` for a theme whose colour system is ``generated``.

    Without these, any theme but ours fails to parse app.tcss (undefined variable).
    """
    return {name: generated[source] for name, source in OWN_VARIABLES.items()
            if source in generated}


def _toml() -> ModuleType:
    """``tomllib`` (``tomli`` before Python 3.11), imported on first use."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def config_dir() -> Path:
    """``$CLMTUNE_CONFIG_DIR`` or ``~/.config/clmtune``."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else Path.home() / ".config" / "clmtune"


def load_theme_name() -> str:
    """The remembered theme, or the default when none is saved or the file is unreadable."""
    path = config_dir() / CONFIG_FILE
    if not path.is_file():
        return DEFAULT_THEME
    tomllib = _toml()  # only when there is a file: a few ms off every start without one
    try:
        with open(path, "rb") as fh:
            name = tomllib.load(fh).get("theme")
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_THEME
    return name if isinstance(name, str) and name else DEFAULT_THEME


def load_setting(key: str) -> object:
    """One value of tui.toml (None when unset or the file is unreadable)."""
    path = config_dir() / CONFIG_FILE
    if not path.is_file():
        return None
    tomllib = _toml()
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh).get(key)
    except (OSError, tomllib.TOMLDecodeError):
        return None


def save_theme_name(name: str) -> None:
    """Remember ``name`` in tui.toml (atomically; other keys in the file are kept)."""
    import tomli_w  # only needed on a toggle, keep startup lean

    tomllib = _toml()
    path = config_dir() / CONFIG_FILE
    data: dict[str, object] = {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        data = {}
    data["theme"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
