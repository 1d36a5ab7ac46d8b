"""clmtune backend: the training side of clmtune-tui. Never imports textual."""

__version__ = "0.1.0"
