"""Cheap text updates for the one-line labels the live view refreshes every second."""

from __future__ import annotations

from rich.cells import cell_len
from textual.content import Content
from textual.widgets import Label


def set_label(label: Label, text: str, *, fixed: bool = False) -> None:
    """Show ``text`` in a one-line label, skipping the work a plain ``update`` does.

    Unchanged text costs nothing. Otherwise the label reflows only when its size may
    change: never with a ``fixed`` width (set in CSS), and with an auto width only when
    the text's width on screen changes (a full reflow per data batch is what made the
    dashboard slow down the training next to it). ``text`` is plain text, never markup.
    """
    old = str(label.content)
    if text == old:
        return
    # Content, not a str: device names and values are never read as Rich markup.
    label.update(Content(text), layout=not fixed and cell_len(text) != cell_len(old))
