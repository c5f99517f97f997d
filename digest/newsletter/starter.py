"""``digest init``: a first ``digest.toml`` written from the newsletter's own issues, and nothing overwritten.

The config is rendered from a :class:`~digest.newsletter.profile.Profile` (or, for a
newsletter with no issue yet, with one example issue beside it), validated by
the same loader every command uses before a byte is written, and created with
``O_EXCL``: an existing file is never replaced. ``.gitignore`` gets the lines for
digest's caches (added to, never rewritten).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from digest.config import config_from_mapping
from digest.errors import ConfigError
from digest.i18n import resolve_language
from digest.newsletter.profile import Profile, find_issue_folder, profile_issues

__all__ = ["GITIGNORE_LINES", "PLACEHOLDER_URL", "InitReport", "config_text", "init_newsletter"]

PLACEHOLDER_URL = "https://newsletter.invalid/"  # .invalid never resolves (RFC 2606): clearly not yet set
SUBSCRIBERS_HEADER = "email,name,sections,status,since\n"
GITIGNORE_LINES = (
    "# digest: caches and local output, rebuilt by every run. Keep and commit subscribers.csv,",
    "# its .subscribers.csv.journal and state/ (what was published and mailed to whom).",
    "/var/",
    "/feeds/",
    ".*.index",
    ".*.index.*.tmp",
    ".*.lock",
    "/state/**/*.lock",
    "/state/secret.key",
)
# Where a site generator keeps its URL: Jekyll, Hugo, Zola, Pelican.
_SITE_CONFIGS = ("_config.yml", "hugo.toml", "config.toml", "config.yaml", "publishconf.py", "pelicanconf.py")
_SITE_URL = re.compile(
    r"""^\s*(?:url|baseURL|baseurl|base_url|SITEURL)\s*[:=]\s*["']?(https?://[^"'\s]+)""", re.M
)
_JEKYLL_BASE = re.compile(r"""^\s*baseurl\s*:\s*["']?(/[^"'\s]*)""", re.M)
EXAMPLE_ISSUE = """\
---
title: "{title} #1"
date: {date}
---

A first issue, written by `digest init` to show how digest reads one: a title, a date, and
sections of linked items. Replace it with your own.

## News

- [digest's documentation](https://github.com/digest-newsletter/digest): how an issue becomes
  feeds, an archive and an email.
"""


@dataclass(frozen=True)
class InitReport:
    """What ``digest init`` did, for the editor to read."""

    config: Path
    lines: tuple[str, ...]


def init_newsletter(
    config_path: Path,
    folder: Path | None = None,
    *,
    title: str = "",
    base_url: str = "",
    language: str = "",
    today: dt.date | None = None,
) -> InitReport:
    """Write ``config_path`` (and what it names) for the issues in ``folder``, found if not given."""
    today = today or dt.datetime.now(dt.UTC).date()  # the written config's timezone
    root = config_path.parent
    if config_path.exists():
        raise ConfigError(
            "already exists; digest init never overwrites a file (move it aside to start again)",
            path=config_path,
        )
    if folder is not None and not folder.is_dir():
        raise ConfigError("is not a folder of issues", path=folder)
    found = folder or find_issue_folder(root)
    lines: list[str] = []
    profile = None
    if found is not None:
        profile = profile_issues(found)
        lines.append(_found(profile))
    issues = found or root / "issues"
    base = base_url or _site_url(root) or PLACEHOLDER_URL
    text = config_text(profile, issues, root, title=title, base_url=base, language=language, today=today)
    _validate(text, config_path)
    if profile is None or profile.markdown == 0:
        example = issues / f"{today.isoformat()}.md"
        if _create(example, EXAMPLE_ISSUE.format(title=title or _name(root), date=today.isoformat())):
            lines.append(f"wrote {example} (an example issue)")
    _create(config_path, text)
    lines.append(f"wrote {config_path}")
    subscribers = root / "subscribers.csv"
    lines.append(
        f"wrote {subscribers} (empty)" if _create(subscribers, SUBSCRIBERS_HEADER) else f"kept {subscribers}"
    )
    added = _add_gitignore(root / ".gitignore")
    lines.append(
        f"added {added} line(s) to {root / '.gitignore'}" if added else ".gitignore already ignores them"
    )
    if base == PLACEHOLDER_URL:
        lines.append(
            f"before you publish feeds, set [site] base_url (now {PLACEHOLDER_URL}): "
            "feed ids are built from it"
        )
    lines.append("next: digest run    # feeds and previews; mails nothing until you approve an issue")
    return InitReport(config_path, tuple(lines))


