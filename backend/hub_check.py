"""Fail in seconds, with the fix, when a hub model is needed and the hub cannot be reached.

Without network, ``from_pretrained("org/model")`` spends about half a minute in
``huggingface_hub``'s retries before it says it could not connect. Before loading, the worker
asks :func:`check_hub_models`: for every ``[model]`` name that is a hub id (not a local folder)
and not in the cache, one TCP connect to the hub endpoint (a few seconds at most) tells whether
loading can work at all. Skipped when the hub is switched off (``HF_HUB_OFFLINE=1``: loading then
uses the cache and fails at once by itself) and behind a proxy (only the HTTP client knows how to
reach the hub then).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clmtune.backend.errors import SetupError

#: Seconds the connect may take before the hub counts as unreachable.
CONNECT_TIMEOUT_S = 5.0
_MODEL_KEYS = ("model_name_or_path", "config_name", "tokenizer_name")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))  # fmt: skip


def _endpoint() -> tuple[str, int]:
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """One TCP connect to the hub endpoint (``HF_ENDPOINT`` or huggingface.co)."""
    try:
        with socket.create_connection(_endpoint(), timeout=timeout):
            return True
    except OSError:
        return False


def _cached(repo: str, cache_dir: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for name in ("config.json", "tokenizer_config.json"):
        try:
            if isinstance(try_to_load_from_cache(repo, name, cache_dir=cache_dir), str):
                return True
        except Exception:  # noqa: BLE001 - an id the cache cannot hold is simply not cached
            return False
    return False


def _use_cache_only() -> None:
    """Switch this process's hub client to its cache (no connection attempts, no retries)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"  # for anything that reads the variable later
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub.is_offline_mode()


def check_hub_models(model_settings: dict[str, Any]) -> str | None:
    """Raise :class:`SetupError` when a hub model that is not cached cannot be downloaded.

    When every hub model is cached but the hub cannot be reached, loading would still spend
    half a minute retrying before it falls back to the cache: switch to the cache at once
    and return a note saying so (None otherwise).
    """
    if _offline() or any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    cache_dir = model_settings.get("cache_dir")
    hub_ids = [
        (key, str(value)) for key in _MODEL_KEYS
        if (value := model_settings.get(key)) and not Path(str(value)).expanduser().exists()
    ]  # fmt: skip
    if not hub_ids:
        return None
    needed = [(key, value) for key, value in hub_ids if not _cached(value, cache_dir)]
    if hub_reachable():
        return None
    host, _ = _endpoint()
    if not needed:
        _use_cache_only()
        names = ", ".join(sorted({value for _, value in hub_ids}))
        return f"the hub ({host}) cannot be reached: using the cached copy of {names}"
    key, value = needed[0]
    raise SetupError(
        f"[model] {key} = {value!r} is not in the local cache and the hub ({host}) cannot be"
        " reached from this machine",
        "set [model] model_name_or_path to a local model folder, or download it where there is"
        " network (with HF_HUB_OFFLINE=1 only cached models are used)",
    )
