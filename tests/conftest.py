"""Shared fixtures: the real corpus (when ../shared is present) and small issue builders."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
CORPUS_ISSUES = sorted((CORPUS / "embedded-ai-report").glob("*.md"))
CORPUS_SEEDS = sorted((CORPUS / "seeds").glob("*"))
EXAMPLES = ROOT / "examples"
KNOWN = {"news", "papers", "projects", "blogs", "apps"}  # the default section slugs
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # "today" in the tests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "corpus" in item.keywords and not CORPUS_ISSUES:
            item.add_marker(pytest.mark.skip(reason="../shared/corpus is not present"))


@pytest.fixture
def corpus_issues() -> list[Path]:
    return CORPUS_ISSUES


# Hard line breaks (two trailing spaces) are spelled \x20\x20 so editors keep them.
ISSUE = """\
---
layout: default
---

# 简报 (2024-03-01)：芯片/编译器

**关注模型压缩、部署**\x20\x20

> 导读：本期三条。

好了，先是一些热身小新闻：

- 甲公司：发布新芯片；
- 乙公司：完成融资。

## 业界新闻

- [新芯片发布 | 某媒体](https://example.com/a)\x20\x20
摘要：第一行。\x20\x20
第二行。

## 论文

- [2403.00001] [A Paper](https://arxiv.org/abs/2403.00001) [[代码]](https://github.com/x/y)\x20\x20
摘要：论文摘要。
"""


@pytest.fixture
def issue_text() -> str:
    """A small, clean issue in the newsletter's format."""
    return ISSUE


def digest_cmd() -> list[str]:
    """The installed ``digest`` command, run as a real subprocess."""
    exe = shutil.which("digest", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "digest"]


def run_digest(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``digest ARGS`` as a user runs it: a real subprocess, its output as text."""
    return subprocess.run([*digest_cmd(), *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DIGEST_CONFIG", None)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


# The test newsletter's sections: digest knows none of its own, each newsletter names them.
TEST_SECTIONS = {
    "业界新闻": "news",
    "论文": "papers",
    "开源项目": "projects",
    "博文": "blogs",
    "应用": "apps",
}
SECTIONS = "".join(f'"{name}" = "{slug}"\n' for name, slug in TEST_SECTIONS.items())


class Site:
    """A newsletter in a temporary directory: a config, an issues folder and helpers."""

    def __init__(self, root: Path):
        self.root = root
        self.issues = root / "issues"
        self.issues.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "digest.toml"
        self.write_config()

    def write_config(self, extra: str = "") -> None:
        sections = "[feeds.sections]\n" + SECTIONS
        if "[feeds.sections]\n" in extra:  # the test's own names join the newsletter's
            extra, sections = extra.replace("[feeds.sections]\n", sections, 1), ""
        self.config_path.write_text(
            "[site]\n"
            'title = "简报"\n'
            'base_url = "https://news.example.org/"\n'
            'timezone = "Asia/Shanghai"\n'
            'author = "编辑部"\n'
            'language = "zh-CN"\n' + sections + "[paths]\n"
            'issues = "issues"\nfeeds = "feeds"\nstate = "state"\n'
            'subscribers = "subscribers.csv"\npreviews = "previews"\n' + extra,
            encoding="utf-8",
        )

    @property
    def config(self):
        from digest.config import load_config

        return load_config(self.config_path)

    def write_issue(self, name: str, text: str) -> Path:
        path = self.issues / name
        path.write_text(text, encoding="utf-8")
        return path

    def copy_examples(self) -> list[Path]:
        return [Path(shutil.copy(p, self.issues)) for p in sorted((EXAMPLES / "issues").glob("*.md"))]

    def parsed(self):
        from digest.newsletter.discover import issue_paths
        from digest.newsletter.parse import ParseOptions, read_issue

        options = ParseOptions.from_config(self.config)
        return [read_issue(p, options) for p in issue_paths(self.issues)]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright; skipped without it unless DIGEST_REQUIRE_BROWSER=1.

    Module-scoped: Playwright's sync API holds an event loop on the main thread,
    which must be gone before other modules call asyncio.run().
    """
    if CHROMIUM is None:
        if os.environ.get("DIGEST_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def smtp():
    """A plain SMTP server on 127.0.0.1 (ephemeral port) recording what it accepts."""
    from smtpserver import running_server

    with running_server() as (controller, recorder):
        recorder.port = controller.port
        yield recorder


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory):
    """A throwaway CA (trustme) and a certificate for 127.0.0.1; the CA file the client trusts."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, cert, ca_file


def write_subscribers(path: Path, rows: list[tuple[str, ...]]) -> None:
    lines = ["email,name,sections,status,since"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def smtp_config(port: int, extra: str = "", transport: str | None = None) -> str:
    """[email] settings for a test server: fast retries, no real waiting."""
    return (
        "[email]\n"
        'from = "简报 <digest@news.example.org>"\n'
        f'transport = "{transport or f"smtp://127.0.0.1:{port}"}"\n'
        'unsubscribe_url = "https://news.example.org/unsubscribe"\n'
        'unsubscribe_mailto = "unsubscribe@news.example.org"\n'
        'base_url = "https://news.example.org/"\n'
        "retry_base = 0.01\n" + extra
    )


def prepare_example(site, port: int, users: list[str], extra: str = "", rows=None):
    """The bundled example sending through a test server on ``port`` to ``users`` (all active, or
    ``rows``); its 2026-11-01 issue."""
    from digest.newsletter.catalog import load_issue

    site.write_config(smtp_config(port, extra))
    site.copy_examples()
    write_subscribers(
        site.root / "subscribers.csv", rows or [(a, "", "", "active", "2026-01-01") for a in users]
    )
    return load_issue(site.config, "2026-11-01")


SERVE_CONFIG = (
    '[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n'
    'base_url = "https://news.example.org/digest/"\n'
    "[serve]\nsubscribe_per_hour = 3\nconfirm_window_minutes = 10\n"
)


@pytest.fixture
def server(site):
    """`digest serve` for the site, on 127.0.0.1 with an ephemeral port, two subscribers on its list."""
    from servehelpers import serving

    site.write_config(SERVE_CONFIG)
    write_subscribers(
        site.root / "subscribers.csv",
        [("a@example.com", "甲", "", "active", ""), ("b@example.com", "乙", "papers", "active", "")],
    )
    with serving(site.config) as instance:
        yield instance
