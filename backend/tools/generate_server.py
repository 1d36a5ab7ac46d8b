"""The dashboard's warm generation helper: ``python -m clmtune.backend.tools.generate_server``.

Reads one JSON request per line on stdin, writes one JSON object per line on stdout (flushed
per line; anything else a library prints goes to stderr). Models stay loaded between prompts
(the two most recently used folders, so two checkpoints side by side never reload).

Requests::

    {"op": "generate", "id": ID, "run": RUN_DIR, "checkpoint": "final" | "checkpoint-N",
     "prompt": TEXT, "max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "seed": null,
     "device": "auto" | "cpu" | "cuda"}
    {"op": "quit"}

Replies: ``ready`` (first line: ``cuda``, ``gpu_free``, ``gpu_total`` bytes or None),
``loading`` / ``loaded`` (id, checkpoint, device, seconds), ``notice`` (message: e.g. the GPU
is busy with a training run, how much memory is free, and that CPU is used instead),
``token`` (id, text: the completion as it is made), ``done`` (id, checkpoint, completion,
tokens, seconds, record: the ``samples.jsonl`` line, source ``try``, written in a clmtune
run folder only) and ``error``
(id, message: one line). A completion equals ``clmtune generate`` with the same settings.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from clmtune.backend.errors import ClmtuneError

#: Models kept loaded (two checkpoints side by side).
KEEP_MODELS = 2
#: Free GPU memory wanted beyond the weights before "auto" picks the GPU.
GPU_HEADROOM = 1 << 30


class Replies:
    """JSON lines to the real stdout, one writer at a time."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"type": kind, **fields}, ensure_ascii=False)
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()


def gpu_memory() -> tuple[int | None, int | None]:
    """(free, total) bytes of the current CUDA device, (None, None) without one."""
    import torch

    if not torch.cuda.is_available():
        return None, None
    try:
        free, total = torch.cuda.mem_get_info()
    except RuntimeError:
        return None, None
    return int(free), int(total)


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) or sum(
        p.stat().st_size for p in folder.glob("*.bin"))


class Server:
    """Loads each folder once and generates for the requests, in order."""

    def __init__(self, replies: Replies) -> None:
        self.replies = replies
        self.models: OrderedDict[tuple[str, str], tuple[Any, Any, Any]] = OrderedDict()

    def device_for(self, want: str, folder: Path, rid: Any) -> str:
        from clmtune.backend.tools.generate import pick_device

        if want not in ("", "auto"):
            return pick_device(want)
        free, total = gpu_memory()
        if free is None:
            return "cpu"
        need = _weights_bytes(folder) * 2 + GPU_HEADROOM
        gib = 1 << 30
        shown = f"{free / gib:.1f} GiB free of {total / gib:.1f} GiB"
        if free < need:
            self.replies.send(
                "notice", id=rid, gpu_free=free, gpu_total=total,
                message=f"GPU busy: {shown} (a training run may be using it); "
                        "generating on CPU")  # fmt: skip
            return "cpu"
        if free < total * 0.9 and not self.models:
            self.replies.send(
                "notice", id=rid, gpu_free=free, gpu_total=total,
                message=f"GPU shared: {shown} (another process, maybe a training run, uses "
                        "it); generating on the GPU - switch to CPU to leave it alone")  # fmt: skip
        return "cuda"

    def model(self, run_dir: Path, folder: Path, label: str, device: str, rid: Any):
        from clmtune.backend.tools.generate import load_for_generation, pick_dtype

        key = (str(folder.resolve()), device)
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        self.replies.send("loading", id=rid, checkpoint=label, device=device)
        start = time.perf_counter()
        dtype = pick_dtype(run_dir, device)
        model, tokenizer = load_for_generation(folder, device, dtype)
        self.models[key] = (model, tokenizer, dtype)
        while len(self.models) > KEEP_MODELS:
            self.models.popitem(last=False)
        self.replies.send("loaded", id=rid, checkpoint=label, device=device,
                          seconds=round(time.perf_counter() - start, 3))
        return self.models[key]

    def generate(self, req: dict[str, Any]) -> None:
        from transformers import TextStreamer

        from clmtune.backend.tools import generate as g
        from clmtune.backend.tools.generate_io import append_sample, choice_for, keeps_samples

        rid = req.get("id")
        run_dir = Path(str(req.get("run") or ""))
        if not req.get("run") or not run_dir.is_dir():
            raise ClmtuneError(f"run {req.get('run')!r}: no such folder")
        choice = choice_for(run_dir, str(req.get("checkpoint") or "final"))
        settings = g.GenSettings(
            int(req.get("max_new_tokens") or 32), float(req.get("temperature") or 0.0),
            float(req.get("top_p") or 1.0),
            int(req["seed"]) if req.get("seed") is not None else None).check()  # fmt: skip
        settings = g.with_seed(settings)
        device = self.device_for(str(req.get("device") or "auto"), choice.path, rid)
        model, tokenizer, dtype = self.model(run_dir, choice.path, choice.label, device, rid)
        replies = self.replies

        class Stream(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    replies.send("token", id=rid, checkpoint=choice.label, text=text)

        streamer = Stream(tokenizer, skip_prompt=True, skip_special_tokens=True)
        gen = g.generate(model, tokenizer, str(req.get("prompt") or ""), settings, streamer)
        record = g.record(
            choice=choice, prompt=str(req.get("prompt")), gen=gen, settings=settings,
            device=device, dtype=dtype, source="try")  # fmt: skip
        if keeps_samples(run_dir):  # a run folder; an export or plain model folder stays as is
            record = append_sample(run_dir, record)
        self.replies.send("done", id=rid, checkpoint=choice.label, completion=gen.completion,
                          tokens=gen.tokens, seconds=round(gen.seconds, 4), record=record)

    def handle(self, line: str) -> bool:
        """One request; False on ``quit``."""
        try:
            req = json.loads(line)
        except ValueError:
            self.replies.send("error", id=None, message="request: not JSON")
            return True
        if not isinstance(req, dict):
            self.replies.send("error", id=None, message="request: not a JSON object")
            return True
        op = req.get("op")
        if op == "quit":
            return False
        if op != "generate":
            self.replies.send("error", id=req.get("id"), message=f"op {op!r}: unknown")
            return True
        try:
            self.generate(req)
        except ClmtuneError as exc:
            self.replies.send("error", id=req.get("id"), message=str(exc).splitlines()[0])
        except Exception as exc:  # noqa: BLE001 - a process boundary: report, keep serving
            import traceback

            traceback.print_exc(file=sys.stderr)
            first = (str(exc).splitlines() or [""])[0]
            self.replies.send("error", id=req.get("id"), message=f"{type(exc).__name__}: {first}")
        return True


def main() -> int:
    # The protocol owns the real stdout; a library's print goes to stderr instead.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    replies = Replies(out)
    free, total = gpu_memory()
    replies.send("ready", pid=os.getpid(), cuda=free is not None, gpu_free=free, gpu_total=total)
    server = Server(replies)
    for line in sys.stdin:
        if line.strip() and not server.handle(line):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
