"""``python -m backend`` is ``clmtune``."""

from __future__ import annotations

import sys

from clmtune.backend.cli import main

if __name__ == "__main__":
    sys.exit(main())
