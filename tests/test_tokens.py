"""Signed tokens and the key behind them."""

from __future__ import annotations

import pytest

from digest.errors import TokenError
from digest.mail.tokens import TokenPayload, load_secret, make_token, read_token

SECRET = b"0123456789abcdef-test"


def test_round_trip_and_purpose_binding():
    token = make_token(SECRET, TokenPayload("a@example.com", "unsubscribe"))
    assert read_token(SECRET, token, purpose="unsubscribe", now=0).email == "a@example.com"
    with pytest.raises(TokenError, match="something else"):
        read_token(SECRET, token, purpose="preferences", now=0)
    with pytest.raises(TokenError, match="not valid"):
        read_token(b"another-key-entirely-0000", token, purpose="unsubscribe", now=0)


def test_expiry():
    token = make_token(SECRET, TokenPayload("a@example.com", "confirm", expires=100, sections=("papers",)))
    assert read_token(SECRET, token, purpose="confirm", now=100).sections == ("papers",)
    with pytest.raises(TokenError, match="expired"):
        read_token(SECRET, token, purpose="confirm", now=101)


def test_generated_key_is_private_stable_and_shared(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    first = load_secret(tmp_path)
    assert len(first) >= 32
    assert load_secret(tmp_path) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", [b"", b"\n", b"short", b" " * 40])
def test_an_empty_or_short_key_file_is_refused_not_used(tmp_path, monkeypatch, content):
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    (tmp_path / "secret.key").write_bytes(content)
    with pytest.raises(TokenError, match="shorter than 16"):
        load_secret(tmp_path)


@pytest.mark.parametrize("value", ["", "short", " " * 20])
def test_a_short_environment_secret_is_refused(tmp_path, monkeypatch, value):
    monkeypatch.setenv("DIGEST_SECRET", value)
    with pytest.raises(TokenError, match="too short"):
        load_secret(tmp_path)
    assert not (tmp_path / "secret.key").exists()


def test_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET", "an-environment-secret-of-some-length")
    assert load_secret(tmp_path) == b"an-environment-secret-of-some-length"


def test_the_placeholder_from_the_docs_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET", "change-me-to-a-long-random-string")
    with pytest.raises(TokenError, match="placeholder"):
        load_secret(tmp_path)
