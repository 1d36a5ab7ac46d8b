"""Reading and writing settings files.

Reading parses with ``tomllib`` and validates (``load_config``). Writing goes through
``tomlkit`` starting from the file the settings came from, so the user's comments, key
order and formatting survive a save from the editor: keys whose value did not change
are left exactly as written, changed ones are replaced in place, removed ones are
deleted, new ones are appended to their section. Only set keys are written, never a
token, and always atomically.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

from clmtune.backend.settings.atomic_write import atomic_write_text
from clmtune.backend.settings.hardware import hardware_problems
from clmtune.backend.settings.problems import ConfigError, FieldError
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.schema import SECTIONS
from clmtune.backend.settings.schema_cache import active_schema
from clmtune.backend.settings.validate import validate_document


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def _without_bom(text: str) -> str:
    # Windows editors save "UTF-8 with BOM"; TOML has no BOM, but accepting it costs nothing.
    # A save writes the file back without it.
    return text.removeprefix("\ufeff")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; every failure is a ConfigError with one line naming the file."""
    path = Path(path)
    file = str(path)

    def fail(message: str, line: int | None = None) -> ConfigError:
        return ConfigError([FieldError("", "", message, file, line)])

    if path.is_dir():
        raise fail("is a folder, not a TOML file; give the path of a .toml file")
    if path.exists() and not path.is_file():
        raise fail("is not a regular file (a device, pipe or socket); give the path of a "
                   ".toml file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file; create one with `clmtune init FILE`") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    try:
        text = _without_bom(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
    tomllib = _toml_module()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            message = message[: match.start()].strip() + f" (column {match.group(2)})"
            raise fail(f"invalid TOML: {message}", int(match.group(1))) from None
        raise fail(f"invalid TOML: {message}") from None


def load_config(path: str | Path, *, for_launch: bool = False,
                resolve_paths: bool = True, hardware: bool | None = None) -> RunConfig:
    """Read and validate a TOML file; raises ConfigError with every problem found.

    Relative paths are taken from the TOML's folder; with ``resolve_paths`` (the default)
    the returned config holds them absolute, ready for training. An editor that saves
    the file back passes ``resolve_paths=False`` to keep the user's relative paths.
    ``for_launch`` makes hardware problems errors. Warnings land in ``cfg.warnings``.
    ``hardware`` (default: ``for_launch``) runs those checks, which import torch: the
    TUI passes False and lets the worker report them.
    """
    path = Path(path)
    doc = read_toml(path)
    source = path.absolute()
    errors, warnings = validate_document(doc, active_schema(), base_dir=source.parent,
                                         for_launch=for_launch, source=path)
    cfg = RunConfig(
        **{s: dict(doc.get(s) or {}) if isinstance(doc.get(s), dict) else {} for s in SECTIONS},
        source=source,
    )
    if not errors and for_launch and (hardware if hardware is not None else True):
        errors = [dataclasses.replace(p, file=str(path)) for p in hardware_problems(cfg)]
    if errors:
        raise ConfigError(errors)
    cfg.warnings = warnings
    return cfg.resolved() if resolve_paths else cfg


HEADER = ("# clmtune run settings. Keys are Hugging Face argument names; only set keys are "
          "written.\n# Validate with `clmtune check FILE`; train with `clmtune train FILE`.\n")


def _same(item: Any, value: Any) -> bool:
    """Whether a tomlkit item already holds ``value`` (1 and 1.0, true and 1 differ)."""
    unwrap = getattr(item, "unwrap", None)
    current = unwrap() if unwrap is not None else item
    try:
        return json.dumps(current, sort_keys=True) == json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return False


def _template(text: str | None) -> Any:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    if text is not None:
        try:
            return tomlkit.parse(text)
        except TOMLKitError:
            pass  # not TOML (a draft being repaired): start from a clean file
    doc = tomlkit.parse(HEADER)
    doc.add(tomlkit.nl())
    return doc


def dumps_config(cfg: RunConfig, template: str | None = None) -> str:
    """The TOML text for a config: set keys only, sections in order, never tokens.

    With ``template`` (the text of the file being saved over), its comments, key order
    and the formatting of unchanged values are kept; everything else in it that the
    config does not hold (removed keys, unknown sections, tokens) is dropped.
    """
    import tomlkit

    doc = _template(template)
    wanted = cfg.document(strip_secrets=True)
    for top in list(doc.keys()):
        if top not in wanted or not isinstance(doc[top], dict):
            del doc[top]
    for section, values in wanted.items():
        if section not in doc:
            doc.add(section, tomlkit.table())
        table = doc[section]
        for key in list(table.keys()):
            if key not in values:
                del table[key]
        for key, value in values.items():
            if key in table and _same(table[key], value):
                continue  # untouched: keep the user's spelling and trailing comment
            table[key] = value
    return tomlkit.dumps(doc)


def _read_text(path: str | Path | None) -> str | None:
    if path is None:
        return None
    try:
        return _without_bom(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def save_config(cfg: RunConfig, path: str | Path, *, force: bool = False,
                layout_from: str | Path | None = None) -> None:
    """Write ``cfg`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    Refuses (ConfigError) to write a config that does not validate, so a good file is
    never replaced by a broken one. ``force=True`` is for the TUI's draft files only:
    it skips validation (tokens are still never written). Relative paths stay relative
    to the file's folder; when saving to another folder they are made absolute. The
    comments and layout of ``layout_from`` (an editor's "save as" passes the file it
    opened), else of the file the settings came from, else of ``path`` are kept.
    """
    path = Path(path)
    target_dir = path.absolute().parent
    candidates = (layout_from, cfg.source, path)
    template = next((text for text in map(_read_text, candidates) if text is not None), None)
    if cfg.source is not None and cfg.base_dir() != target_dir:
        cfg = cfg.resolved()
    if not force:
        errors, _ = validate_document(cfg.document(), active_schema(), base_dir=target_dir,
                                      source=path)
        if errors:
            raise ConfigError(errors)
    try:
        atomic_write_text(path, dumps_config(cfg, template))
    except OSError as exc:
        raise ConfigError([FieldError("", "", f"cannot write: {exc.strerror or exc}",
                                      str(path))]) from None
