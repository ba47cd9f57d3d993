"""Run the application on a uvicorn server in a background thread (the tests and the load benchmark).

``latentguard serve`` runs uvicorn in the foreground instead; this helper binds port 0 by default and reports
the port the system chose, so that concurrent test runs never race for a port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


@contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 120.0) -> Iterator[str]:
    """Serve ``app`` until the ``with`` block ends; yields its base URL (``http://127.0.0.1:PORT``).

    Startup includes the application's lifespan (the worker pool starts); ``timeout`` bounds it.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, name="latentguard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"uvicorn did not start within {timeout:g} s")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
