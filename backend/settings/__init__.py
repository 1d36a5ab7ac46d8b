"""Run settings: one typed schema, and everything derived from it.

Modules, by job (import the one you need; this package imports nothing itself so
the TUI pays only for what it uses):

- ``schema``: the typed sections (``ModelSettings``, ``DataSettings``,
  ``LaunchSettings``), ``FieldSpec``, the ``[training]`` schema introspected from the
  installed ``TrainingArguments``, the tool's defaults.
- ``schema_cache``: the schema as JSON and the cache file the TUI reads
  (``active_schema``, ``load_schema_for_ui``).
- ``run_config``: ``RunConfig`` (the keys a user set) and ``Settings``, the typed view
  code reads (``cfg.settings.training.learning_rate``); path resolution.
- ``validate`` (per-field errors, unknown keys with the closest name, cross-field and
  file checks), ``hardware`` (checks needing torch), ``problems`` (``FieldError``,
  ``ConfigError``).
- ``toml_io``: read / validate / save (tomlkit, comments kept, atomic, never tokens).
- ``training_args``: TrainingArguments kwargs, torchrun argv, the command line.
- ``reference``: the README tables; ``check``: ``clmtune check``.
- ``python -m clmtune.backend.settings --dump-schema | --reference | --write-readme F``.
"""
