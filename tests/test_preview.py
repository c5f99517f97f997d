"""``digest preview``: the files, the report and the local page (over real HTTP)."""

from __future__ import annotations

import email
import email.policy
import urllib.request

from conftest import NOW, run_digest
from digest.newsletter.catalog import load_issue
from digest.web.preview import PreviewServer, write_preview

WITH_EMAIL = (
    '[email]\nfrom = "简报 <digest@news.example.org>"\nunsubscribe_url = "https://news.example.org/u"\n'
)


def test_preview_writes_the_email_parts_and_a_report(site):
    site.write_config(WITH_EMAIL)
    site.copy_examples()
    issue = load_issue(site.config, "2026-10-15")
    preview = write_preview(site.config, issue, NOW)
    directory = site.config.paths.previews / "2026-10-15"
    assert preview.directory == directory
    assert sorted(p.name for p in directory.iterdir()) == [
        "email.eml",
        "email.html",
        "email.txt",
        "report.txt",
    ]
    message = email.message_from_bytes((directory / "email.eml").read_bytes(), policy=email.policy.default)
    assert str(message["To"]) == "读者 <reader@example.com>"
    assert message.get_body(("html",)).get_content() == (directory / "email.html").read_text(encoding="utf-8")
    report = (directory / "report.txt").read_text(encoding="utf-8")
    assert f"HTML：   {preview.html_bytes / 1024:.1f} KB" in report  # the report speaks zh-CN
    assert "业界新闻 " in report and "应用 2" in report
    assert "检查：   0 致命，0 错误，1 警告" in report
    assert "url-from-title" in report
    assert "状态：   已发布" in report


def test_preview_of_a_future_issue_says_so(site):
    site.write_config(WITH_EMAIL)
    site.write_issue(
        "2026-12-24.md", "# 简报 (2026-12-24)：圣诞\n## 论文\n- [a | b](https://a.org)\n摘要：x。\n"
    )
    preview = write_preview(site.config, load_issue(site.config, "2026-12-24"), NOW)
    assert "定于2026年12月24日发布" in preview.report


def test_preview_server_serves_every_part_on_loopback(site):
    site.write_config(WITH_EMAIL)
    site.copy_examples()
    preview = write_preview(site.config, load_issue(site.config, "2026-11-01"), NOW)
    server = PreviewServer(preview)
    server.start()
    try:
        assert server.server_address[0] == "127.0.0.1"
        page = urllib.request.urlopen(server.url).read().decode()
        assert '<iframe id="desktop" src="/email.html"' in page and '<iframe id="phone"' in page
        assert "本期新增的订阅条目（15）" in page
        assert urllib.request.urlopen(server.url + "email.html").read().decode() == preview.html
        eml = urllib.request.urlopen(server.url + "email.eml")
        assert eml.headers["Content-Type"] == "message/rfc822" and eml.read() == preview.eml
    finally:
        server.shutdown()
        server.server_close()


def test_preview_command(site, run_env):
    site.write_config(WITH_EMAIL)
    site.copy_examples()
    result = run_digest(["preview", "2026-11-01", "--config", str(site.config_path)], run_env)
    assert result.returncode == 0, result.stderr
    assert "wrote " in result.stdout and "主题：" in result.stdout
    missing = run_digest(["preview", "1999-01-01", "--config", str(site.config_path)], run_env)
    assert missing.returncode == 1
    assert missing.stderr.startswith("digest: no issue '1999-01-01'")
