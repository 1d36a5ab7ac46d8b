"""The settings editor's file side: read, render, rebase and save settings documents.

No widgets here: what a file holds, where relative paths point, which files the open
dialog offers, and the demo assets a preset needs. ``EditorScreen`` (editor.py) calls
these from its thread workers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from clmtune.backend.errors import UsageError
from clmtune.backend.settings.schema import SECTIONS
from clmtune.tui.widgets.config_form import Document

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# The schema does not change while the TUI runs: load it once per process.
_SCHEMA: Any = None


def load_schema() -> Any:
    """The backend's UI schema, cached for the process (call from a thread)."""
    global _SCHEMA
    if _SCHEMA is None:
        from clmtune.backend.settings.schema_cache import load_schema_for_ui

        _SCHEMA = load_schema_for_ui()
    return _SCHEMA


class FileProblem(UsageError):
    """A TOML file that cannot be opened; the message is one line for the user."""


def read_document(path: Path) -> Document:
    """Parse a TOML settings file into ``{section: {key: value}}`` (no validation)."""
    try:
        # A byte-order mark (Windows editors' "UTF-8 with BOM") is dropped, as `clmtune` does.
        data = tomllib.loads(Path(path).read_bytes().decode("utf-8").removeprefix("\ufeff"))
    except FileNotFoundError:
        raise FileProblem(
            f"{path}: no such file; check the path (ctrl+o opens another) or start from a "
            "preset (ctrl+n)"
        ) from None
    except IsADirectoryError:
        raise FileProblem(f"{path}: is a folder, not a TOML file") from None
    except OSError as exc:
        raise FileProblem(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileProblem(f"{path}: not valid TOML ({exc}); fix it in a text editor") from None
    except UnicodeDecodeError:
        raise FileProblem(f"{path}: not a text file") from None
    return data


def parse_preset(text: str, name: str) -> Document:
    """A preset's rendered TOML as a document."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a bug in the preset, but say so instead of crashing
        raise FileProblem(f"preset {name!r} rendered invalid TOML: {exc}") from None


def preset_names() -> list[tuple[str, str]]:
    """``(name, description)`` of every preset the backend offers."""
    from clmtune.backend.presets import PRESETS

    out: list[tuple[str, str]] = []
    items = PRESETS.items() if isinstance(PRESETS, dict) else ((p, "") for p in PRESETS)
    for name, info in items:
        if isinstance(info, str):
            desc = info
        else:
            desc = str(getattr(info, "summary", "") or getattr(info, "description", "") or "")
        out.append((str(name), desc.strip().splitlines()[0] if desc.strip() else ""))
    return out


def render_preset_document(name: str, dest: Path) -> Document:
    """Render a preset for a TOML at ``dest`` (relative paths are relative to it)."""
    from clmtune.backend.presets import render_preset

    known = [n for n, _ in preset_names()]
    if name not in known:
        raise FileProblem(f"unknown preset {name!r}; choose one of: {', '.join(known)}")
    return parse_preset(render_preset(name, dest), name)


def rebase_paths(doc: Document, old_source: Path, new_dir: Path) -> Document:
    """Rewrite relative local paths so they still point at the same files from ``new_dir``.

    Which settings hold local paths is the backend's call (``RunConfig.resolved``:
    path fields, and model/tokenizer/dataset references that look like paths).
    """
    resolved = build_config(doc, old_source).resolved()
    out = {s: dict(v) if isinstance(v, dict) else v for s, v in doc.items()}
    for section, values in out.items():
        if not isinstance(values, dict):
            continue
        absolute = getattr(resolved, section, {}) if section in SECTIONS else {}
        for key, value in values.items():
            new = absolute.get(key)
            if isinstance(value, str) and isinstance(new, str) and new != value:
                try:
                    values[key] = os.path.relpath(new, new_dir.absolute())
                except ValueError:  # another drive on Windows
                    values[key] = new
    return out


def build_config(doc: Document, path: Path | None) -> Any:
    """A backend ``RunConfig`` holding the document's set values."""
    from clmtune.backend.settings.run_config import RunConfig

    return RunConfig(  # absolute source: base_dir() must not depend on the cwd later
        model=dict(doc.get("model", {})),
        data=dict(doc.get("data", {})),
        training=dict(doc.get("training", {})),
        launch=dict(doc.get("launch", {})),
        samples=dict(doc.get("samples", {})),
        notify=dict(doc.get("notify", {})),
        peft=dict(doc.get("peft", {})),
        source=Path(path).absolute() if path is not None else None,
    )


def unique_path(path: Path) -> Path:
    """``path`` or ``stem-2.toml``, ``stem-3.toml``… whichever does not exist yet."""
    if not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def binding_commands(screen: Screen[Any], prefix: str) -> Iterable[SystemCommand]:
    """Command-palette entries for a screen's described bindings (the app's
    ``get_system_commands`` asks the active screen for ``palette_commands()``)."""
    for binding in screen.BINDINGS:
        if not isinstance(binding, Binding) or not binding.description or not binding.show:
            continue
        keys = binding.key.replace(",", " / ")
        action = getattr(screen, f"action_{binding.action.split('(')[0]}", None)
        doc = (action.__doc__ or "").strip().splitlines()[0] if action is not None else ""
        yield SystemCommand(
            f"{prefix}{binding.description}",
            f"{doc} ({keys})" if doc else f"key: {keys}",
            partial(screen.run_action, binding.action),
        )


def _sections_only(doc: Document) -> Document:
    return {s: dict(v) for s, v in doc.items() if isinstance(v, dict) and v} | {
        s: v for s, v in doc.items() if not isinstance(v, dict)
    }


