"""`digest serve` over real HTTP: one-click unsubscribe, double opt-in, preferences, and abuse limits."""

from __future__ import annotations

import email
import email.policy
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from lxml import html as lxml_html

from conftest import NOW, SERVE_CONFIG, smtp_config, write_subscribers
from digest.errors import ConfigError
from digest.mail.tokens import TokenPayload, make_token
from digest.newsletter.catalog import load_issue
from digest.send.delivery import send_issue
from digest.subscribers.changes import set_status
from digest.subscribers.reading import read_subscribers
from digest.web.server import SubscriptionServer
from servehelpers import KNOWN, one_click, request, serving, status_of, token


def test_binds_loopback_by_default(server):
    assert server.server_address[0] == "127.0.0.1"


def test_refuses_to_start_without_a_public_address_for_its_links(site):
    site.write_config('[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n')
    with pytest.raises(ConfigError, match=r"set \[email\] base_url to where digest serve is reachable"):
        SubscriptionServer(site.config, port=0)


def test_get_never_unsubscribes_post_one_click_does(site, server):
    path = f"/digest/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}"
    code, page, headers = request(server, "GET", path)
    assert code == 200 and "<button" in page and 'value="One-Click"' in page
    assert status_of(site, "a@example.com") == "active"
    assert (
        headers["Referrer-Policy"] == "no-referrer"
        and "default-src 'none'" in headers["Content-Security-Policy"]
    )
    code, page, _ = one_click(server, path)
    assert code == 200 and "不会再收到" in page
    assert status_of(site, "a@example.com") == "unsubscribed"


def test_one_click_as_multipart_form_data(site, server):
    path = f"/unsubscribe?token={token(site, 'b@example.com', 'unsubscribe')}"
    body = b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n'
    code, _, _ = request(server, "POST", path, body, "multipart/form-data; boundary=XyZ")
    assert code == 200
    assert status_of(site, "b@example.com") == "unsubscribed"


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda good: good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # altered signature
        lambda good: good.split(".")[0][:-1] + "x." + good.split(".")[1],  # altered payload
        lambda good: "not-a-token",
        lambda good: "",
    ],
)
def test_forged_or_altered_tokens_change_nothing(site, server, make_bad):
    good = token(site, "a@example.com", "unsubscribe")
    code, page, _ = one_click(server, f"/unsubscribe?token={make_bad(good)}")
    assert 400 <= code < 500 and "链接无效" in page
    assert status_of(site, "a@example.com") == "active"


def test_a_token_for_another_purpose_or_another_secret_is_refused(site, server):
    preferences = token(site, "a@example.com", "preferences")
    code, _, _ = one_click(server, f"/unsubscribe?token={preferences}")
    assert code == 400
    foreign = make_token(b"another-secret-entirely", TokenPayload("a@example.com", "unsubscribe"))
    code, _, _ = one_click(server, f"/unsubscribe?token={foreign}")
    assert code == 400
    assert status_of(site, "a@example.com") == "active"


def confirmation_link(site, server):
    server.drain()  # the confirmation goes out from a background worker
    messages = sorted((site.root / "maildir" / "new").iterdir())
    message = email.message_from_bytes(messages[-1].read_bytes(), policy=email.policy.default)
    link = re.search(r"https://\S+", message.get_content()).group(0)
    return message, urllib.parse.urlsplit(link)


def test_double_opt_in(site, server):
    code, page, _ = request(
        server, "POST", "/digest/subscribe", {"email": "new@example.com", "sections": ["papers", "blogs"]}
    )
    assert code == 202
    assert status_of(site, "new@example.com") is None
    message, link = confirmation_link(site, server)
    assert str(message["To"]) == "new@example.com" and "确认订阅" in str(message["Subject"])
    assert link.netloc == "news.example.org" and link.path == "/digest/confirm"
    code, page, _ = request(server, "GET", f"{link.path}?{link.query}")
    assert code == 200 and "<button" in page
    assert status_of(site, "new@example.com") is None  # following the link alone does not subscribe
    code, page, _ = request(server, "POST", f"{link.path}?{link.query}", {})
    assert code == 200
    joined = read_subscribers(site.root / "subscribers.csv", KNOWN).find("new@example.com")
    assert joined.active and joined.sections == {"papers", "blogs"}


