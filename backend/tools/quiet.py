"""Library progress bars and info logs off when nobody watches stderr.

``datasets`` ("Generating train split", "Running tokenizer on dataset"), ``transformers``
("Loading weights", "Writing model shards", tokenizer length warnings) and
``huggingface_hub`` draw progress bars and log on stderr. In a terminal a bar over a long
tokenisation or a large model's weights tells the user something is happening, so it stays.
Piped, in CI or captured by the dashboard, it is hundreds of ``\\r`` frames in front of the
one line that matters (``clmtune: error: …``), so the commands that load data or models call
:func:`quiet_libraries` first. Light at import: the libraries are imported inside the function.
"""

from __future__ import annotations

import os
import sys
from typing import IO

#: Values of ``CI`` that do not mean "running in CI".
_NOT_CI = ("", "0", "false", "no", "off")


def watched(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default stderr) is a terminal and ``CI`` is not set."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI", "").strip().lower() not in _NOT_CI:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


def quiet_libraries(*, datasets: bool = False, stream: IO[str] | None = None) -> bool:
    """Silence transformers / huggingface_hub (and ``datasets``: the commands that load data)
    progress bars and info/warning logs unless stderr is :func:`watched`. Returns whether
    it did. Errors still reach stderr: the CLI prints them itself."""
    if watched(stream):
        return False
    # Imported here: this module is imported by light command modules.
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    hub_utils.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if datasets:
        import datasets as ds

        ds.disable_progress_bars()
        ds.logging.set_verbosity_error()
    return True
