"""The small HTTP servers digest runs (the preview page, the self-service endpoints)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import sys
import threading
from typing import Any

__all__ = ["LocalServer"]

BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class LocalServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server with a cap on concurrent connections, that knows its URL.

    Each connection has a thread; past ``max_connections`` a new one gets 503 at
    once, and every connection is closed ``request_deadline`` seconds after it
    was accepted, so idle or trickling clients cannot hold the server.
    """

    daemon_threads = True
    thread_name = "digest-http"
    max_connections = 64
    request_deadline = 30.0  # seconds for a whole request and its answer

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
        # However slowly a client trickles its request in, its connection ends here.
        deadline = threading.Timer(self.request_deadline, _close, args=(request,))
        deadline.daemon = True
        deadline.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            deadline.cancel()
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, not a traceback: a client that hangs up is nothing to worry about."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # a reset, a broken pipe, a timeout
            return
        print(
            f"{client_address[0]}: request failed: {error.__class__.__name__}: {error}",
            file=sys.stderr,
            flush=True,
        )


def _close(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)
