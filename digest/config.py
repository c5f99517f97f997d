"""Configuration: what the editor sets, loaded once from ``digest.toml`` and validated.

The file is found from ``--config PATH``, else ``$DIGEST_CONFIG``, else
``./digest.toml``. Relative paths in it are relative to the file. Every table is
described by a frozen dataclass below; unknown keys and wrong types are errors
that name the key and the file, so nothing runs on a config that is not right.
Secrets (``DIGEST_SECRET``, ``DIGEST_SMTP_PASSWORD``) never live here: they come
from the environment when they are needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError
from digest.i18n import resolve_language

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_LANGUAGE",
    "DEFAULT_SECTION_SLUGS",
    "DEFAULT_SERVE_PORT",
    "BouncesConfig",
    "Config",
    "DkimConfig",
    "EmailConfig",
    "FeedsConfig",
    "NewsletterConfig",
    "PathsConfig",
    "ReleaseConfig",
    "SendHour",
    "ServeConfig",
    "SiteConfig",
    "ThemeConfig",
    "TransportAddress",
    "contrast_ratio",
    "default_config",
    "find_config_path",
    "load_config",
    "parse_transport",
]

CONFIG_ENV = "DIGEST_CONFIG"
CONFIG_NAME = "digest.toml"

# No built-in section names for any language: each newsletter names its own in [feeds.sections]
# (``digest init`` writes the headings it finds there).
DEFAULT_SECTION_SLUGS: Mapping[str, str] = types.MappingProxyType({})
DEFAULT_LANGUAGE = "en"
DEFAULT_SERVE_PORT = 8470  # clear of 8000/8080 (dev servers), 8025 (Mailpit, smtp-sink), 8888 (Jupyter)

PERMALINK_FIELDS = ("base_url", "stem", "date", "year", "month", "day")


@dataclass(frozen=True)
class SiteConfig:
    title: str = "Newsletter"
    configured_base_url: str = field(default="", metadata={"key": "base_url"})
    language: str = DEFAULT_LANGUAGE
    timezone: ZoneInfo = field(default=ZoneInfo("UTC"), metadata={"convert": "zone"})
    author: str = ""
    email: str = ""
    permalink: str = ""  # empty: the archive page digest writes beside the feeds
    description: str = ""

    @property
    def base_url(self) -> str:
        """Where the newsletter is published; feed entry ids and links are built from it, so never guessed."""
        if not self.configured_base_url:
            raise ConfigError(
                "'site.base_url' is not set: feed ids and links are built from it and must never change; "
                'set it in [site] to where the newsletter is published, e.g. base_url = "https://news.example.com/"'
            )
        return self.configured_base_url


@dataclass(frozen=True)
class PathsConfig:
    issues: Path = field(default=Path("issues"), metadata={"convert": "path"})
    feeds: Path = field(default=Path("feeds"), metadata={"convert": "path"})
    state: Path = field(default=Path("var/state"), metadata={"convert": "path"})
    subscribers: Path = field(default=Path("subscribers.csv"), metadata={"convert": "path"})
    previews: Path = field(default=Path("var/previews"), metadata={"convert": "path"})


@dataclass(frozen=True)
class FeedsConfig:
    limit: int = 20
    sections: Mapping[str, str] = field(
        default_factory=lambda: DEFAULT_SECTION_SLUGS, metadata={"convert": "slugs"}
    )
    tag_authority: str = ""
    stylesheet: bool = True

    @property
    def slugs(self) -> frozenset[str]:
        """The section slugs a feed (and a subscriber's choice) may name."""
        return frozenset(self.sections.values())

    @property
    def section_names(self) -> dict[str, str]:
        """slug -> the section's name; when two names share a slug, the last one listed (the editor's own)."""
        return {slug: name for name, slug in self.sections.items()}


@dataclass(frozen=True)
class NewsletterConfig:
    """How to read the newsletter's issues: where dates come from, what each heading holds.

    Headings are matched by name, case-insensitively. ``item_sections`` are read for
    items even when they have none (an empty one is a warning); ``prose_sections`` are
    shown as written, never taken apart into items; ``skip_sections`` are left out of
    every output (a jobs board, "how to contribute").
    """

    date_from: str = field(default="content", metadata={"choices": ("content", "git")})
    item_sections: tuple[str, ...] = field(default=(), metadata={"convert": "names"})
    prose_sections: tuple[str, ...] = field(default=(), metadata={"convert": "names"})
    skip_sections: tuple[str, ...] = field(default=(), metadata={"convert": "names"})


@dataclass(frozen=True)
class DkimConfig:
    selector: str
    domain: str
    key_file: Path = field(metadata={"convert": "path"})


@dataclass(frozen=True)
class EmailConfig:
    sender: str = field(default="", metadata={"key": "from"})
    subject: str = "{{ issue.full_title }}"
    transport: str = "maildir:var/maildir"
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    base_url: str = ""
    templates: Path | None = field(default=None, metadata={"convert": "path"})
    reply_to: str = ""
    concurrency: int = 8
    processes: int = 0  # 0: one per core (up to 4; less one for a local relay) for large sends, else one
    rate: float = 0.0
    max_per_connection: int = 100
    max_attempts: int = 5
    retry_base: float = 1.0
    bounce_after: int = 3
    max_errors: int = 5
    timeout: float = 30.0
    starttls: str = "auto"
    username: str = ""
    ca_file: Path | None = field(default=None, metadata={"convert": "path"})
    max_html_bytes: int = 100_000
    return_path: str = ""  # the envelope sender; "" is the From address; {token}: VERP per message
    dkim: DkimConfig | None = None


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEND_AT = re.compile(
    r"\s*(?:(?P<days>[A-Za-z]{3}(?:\s*,\s*[A-Za-z]{3})*)\s+)?(?P<h>\d{1,2}):(?P<m>\d{2})\s*"
)


@dataclass(frozen=True)
class SendHour:
    """``[release] send_at``: a time of day in the site's timezone, on some weekdays (every day if none)."""

    time: dt.time
    weekdays: frozenset[int] = frozenset()  # 0 is Monday, as dt.date.weekday()

    @classmethod
    def parse(cls, text: str) -> SendHour | None:
        """``"08:00"`` or ``"Mon,Thu 08:00"``; None when it is not spelled so."""
        match = _SEND_AT.fullmatch(text)
        if not match or int(match["h"]) > 23 or int(match["m"]) > 59:
            return None
        names = [n.strip().lower() for n in (match["days"] or "").split(",") if n.strip()]
        if any(name not in WEEKDAYS for name in names):
            return None
        return cls(dt.time(int(match["h"]), int(match["m"])), frozenset(WEEKDAYS.index(n) for n in names))


@dataclass(frozen=True)
class ReleaseConfig:
    mode: str = "manual"
    since: dt.date | None = None
    settle_minutes: int = 30
    send_at: SendHour | None = field(default=None, metadata={"convert": "send_at"})


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_SERVE_PORT
    subscribe_per_hour: int = 5
    confirm_window_minutes: int = 10
    confirm_ttl_hours: int = 48
    max_body_bytes: int = 4096
    trust_proxy: bool = False  # take the client address from X-Forwarded-For (set by your proxy)


@dataclass(frozen=True)
class BouncesConfig:
    """Where mail that comes back is read (``maildir:PATH`` or ``imaps://user@host/FOLDER``)."""

    mailbox: str = ""  # "": no mailbox is read
    soft_limit: int = 5  # temporary failures within soft_days that mark an address bounced
    soft_days: int = 30
    folder: str = ""  # IMAP: move handled messages here (else they are only flagged \Seen)
    ca_file: Path | None = field(default=None, metadata={"convert": "path"})  # IMAP server's CA
    ses_topics: str = ""  # the SNS topic ARNs (spaces between) whose SES notifications are believed


@dataclass(frozen=True)
class ThemeConfig:
    """``[theme]``: what makes the email and the archive recognisably this newsletter's own.

    ``accent`` colours links on light backgrounds and ``accent_dark`` on dark ones;
    both are checked for WCAG AA contrast when the config is loaded. ``templates``
    is a folder of templates that extend digest's by block (``[email] templates`` if unset).
    """

    name: str = ""  # the masthead's name; "" is [site] title
    logo: str = ""  # an https URL of the logo; "" shows the name alone
    logo_width: int = 120  # CSS pixels as shown (supply an image twice as wide for sharp screens)
    logo_alt: str = ""  # "" is the name
    accent: str = "#0b57d0"
    accent_dark: str = "#7cb3ff"
    view_online: bool = True  # a "view online" line at the very top of the email
    address: str = ""  # the sender's postal address (CAN-SPAM asks it of commercial mail)
    reason: str = ""  # why the reader gets this; "" is digest's sentence naming their address
    templates: Path | None = field(default=None, metadata={"convert": "path"})


# The backgrounds text sits on: the page and card in light mode, the page and card in dark mode.
THEME_BACKGROUNDS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {"accent": ("#ffffff", "#f3f4f6"), "accent_dark": ("#111317", "#1c1f24")}
)
WCAG_AA_TEXT = 4.5


