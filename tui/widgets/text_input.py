"""The one text field of the dashboard: Textual's Input with its editing keys in order."""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class TextInput(Input):
    """An Input whose editing keys (backspace, ctrl+u, arrows, enter…) act in order with
    the characters typed around them.

    Textual runs a focused widget's bindings once the key has bubbled up to the app, a
    hop per container, while typed characters are inserted at once. Keys that arrive in
    one burst (a paste, a laggy SSH link, a script) then came out of order: ctrl+u then
    a path then enter saved a file named after the path's last three letters, and
    "abc", two backspaces, "xyz" gave "abcxyz" less two later characters.
    """

    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return
        await super()._on_key(event)