def config_text(
    profile: Profile | None,
    issues: Path,
    root: Path,
    *,
    title: str,
    base_url: str,
    language: str,
    today: dt.date,
) -> str:
    """The commented ``digest.toml`` for the profile's newsletter."""
    tag, language_note = _language(profile, language)
    name = title or (profile.title if profile else "") or _name(root)
    host = urlsplit(base_url).hostname or "newsletter.invalid"
    sections = profile.sections if profile and profile.files else (("News", "news"),)
    date_from = profile.date_from if profile else "content"
    source = f"{profile.files} issue file(s) in {issues}" if profile else f"the example issue in {issues}"
    section_lines = "\n".join(f"{_q(heading)} = {_q(slug)}" for heading, slug in sections)
    return f"""\
# digest's configuration for {name}, written by `digest init` from {source}.
# Relative paths are relative to this file. Secrets never go here: DIGEST_SECRET and
# DIGEST_SMTP_PASSWORD come from the environment. Every key is in the reference:
# https://digest-newsletter.github.io/digest/reference/config/

[site]
title = {_q(name)}
# Where the newsletter is published. Feed entry ids are built from it and must never change,
# so set it before the feeds are published{_placeholder_note(base_url)}.
base_url = {_q(base_url)}
# The issues' language: dates, feed titles and the words digest adds.{language_note}
language = {_q(tag)}
# The timezone an issue's date is read in, e.g. "Europe/Berlin".
timezone = "UTC"

[paths]
issues = {_q(_relative(issues, root))}
feeds = "feeds"                   # rebuilt on every run (ignored by git)
state = "state"                   # what was published and mailed: data, commit it
subscribers = "subscribers.csv"   # the list; commit it with .subscribers.csv.journal beside it
previews = "var/previews"         # rebuilt on demand (ignored by git)

[newsletter]
# Where an issue's date comes from: "content" (front matter, title or file name) or "git"
# (the file's first commit), for issues that carry no date.
date_from = {_q(date_from)}

# Section heading -> feed slug (lowercase ASCII). Each section gets its own feed and readers
# may choose sections by slug (digest subscribers add ADDRESS --sections SLUG,SLUG).
# Headings found in the issues; a heading not listed here is linted as unknown-section.
[feeds.sections]
{section_lines}

[email]
from = {_q(f"{name} <newsletter@{host}>")}
subject = "{{{{ issue.full_title }}}}"
# A local Maildir for a first dry run: nothing leaves this machine. For real mail:
# transport = "smtp://smtp.example.com:587" with [email] username and DIGEST_SMTP_PASSWORD.
transport = "maildir:var/maildir"
unsubscribe_mailto = {_q(f"unsubscribe@{host}")}

[release]
# "manual": an issue is mailed after `digest approve ISSUE`; "auto": once it has settled.
mode = "manual"
# Issues dated before this day are the archive: in the feeds, never mailed.
since = {today.isoformat()}
"""


def _placeholder_note(base_url: str) -> str:
    return " (no site config said where: this is a placeholder)" if base_url == PLACEHOLDER_URL else ""


def _language(profile: Profile | None, asked: str) -> tuple[str, str]:
    """The tag to write and how it was chosen; a language without a catalog writes English words."""
    if asked:
        return asked, ""
    detected = profile.language if profile and profile.files else "en"
    try:
        resolve_language(detected)
    except LookupError:
        return "en", f"\n# (The issues read as {detected!r}, which digest has no words for yet: English.)"
    return detected, " Read from the issues' text." if profile and profile.files else ""


def _validate(text: str, config_path: Path) -> None:
    """The written config must load as it is: a config error now, not on the first `digest run`."""
    try:
        config_from_mapping(tomllib.loads(text), config_path)
    except tomllib.TOMLDecodeError as exc:  # a heading that TOML cannot hold
        raise ConfigError(f"cannot write a valid config: {exc}", path=config_path) from None


def _create(path: Path, text: str) -> bool:
    """Write a new file; False (and nothing written) when it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return True


def _add_gitignore(path: Path) -> int:
    """Append the cache lines ``path`` lacks; the lines it has are left as they are."""
    present = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    missing = [line for line in GITIGNORE_LINES if line.startswith("#") or line not in present]
    if all(line.startswith("#") for line in missing):
        return 0
    lead = "\n" if present and present[-1].strip() else ""
    with path.open("a", encoding="utf-8", newline="\n") as handle:
        handle.write(lead + "\n".join(missing) + "\n")
    return sum(not line.startswith("#") for line in missing)


def _site_url(root: Path) -> str:
    """The site's URL from a Jekyll, Hugo, Zola or Pelican config beside the issues, if one says it."""
    for name in _SITE_CONFIGS:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        match = _SITE_URL.search(text)
        if match:
            url = match[1].rstrip("/")
            base = _JEKYLL_BASE.search(text) if name == "_config.yml" else None
            return f"{url}{base[1].rstrip('/') if base else ''}/"
    return ""


def _found(profile: Profile) -> str:
    if not profile.files:
        return (
            f"found no issue file directly in {profile.folder} ({profile.markdown} markdown file(s) in its "
            "subfolders); [paths] issues names the folder whose files are the issues"
        )
    dates = "their first commit" if profile.date_from == "git" else "their text"
    return (
        f"read {profile.files} issue file(s) in {profile.folder}: language {profile.language}, "
        f"dates from {dates}, {len(profile.sections)} section(s)"
    )


def _name(root: Path) -> str:
    return root.resolve().name.replace("-", " ").replace("_", " ").title() or "Newsletter"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        return path.resolve().as_posix()


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)