def contrast_ratio(foreground: str, background: str) -> float:
    """The WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def check_theme(theme: ThemeConfig, reader: _Reader) -> ThemeConfig:
    """Colours spelled ``#rgb``/``#rrggbb`` and readable on every background; a logo at an http(s) URL."""
    colours: dict[str, str] = {}
    for key, backgrounds in THEME_BACKGROUNDS.items():
        value = getattr(theme, key).strip().lower()
        if re.fullmatch(r"#[0-9a-f]{3}", value):
            value = "#" + "".join(c * 2 for c in value[1:])
        if not re.fullmatch(r"#[0-9a-f]{6}", value):
            reader.fail(f"'theme.{key}' must be a colour such as \"#0b57d0\", not {getattr(theme, key)!r}")
        for background in backgrounds:
            ratio = contrast_ratio(value, background)
            if ratio < WCAG_AA_TEXT:
                reader.fail(
                    f"'theme.{key}' = {value} has contrast {ratio:.1f}:1 on {background}; "
                    f"WCAG AA needs {WCAG_AA_TEXT}:1 for text"
                )
        colours[key] = value
    if theme.logo:
        _check_url(reader, "theme.logo", theme.logo)
    if theme.templates is not None and not theme.templates.is_dir():
        reader.fail(f"'theme.templates' is not a folder: {theme.templates}")
    if not 16 <= theme.logo_width <= 600:
        reader.fail("'theme.logo_width' must be 16 to 600 (CSS pixels)")
    for key in ("name", "logo_alt", "reason"):
        if "\n" in getattr(theme, key) or "\r" in getattr(theme, key):
            reader.fail(f"'theme.{key}' must be one line")
    return dataclasses.replace(theme, **colours)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; ``path`` is the file it came from."""

    path: Path
    site: SiteConfig = field(default_factory=SiteConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    newsletter: NewsletterConfig = field(default_factory=NewsletterConfig)
    bounces: BouncesConfig = field(default_factory=BouncesConfig)
    theme: ThemeConfig = field(default_factory=ThemeConfig)

    @property
    def root(self) -> Path:
        return self.path.parent


def _table_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "path"}


_TABLES = _table_types()


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the config is: the explicit path, else ``$DIGEST_CONFIG``, else ``./digest.toml``.

    Returns None only when nothing was asked for and ``./digest.toml`` does not exist.
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path.cwd() / CONFIG_NAME
    return local if local.exists() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config; raise :class:`ConfigError` naming the file and key."""
    found = find_config_path(path)
    if found is None:
        raise ConfigError(
            f"no {CONFIG_NAME} in {Path.cwd()}; run `digest init` to write one from your issues, "
            f"or pass --config PATH or set {CONFIG_ENV}"
        )
    try:
        raw = found.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path=found) from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError("config is not UTF-8", path=found) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=found) from None
    config = config_from_mapping(data, found.resolve())
    _check_secret_file(config)
    return config


