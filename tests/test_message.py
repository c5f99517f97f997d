"""MIME messages: structure, encodings, headers, and refusal of header injection."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re

import pytest

from digest.errors import HeaderError
from digest.feeds.entries import permalink
from digest.mail.message import MessageFactory, parse_sender
from digest.mail.render import DigestRenderer
from digest.mail.tokens import read_token

SECRET = b"test-secret-0123456789"
DATE = "Sun, 22 Nov 2026 12:00:00 +0800"


def factory_for(site, **email_cfg):
    site.copy_examples()
    config = site.config
    base = {
        "sender": "嵌入式AI简报 <digest@news.example.org>",
        "unsubscribe_url": "https://news.example.org/unsubscribe",
        "unsubscribe_mailto": "unsubscribe@news.example.org",
        "base_url": "https://news.example.org/",
    }
    config = dataclasses.replace(config, email=dataclasses.replace(config.email, **{**base, **email_cfg}))
    issue = next(i for i in site.parsed() if i.stem == "2026-11-01")
    renderer = DigestRenderer(issue, config, permalink(config, issue), "https://news.example.org/feeds/")
    return MessageFactory(issue, config, SECRET, DATE), renderer.variant(), issue


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.strict)


def test_multipart_alternative_utf8_and_line_lengths(site):
    factory, digest, issue = factory_for(site)
    out = factory.build("reader@example.com", "读者", digest)
    assert b"\r\n" in out.data and b"\n" not in out.data.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in out.data.split(b"\r\n"))
    body_lines = out.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76
    message = parse(out.data)
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert text["Content-Transfer-Encoding"] == "base64"
    assert issue.items[0].title in text.get_content()
    assert "reader@example.com 订阅了" in html.get_content()


def test_headers(site):
    factory, digest, issue = factory_for(site)
    message = parse(factory.build("reader@example.com", "读者", digest).data)
    assert str(message["Subject"]) == issue.full_title
    assert str(message["From"]) == "嵌入式AI简报 <digest@news.example.org>"
    assert str(message["To"]) == "读者 <reader@example.com>"
    assert message["Date"] == DATE
    assert message["MIME-Version"] == "1.0"
    assert str(message["List-Id"]) == f"{site.config.site.title} <news.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    targets = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert targets[0].startswith("https://news.example.org/unsubscribe?token=")
    assert targets[1].startswith("mailto:unsubscribe@news.example.org?subject=unsubscribe%20")  # + the token
    token = targets[0].split("token=")[1]
    assert read_token(SECRET, token, purpose="unsubscribe", now=0).email == "reader@example.com"
    assert targets[0] in message.get_payload()[0].get_content()


def test_subject_is_strict_rfc2047(site):
    factory, digest, issue = factory_for(site)
    data = factory.build("reader@example.com", "", digest).data.decode("ascii")
    subject_lines = re.search(r"^Subject: (.*?)\r\n(?=\S)", data, re.S | re.M).group(1).split("\r\n ")
    words = [w for line in subject_lines for w in line.split()]
    assert all(re.fullmatch(r"=\?utf-8\?b\?[A-Za-z0-9+/=]+\?=", w) for w in words)
    assert all(len(w) <= 75 for w in words)
    assert all(len(line) <= 78 for line in subject_lines)
    assert str(parse(data.encode())["Subject"]) == issue.full_title


def test_message_id_is_deterministic_per_issue_and_subscriber(site):
    factory, digest, _ = factory_for(site)
    one = factory.build("reader@example.com", "A", digest)
    again = factory.build("Reader@Example.com", "B", digest)
    other = factory.build("other@example.com", "A", digest)
    assert one.message_id == again.message_id != other.message_id
    assert re.fullmatch(r"<[0-9a-f]{32}@news\.example\.org>", one.message_id)
    assert factory.build("reader@example.com", "A", digest).data == one.data


def test_test_copy_is_marked(site):
    factory, digest, issue = factory_for(site)
    message = parse(factory.build("me@example.com", "", digest, test=True).data)
    assert str(message["Subject"]) == f"[测试] {issue.full_title}"  # the zh-CN catalog's [TEST]
    assert str(message["To"]) == "me@example.com"


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("victim@example.com\r\nBcc: all@example.com", ""),
        ("victim@example.com", "Eve\r\nBcc: all@example.com"),
        ("victim@example.com", "Eve\nX-Injected: 1"),
        ("not-an-address", ""),
        ("a@b.c>, evil@example.com", ""),
    ],
)
def test_injection_in_names_and_addresses_is_refused(site, address, name):
    factory, digest, _ = factory_for(site)
    with pytest.raises(HeaderError):
        factory.build(address, name, digest)


def test_injection_in_the_subject_is_refused(site):
    factory, digest, _ = factory_for(site)
    with pytest.raises(HeaderError, match="subject"):
        factory.build("a@example.com", "", dataclasses.replace(digest, subject="Hi\r\nBcc: x@y.z"))


def test_sender_is_checked(site):
    assert parse_sender("digest@example.org") == ("", "digest@example.org")
    with pytest.raises(HeaderError):
        parse_sender("Name <not an address>")
    with pytest.raises(HeaderError, match="empty"):
        factory_for(site, sender="")


def test_a_way_out_is_required(site):
    with pytest.raises(HeaderError, match="way out"):
        factory_for(site, unsubscribe_url="", unsubscribe_mailto="", base_url="")


def test_mailto_only_unsubscribe(site):
    factory, digest, _ = factory_for(site, unsubscribe_url="", base_url="")
    message = parse(factory.build("reader@example.com", "", digest).data)
    header = message["List-Unsubscribe"]
    assert header.startswith("<mailto:unsubscribe@news.example.org?subject=unsubscribe%20")  # + the token
    assert "," not in header
    assert message["List-Unsubscribe-Post"] is None


def test_dkim_signature_verifies(site, tmp_path):
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    from digest.config import DkimConfig

    factory, digest, _ = factory_for(site, dkim=DkimConfig("mail", "news.example.org", key_file))
    data = factory.build("reader@example.com", "读者", digest).data
    assert data.startswith(b"DKIM-Signature: ")
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from digest.mail.message import encode_phrase, encode_text  # noqa: E402

header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=200
).filter(lambda s: s.strip() == s and "  " not in s)


@settings(max_examples=300, deadline=None)
@given(header_text)
def test_any_subject_folds_into_short_valid_encoded_words(value):
    encoded = encode_text(value, "Subject")
    lines = ("Subject: " + encoded).split("\r\n")
    assert all(len(line) <= 78 for line in lines)
    if not value.isascii():
        assert all(len(w) <= 75 for w in encoded.split() if w.startswith("=?"))
    parsed = email.message_from_bytes(
        f"Subject: {encoded}\r\n\r\n".encode("ascii"), policy=email.policy.default
    )
    assert " ".join(str(parsed["Subject"]).split()) == " ".join(value.split())


@settings(max_examples=200, deadline=None)
@given(header_text)
def test_any_display_name_round_trips(name):
    header = f"To: {encode_phrase(name, 'To')} <a@example.com>"
    parsed = email.message_from_bytes(f"{header}\r\n\r\n".encode("ascii"), policy=email.policy.default)
    assert parsed["To"].addresses[0].addr_spec == "a@example.com"
    # a long name folds into several encoded-words; readers may show a space at the fold
    assert "".join(parsed["To"].addresses[0].display_name.split()) == "".join(name.split())


@pytest.mark.parametrize(
    "name", ["读者", "读者0", "王小明", "読者さん", "읽는이", "读" * 14, "读" * 15, "读" * 30]
)
def test_a_short_name_is_the_encoded_word_email_header_writes(name):
    """The fast path for one-word names writes what email.header would; longer names still fold there.

    (A mostly-ASCII name such as "Zoë" gets B where email.header picks Q, the shorter: both are RFC 2047.)
    """
    from email.header import Header

    from digest.mail.message import MAX_LINE

    expected = Header(name, "utf-8", maxlinelen=MAX_LINE, header_name="To").encode(linesep="\r\n")
    assert encode_phrase(name, "To") == expected
