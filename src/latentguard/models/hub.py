"""Hub ids: one quick probe of the Hugging Face hub before a library is asked, so that a hub that cannot be
reached, or an id it does not know, fails at once with one message saying what to do (instead of minutes of
retries inside huggingface_hub), and a cached model still loads with the network down.

``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) skips the probe: only the local cache is read.
``HF_ENDPOINT`` is honoured; ``LATENTGUARD_HUB_TIMEOUT`` sets the probe's timeout (seconds, default 5).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from latentguard.models.errors import ModelLoadError

T = TypeVar("T")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name


def is_offline() -> bool:
    """Whether the user asked for the local cache only (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


HUB_PROBE_TIMEOUT_S = 5.0  # one HEAD request; LATENTGUARD_HUB_TIMEOUT overrides it


def _hub_endpoint() -> str:
    from huggingface_hub import constants  # deferred with diffusers: only hub ids need it

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _download_help(spec: str) -> str:
    return (f"where you have internet, run `hf download {spec}` (older versions: `huggingface-cli download {spec}`) "
            "and copy the cache (~/.cache/huggingface) here, or pass a local diffusers folder instead of the hub id; "
            "the bundled offline models are `zoo:vae-a`, `zoo:t2i`, ... (`latentguard zoo list`)")


def probe_hub(spec: str) -> str:
    """One HEAD request to the hub's model API: ``"ok"``, ``"unreachable: <reason>"``; raises for an unknown id.

    Raises:
        ModelLoadError: the hub answered that it has no model ``spec`` (or none this user may read).
    """
    endpoint = _hub_endpoint()
    url = f"{endpoint}/api/models/{spec}"
    headers = {"User-Agent": "latentguard"}
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:  # noqa: BLE001 - no token is the common case
        token = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = float(os.environ.get("LATENTGUARD_HUB_TIMEOUT", HUB_PROBE_TIMEOUT_S))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD", headers=headers), timeout=timeout):
            return "ok"
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404):
            who = "" if token else " without a token; for a private or gated model, log in first (`hf auth login`)"
            raise ModelLoadError(f"the Hugging Face hub ({endpoint}) has no model {spec!r} (HTTP {exc.code}){who}; "
                                 "check the id, or use a local diffusers folder or a bundled zoo:NAME "
                                 "(`latentguard zoo list`)") from None
        return "ok"  # the hub answers; diffusers reports anything else
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"unreachable: {str(reason).splitlines()[0] if str(reason) else type(exc).__name__}"


def load_from_hub(spec: str, load: Callable[[bool], T]) -> T:
    """``load(local_files_only)`` for a hub id (``load`` calls the library's ``from_pretrained``): after one probe, from the hub, or from the cache alone when the hub
    cannot be reached (or ``HF_HUB_OFFLINE=1``); every failure is one :class:`ModelLoadError` saying what to do."""
    status = "offline" if is_offline() else probe_hub(spec)
    try:
        return load(status != "ok")
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one actionable message
        if status == "ok":
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ModelLoadError(f"could not load {spec!r} from the Hugging Face hub: {type(exc).__name__}"
                                 + (f" ({first[:300]})" if first else "")) from exc
        if status == "offline":
            why = f"HF_HUB_OFFLINE=1 is set and {spec!r} is not in the local cache"
        else:
            why = (f"the Hugging Face hub ({_hub_endpoint()}) is unreachable ({status.split(': ', 1)[-1]}) and "
                   f"{spec!r} is not in the local cache; set HF_HUB_OFFLINE=1 to skip the hub look-up")
        raise ModelLoadError(f"could not load {spec!r}: {why}. To get it, {_download_help(spec)}") from exc