SECRET_ENV = "DIGEST_SECRET"  # the signing key for links and tokens (see digest.mail.tokens)
SECRET_FILE = "secret.key"  # the generated signing key, when DIGEST_SECRET is not set


def _check_secret_file(config: Config) -> None:
    """A signing key others can read lets them forge unsubscribe and confirmation links."""
    if os.environ.get(SECRET_ENV) is not None:
        return
    path = config.paths.state / SECRET_FILE
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # not made yet (it is created 0600), or unreadable: the command that needs it says so
    if mode & 0o077:
        raise ConfigError(
            f"the signing key is readable by group or others (mode {mode & 0o777:o}), so anyone on "
            f"this machine could forge links; run: chmod 600 {path}",
            path=path,
        )


def default_config(base: Path | None = None) -> Config:
    """The configuration used by ``parse``/``lint`` when no config file exists."""
    return config_from_mapping({}, (base or Path.cwd()) / CONFIG_NAME)


def config_from_mapping(data: Mapping[str, object], path: Path) -> Config:
    """Validate an already-parsed TOML mapping (tests build configs this way)."""
    reader = _Reader(path)
    unknown = sorted(set(data) - set(_TABLES))
    if unknown:
        reader.fail(f"unknown table [{unknown[0]}] (known: {', '.join(_TABLES)})")
    built: dict[str, object] = {}
    for name, cls in _TABLES.items():
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            reader.fail(f"[{name}] must be a table")
        built[name] = reader.build(cls, table, name)
    built["theme"] = check_theme(built["theme"], reader)  # type: ignore[arg-type]
    config = Config(path=path, **built)  # type: ignore[arg-type]
    _check(config, reader)
    return config


