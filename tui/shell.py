"""What screens may ask of the app: the dashboard's interface, without the app module.

Screens type ``self.app`` as :class:`DashboardApp` and import this module, never
``tui.app``: the app imports the screens, so the other direction would be a circle.
``ClmtuneApp`` (tui/app.py) is the one implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.notifications import SeverityLevel


class DashboardApp(App):
    """The app shell as the screens see it (attributes set by ``ClmtuneApp.__init__``)."""

    runs_dir: Path
    clock: Callable[[], float]  # every displayed time derives from this or event times
    ascii: bool  # draw with ASCII only (tui.terminal)
    listed_running: set[Path]  # runs the listing believes are running
    live_status: dict[Path, str]  # what open live views know, overriding the listing

    def open_live(self, run_dir: Path) -> None:
        """Show the live view of ``run_dir``."""
        raise NotImplementedError

    def open_metrics(self, run_dir: Path) -> None:
        """Show the saved metrics of ``run_dir``."""
        raise NotImplementedError

    def resume_run(self, run_dir: Path, checkpoint: Path | None, *, status: str) -> None:
        """Confirm, then resume ``run_dir`` from ``checkpoint`` (None: the last one)."""
        raise NotImplementedError

    def notify_once(self, message: str, *, title: str = "",
                    severity: SeverityLevel = "information", timeout: float | None = None) -> None:
        """A toast, replacing an identical one still shown instead of stacking another."""
        raise NotImplementedError

    def report_failure(self, action: str, error: BaseException) -> None:
        """Tell the user why ``action`` failed (one line, from the error)."""
        raise NotImplementedError
