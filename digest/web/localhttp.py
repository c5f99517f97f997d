"""The HTTP servers digest runs: the self-service endpoints on waitress, the preview page.

``digest serve`` faces the internet (behind a proxy), so it runs on waitress, a
production WSGI server: requests are read by one event loop and handed to a
thread pool only once complete, so slow clients hold a socket, never a thread;
the listen backlog is deep; idle connections are closed after ``idle_timeout``
and any connection still sending its request after ``request_deadline``.
The editor's preview page (one user, on 127.0.0.1) stays on ``http.server``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.server
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LocalServer", "WsgiServer"]

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


class WsgiServer:
    """A WSGI application served by waitress on one address, in this thread or a background one.

    The class attributes are the limits (tests override them): at most
    ``max_connections`` open connections (more wait in the kernel's ``backlog``),
    ``threads`` requests handled at once, each connection closed after
    ``idle_timeout`` seconds with nothing received or sent, and one whose request
    is still incomplete ``request_deadline`` seconds after it was accepted. One
    peer address holds at most ``max_per_client`` of the connections (0: no such
    limit, for a server whose every connection comes through one proxy); past it,
    its new connections are closed at once, so one client cannot fill every slot.
    """

    thread_name = "digest-http"
    max_connections = 500
    max_per_client = 64
    backlog = 2048
    threads = 8
    idle_timeout = 10.0
    request_deadline = 30.0
    max_header_bytes = 16384
    max_body_bytes = 65536

    def __init__(self, app: Callable[..., Any], address: tuple[str, int]):
        from waitress.task import ThreadedTaskDispatcher

        try:
            adj = self._adjustments(address)
        except ValueError:  # waitress's word for a host that does not resolve
            raise OSError(errno.EADDRNOTAVAIL, "not an address of this machine") from None
        # waitress reads these as whole seconds; tests need fractions
        adj.channel_timeout = self.idle_timeout
        adj.cleanup_interval = min(1.0, self.idle_timeout / 2, self.request_deadline / 2)
        adj.asyncore_loop_timeout = adj.cleanup_interval
        self._map: dict[int, Any] = {}
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        listener = _listener_class()
        self._server = listener(
            app,
            self._map,
            dispatcher=dispatcher,
            adj=adj,
            sockinfo=adj.listen[0],
            deadline=self.request_deadline,
            per_client=self.max_per_client,
        )
        self.server_address: tuple[str, int] = self._server.socket.getsockname()[:2]
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    def _adjustments(self, address: tuple[str, int]) -> Any:
        from waitress.adjustments import Adjustments

        return Adjustments(
            host=address[0],
            port=address[1],
            backlog=self.backlog,
            threads=self.threads,
            connection_limit=self.max_connections + 2,  # the map also holds the listener and a trigger
            max_request_header_size=self.max_header_bytes,
            max_request_body_size=self.max_body_bytes,
            ident="digest",
            asyncore_use_poll=True,  # select() stops at 1024 descriptors
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=False,  # digest serve decides whether to trust X-Forwarded-For
        )

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{host!s}:{port}/"

    def serve_forever(self) -> None:
        """Run the event loop until :meth:`shutdown` (or Ctrl-C)."""
        from waitress import wasyncore

        try:
            while not self._stopping.is_set() and self._map:
                wasyncore.loop(
                    timeout=self._server.adj.asyncore_loop_timeout, map=self._map, use_poll=True, count=1
                )
        finally:
            self._stopped.set()

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests)."""
        thread = threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Stop the loop started by :meth:`start` and wait for it."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._server.pull_trigger()
        self._stopped.wait(10)

    def server_close(self) -> None:
        """Close the listener and every connection; wait for requests in hand to finish."""
        from waitress import wasyncore

        self._stopping.set()
        self._server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._map)


def _peer(addr: Any) -> Any:
    return addr[0] if isinstance(addr, tuple) else addr


@functools.cache
def _listener_class() -> type:
    """waitress's TCP server, imported only by a command that serves (the cron tick stays fast)."""
    from waitress.server import TcpWSGIServer

    class Listener(TcpWSGIServer):  # type: ignore[misc]
        """waitress's TCP server, which also ends connections past their request deadline,
        and refuses a peer's connections past its share."""

        def __init__(self, *args: Any, deadline: float, per_client: int, **kwargs: Any):
            self.deadline = deadline
            self.per_client = per_client
            super().__init__(*args, **kwargs)

        def handle_accept(self) -> None:
            try:
                accepted = self.accept()
                if accepted is None:
                    return
                conn, addr = accepted
            except OSError:
                return
            peer = _peer(addr)
            if self.per_client:  # counted over the open connections: nothing to keep in step
                held = sum(1 for c in self.active_channels.values() if _peer(c.addr) == peer)
                if held >= self.per_client:
                    _close(conn)
                    conn.close()
                    return
            try:
                self.set_socket_options(conn)
            except OSError:
                conn.close()
                return
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

        def maintenance(self, now: float) -> None:
            super().maintenance(now)
            cutoff = now - self.deadline
            for channel in list(self.active_channels.values()):
                if not channel.requests and channel.request is not None and channel.creation_time < cutoff:
                    channel.will_close = True  # still trickling its request in: slowloris

    return Listener