class _Reader:
    """Builds one dataclass from one TOML table, checking keys and types."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, message: str) -> typing.NoReturn:
        raise ConfigError(message, path=self.path)

    def build(self, cls: type, table: Mapping[str, object], where: str) -> object:
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}
        for key in table:
            if key not in fields:
                known = ", ".join(fields)
                self.fail(f"unknown key '{key}' in [{where}] (known: {known})")
        values: dict[str, object] = {}
        for key, fld in fields.items():
            if key not in table:
                if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                    self.fail(f"[{where}] needs '{key}'")
                if fld.metadata.get("convert") == "path" and isinstance(fld.default, Path):
                    values[fld.name] = self.path.parent / fld.default
                continue
            values[fld.name] = self.value(table[key], hints[fld.name], fld, f"{where}.{key}")
        return cls(**values)

    def value(self, raw: object, hint: object, fld: dataclasses.Field[object], key: str) -> object:
        convert = fld.metadata.get("convert")
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
        if optional:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if convert == "send_at":
            hour = SendHour.parse(self.expect(raw, str, key))
            if hour is None:
                self.fail(f'\'{key}\' must be a time such as "08:00" or "Mon,Thu 08:00", not {raw!r}')
            return hour
        if dataclasses.is_dataclass(hint):
            if not isinstance(raw, Mapping):
                self.fail(f"[{key}] must be a table")
            return self.build(hint, raw, key)  # type: ignore[arg-type]
        if convert == "path":
            return self.path.parent / self.expect(raw, str, key)
        if convert == "zone":
            name = self.expect(raw, str, key)
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                self.fail(f"'{key}' = {name!r} is not a timezone name such as 'Asia/Shanghai'")
        if convert == "names":
            names = self.expect(raw, list, key)
            if not all(isinstance(name, str) and name.strip() for name in names):
                self.fail(f"'{key}' must be a list of heading names such as [\"Jobs\"]")
            return tuple(name.strip() for name in names)
        if "choices" in fld.metadata and raw not in fld.metadata["choices"]:
            options = " or ".join(f'"{c}"' for c in fld.metadata["choices"])
            self.fail(f"'{key}' must be {options}, not {raw!r}")
        if convert == "slugs":
            table = self.expect(raw, Mapping, key)
            slugs: dict[str, str] = {}
            for name, slug in table.items():
                if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", slug):
                    self.fail(f"'{key}.{name}' must be a lowercase ASCII slug like 'papers'")
                slugs[name] = slug
            return types.MappingProxyType(slugs)
        if hint is dt.date:
            if isinstance(raw, dt.datetime):
                return raw.date()
            if isinstance(raw, str):
                try:
                    return dt.date.fromisoformat(raw)
                except ValueError:
                    pass
            return self.expect(raw, dt.date, key)
        if hint is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                self.fail(f"'{key}' must be a number, not {_kind(raw)}")
            return float(raw)
        return self.expect(raw, hint, key)  # type: ignore[arg-type]

    def expect(self, raw: object, kind: type, key: str) -> typing.Any:
        ok = isinstance(raw, kind) and not (kind is int and isinstance(raw, bool))
        if not ok:
            self.fail(f"'{key}' must be {_article(kind)}, not {_kind(raw)}")
        return raw


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _article(kind: type) -> str:
    names = {int: "an integer", str: "a string", bool: "a boolean", dt.date: "a date (YYYY-MM-DD)"}
    return names.get(kind, "a table" if kind is Mapping else f"a {kind.__name__}")


def _check_url(reader: _Reader, key: str, value: str, *, folder: str | None = None, hint: str = "") -> None:
    """An http(s) URL; with ``folder`` (the reason, or ""), one that ends with '/' for paths under it."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:  # an unclosed '[' of an IPv6 address, say
        reader.fail(f"'{key}' is not a URL ({exc})")
    if parts.scheme not in ("http", "https"):
        reader.fail(f"'{key}' must be an http(s) URL{hint}")
    if folder is not None and not value.endswith("/"):
        reader.fail(f"'{key}' must end with '/'{folder}")


