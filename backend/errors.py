"""One error family for everything a user can get wrong.

Every problem the user can fix (a setting, a file, a run folder, a missing extra) is a
:class:`ClmtuneError`: a one-line ``message`` that names the field or file, an optional ``hint``
that says how to fix it, and the process ``exit_code`` the CLI returns. The CLI prints them in
one place (``clmtune.backend.cli.main``); the dashboard shows ``str(error)`` in a banner. Code
catches these, never a bare ``Exception``, except at a process boundary (the worker's top level,
a Textual worker thread), which logs the traceback to the run's log.

Shape copied from click's ``ClickException`` (message + exit code, printed once) and httpx's
hierarchy (one base, a few meaningful subclasses). Pure Python: the TUI imports it.
"""

from __future__ import annotations

#: The exit code for input the user can fix (argparse uses the same).
EXIT_BAD_INPUT = 2


class ClmtuneError(Exception):
    """A problem the user can fix; ``str()`` is one line: the message, then the hint."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


class UsageError(ClmtuneError):
    """A command line that cannot work (unknown run name, file that does not exist, …)."""


class SettingsError(ClmtuneError):
    """A settings file or value that is invalid; ``errors`` holds one entry per problem.

    ``errors`` items are ``clmtune.backend.settings.problems.FieldError`` (or anything whose
    ``str()`` is one line); ``str(exc)`` is one line per problem.
    """

    def __init__(self, errors: list) -> None:
        self.errors = list(errors)
        text = "\n".join(str(e) for e in self.errors) or "invalid settings"
        self.message, self.hint = text, ""
        Exception.__init__(self, text)


class SchemaUnavailable(ClmtuneError):
    """The ``TrainingArguments`` schema could not be produced (transformers missing or broken)."""

    exit_code = 1


class RunDirError(ClmtuneError):
    """A run folder or checkpoint that cannot be used as asked (refused resume, not a run, …)."""


class SetupError(ClmtuneError):
    """A run cannot start because of its settings, its data or the hardware."""


class MissingExtra(ClmtuneError):
    """A feature needs an optional extra that is not installed; the hint is the pip command."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(
            f"{feature} needs {package}, which is not installed",
            f"pip install 'clmtune-tui[{extra}]'",
        )
