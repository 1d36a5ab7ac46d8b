"""Export a finished run (``clmtune export`` in a subprocess): a small modal with progress.

Asks for the output folder, whether to merge a LoRA adapter into the base weights and the
weights dtype, then runs ``python -m clmtune.backend.cli export`` (the dashboard never loads a
model itself) and shows its progress lines as they come. Escape closes it; an export in
progress is stopped first.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Log, Select, Static

from clmtune.tui.widgets.text_input import TextInput

DTYPE_CHOICES = (("dtype: as saved", ""), ("dtype: bfloat16", "bfloat16"),
                 ("dtype: float16", "float16"), ("dtype: float32", "float32"))


def is_lora_run(run_dir: Path) -> bool:
    """Whether a run trained a LoRA adapter (its folder or a checkpoint holds one)."""
    if (run_dir / "adapter_config.json").is_file():
        return True
    return any(p.is_file() for p in run_dir.glob("checkpoint-*/adapter_config.json"))


def export_command(run_dir: Path, out: str, *, merge: bool, dtype: str,
                   checkpoint: int | None = None) -> list[str]:
    """The ``clmtune export`` argument list the dialog runs."""
    argv = [sys.executable, "-m", "clmtune.backend.cli", "export", str(run_dir), out]
    if checkpoint is not None:
        argv += ["--checkpoint", str(checkpoint)]
    if merge:
        argv.append("--merge")
    if dtype:
        argv += ["--dtype", dtype]
    return argv


class ExportScreen(ModalScreen[Path | None]):
    """Export dialog; dismisses with the output folder once exported, else None."""

    DEFAULT_CSS = """
    ExportScreen {
        align: center middle;
        background: $background 60%;
    }
    ExportScreen > #export-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    ExportScreen #export-title {
        text-style: bold;
    }
    ExportScreen #export-options {
        height: auto;
    }
    ExportScreen Select {
        width: 24;
    }
    ExportScreen #export-log {
        height: 6;
        border: round $primary;
    }
    ExportScreen #export-status {
        width: 1fr;
    }
    ExportScreen #export-buttons {
        height: auto;
        align-horizontal: right;
    }
    ExportScreen Button {
        margin-left: 2;
        min-width: 10;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("ctrl+r", "export", "Export")]

    def __init__(self, run_dir: Path, checkpoint: int | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.lora = is_lora_run(self.run_dir)
        self.process: subprocess.Popen[str] | None = None
        self.done: Path | None = None

    def compose(self) -> ComposeResult:
        what = f"checkpoint-{self.checkpoint}" if self.checkpoint is not None else "final model"
        kind = "LoRA adapter" if self.lora else "fine-tuned model"
        with Vertical(id="export-dialog"):
            yield Static(f"Export {self.run_dir.name} ({kind}, {what})", id="export-title",
                         markup=False)
            yield Static("Output folder (new or empty):", markup=False)
            default = f"{self.run_dir}-{'merged' if self.lora else 'export'}"
            yield TextInput(value=default, id="export-out", placeholder="folder to write")
            with Horizontal(id="export-options"):
                yield Checkbox("Merge adapter into the base", value=self.lora,
                               id="export-merge", disabled=not self.lora)
                yield Select(DTYPE_CHOICES, value="", allow_blank=False, id="export-dtype")
            yield Log(id="export-log", auto_scroll=True)
            yield Static("", id="export-status", markup=False)
            with Horizontal(id="export-buttons"):
                yield Button("Export (ctrl+r)", variant="warning", id="export-yes")
                yield Button("Close (esc)", variant="primary", id="export-no")

    def on_mount(self) -> None:
        self.query_one("#export-out", Input).focus()

    def _status(self, text: str) -> None:
        self.query_one("#export-status", Static).update(text)

    def action_export(self) -> None:
        """Start ``clmtune export`` with the dialog's choices."""
        if self.process is not None:
            return
        out = self.query_one("#export-out", Input).value.strip()
        if not out:
            self._status("Output folder: give a folder name")
            return
        merge = self.lora and self.query_one("#export-merge", Checkbox).value
        dtype = str(self.query_one("#export-dtype", Select).value or "")
        argv = export_command(self.run_dir, out, merge=merge, dtype=dtype,
                              checkpoint=self.checkpoint)
        self.query_one("#export-yes", Button).disabled = True
        self._status("exporting…")
        self._run(argv, Path(out))

    @work(thread=True, group="export", exit_on_error=False)
    def _run(self, argv: list[str], out: Path) -> None:
        log = self.query_one("#export-log", Log)
        try:
            self.process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            self.app.call_from_thread(self._finished, 1, f"could not start: {exc}", out)
            return
        last = ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip()
            if not line or "it/s]" in line:  # progress bars of the libraries
                continue
            last = line
            self.app.call_from_thread(log.write_line, line)
        code = self.process.wait()
        self.app.call_from_thread(self._finished, code, last, out)

    def _finished(self, code: int, last: str, out: Path) -> None:
        self.process = None
        if code == 0:
            self.done = out
            self._status(f"done: {out}")
            self.notify(f"Exported {self.run_dir.name} to {out}.")
        else:
            self.query_one("#export-yes", Button).disabled = False
            self._status(f"failed: {last.removeprefix('clmtune: error: ')}")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_export()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export-yes":
            self.action_export()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        """Close (interrupting an export in progress; it removes its temporary folder)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # export cleans its temporary folder
        self.dismiss(self.done)
