"""clmtune-tui: the Textual dashboard. Never imports torch, transformers, datasets or evaluate."""
