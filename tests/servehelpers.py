"""Helpers for talking to `digest serve` over real HTTP in tests."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.parse
import urllib.request

from conftest import KNOWN
from digest.mail.tokens import TokenPayload, load_secret, make_token
from digest.subscribers.reading import read_subscribers


def request(server, method, path, data=None, content_type="application/x-www-form-urlencoded"):
    body = urllib.parse.urlencode(data, doseq=True).encode() if isinstance(data, dict) else data
    req = urllib.request.Request(server.url.rstrip("/") + path, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def one_click(server, path):
    """An RFC 8058 one-click unsubscribe POST."""
    return request(server, "POST", path, {"List-Unsubscribe": "One-Click"})


def token(site, email, purpose, **extra):
    return make_token(load_secret(site.config.paths.state), TokenPayload(email, purpose, **extra))


def status_of(site, email):
    found = read_subscribers(site.root / "subscribers.csv", KNOWN).find(email)
    return found.status if found else None


@contextlib.contextmanager
def serving(config, **limits):
    """A subscription server for the block, on 127.0.0.1 with an ephemeral port; ``limits`` override
    class attributes such as ``max_connections`` or ``request_deadline``."""
    from digest.web.server import SubscriptionServer

    cls = type("TestServer", (SubscriptionServer,), limits) if limits else SubscriptionServer
    instance = cls(config, port=0)
    instance.start()
    try:
        yield instance
    finally:
        instance.shutdown()
        instance.server_close()
