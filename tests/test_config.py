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
    with pytest.raises(ConfigError, match="--config PATH or set DIGEST_CONFIG"):
        load_config()
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_custom_section_slugs_extend_the_defaults(tmp_path):
    config = load_config(write(tmp_path, "[feeds.sections]\n'观点' = 'opinions'\n"))
    assert config.feeds.sections["观点"] == "opinions"
    assert config.feeds.sections["博文"] == "blogs"
