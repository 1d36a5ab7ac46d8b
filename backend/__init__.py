"""clmtune backend: the training side of clmtune-tui. Never imports textual.

The dashboard (``clmtune.tui``) reaches the backend only through the modules in
:data:`TUI_SURFACE`: light modules that never import torch, transformers, datasets or
evaluate (tests/test_code_shape.py and the import-hygiene tests hold both rules).
Everything else here runs in the worker or the CLI.
"""

__version__ = "0.1.0"

#: The backend modules the TUI may import (relative to ``clmtune.backend``).
TUI_SURFACE = (
    "errors",  # ClmtuneError and its subclasses
    "events",  # the event schema and the tolerant reader
    "launch",  # start / stop / find a worker process
    "presets",  # templates for "new run"
    "resume_plan",  # the one rule for writing into a run folder
    "rundir.checkpoints",  # checkpoint health
    "rundir.layout",  # run.json, run-folder names
    "rundir.listing",  # left_summary: the summary a finished run left in its folder
    "rundir.state",  # THE reducer: events -> RunState
    "rundir.summary",  # read_run / RunSummary
    "settings.atomic_write",
    "settings.hardware",  # the editor's torch-free precision notes
    "settings.problems",  # FieldError / ConfigError
    "settings.run_config",  # RunConfig
    "settings.schema",  # sections
    "settings.schema_cache",  # the schema without importing transformers
    "settings.toml_io",  # read / save settings files
    "settings.training_args",  # the command line a run will use
    "settings.validate",  # per-field errors for the form
    "tools.compare",  # runs side by side (numpy, no torch)
    "estimate",  # memory / steps arithmetic of the Preview (pure Python)
    "tools.preview_text",  # the preview report as lines (pure Python)
    "cli_text",  # number / duration formats (rich only inside console())
    "tools.generate_io",  # which folder a generation loads; samples.jsonl (Try screen)
    "tools.generate",  # GenSettings / with_seed (torch only inside generate())
    "tools.preview",  # data_warnings: the CLI's preview warnings (torch only in the worker)
)