# key -> (the least value allowed, how to say so): no size, count or duration may be negative, and
# only those where 0 means something ("no limit", "automatic", "at once") may be 0.
LIMITS: Mapping[str, tuple[float, str]] = types.MappingProxyType(
    {
        "feeds.limit": (1, "at least 1"),
        "release.settle_minutes": (0, "0 (mail at once) or more"),
        **{
            f"email.{key}": (1, "at least 1")
            for key in ("concurrency", "max_per_connection", "max_attempts", "bounce_after", "max_errors")
        },
        "email.processes": (0, "0 (automatic) or more"),
        "email.rate": (0, "0 (no limit) or more"),
        "email.timeout": (0.001, "a positive number of seconds"),
        "email.retry_base": (0.001, "a positive number of seconds"),
        "email.max_html_bytes": (1, "a positive number of bytes"),
        "serve.port": (0, "a port number (0 picks a free one)"),
        "serve.subscribe_per_hour": (1, "at least 1"),
        "serve.confirm_window_minutes": (1, "a positive number of minutes"),
        "serve.confirm_ttl_hours": (1, "a positive number of hours"),
        "serve.max_body_bytes": (1, "a positive number of bytes"),
    }
)


def _check_transport(reader: _Reader, transport: str) -> None:
    """A transport URL that parses, with no credentials in it (config files end up in git)."""
    scheme, _, rest = transport.partition("://")
    if scheme in ("smtp", "smtps") and "@" in rest:  # smtp://user:password@host, however spelled
        reader.fail(
            "'email.transport' must not hold credentials: put the user name in [email] username "
            "and the password in the environment variable DIGEST_SMTP_PASSWORD"
        )
    try:
        parse_transport(transport)
    except ValueError:
        reader.fail("'email.transport' must look like smtp://host:port, smtps://host:port or maildir:PATH")


