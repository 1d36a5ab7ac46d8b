"""Transitional re-export shim: the settings code moved to ``clmtune.backend.settings``.

Import from the modules there (``settings.schema``, ``settings.toml_io``, …). This file
only keeps branches written against the old module working until they are merged; it
will then be deleted.
"""

# ruff: noqa: F401, I001 - re-exports only, grouped to keep the shim short
from __future__ import annotations

from clmtune.backend.settings.atomic_write import atomic_write_text
from clmtune.backend.settings.check import check_file, summary_line
from clmtune.backend.settings.hardware import hardware_checks
from clmtune.backend.settings.problems import ConfigError, FieldError
from clmtune.backend.settings.reference import reference_markdown
from clmtune.backend.settings.run_config import RunConfig, Settings, looks_like_path
from clmtune.backend.settings.schema import SECTIONS, FieldSpec, hand_written_schema, schema
from clmtune.backend.settings.schema import DataSettings, LaunchSettings, ModelSettings
from clmtune.backend.settings.schema_cache import active_schema, load_schema_for_ui
from clmtune.backend.settings.schema_cache import schema_cache_path, schema_from_json
from clmtune.backend.settings.schema_cache import schema_to_json
from clmtune.backend.settings.toml_io import dumps_config, load_config, read_toml, save_config
from clmtune.backend.settings.training_args import command_line, torchrun_argv
from clmtune.backend.settings.training_args import training_arguments_kwargs
from clmtune.backend.settings.validate import validate_config, validate_document


def launch_settings(cfg: RunConfig) -> LaunchSettings:
    """Old spelling of ``cfg.settings.launch``."""
    return cfg.settings.launch
