"""Run directories: the files of a run and what they say.

- :mod:`.layout` — file names, ``run.json``, atomic writes, pid liveness
- :mod:`.checkpoints` — checkpoint health, listing, :func:`resolve_resume`
- :mod:`.state` — THE reducer: events → :class:`RunState` (every view renders it)
- :mod:`.listing` — :func:`read_run` / :func:`list_runs` and their caches
- :mod:`.cache` — the per-process caches keyed by file stat

Pure Python: the TUI imports it (no torch, transformers, datasets, evaluate, textual).
Import from the submodules; this package re-exports nothing so that importing one
part (e.g. the reducer) does not load the others.
"""