def _check(config: Config, reader: _Reader) -> None:
    """Cross-field checks: values each of the right type but not right together."""
    site, email, release = config.site, config.email, config.release
    if site.configured_base_url:
        _check_url(reader, "site.base_url", site.configured_base_url, folder="")
    if email.base_url:
        reason = " (digest serve's pages are found under it)"
        _check_url(reader, "email.base_url", email.base_url, folder=reason)
    if email.base_url.startswith("http://") and not email.unsubscribe_url:
        reader.fail(
            "'email.base_url' must be https: every message's one-click List-Unsubscribe link comes from it, "
            "and it is only honoured over https (Gmail and Yahoo require it of bulk senders); "
            "or set email.unsubscribe_url to an https URL"
        )
    if email.unsubscribe_url:
        hint = " (a mailto: address goes in unsubscribe_mailto)"
        _check_url(reader, "email.unsubscribe_url", email.unsubscribe_url, hint=hint)
        if urlsplit(email.unsubscribe_url).scheme != "https":
            reader.fail(
                "'email.unsubscribe_url' must be https: RFC 8058 one-click unsubscribe is only honoured "
                "over https (or leave it out and set unsubscribe_mailto alone)"
            )
    try:
        site.permalink.format(**dict.fromkeys(PERMALINK_FIELDS, ""))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        known = ", ".join("{" + f + "}" for f in PERMALINK_FIELDS)
        reader.fail(f"'site.permalink' has an unknown field {exc} (known: {known})")
    try:
        resolve_language(site.language)  # zh, zh-Hans -> zh-CN; en-GB -> en
    except LookupError as exc:
        reader.fail(f"'site.language': {exc}")
    if release.mode not in ("manual", "auto"):
        reader.fail('\'release.mode\' must be "manual" or "auto"')
    if email.starttls not in ("auto", "required", "off"):
        reader.fail('\'email.starttls\' must be "auto", "required" or "off"')
    for key, (least, reason) in LIMITS.items():
        table, name = key.split(".")
        if getattr(getattr(config, table), name) < least:
            reader.fail(f"'{key}' must be {reason}")
    if config.serve.port > 65535:
        reader.fail("'serve.port' must be a port number (0 picks a free one)")
    _check_transport(reader, email.transport)
    _check_bounces(config, reader)
    for key in ("sender", "subject", "unsubscribe_url", "unsubscribe_mailto", "reply_to", "return_path"):
        value = getattr(email, key)
        if "\r" in value or "\n" in value:
            name = "from" if key == "sender" else key
            reader.fail(f"'email.{name}' must be one line (no CR/LF)")


def _check_bounces(config: Config, reader: _Reader) -> None:
    """``[email] return_path`` and ``[bounces]``: an address with at most a {token}; a mailbox URL."""
    return_path = config.email.return_path
    if return_path and not (
        return_path.isascii()  # it goes into MAIL FROM as it is
        and re.fullmatch(r"[^@\s<>{}]*(\{token\}[^@\s<>{}]*)?@[A-Za-z0-9.-]+\.[A-Za-z]+", return_path)
    ):
        reader.fail("'email.return_path' must be an address such as bounces+{token}@example.org")
    bounces = config.bounces
    if bounces.mailbox and not re.fullmatch(r"maildir:.+|imaps://[^@/\s]+@[^/\s]+/[^\s]*", bounces.mailbox):
        reader.fail("'bounces.mailbox' must look like maildir:PATH or imaps://user@host/INBOX")
    if bounces.mailbox.startswith("imaps:"):
        try:
            urlsplit(bounces.mailbox).port  # noqa: B018 (an unclosed '[' or a port that is not a number)
        except ValueError as exc:
            reader.fail(f"'bounces.mailbox' is not a URL ({exc})")
    if bounces.soft_limit < 1 or bounces.soft_days < 1:
        reader.fail("'bounces.soft_limit' and 'bounces.soft_days' must be at least 1")


@dataclass(frozen=True)
class TransportAddress:
    """Where mail goes: an SMTP server, or a local Maildir (for previews, tests, other tools)."""

    scheme: str  # "smtp", "smtps" or "maildir"
    host: str = ""
    port: int = 0
    path: str = ""  # the Maildir, as written (relative to the config file's folder)


def parse_transport(value: str) -> TransportAddress:
    """``smtp://host[:port]``, ``smtps://host[:port]`` or ``maildir:PATH``; ValueError otherwise."""
    if value.startswith("maildir:"):
        path = value[len("maildir:") :].strip()
        if not path:
            raise ValueError("maildir: needs a path")
        return TransportAddress("maildir", path=path)
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("not smtp://host or smtps://host")
    port = parts.port or (465 if parts.scheme == "smtps" else 587)  # a bad port raises ValueError
    return TransportAddress(parts.scheme, host=parts.hostname, port=port)