def test_expired_confirmation_changes_nothing(site, server):
    expired = token(site, "late@example.com", "confirm", expires=int(NOW.timestamp()) - 1)
    code, page, _ = request(server, "POST", f"/confirm?token={expired}", {})
    assert code == 400 and "expired" in page
    assert status_of(site, "late@example.com") is None


def test_responses_never_reveal_whether_an_address_is_on_the_list(site, server):
    on_list = request(server, "POST", "/subscribe", {"email": "a@example.com"})
    off_list = request(server, "POST", "/subscribe", {"email": "stranger@example.com"})
    assert on_list[0] == off_list[0] == 202
    assert on_list[1].replace("a@example.com", "X") == off_list[1].replace("stranger@example.com", "X")
    server.drain()
    recipients = [p.read_text() for p in (site.root / "maildir" / "new").iterdir()]
    assert len(recipients) == 1 and "stranger@example.com" in recipients[0]  # members get no mail


def test_rate_limit_uses_the_proxy_address_only_when_trusted(site):
    site.write_config(SERVE_CONFIG + "trust_proxy = true\n")
    write_subscribers(site.root / "subscribers.csv", [])
    with serving(site.config) as instance:

        def from_client(ip, n):
            req = urllib.request.Request(
                instance.url + "subscribe", data=f"email=p{n}@example.com".encode(), method="POST"
            )
            req.add_header("X-Forwarded-For", f"203.0.113.9, {ip}")
            try:
                return urllib.request.urlopen(req).status
            except urllib.error.HTTPError as error:
                return error.code

        assert [from_client("198.51.100.1", n) for n in range(4)] == [202, 202, 202, 429]
        assert from_client("198.51.100.2", 9) == 202  # another reader behind the same proxy


def test_idle_connections_are_closed_and_cannot_exhaust_the_server(site):
    import socket

    site.write_config(SERVE_CONFIG)
    with serving(site.config, max_connections=2, idle_timeout=0.5) as instance:
        idle = [socket.create_connection(instance.server_address, timeout=10) for _ in range(2)]
        try:
            for sock in idle:
                assert sock.recv(100) == b""  # the server hung up on the idle connection
            with socket.create_connection(instance.server_address, timeout=10) as third:
                third.sendall(b"GET /no-such-page HTTP/1.0\r\n\r\n")
                assert third.recv(100).startswith(b"HTTP/1.0 404")  # a real answer, not "busy"
        finally:
            for sock in idle:
                sock.close()


def test_no_second_confirmation_mail_within_the_window(site, server):
    for _ in range(2):
        assert request(server, "POST", "/subscribe", {"email": "twice@example.com"})[0] == 202
    server.drain()
    assert len(list((site.root / "maildir" / "new").iterdir())) == 1


def test_subscribe_is_rate_limited_per_client(site, server):
    codes = [request(server, "POST", "/subscribe", {"email": f"x{n}@example.com"})[0] for n in range(4)]
    assert codes == [202, 202, 202, 429]
    server.drain()
    assert len(list((site.root / "maildir" / "new").iterdir())) == 3


def test_input_limits(site, server):
    code, _, _ = request(server, "POST", "/subscribe", {"email": "a" * 5000 + "@example.com"})
    assert code == 413
    code, _, _ = request(server, "GET", "/unsubscribe?token=" + "x" * 5000)
    assert code == 414
    code, page, _ = request(server, "POST", "/subscribe", {"email": "not an address"})
    assert code == 400 and "invalid address" in page
    code, _, _ = request(server, "POST", "/subscribe", {"email": "ok@example.com", "sections": ["gossip"]})
    assert code == 400


def test_preferences_over_http(site, server):
    path = f"/preferences?token={token(site, 'b@example.com', 'preferences')}"
    code, page, _ = request(server, "GET", path)
    assert code == 200 and 'value="papers" checked' in page and 'value="blogs">' in page
    unsubscribe = re.search(r'href="(https://news\.example\.org/digest/unsubscribe\?token=[^"]+)"', page)
    assert unsubscribe, "the page links to the one-click page under [email] base_url"
    one_click_path = urllib.parse.urlsplit(unsubscribe[1].replace("&amp;", "&"))
    code, _, _ = one_click(server, f"{one_click_path.path}?{one_click_path.query}")
    assert code == 200 and status_of(site, "b@example.com") == "unsubscribed"
    set_status(site.root / "subscribers.csv", KNOWN, "b@example.com", "active")
    code, page, _ = request(server, "POST", path, {"sections": ["blogs", "projects"]})
    assert code == 200
    subscriber = read_subscribers(site.root / "subscribers.csv", KNOWN).find("b@example.com")
    assert subscriber.sections == {"blogs", "projects"}


