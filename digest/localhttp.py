"""The small HTTP servers digest runs (the preview page, the self-service endpoints)."""

from __future__ import annotations

import http.server
import threading

__all__ = ["LocalServer"]


class LocalServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that knows its URL and can run in a background thread (for tests)."""

    daemon_threads = True
    thread_name = "digest-http"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True)
        thread.start()
        return thread
