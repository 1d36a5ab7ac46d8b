"""`clmtune-tui --serve` (issue 15): answers HTTP on localhost with the page, and a browser
session (the websocket) really starts the dashboard; without textual-serve, one line + exit 2;
another address warns that whoever reaches the port controls training."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from clmtune.tui.serve import app_command, public_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, deadline: float) -> tuple[int, str]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - localhost
                return response.status, response.read().decode("utf-8", "replace")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def _session_output(port: int, seconds: float) -> int:
    import aiohttp

    got = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(
        f"http://127.0.0.1:{port}/ws?width=80&height=24"
    ) as ws:
        end = time.monotonic() + seconds
        while got < 2000 and time.monotonic() < end:
            try:
                message = await ws.receive(timeout=max(0.1, end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if message.type == aiohttp.WSMsgType.BINARY:
                got += len(message.data)
            elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
    return got


@pytest.mark.timeout(180)
def test_serve_answers_http_on_localhost_and_starts_the_app(tmp_path):
    pytest.importorskip("textual_serve")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clmtune.tui.app", str(tmp_path / "runs"), "--serve", "--port",
         str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        status, page = _get(f"http://127.0.0.1:{port}/", time.monotonic() + 90)
        assert status == 200 and "<html" in page.lower()
        assert f"127.0.0.1:{port}" in page  # the websocket goes where the page came from
        assert asyncio.run(_session_output(port, 90)) >= 2000  # the dashboard drew a screen
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
    assert "warning" not in err  # localhost: no warning


def test_serve_without_textual_serve_says_how_to_install(tmp_path):
    # A directory named textual_serve without __init__ would be a namespace package; a
    # sitecustomize that hides the module is the honest way to simulate "not installed".
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nclass _Hide:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'textual_serve':\n"
        "            raise ModuleNotFoundError(name)\n        return None\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), os.environ.get(
        "PYTHONPATH", "")])}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "clmtune.tui.app", "--serve"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "pip install" in done.stderr


def test_other_address_warns_and_url_is_reachable(tmp_path, monkeypatch, capsys):
    pytest.importorskip("textual_serve")
    from clmtune.tui import serve as serve_module

    served = []
    monkeypatch.setattr("textual_serve.server.Server.serve", lambda self: served.append(self))
    assert serve_module.serve(tmp_path, None, "0.0.0.0", 8123) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "controls training" in err
    assert served[0].host == "0.0.0.0" and served[0].port == 8123
    assert served[0].public_url == f"http://{socket.gethostname()}:8123"
    assert public_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert app_command(Path("runs")).endswith(f"-m clmtune.tui.app {Path('runs').absolute()}")