def test_one_click_from_a_delivered_message_and_during_a_send(site, smtp):
    site.write_config(smtp_config(smtp.port, "concurrency = 1\n"))
    site.copy_examples()
    write_subscribers(
        site.root / "subscribers.csv", [(f"r{n}@example.com", "", "", "active", "") for n in range(6)]
    )
    with serving(site.config) as server:

        async def first_reader_clicks_unsubscribe_for_r4(session, envelope):
            if not smtp.received:
                # r4 received an earlier issue and clicks its one-click link while this send runs
                code, _, _ = one_click(
                    server, f"/unsubscribe?token={token(site, 'r4@example.com', 'unsubscribe')}"
                )
                assert code == 200

        smtp.before_data(first_reader_clicks_unsubscribe_for_r4)
        report = send_issue(site.config, load_issue(site.config, "2026-11-01"), NOW, progress=False)
        assert "r4@example.com" not in smtp.per_recipient() and report.unsubscribed_during == 1
        header = smtp.received[0].message["List-Unsubscribe"]
        target = urllib.parse.urlsplit(re.search(r"<(https://[^>]+)>", header).group(1))
        code, _, _ = one_click(server, f"{target.path}?{target.query}")
        assert code == 200
        assert status_of(site, smtp.received[0].rcpt) == "unsubscribed"


def test_a_trickling_client_is_cut_off_at_the_deadline(site):
    import socket

    site.write_config(SERVE_CONFIG)
    with serving(site.config, request_deadline=0.5) as instance:
        started = time.monotonic()
        with socket.create_connection(instance.server_address, timeout=10) as client:
            client.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\n")  # and then nothing more
            assert client.recv(100) == b""  # the server hung up on it
        waited = time.monotonic() - started
    assert 0.45 <= waited < 2.5  # at the half-second deadline: not at once, and not five seconds later


# -- load, slow clients, failures (issue 11, items 10, 12 and 16) -------------------------------


def test_forty_concurrent_one_click_unsubscribes_are_all_answered_and_applied(site):
    """A listen backlog of 5 reset 10-21 of 40 concurrent one-click POSTs, unlogged."""
    import concurrent.futures
    import threading

    site.write_config(SERVE_CONFIG)
    readers = [f"r{n}@example.com" for n in range(40)]
    write_subscribers(site.root / "subscribers.csv", [(r, "", "", "active", "") for r in readers])
    with serving(site.config) as instance:
        start = threading.Barrier(len(readers))

        def click(address):
            path = f"/unsubscribe?token={token(site, address, 'unsubscribe')}"
            start.wait()
            return one_click(instance, path)[0]

        with concurrent.futures.ThreadPoolExecutor(len(readers)) as pool:
            codes = list(pool.map(click, readers))
    assert codes == [200] * len(readers)
    assert [status_of(site, r) for r in readers] == ["unsubscribed"] * len(readers)


def test_seventy_slow_clients_do_not_starve_a_normal_one(site):
    """70 slowloris connections made every other client get 503 for about 20 s."""
    import socket
    import time

    site.write_config(SERVE_CONFIG)
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    with serving(site.config, max_per_client=0) as instance:  # all from 127.0.0.1, like clients of a proxy
        slow = []
        try:
            for _ in range(70):
                sock = socket.create_connection(instance.server_address, timeout=10)
                sock.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")  # and no more
                slow.append(sock)
            started = time.monotonic()
            path = f"/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}"
            code, page, _ = request(instance, "GET", path)
            assert code == 200 and "<button" in page
            assert time.monotonic() - started < 2.0  # answered at once, not after the slow ones time out
        finally:
            for sock in slow:
                sock.close()


def _full_disk_under(monkeypatch, root):
    """fsync answers ENOSPC for every file under ``root``, as a full disk does."""
    import errno
    import os

    real_fsync = os.fsync

    def fsync(fd):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(root)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_is_a_logged_503_never_an_empty_reply(site, server, monkeypatch, caplog):
    """On a full disk the handler swallowed the error and sent an empty reply."""
    path = f"/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}"
    _full_disk_under(monkeypatch, site.root)
    code, page, _ = one_click(server, path)
    monkeypatch.undo()
    assert code == 503 and "请稍后再试" in page
    assert status_of(site, "a@example.com") == "active"  # nothing half-done, and not told it was done
    logged = caplog.text  # digest serve's log: stderr, with time and level
    assert "POST /unsubscribe: 503" in logged and "No space left on device" in logged
    assert "token=" not in logged


