"""Config loading: defaults, relative paths, and one clear error per mistake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conftest import ROOT
from digest.config import find_config_path, load_config
from digest.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_config_serves_the_example():
    config = load_config(ROOT / "digest.toml")
    assert config.paths.issues == ROOT / "examples" / "issues"
    assert config.paths.issues.is_dir()
    assert str(config.site.timezone) == "Asia/Shanghai"
    assert config.feeds.sections["论文"] == "papers"
    assert config.release.since == dt.date(2026, 11, 1)


def test_defaults_and_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path, "[paths]\nissues = 'posts'\n"))
    assert config.paths.issues == tmp_path / "posts"
    assert config.paths.state == tmp_path / "var" / "state"
    assert config.feeds.limit == 20
    assert config.release.mode == "manual"
    assert config.email.concurrency == 8


def test_config_from_env_and_explicit_path(tmp_path, monkeypatch):
    path = write(tmp_path, "")
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    assert find_config_path(None) == path
    assert find_config_path("other.toml") == Path("other.toml")
    monkeypatch.delenv("DIGEST_CONFIG")
    assert find_config_path(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[site]\ntitel = 'x'\n", "unknown key 'titel' in [site]"),
        ("[sit]\n", "unknown table [sit]"),
        ("[feeds]\nlimit = 'ten'\n", "'feeds.limit' must be an integer, not a string"),
        ("[feeds]\nlimit = 0\n", "'feeds.limit' must be at least 1"),
        ("[site]\ntimezone = 'Mars/Olympus'\n", "is not a timezone name"),
        ("[site]\nbase_url = 'ftp://x/'\n", "must be an http(s) URL"),
        ("[site]\npermalink = '{base_url}{slug}'\n", "unknown field 'slug'"),
        ("[release]\nmode = 'sometimes'\n", "'release.mode' must be"),
        ("[email]\ntransport = 'pigeon://x'\n", "'email.transport' must look like"),
        ("[email]\ntransport = 'smtp://mail.example.org:99999'\n", "'email.transport' must look like"),
        ("[email]\ntransport = 'maildir: '\n", "'email.transport' must look like"),
        ("[email]\nbase_url = 'https://example.org/digest'\n", "'email.base_url' must end with '/'"),
        ("[email]\nunsubscribe_url = 'javascript:alert(1)'\n", "'email.unsubscribe_url' must be an http"),
        ('[email]\nfrom = "a@b.c\\r\\nBcc: x@y.z"\n', "'email.from' must be one line"),
        ("[email.dkim]\nselector = 's'\n", "[email.dkim] needs 'domain'"),
        ("[feeds.sections]\n'观点' = 'Opinion Pieces'\n", "lowercase ASCII slug"),
        ("[site\n", "invalid TOML"),
        # issue 11, item 15: credentials in the URL, one-click over http, sizes and durations of 0 or less
        (
            "[email]\ntransport = 'smtp://news:s3cret@mail.example.org:587'\n",
            "put the user name in [email] username and the password in the environment variable "
            "DIGEST_SMTP_PASSWORD",
        ),
        ("[email]\ntransport = 'smtps://news@mail.example.org'\n", "must not hold credentials"),
        ("[email]\nunsubscribe_url = 'http://news.example.org/u'\n", "RFC 8058 one-click"),
        ("[email]\ntimeout = 0\n", "'email.timeout' must be a positive number of seconds"),
        ("[email]\ntimeout = -5\n", "'email.timeout' must be a positive number of seconds"),
        ("[email]\nretry_base = -1\n", "'email.retry_base' must be a positive"),
        ("[email]\nmax_html_bytes = 0\n", "'email.max_html_bytes' must be a positive number of bytes"),
        ("[email]\nmax_html_bytes = -100\n", "'email.max_html_bytes' must be a positive"),
        ("[email]\nrate = -1\n", "'email.rate' must be 0 (no limit) or more"),
        ("[release]\nsettle_minutes = -1\n", "'release.settle_minutes' must be 0 (mail at once) or more"),
        ("[serve]\nmax_body_bytes = 0\n", "'serve.max_body_bytes' must be a positive number of bytes"),
        ("[serve]\nconfirm_ttl_hours = 0\n", "'serve.confirm_ttl_hours' must be a positive number of hours"),
        ("[serve]\nconfirm_window_minutes = -10\n", "'serve.confirm_window_minutes' must be a positive"),
        ("[serve]\nsubscribe_per_hour = 0\n", "'serve.subscribe_per_hour' must be at least 1"),
        ("[serve]\nport = -1\n", "'serve.port' must be a port number"),
        ("[serve]\nport = 70000\n", "'serve.port' must be a port number"),
        # MAIL FROM takes the return path as it is: ASCII, no brackets
        ("[email]\nreturn_path = 'rück+{token}@example.org'\n", "'email.return_path' must be an address"),
        ("[email]\nreturn_path = 'b<x>@example.org'\n", "'email.return_path' must be an address"),
    ],
)
def test_invalid_config_names_the_key_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_config_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"run `digest init`.*--config PATH or set DIGEST_CONFIG"):
        load_config()
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_defaults_belong_to_no_one_newsletter(tmp_path):
    config = load_config(write(tmp_path, "[feeds.sections]\n'Opinion' = 'opinions'\n"))
    assert dict(config.feeds.sections) == {"Opinion": "opinions"}  # no built-in names in any language
    assert config.site.language == "en"
    assert config.serve.port not in (8000, 8025, 8080, 8888)


def test_a_missing_base_url_is_an_error_where_ids_are_built(tmp_path):
    config = load_config(write(tmp_path, "[site]\ntitle = 'Weekly'\n"))  # loading needs no URL
    with pytest.raises(ConfigError, match=r"'site.base_url' is not set.*base_url = "):
        _ = config.site.base_url


def test_mailto_alone_is_enough_for_unsubscribing(tmp_path):
    config = load_config(write(tmp_path, "[email]\nunsubscribe_mailto = 'leave@example.org'\n"))
    assert config.email.unsubscribe_url == "" and config.email.unsubscribe_mailto == "leave@example.org"


def test_a_signing_key_others_can_read_is_refused_with_the_chmod_to_run(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    path = write(tmp_path, "[paths]\nstate = 'state'\n")
    key = tmp_path / "state" / "secret.key"
    key.parent.mkdir()
    key.write_text("k" * 43 + "\n")
    key.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"run: chmod 600 {key}" in str(caught.value) and "readable by group or others" in str(caught.value)
    key.chmod(0o600)
    assert load_config(path).paths.state == tmp_path / "state"
    key.chmod(0o640)
    monkeypatch.setenv("DIGEST_SECRET", "a-shared-secret-of-enough-length")
    load_config(path)  # the file is not the key in use: nothing to refuse


def test_a_readable_signing_key_stops_a_command_with_one_line(tmp_path, run_env):
    from conftest import run_digest

    run_env.pop("DIGEST_SECRET", None)
    path = write(tmp_path, "[paths]\nstate = 'state'\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "secret.key").write_text("k" * 43 + "\n")
    (tmp_path / "state" / "secret.key").chmod(0o604)
    result = run_digest(["status", "--config", str(path)], run_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "chmod 600" in result.stderr
