"""The newsletter's language: catalogs complete and current, tags resolved, and every output in one language.

An English newsletter's outputs (email parts and headers, preview, feeds and their
pages, digest serve's pages, the confirmation mail) carry no Chinese character;
a Chinese one's carry no English word of the UI, judged against the en catalog.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from lxml import etree
from lxml import html as lxml_html

from conftest import NOW, ROOT, run_digest, write_subscribers
from digest.config import load_config
from digest.errors import ConfigError
from digest.i18n import (
    LOCALE_DIR,
    available_catalogs,
    format_date,
    missing_catalog,
    po_path,
    resolve_language,
)
from digest.mail.message import MessageFactory
from digest.mail.render import DigestRenderer
from digest.mail.tokens import load_secret
from digest.newsletter.catalog import load_issue
from digest.pipeline import build_feeds_now
from digest.web.preview import PreviewServer, write_preview
from servehelpers import one_click, request, serving, token

FIXTURES = Path(__file__).parent / "fixtures"
POT = LOCALE_DIR / "messages.pot"
# Names, units and file formats a Chinese page may show as they are.
BRANDS = {"rss", "atom", "gmail", "html", "kb", "digest", "opml", "xml", "mjml", "utf"}


def is_chinese(ch: str) -> bool:
    """Han ideographs and the CJK punctuation that only Chinese text uses (，。：《》【】“”)."""
    name = unicodedata.name(ch, "")
    return (
        name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))
        or "\u3000" <= ch <= "\u303f"
        or "\uff00" <= ch <= "\uffef"
        or ch in "“”"
    )


def messages(path: Path):
    with path.open("rb") as po:
        return read_po(po)


# -- the catalogs -------------------------------------------------------------------------------


def test_zh_cn_and_en_are_shipped():
    assert {"zh-CN", "en"} <= set(available_catalogs())


@pytest.mark.parametrize("catalog", available_catalogs())
def test_catalog_is_complete(catalog):
    po, pot = messages(po_path(catalog)), messages(POT)
    assert {m.id for m in po if m.id} == {m.id for m in pot if m.id}, "run pybabel update (README, Languages)"
    untranslated = [m.id for m in po if m.id and not m.string]
    fuzzy = [m.id for m in po if m.id and m.fuzzy]
    assert untranslated == [] and fuzzy == []
    broken = [(m.id, [str(e) for e in errors]) for m, errors in po.check() if errors]
    assert broken == []  # every %(name)s of the msgid, and no other, in the msgstr


def test_pot_is_up_to_date_with_the_sources(tmp_path):
    fresh = tmp_path / "messages.pot"
    pybabel = shutil.which("pybabel", path=str(Path(sys.executable).parent))
    command = [pybabel] if pybabel else [sys.executable, "-m", "babel.messages.frontend"]
    result = subprocess.run(
        [*command, "-q", "extract", "-F", "babel.cfg", "-o", str(fresh), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    extracted = {m.id for m in messages(fresh) if m.id}
    shipped = {m.id for m in messages(POT) if m.id}
    assert extracted - shipped == set(), "new messages: re-extract messages.pot (README, Languages)"
    assert shipped - extracted == set(), "messages no longer used: re-extract messages.pot"


def test_the_wheel_ships_the_catalogs_and_they_work_from_it(tmp_path):
    """A wheel holds the .po files; digest compiles them at first use, so no build step is needed."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "hatchling" in result.stderr:
        pytest.skip(f"cannot fetch the build backend: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(unpacked)
    assert {
        "digest/locale/zh_CN/LC_MESSAGES/messages.po",
        "digest/locale/en/LC_MESSAGES/messages.po",
    } <= names
    script = (
        "import datetime, digest, digest.i18n as i, digest.templating as t\n"
        "print(digest.__file__)\n"
        "print(i.gettext_for('en')('Warm-up news'), i.gettext_for('zh')('Warm-up news'))\n"
        "print(t.render_template('confirm.txt.j2', language='en', autoescape=False,\n"
        "      site=type('S', (), {'title': 'Notes', 'language': 'en'}), address='a@b.org', link='L'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(unpacked)},
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(str(unpacked))  # the wheel's digest, not the source tree
    assert lines[1] == "In brief 热身小新闻"
    assert "Someone (hopefully you) subscribed a@b.org to Notes." in run.stdout


# -- choosing the catalog -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "catalog"),
    [
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("zh_cn", "zh-CN"),
        ("en", "en"),
        ("en-GB", "en"),
    ],
)
def test_language_tags_fall_back_to_a_catalog(tag, catalog):
    assert resolve_language(tag) == catalog


def test_dates_are_written_as_the_language_writes_them():
    day = dt.date(2026, 11, 5)
    assert [format_date(day, tag) for tag in ("zh-CN", "en", "en-GB")] == [
        "2026年11月5日",
        "November 5, 2026",
        "5 November 2026",
    ]


@pytest.mark.parametrize("tag", ["ko", "ja", "es", "fr", "zh-TW", "zh-Hant", "pt-BR"])
def test_a_language_without_a_catalog_reads_the_english_one(tag):
    assert resolve_language(tag) == "en"  # zh-TW and zh-Hant never fall back to simplified Chinese
    assert tag in missing_catalog(tag) and "docs/how-to/translate.md" in missing_catalog(tag)
    assert missing_catalog("zh-Hans") is None and missing_catalog("en-GB") is None


@pytest.mark.parametrize("tag", ["klingon", "xx", "en us", ""])
def test_a_tag_that_names_no_language_is_a_config_error(tmp_path, run_env, tag):
    config = tmp_path / "digest.toml"
    config.write_text(f'[site]\nlanguage = "{tag}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"is not a language tag such as 'en'"):
        load_config(config)
    result = run_digest(["feeds", "--config", str(config)], run_env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"digest: {config}: 'site.language': {tag!r} is not a language tag")


def korean(tmp_path: Path) -> Path:
    """The English fixture newsletter, its language set to one digest has no catalog for."""
    root = tmp_path / "korean"
    shutil.copytree(FIXTURES / "english", root)
    toml = root / "digest.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('language = "en"', 'language = "ko"'), "utf-8")
    write_subscribers(root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    return root


def test_a_newsletter_in_a_language_without_a_catalog_runs_with_its_tag_and_one_warning(tmp_path, run_env):
    root = korean(tmp_path)
    result = run_digest(["feeds", "--config", str(root / "digest.toml")], run_env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "no message catalog for language 'ko'" in warnings[0]
    pages = list((root / "feeds").rglob("*.html"))
    assert pages and all('<html lang="ko">' in p.read_text(encoding="utf-8") for p in pages)
    feeds = [p.read_text(encoding="utf-8") for p in (root / "feeds").rglob("*.xml")]
    assert any("<language>ko</language>" in f for f in feeds) and any('xml:lang="ko"' in f for f in feeds)
    config = load_config(root / "digest.toml")
    preview = write_preview(config, load_issue(config, "2026-11-05"), NOW)
    html = dict(preview.files())["email.html"][1].decode("utf-8")
    assert re.search(r"<html[^>]* lang=\"?ko\b", html) and "Unsubscribe" in html  # Korean tag, English words
    quiet = run_digest(["run", "--quiet", "--config", str(root / "digest.toml")], run_env)
    assert "warning" not in quiet.stderr  # a cron job is not warned every minute


IMAGES = "- [A tool](https://tools.example.org/a)\n  ![](https://img.example.org/a.png) ![chart](https://img.example.org/b.png)\n"


@pytest.mark.parametrize("tag", ["en", "ko", "zh-CN"])
def test_an_image_is_named_by_its_alt_text_or_file_in_every_language(tag):
    """A picture is a link named by its alt text, else its file name: no words of digest's own."""
    from digest.newsletter.parse import ParseOptions, parse_issue

    text = "# Notes (2026-11-05)\n\n## Tools\n\n" + IMAGES
    (item,) = parse_issue(text, Path("2026-11-05.md"), ParseOptions(language=tag)).items
    assert ">[🖼 a.png]</a>" in item.summary_html and ">[🖼 chart]</a>" in item.summary_html


def test_english_lint_says_nothing_in_chinese(tmp_path, run_env):
    root, _ = newsletter(tmp_path, "english")
    (root / "issues" / "2026-11-12.md").write_text(
        "> \n\n## News\n\n- [No summary here](https://news.example.org/n)\n- [](https://news.example.org/e)\n"
        "## Papers\n\n",
        encoding="utf-8",
    )
    (root / "issues" / "notes.md").write_text("## News\n\n- [x](https://news.example.org/x)\n", "utf-8")
    result = run_digest(["lint", "--config", str(root / "digest.toml")], run_env)
    assert "Traceback" not in result.stderr and "2026-11-12.md" in result.stdout
    said = result.stdout + result.stderr
    assert "".join(ch for ch in said if is_chinese(ch)) == ""


# -- every output, in one language ----------------------------------------------------------------


def newsletter(tmp_path: Path, name: str):
    """A copy of a fixture newsletter, with one subscriber on its list."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    write_subscribers(root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    return root, load_config(root / "digest.toml")


READ_HEADERS = ("From", "To", "Subject")  # the headers a reader reads; the others are for software


def parse_mail(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def as_text(output: str | EmailMessage) -> str:
    """An output as text: a message with its headers and parts decoded."""
    if isinstance(output, str):
        return output
    headers = "\n".join(f"{k}: {v}" for k, v in output.items())
    parts = [part.get_content() for part in output.walk() if not part.is_multipart()]
    return "\n".join([headers, *parts])


def every_output(tmp_path: Path, name: str) -> dict[str, str | EmailMessage]:
    """Everything digest writes for this newsletter's readers and editor, by where it came from."""
    root, config = newsletter(tmp_path, name)
    issue = load_issue(config, "2026-11-05")
    out: dict[str, str | EmailMessage] = {}
    preview = write_preview(config, issue, NOW)
    for file, (_, data) in preview.files().items():
        out[f"preview/{file}"] = parse_mail(data) if file.endswith(".eml") else data.decode("utf-8")
    server = PreviewServer(preview)
    server.start()
    try:
        import urllib.request

        out["preview page"] = urllib.request.urlopen(server.url).read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()
    test_copy = MessageFactory(
        issue, config, load_secret(config.paths.state), "Thu, 05 Nov 2026 00:00:00 +0000"
    )
    digest = DigestRenderer.for_issue(issue, config).variant()
    out["test copy"] = parse_mail(test_copy.build("me@example.com", "", digest, test=True).data)
    build_feeds_now(config, NOW)
    for path in sorted(p for p in config.paths.feeds.rglob("*") if p.is_file()):  # the archive pages too
        out[f"feeds/{path.relative_to(config.paths.feeds)}"] = path.read_text(encoding="utf-8")
    out.update(serve_pages(root, config))
    return out


def serve_pages(root: Path, config) -> dict[str, str | EmailMessage]:
    """digest serve's pages, as a reader meets them, and the confirmation mail it sends."""

    class Site:  # what the serve helpers need of a site
        def __init__(self):
            self.root, self.config = root, config

    site = Site()
    pages: dict[str, str | EmailMessage] = {}
    with serving(config) as server:
        unsubscribe = f"/digest/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}"
        preferences = f"/digest/preferences?token={token(site, 'a@example.com', 'preferences')}"
        pages["serve/unsubscribe GET"] = request(server, "GET", unsubscribe)[1]
        pages["serve/preferences GET"] = request(server, "GET", preferences)[1]
        pages["serve/preferences POST"] = request(server, "POST", preferences, {"sections": ["papers"]})[1]
        pages["serve/subscribe POST"] = request(
            server, "POST", "/digest/subscribe", {"email": "new@example.com"}
        )[1]
        pages["serve/404"] = request(server, "GET", "/digest/nowhere")[1]
        pages["serve/too long"] = request(server, "GET", "/digest/x?" + "a" * 5000)[1]
        server.drain()
        (mail,) = sorted((root / "maildir" / "new").iterdir())
        pages["confirmation mail"] = parse_mail(mail.read_bytes())
        link = re.search(r"https://\S+", as_text(pages["confirmation mail"])).group(0)
        confirm = link.removeprefix("https://weekly.example.org")
        pages["serve/confirm GET"] = request(server, "GET", confirm)[1]
        pages["serve/confirm POST"] = request(server, "POST", confirm, {})[1]
        pages["serve/unsubscribe POST"] = one_click(server, unsubscribe)[1]
    return pages


def test_an_english_newsletter_has_no_chinese_character_anywhere(tmp_path):
    issue_text = (FIXTURES / "english" / "issues" / "2026-11-05.md").read_text(encoding="utf-8")
    assert not any(is_chinese(ch) for ch in issue_text)
    outputs = every_output(tmp_path, "english")
    assert len(outputs) > 20
    found = {
        where: "".join(sorted({ch for ch in as_text(out) if is_chinese(ch)}))
        for where, out in outputs.items()
    }
    assert {where: chars for where, chars in found.items() if chars} == {}
    # and it reads as English: the catalog's words, the issue's own heading, dates as English writes them
    assert "November 5, 2026" in outputs["preview/email.html"]
    assert "== A few short notes before the sections ==" in outputs["preview/email.txt"]
    assert "Unsubscribe (the link opens a page with one button): " in outputs["preview/email.txt"]
    assert "Subject: [TEST] Weekly Notes (2026-11-05): Faster kernels/Smaller models" in as_text(
        outputs["test copy"]
    )
    assert "Subject: Please confirm your subscription to Weekly Notes" in as_text(
        outputs["confirmation mail"]
    )
    assert "Source: Example News" in outputs["feeds/news.atom.xml"]
    assert "This is a web feed." in outputs["feeds/feed.xsl"]


def visible_text(where: str, text: str | EmailMessage) -> str:
    """What a reader or editor reads of an output: text and titles of pages, not markup, styles or URLs."""
    if not isinstance(text, str):  # a mail: the headers a reader reads, and each part as it is shown
        headers = " ".join(str(text[name] or "") for name in READ_HEADERS)
        parts = [p for p in text.walk() if not p.is_multipart()]
        shown = [visible_text(f"part.{p.get_content_subtype()}", p.get_content()) for p in parts]
        return " ".join([visible_text("headers.txt", headers), *shown])
    if where.endswith((".xml", ".opml")):  # feeds: the HTML of each entry, as a reader shows it
        root = etree.fromstring(text.encode("utf-8"))
        text = " ".join(
            el.text or "" for el in root.iter() if str(el.tag).endswith(("content", "description"))
        )
        where = "entries.html"
    if where.endswith(".js"):  # the archive search: the strings it shows (its index's values), not code
        text = " ".join(re.findall(r'"((?:[^"\\]|\\.)*)"\s*[,}\]]', text))
    if where.endswith(".xsl"):
        text = " ".join(etree.fromstring(text.encode("utf-8")).xpath("//text()[not(ancestor::style)]"))
    elif "<" in text and (where.endswith(".html") or where.startswith(("serve/", "preview page"))):
        doc = lxml_html.fromstring(text)
        for junk in doc.xpath("//style | //script"):
            junk.drop_tree()
        titles = " ".join(doc.xpath("//@title | //@alt | //@aria-label"))
        text = doc.text_content() + " " + titles
    text = re.sub(r"(?:https?|mailto):\S+|\S+@\S+|\S*/\S+", " ", text)  # links, addresses, paths
    return re.sub(r"[\w.-]+\.(?:html|txt|eml|xml|opml|xsl|md)\b", " ", text)  # file names


def ui_words() -> set[str]:
    """The English words of the UI: every word of the en catalog's messages, less names such as RSS."""
    words: set[str] = set()
    for message in messages(po_path("en")):
        if message.id:
            said = " ".join(message.string) if isinstance(message.string, tuple) else message.string
            plain = re.sub(r"<[^>]+>|%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdf]", " ", said)
            words |= {w.lower() for w in re.findall(r"[A-Za-z]{3,}", plain)}
    return words - BRANDS


def test_a_chinese_newsletter_has_no_english_word_of_the_ui(tmp_path):
    issue_text = (FIXTURES / "chinese" / "issues" / "2026-11-05.md").read_text(encoding="utf-8")
    assert not re.search(r"[A-Za-z]{3,}", re.sub(r"\(https://\S+?\)", "", issue_text))
    words = ui_words()
    assert {"unsubscribe", "read", "online", "sections", "preview", "feed", "warning"} <= words
    outputs = every_output(tmp_path, "chinese")
    english = {}
    for where, output in outputs.items():
        seen = {w for w in re.findall(r"[A-Za-z]{3,}", visible_text(where, output)) if w.lower() in words}
        if seen:
            english[where] = sorted(seen)
    assert english == {}
    # and it reads as Chinese
    assert "2026年11月5日" in outputs["preview/email.html"]
    assert "【先是几条热身小新闻】" in outputs["preview/email.txt"]
    assert "Subject: [测试] 简报 (2026-11-05)：新芯片/低比特量化" in as_text(outputs["test copy"])
    assert "这是一个订阅源。" in outputs["feeds/feed.xsl"]


@pytest.mark.parametrize("tag", ["zh-CN", "en", "en-GB"])
def test_the_feed_page_lays_dates_out_as_the_email_writes_them(tag):
    """feed.xsl assembles a date from its numbers with date_pattern: the same words as format_date."""
    from babel.dates import get_month_names

    from digest.i18n import _date_locale, date_pattern

    names = get_month_names("wide", locale=_date_locale(tag))
    for day in (dt.date(2026, 1, 5), dt.date(2026, 11, 1), dt.date(2027, 12, 31)):
        shown = {
            "year": str(day.year),
            "month": str(day.month),
            "day": str(day.day),
            "month_name": names[day.month],
        }
        assembled = "".join(text if kind == "text" else shown[kind] for kind, text in date_pattern(tag))
        assert assembled == format_date(day, tag)
