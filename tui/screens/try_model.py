"""Try screen: complete a prompt with a run's final model or checkpoints, side by side.

Opened with ``g`` from the runs list. Generation runs in the warm helper process
(``python -m clmtune.backend.tools.generate_server``, started when the screen opens): a
thread worker reads its JSON lines and posts them here, so the screen never waits on a
model; tokens are appended to their pane as they arrive. Pick one checkpoint (A) or two
(A and B) to see their completions side by side. Every generation lands in the run's
``samples.jsonl``; the history table below lists them (also those of earlier sessions,
the CLI and training). The helper ends when the screen closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Select, Static

from clmtune import themes
from clmtune.backend.tools.generate import GenSettings, with_seed
from clmtune.backend.tools.generate_io import ModelChoice, choices, read_samples
from clmtune.tui import fmt
from clmtune.tui.widgets.footer import AppFooter
from clmtune.tui.widgets.text_input import TextInput

SERVER = "clmtune.backend.tools.generate_server"
NONE = "-"
PANES = ("A", "B")


@dataclass
class HelperLine(Message):
    """One JSON line from the helper process (``type``: ready, token, done, error, …)."""

    data: dict[str, Any]


@dataclass
class ChoicesListed(Message):
    choices: list[ModelChoice]
    history: list[dict[str, Any]]


def _short(text: Any, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def blank_note(text: str, width: int = 60) -> str | None:
    """What to show for a completion with nothing visible in it (None when it has some):
    ``(only whitespace: '\\n      ')``, the repr so that each newline and space counts."""
    if text.strip():
        return None
    if not text:
        return "(empty: nothing generated)"
    return f"(only whitespace: {_short_repr(text, width - 19)})"


def _short_repr(text: str, width: int) -> str:
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 2] + "…" + shown[0]


def _cell(text: Any, width: int) -> Text:
    """A history cell as plain text (a str cell is read as markup: ``[/b]`` in a prompt or a
    completion would raise MarkupError), on one line; a dim note when it is blank."""
    note = blank_note(str(text or ""))
    return Text(_short(text, width)) if note is None else Text(note, style="dim")


class TryScreen(Screen):
    """Prompt, settings, one or two completions streamed side by side, and the history."""

    CSS_PATH = str(themes.TRY_CSS_FILE)  # loaded with the first Try screen
    # The settings fields fit their usual values with the cursor (0.95, 1024, 1234567) at 80
    # columns too: Input's own padding of 2 left 2 cells at width 8 ("0.9" showed as "9").
    HELP_TITLE = "Try the model"
    HELP = (
        "Type a prompt and press enter: the model of checkpoint A (and B, when one is picked) "
        "continues it, token by token. Temperature 0 is greedy; above 0 it samples, the same "
        "way again for the same seed (left empty, each generate draws one, the same for A "
        "and B, shown in their titles). The model stays loaded between prompts. Each "
        "completion is listed below and saved in the run's samples.jsonl (an exported or "
        "bare model folder is left as it is)."
    )
    HELP_KEYS = (("tab", "Move between the prompt, the settings and the checkpoints"),)

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back (the helper process ends)"),
        Binding("ctrl+g", "generate", "Generate", tooltip="Complete the prompt (or enter)"),
        Binding("ctrl+r", "reload", "Reload", tooltip="List the checkpoints and history again"),
        Binding("ctrl+o", "device", "CPU/auto",
                tooltip="Generate on the GPU when it has room (auto) or always on the CPU"),
    ]

    def __init__(self, run_dir: Path, *, checkpoint: str | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.want = checkpoint
        self.choices: list[ModelChoice] = []
        self.texts = {p: "" for p in PANES}
        self.busy: set[str] = set()
        self.notice = ""
        self.counter = 0
        self.ready = False
        self.device = "auto"
        self._proc: subprocess.Popen[str] | None = None
        self._backlog: list[str] = []
        self._lock = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Static(f"Try · {self.run_dir.name}", classes="title-bar", id="try-title",
                     markup=False)
        yield TextInput(placeholder="Prompt, then enter", id="try-prompt")
        with Horizontal(id="try-settings"):
            yield Label("tokens", classes="try-label")
            yield TextInput("32", id="try-tokens", type="integer", classes="try-value")
            yield Label("temp", classes="try-label")
            yield TextInput("0", id="try-temperature", type="number", classes="try-value")
            yield Label("seed", classes="try-label")
            yield TextInput("", id="try-seed", type="integer", classes="try-value")
            yield Select([], id="try-a", prompt="A", allow_blank=True, classes="try-pick")
            yield Select([], id="try-b", prompt="B: none", allow_blank=True, classes="try-pick")
        with Horizontal(id="try-panes"):
            for pane in PANES:
                with Vertical(classes="try-pane", id=f"try-pane-{pane}"):
                    yield Static(pane, classes="try-pane-title", id=f"try-title-{pane}",
                                 markup=False)
                    yield Static("", classes="try-text", id=f"try-text-{pane}", markup=False)
        yield Static("Starting the generation helper…", id="try-status", markup=False)
        yield DataTable(id="try-history", cursor_type="row", zebra_stripes=True)
        yield AppFooter()

    def on_mount(self) -> None:
        table = self.query_one("#try-history", DataTable)
        table.add_columns("When", "From", "Prompt", "Completion")
        self.query_one("#try-pane-B").display = False
        self.query_one("#try-prompt", Input).focus()
        self._list()
        self._helper()

    # ---- the run's folders and history --------------------------------------

    @work(thread=True, exclusive=True, group="try-list", exit_on_error=False)
    def _list(self) -> None:
        self.post_message(ChoicesListed(choices(self.run_dir), read_samples(self.run_dir)))

    @on(ChoicesListed)
    def _listed(self, message: ChoicesListed) -> None:
        message.stop()
        self.choices = message.choices
        options = [(c.label, c.label) for c in self.choices]
        pick_a, pick_b = self.query_one("#try-a", Select), self.query_one("#try-b", Select)
        previous = (pick_a.value, pick_b.value)
        pick_a.set_options(options)
        pick_b.set_options(options)
        labels = [c.label for c in self.choices]
        if previous[0] in labels:
            pick_a.value = previous[0]
        elif self.want in labels:
            pick_a.value = self.want
        elif labels:
            pick_a.value = labels[0]
        if previous[1] in labels:
            pick_b.value = previous[1]
        if not labels:
            self._status("Nothing to generate from yet: no final model, no complete checkpoint.")
        self._show_history(message.history)

    def _show_history(self, history: list[dict[str, Any]]) -> None:
        table = self.query_one("#try-history", DataTable)
        table.clear()
        for row in reversed(history[-200:]):
            table.add_row(_when(row.get("time")), str(row.get("checkpoint") or "?"),
                          _cell(row.get("prompt"), 24), _cell(row.get("completion"), 60))

    def action_reload(self) -> None:
        self._list()

    # ---- the helper process -------------------------------------------------

    @work(thread=True, exclusive=True, group="try-helper", exit_on_error=False)
    def _helper(self) -> None:
        """Start the helper, then post each line it writes until it ends."""
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, bufsize=1, encoding="utf-8",
            )  # fmt: skip
        except OSError as exc:
            self.post_message(HelperLine({"type": "error", "id": None,
                                          "message": f"could not start the helper: {exc}"}))
            return
        with self._lock:
            self._proc = proc
            backlog, self._backlog = self._backlog, []
        for line in backlog:
            self._write(line)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                self.post_message(HelperLine(data))
        self.post_message(HelperLine({"type": "exited", "code": proc.wait()}))

    def _write(self, line: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            self._status("The generation helper has ended; reopen this screen.")

    def _send(self, request: dict[str, Any]) -> None:
        line = json.dumps(request)
        with self._lock:
            if self._proc is None:
                self._backlog.append(line)
                return
        self._write(line)

    def on_unmount(self) -> None:
        self._stop_helper()

    def _stop_helper(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write('{"op": "quit"}\n')
                proc.stdin.close()
        except (OSError, ValueError):
            pass
        threading.Thread(target=_reap, args=(proc,), daemon=True).start()

    @on(HelperLine)
    def _helper_line(self, message: HelperLine) -> None:
        message.stop()
        data = message.data
        kind = data.get("type")
        pane = str(data.get("id") or "")[:1]
        if kind == "ready":
            self.ready = True
            gpu = data.get("gpu_free")
            where = (f"GPU: {gpu / (1 << 30):.1f} GiB free of {data['gpu_total'] / (1 << 30):.1f}"
                     if gpu is not None and data.get("gpu_total") else "CPU (no GPU)")
            if not self.busy:
                self._status(f"Ready · {where}")
        elif kind == "loading":
            self._status(f"Loading {data.get('checkpoint')} on {data.get('device')}…")
        elif kind == "loaded":
            self._status(f"Loaded {data.get('checkpoint')} in {data.get('seconds')} s")
        elif kind == "notice":
            self._status(str(data.get("message") or ""))
        elif kind == "token" and pane in self.texts:
            self.texts[pane] += str(data.get("text") or "")
            self._show(pane)
        elif kind == "done" and pane in self.texts:
            self.texts[pane] = str(data.get("completion") or "")
            self.busy.discard(pane)  # before _show: a blank completion is then said so
            settings = (data.get("record") or {}).get("settings") or {}
            seed = f" · seed {settings['seed']}" if settings.get("seed") is not None else ""
            self._show(pane, f"{data.get('tokens')} tokens · {data.get('seconds')} s{seed}")
            if not self.busy:
                self._status("Done")
                self._list()
        elif kind == "error":
            if pane in self.texts:
                self.busy.discard(pane)
            self._status(f"Error: {data.get('message')}")
        elif kind == "exited":
            self.busy.clear()
            self.ready = False
            if self.is_attached:
                self._status("The generation helper has ended; reopen this screen.")

    def _show(self, pane: str, tail: str = "") -> None:
        label = self._picked(pane) or pane
        self.query_one(f"#try-title-{pane}", Static).update(
            f"{pane}: {label}" + (f" · {tail}" if tail else ""))
        text = self.texts[pane]
        # A finished completion of only spaces and newlines would look like nothing at all.
        note = None if pane in self.busy else blank_note(text)
        self.query_one(f"#try-text-{pane}", Static).update(
            text if note is None else Content.styled(note, "dim"))

    def _status(self, text: str) -> None:
        self.notice = text
        self.query_one("#try-status", Static).update(text)

    # ---- generating ---------------------------------------------------------

    def _picked(self, pane: str) -> str | None:
        value = self.query_one(f"#try-{pane.lower()}", Select).value
        return value if isinstance(value, str) and value != NONE else None

    def _number(self, name: str, kind: type, default: Any) -> Any:
        text = self.query_one(f"#try-{name}", Input).value.strip()
        if not text:
            return default
        try:
            return kind(text)
        except ValueError:
            return default

    @on(Input.Submitted, "#try-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_generate()

    @on(Select.Changed, "#try-b")
    def _b_changed(self, event: Select.Changed) -> None:
        self.query_one("#try-pane-B").display = self._picked("B") is not None

    def action_generate(self) -> None:
        prompt = self.query_one("#try-prompt", Input).value
        if not prompt.strip():
            self.app.notify_once("Type a prompt first.", severity="warning")
            return
        if self.busy:
            self.app.notify_once("Still generating: wait for it to finish.", severity="warning")
            return
        picks = [(p, self._picked(p)) for p in PANES]
        picks = [(p, label) for p, label in picks if label]
        if not picks:
            self.app.notify_once("No checkpoint to generate from (pick one in A).",
                                 severity="warning")
            return
        self.counter += 1
        # Sampling without a seed: one seed drawn here for A and B alike, so the two
        # checkpoints are compared like for like (each record still names it).
        gen = with_seed(GenSettings(max(1, self._number("tokens", int, 32)),
                                    max(0.0, self._number("temperature", float, 0.0)),
                                    seed=self._number("seed", int, None)))
        settings = {"max_new_tokens": gen.max_new_tokens, "temperature": gen.temperature,
                    "seed": gen.seed}
        for pane, label in picks:
            self.texts[pane] = ""
            self.busy.add(pane)
            self._show(pane, "waiting…")
            self._send({"op": "generate", "id": f"{pane}{self.counter}", "run": str(self.run_dir),
                        "checkpoint": label, "prompt": prompt, "device": self.device,
                        **settings})
        seeded = f" (seed {gen.seed})" if gen.sampling else ""
        self._status(("Generating…" if self.ready else "Starting the generation helper…")
                     + seeded)

    def action_device(self) -> None:
        self.device = "cpu" if self.device == "auto" else "auto"
        self._status("Device: CPU" if self.device == "cpu"
                     else "Device: auto (the GPU when it has room, else the CPU)")

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Generate", "Complete the prompt (ctrl+g)", self.action_generate)


def _when(stamp: Any) -> str:
    return fmt.local_time(stamp, "%m-%d %H:%M")


def _reap(proc: subprocess.Popen[str]) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
