"""The footer of every screen: compact, and narrow-terminal aware.

At 80 columns Textual's footer cuts off whatever comes last, which is the app's
``? Help`` and ``q Quit``. Each screen names the actions its footer may leave out
when the terminal is narrow (``FOOTER_OPTIONAL``) and, through ``footer_hidden()``,
those that cannot be done right now; their keys keep working, and ``?`` lists them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

WIDE = 100
DEFAULT_OPTIONAL = frozenset({"toggle_theme"})


class AppFooter(Footer):
    """A compact :class:`Footer` that drops the screen's optional keys below ``WIDE`` columns."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("compact", True)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def hidden_actions(self) -> frozenset[str]:
        """Actions left out now: the screen's optional ones when narrow, plus whatever
        its ``footer_hidden()`` says cannot be done at the moment (the keys still work
        and explain themselves)."""
        hidden = set(getattr(self.screen, "footer_hidden", lambda: ())())
        if self.app.size.width < WIDE:
            hidden |= set(getattr(self.screen, "FOOTER_OPTIONAL", DEFAULT_OPTIONAL))
        return frozenset(hidden)

    def compose(self) -> ComposeResult:
        hidden = self.hidden_actions()
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.action in hidden:
                continue
            yield widget
