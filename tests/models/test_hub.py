"""Hub ids fail fast without HF_HUB_OFFLINE (issue 22, item 2): one probe, then one clear message.

No real hub is contacted: HF_ENDPOINT points at 127.0.0.1 (a closed port, or a local server that counts requests).
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from latentguard.models import ModelLoadError, load_vae


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def fresh_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing cached
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_unreachable_hub_fails_at_once_naming_offline_and_the_download(monkeypatch, fresh_cache):
    from diffusers import AutoencoderKL  # noqa: F401  imported before the clock starts (slow on a loaded machine)

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    t = time.time()
    with pytest.raises(ModelLoadError) as ei:
        load_vae("someone/not-a-vae")
    # behavioural bound, generous: huggingface_hub's own retries took ~50 s here
    assert time.time() - t < 20
    msg = str(ei.value)
    assert "\n" not in msg
    assert "unreachable" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "hf download someone/not-a-vae" in msg and "zoo:" in msg


class _Counting(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_HEAD(self):  # noqa: N802
        type(self).requests.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args):
        pass


def test_unknown_id_is_one_probe_and_one_line(monkeypatch, fresh_cache):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Counting.requests = []
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(ModelLoadError) as ei:
            load_vae("someone/not-a-vae")
    finally:
        server.shutdown()
        server.server_close()
    assert _Counting.requests == ["/api/models/someone/not-a-vae"]  # one probe, nothing else
    msg = str(ei.value)
    assert "has no model 'someone/not-a-vae'" in msg and "404" in msg and "zoo:" in msg


def test_cli_says_it_in_one_line(monkeypatch, fresh_cache, tmp_path, capsys):
    from latentguard.cli import main

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    (tmp_path / "x.png").write_bytes(b"")
    rc = main(["protect", str(tmp_path / "x.png"), "--model", "someone/not-a-vae", "--out", str(tmp_path / "o"),
               "--no-progress"])
    assert rc == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("latentguard:")]
    assert len(err) == 1 and "HF_HUB_OFFLINE=1" in err[0]
