"""The small HTTP servers digest runs (the preview page, the self-service endpoints)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from typing import Any

__all__ = ["LocalServer"]

BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class LocalServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server with a cap on concurrent connections, that knows its URL.

    Each connection has a thread; past ``max_connections`` a new one gets 503 at
    once, so idle or slow clients cannot exhaust the process.
    """

    daemon_threads = True
    thread_name = "digest-http"
    max_connections = 64

    def __init__(self, *args: Any, **kwargs: Any):
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__(*args, **kwargs)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, and the preview page while the CLI waits)."""
        thread = threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True)
        thread.start()
        return thread

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
