"""VERP return paths and the [bounces] settings: short signed tokens, checked config."""

from __future__ import annotations

import pytest

from digest.config import config_from_mapping
from digest.errors import ConfigError
from digest.mail.verp import compact_token, return_path_for, token_in_address, token_issue, token_matches

SECRET = b"s" * 32
TEMPLATE = "bounces+{token}@example.org"


def test_a_return_path_names_issue_and_recipient_and_fits_a_local_part():
    address = return_path_for(TEMPLATE, "news@example.org", SECRET, "2026-11-01", "Reader@Example.com")
    local = address.split("@")[0]
    assert len(local) <= 64 and local == local.lower()
    token = token_in_address(TEMPLATE, address.upper())  # servers may fold the case
    assert token is not None and token_issue(token) == "2026-11-01"
    assert token_matches(SECRET, token, "bounce", "reader@example.com")
    assert not token_matches(SECRET, token, "bounce", "other@example.com")
    assert not token_matches(b"x" * 32, token, "bounce", "reader@example.com")
    assert not token_matches(SECRET, token, "unsubscribe", "reader@example.com")  # purpose-bound
    other_issue = compact_token(SECRET, "bounce", "2026-11-15", "reader@example.com")
    assert other_issue != token


def test_without_a_template_the_envelope_sender_is_the_from_address():
    assert (
        return_path_for("", "news@example.org", SECRET, "2026-11-01", "a@example.com") == "news@example.org"
    )
    fixed = "bounces@example.org"
    assert return_path_for(fixed, "news@example.org", SECRET, "2026-11-01", "a@example.com") == fixed
    assert token_in_address(TEMPLATE, "bounces@example.org") is None
    assert token_in_address(TEMPLATE, "bounces+nonsense@example.org") is None


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("email", "return_path", "bounces+{token}", "'email.return_path' must be an address"),
        ("email", "return_path", "b+{tok}@example.org", "'email.return_path' must be an address"),
        ("bounces", "mailbox", "pop3://host/", "'bounces.mailbox' must look like maildir:PATH"),
        ("bounces", "soft_limit", 0, "'bounces.soft_limit' and 'bounces.soft_days' must be at least 1"),
        ("bounces", "mailboxes", "x", "unknown key 'mailboxes' in [bounces]"),
    ],
)
def test_bad_bounce_settings_are_one_line_naming_the_key(tmp_path, table, key, value, message):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({table: {key: value}}, tmp_path / "digest.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_good_bounce_settings_load(tmp_path):
    config = config_from_mapping(
        {
            "email": {"return_path": TEMPLATE},
            "bounces": {"mailbox": "imaps://bounces@mail.example.org/INBOX", "soft_limit": 3},
        },
        tmp_path / "digest.toml",
    )
    assert config.email.return_path == TEMPLATE
    assert (config.bounces.soft_limit, config.bounces.soft_days) == (3, 30)
