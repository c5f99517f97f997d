"""One client cannot fill every connection slot of `digest serve`: past its share, its new
connections are closed at once, and a reader elsewhere is answered meanwhile."""

from __future__ import annotations

import http.client
import socket
import time

from conftest import SERVE_CONFIG, write_subscribers
from servehelpers import serving, token

OTHER_READER = ("127.0.0.2", 0)  # another address of the loopback network: another client


def hung_up(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:  # still open, waiting for the rest of its request
        return False


def test_six_hundred_slow_connections_from_one_client_leave_room_for_a_reader(site):
    site.write_config(SERVE_CONFIG)
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    with serving(site.config, max_connections=500, max_per_client=20) as instance:
        slow = []
        try:
            for _ in range(600):
                sock = socket.create_connection(instance.server_address, timeout=10)
                sock.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")  # and no more
                slow.append(sock)
            refused = sum(hung_up(sock) for sock in slow)  # all but its share, at once
            started = time.monotonic()
            host, port = instance.server_address
            reader = http.client.HTTPConnection(host, port, timeout=5, source_address=OTHER_READER)
            reader.request("GET", f"/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}")
            response = reader.getresponse()
            assert response.status == 200 and b"<button" in response.read()
            assert time.monotonic() - started < 1.0
            reader.close()
        finally:
            for sock in slow:
                sock.close()
    assert 600 - 20 - 5 <= refused <= 600 - 20, refused  # a few may be in the accept queue when counted
