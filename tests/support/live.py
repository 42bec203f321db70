"""A real HTTP server on a loopback port, for peers that need a socket (requests-oauth2client, the fga CLI,
browsers). The server runs uvicorn in its own thread and event loop; build a separate ``Services`` for any
direct database access from the test's loop (database connections belong to one loop).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, app: Any, port: int | None = None, **uvicorn_options: Any):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **uvicorn_options
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"live-{self.port}", daemon=True)

    def start(self, timeout: float = 20.0) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread died during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


@contextmanager
def serve(app: Any, port: int | None = None, **options: Any) -> Iterator[LiveServer]:
    """``with serve(create_app(settings)) as server: ... server.url ...``"""
    server = LiveServer(app, port, **options).start()
    try:
        yield server
    finally:
        server.stop()