def _toml_suggestions(runs_dir: Path) -> list[str]:
    """Settings files here (``*.toml``), as typed: relative first, then absolute.

    Only settings files: a run folder's frozen config.toml and other internals are not
    offered (a run's settings open read-only when their path is typed).
    """
    paths = sorted(p for p in Path.cwd().glob("*.toml") if not p.name.startswith("."))
    shown = [display_path(p) for p in paths]
    return list(dict.fromkeys(shown + [str(p.absolute()) for p in paths]))


def _toml_hint(suggestions: list[str]) -> str:
    """The prompt's hint: what is there to open, and the keys."""
    here = [s for s in suggestions if not os.path.isabs(s)]
    found = ", ".join(here[:3]) + (" …" if len(here) > 3 else "")
    keys = "→ completes · enter opens · escape cancels"
    return f"Found: {found}\n{keys}" if found else keys


@dataclass(frozen=True)
class FileStamp:
    """What a settings file held when it was read or written (to see outside changes)."""

    mtime_ns: int
    digest: str


def file_stamp(path: Path) -> FileStamp | None:
    """The file's modification time and content hash; None when it does not exist."""
    try:
        data = Path(path).read_bytes()
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        return None
    return FileStamp(mtime, hashlib.sha256(data).hexdigest())


def changed_on_disk(path: Path, stamp: FileStamp | None) -> bool:
    """Whether ``path`` differs from what ``stamp`` recorded (content, not only mtime)."""
    now = file_stamp(path)
    if stamp is None:
        return now is not None  # created by someone else since
    if now is None:
        return False  # deleted since: saving recreates it, nothing to lose
    return now.digest != stamp.digest


def frozen_run_dir(path: Path | None) -> Path | None:
    """The run folder when ``path`` is a run's frozen config.toml (read-only), else None."""
    if path is None or Path(path).name != "config.toml":
        return None
    from clmtune.backend.rundir.layout import is_run_dir

    folder = Path(path).absolute().parent
    return folder if is_run_dir(folder) else None


def copy_of_frozen(doc: Document, run_dir: Path) -> Document:
    """A run's frozen settings as a new file's: without the run folder as output_dir.

    The frozen copy names the run's own folder; a new run started from the copy
    would be refused there (it holds a run), so the copy lets the launcher choose.
    """
    out = {s: dict(v) if isinstance(v, dict) else v for s, v in doc.items()}
    training = out.get("training")
    if isinstance(training, dict):
        value = training.get("output_dir")
        if isinstance(value, str) and Path(value).expanduser().absolute() == run_dir.absolute():
            training.pop("output_dir")
    return out


def run_destination(doc: Document, path: Path, runs_dir: Path) -> tuple[Path, bool]:
    """Where starting these settings writes the run, by the launcher's own rule.

    ``(folder, named_by_output_dir)``: ``output_dir`` when set (relative to the file),
    else a new ``runs/<name>-<date>`` folder, exactly as ``clmtune train`` decides.
    """
    from clmtune.backend.launch import _choose_run_dir  # the one rule for CLI and dashboard

    cfg = build_config(doc, path)
    folder = _choose_run_dir(cfg, path, None, runs_dir)
    return Path(folder), bool(cfg.training.get("output_dir"))


def preset_builds_assets(name: str) -> bool:
    """Whether a preset needs files built by the backend (the offline demo)."""
    from clmtune.backend.presets import PRESETS

    return bool(getattr(PRESETS.get(name), "builds_demo_assets", False))


def demo_assets_present(target: Path) -> bool:
    """Whether the demo's model and texts exist beside ``target``."""
    from clmtune.backend.presets import demo_dir

    folder = demo_dir(target)
    return all(
        (folder / name).exists() for name in ("model/config.json", "train.txt", "validation.txt")
    )


def _is_demo_path(doc: Document, error: Any) -> bool:
    from clmtune.backend.presets import DEMO_DIR_NAME

    value = doc.get(getattr(error, "section", ""), {}).get(getattr(error, "key", ""))
    return isinstance(value, str) and DEMO_DIR_NAME in Path(value).parts


def _preset_text_if_unchanged(name: str, doc: Document, target: Path) -> str | None:
    """The preset's commented TOML for ``target`` when ``doc`` holds exactly its settings."""
    from clmtune.backend.presets import render_preset

    text = render_preset(name, target)
    return text if tomllib.loads(text) == doc else None


def _save_text(doc: Document, schema: Any, text: str, target: Path) -> None:
    """Validate ``doc`` like save_config does, then write ``text`` atomically."""
    from clmtune.backend.settings.atomic_write import atomic_write_text
    from clmtune.backend.settings.problems import ConfigError
    from clmtune.backend.settings.validate import validate_document

    errors, _ = validate_document(doc, schema, base_dir=target.absolute().parent, source=target)
    if errors:
        raise ConfigError(errors)
    atomic_write_text(target, text)


def display_path(path: Path) -> str:
    """A path relative to the working folder when inside it (shorter, and stable in tests)."""
    try:
        rel = os.path.relpath(Path(path).absolute(), Path.cwd().absolute())
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _run_demo_init(target: Path) -> tuple[int, str]:
    """Build the demo's assets next to ``target`` with the CLI (a separate process)."""
    # init writes a TOML too: give it a scratch name in the same folder (the assets go
    # beside it) and keep the user's own file out of its way.
    scratch = target.with_name(f".{target.stem}.init.toml")
    cmd = [sys.executable, "-m", "clmtune.backend.cli", "init", "--preset", "demo", "--force",
           str(scratch)]
    env = dict(os.environ)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    finally:
        scratch.unlink(missing_ok=True)
    return proc.returncode, proc.stdout + proc.stderr
