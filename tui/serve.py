"""``clmtune-tui --serve``: the same dashboard in a browser, through ``textual-serve``.

Each browser tab gets its own ``python -m clmtune.tui.app RUNS_DIR`` process (textual-serve
starts it on connection), so the browser sees exactly what the terminal shows. Bound to
localhost unless ``--host`` says otherwise; reach it from another machine with SSH port
forwarding (``ssh -L 8000:localhost:8000 gpu-box``, the same port on both ends). Whoever
reaches the port controls training (start, stop, delete), hence the warning for any other
address. ``textual-serve`` is optional: ``pip install 'clmtune-tui[serve]'``.
"""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
INSTALL_HINT = "pip install 'clmtune-tui[serve]' (or: pip install textual-serve)"


def app_command(runs_dir: Path, config: Path | None = None) -> str:
    """The command textual-serve runs per browser session (this interpreter, absolute paths)."""
    argv = [sys.executable, "-m", "clmtune.tui.app", str(Path(runs_dir).absolute())]
    if config is not None:
        argv += ["--config", str(Path(config).absolute())]
    return shlex.join(argv)


def public_url(host: str, port: int) -> str:
    """The URL the page uses for its websocket: a wildcard address is no place to connect to."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


def serve(runs_dir: Path, config: Path | None, host: str, port: int) -> int:
    """Serve the dashboard until Ctrl+C; 2 (one line) when textual-serve is missing."""
    try:
        from textual_serve.server import Server
    except ImportError:
        print(f"clmtune-tui: --serve needs textual-serve: {INSTALL_HINT}", file=sys.stderr)
        return 2
    if not 0 < port < 65536:
        print(f"clmtune-tui: --port {port}: give a TCP port between 1 and 65535", file=sys.stderr)
        return 2
    if host not in LOCAL_HOSTS:
        print(
            f"clmtune-tui: warning: serving on {host}:{port}: anyone who can reach this port "
            "controls training (start, stop, delete runs); prefer the default 127.0.0.1 and "
            "ssh -L",
            file=sys.stderr,
        )
    url = public_url(host, port)
    server = Server(app_command(runs_dir, config), host=host, port=port, title="clmtune",
                    public_url=url)  # fmt: skip
    print(f"clmtune-tui: open {url} in a browser (Ctrl+C stops serving; runs keep training)",
          file=sys.stderr)  # fmt: skip
    server.serve()
    return 0