def test_a_change_that_cannot_be_made_is_a_503_try_again(site, server, monkeypatch, caplog):
    """A one-click unsubscribe for an address the list cannot rewrite was answered 200 "已退订"."""
    from digest.errors import SubscriberError

    def cannot(*args, **kwargs):
        raise SubscriberError("a@example.com is on a line that cannot be read; fix it first", line=3)

    monkeypatch.setattr("digest.web.server.set_status", cannot)
    code, page, _ = one_click(server, f"/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}")
    assert code == 503 and "请稍后再试" in page and "已退订" not in page
    assert "cannot be read" in caplog.text


def test_the_rate_limiter_stays_small_with_a_hundred_thousand_clients():
    """With trust_proxy every X-Forwarded-For address was remembered: unbounded, 7-9 ms a request."""
    import time
    import tracemalloc

    from digest.web.server import RateLimiter

    limiter = RateLimiter(3, 3600.0, max_clients=10_000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    for n in range(100_000):
        assert limiter.allow(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", 1000.0 + n * 0.001)
        assert time.monotonic() - started < 20, f"too slow: {n} clients in 20 s"
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(limiter) <= 10_000 and grown < 8_000_000
    for _ in range(3):
        limiter.allow("198.51.100.7", 2000.0)
    assert not limiter.allow("198.51.100.7", 2000.0)  # a recent client is still limited


def test_head_is_answered_like_get_without_a_body(site, server):
    import http.client

    path = f"/digest/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}"
    _, page, get_headers = request(server, "GET", path)
    connection = http.client.HTTPConnection(*server.server_address, timeout=10)
    try:
        connection.request("HEAD", path)
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b""
        assert response.headers["Content-Length"] == str(len(page.encode()))
        assert response.headers["Content-Security-Policy"] == get_headers["Content-Security-Policy"]
    finally:
        connection.close()
    assert status_of(site, "a@example.com") == "active"


@pytest.mark.parametrize("leaves_by", ["one-click", "cli"])
def test_a_confirmation_replayed_after_unsubscribing_does_not_subscribe_again(site, server, leaves_by):
    request(server, "POST", "/subscribe", {"email": "new@example.com"})
    _, link = confirmation_link(site, server)
    confirm = f"{link.path}?{link.query}"
    assert request(server, "POST", confirm, {})[0] == 200
    assert status_of(site, "new@example.com") == "active"
    if leaves_by == "one-click":
        one_click(server, f"/unsubscribe?token={token(site, 'new@example.com', 'unsubscribe')}")
    else:  # digest subscribers remove
        set_status(site.root / "subscribers.csv", KNOWN, "new@example.com", "unsubscribed")
    assert status_of(site, "new@example.com") == "unsubscribed"
    code, page, _ = request(server, "POST", confirm, {})  # the old mail, clicked again
    assert code == 400 and "已经用过" in page
    assert status_of(site, "new@example.com") == "unsubscribed"


def test_the_subscribe_page_is_a_form_that_needs_no_javascript(site, server):
    for path in ("/", "/subscribe", "/digest/subscribe"):
        code, page, headers = request(server, "GET", path)
        assert code == 200, path
        doc = lxml_html.fromstring(page)
        form = doc.xpath("//form")[0]
        assert form.get("method") == "post" and form.get("action") == "subscribe"
        assert form.xpath(".//input[@type='email'][@name='email'][@required]")
        assert sorted(form.xpath(".//input[@name='sections']/@value")) == sorted(KNOWN)
        assert not doc.xpath("//script") and "Content-Security-Policy" in headers
    code, page, _ = request(
        server, "POST", "/digest/subscribe", {"email": "x@example.com", "sections": ["papers"]}
    )
    assert code == 202  # the form posts into today's double opt-in


def test_the_done_page_offers_the_preferences_and_a_way_back(site, server):
    code, page, _ = one_click(
        server, f"/digest/unsubscribe?token={token(site, 'b@example.com', 'unsubscribe')}"
    )
    assert code == 200 and status_of(site, "b@example.com") == "unsubscribed"  # one step, as RFC 8058 asks
    links = lxml_html.fromstring(page).xpath("//main//li/a/@href")
    assert any("/digest/preferences?token=" in href for href in links)
    assert "https://news.example.org/" in links
