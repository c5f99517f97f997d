"""Markdown to safe HTML, the one way every output gets HTML from an issue.

Issues are written by people and pasted from WeChat, so their markdown carries
raw HTML, images that only load inside WeChat, and bare URLs glued to Chinese
punctuation. Everything goes through :func:`markdown_to_html` (CommonMark, a
newline is a line break, CJK-aware autolinks) and then :func:`sanitize_html`
(an allowlist: no script, no event handlers, no ``javascript:`` URLs).
"""

from __future__ import annotations

import functools
import html
import itertools
import re
from collections.abc import Iterator, Mapping
from urllib.parse import unquote, urljoin, urlsplit

__all__ = [
    "C0_CONTROLS",
    "SAFE_SCHEMES",
    "UNSAFE_SCHEMES",
    "absolute_url",
    "absolutize_links",
    "find_urls",
    "hard_wrapped",
    "html_to_text",
    "inline_markdown_to_html",
    "is_safe_url",
    "markdown_links",
    "markdown_to_html",
    "normalize_link",
    "sanitize_html",
    "strip_xml_illegal",
]

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# Schemes that run code or smuggle content in a link; every other scheme (irc:, xmpp:, tel:, ...) is a link.
UNSAFE_SCHEMES = frozenset(
    {
        "javascript",
        "vbscript",
        "livescript",
        "mocha",
        "jscript",
        "data",
        "blob",
        "filesystem",
        "file",
        "about",
    }
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_HREF_SCHEMES = re.compile(r"""\b(?:href|src)\s*=\s*["']?\s*([A-Za-z][A-Za-z0-9+.-]*):""")

ALLOWED_TAGS = frozenset(
    {
        "a", "b", "blockquote", "br", "code", "del", "em", "h3", "h4", "h5", "h6", "hr",
        "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td",
        "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "td": {"align"}, "th": {"align"}}

# A URL ends at whitespace, quotes, angle brackets, or any CJK character or
# full-width punctuation: editors glue "（https://x.org/），" into running text.
_URL_RE = re.compile(
    r"https?://[^\s<>\[\]\"'`\u00a0\u2000-\u206f\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]+"
)
_SENTENCE_ENDS = frozenset("。！？：；")
_WORD_END = re.compile(r"[A-Za-z0-9,]")
_CONTINUES = re.compile(r"[a-z_`(\[]")
_BLOCK_START = re.compile(r"^(?:[-*+>#|]|\d{1,3}[.)、]|```|~~~|<|\{%|\[[^\]]*\]:)")
_WIDE_CHAR = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_TRAILING_PUNCT = ".,;:!?*_~'\""
C0_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f"  # a character class body: C0 controls but tab, LF and CR
_XML_ILLEGAL = re.compile(f"[{C0_CONTROLS}\ud800-\udfff\ufffe\uffff]")
_HREF_RE = re.compile(r'(<a\b[^>]*?\bhref=")([^"]*)(")')
_TAG_RE = re.compile(r"<[^>]+>")
_LINK_RE = re.compile(r'<a\b[^>]*?\bhref="([^"]*)"[^>]*>(.*?)</a>', re.S)
_BLOCK_END_RE = re.compile(r"</(p|li|h[3-6]|blockquote|tr|pre)>|<br\s*/?>", re.I)


def find_urls(text: str) -> Iterator[tuple[int, int, str]]:
    """Yield (start, end, url) for every http(s) URL in plain text, trailing punctuation trimmed."""
    for match in _URL_RE.finditer(text):
        url = match.group(0)
        while url and (url[-1] in _TRAILING_PUNCT or (url[-1] == ")" and url.count("(") < url.count(")"))):
            url = url[:-1]
        if len(url) > len("https://"):
            yield match.start(), match.start() + len(url), url


def is_safe_url(url: str) -> bool:
    """False for javascript:, data:, vbscript: and their kind; any other scheme, or none, is a link."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme == "" or (scheme not in UNSAFE_SCHEMES and _SCHEME.fullmatch(scheme) is not None)


@functools.cache
def _renderer(breaks: bool = False):  # type: ignore[no-untyped-def]
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "breaks": breaks}).enable(["strikethrough", "table"])
    md.core.ruler.push("cjk_autolink", _autolink_rule)
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("softbreak", _soft_break)
    return md


def _soft_break(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    """A line break in a paragraph: a wrap (a space, nothing between CJK) or a break the writer meant.

    In a wrapped document it is a wrap, but a CJK line ended on a full stop or colon was
    ended on purpose. In a document of long lines (``breaks``) each line ends where its
    writer ended it, unless a long line stops mid-sentence (a word, then a lowercase word).
    """
    text_before = tokens[idx - 1].content if idx > 0 else ""
    before, after = text_before[-1:], _next_text(tokens, idx)[:1]
    if options.breaks:
        mid_sentence = _WORD_END.match(before) and _CONTINUES.match(after)
        return "\n" if mid_sentence and _line_width(tokens, idx) >= 60 else "<br>\n"
    if not (_WIDE_CHAR.match(before) and _WIDE_CHAR.match(after)):
        return "\n"
    return "<br>\n" if text_before.rstrip("）」』”’")[-1:] in _SENTENCE_ENDS else ""


def _next_text(tokens, idx) -> str:  # type: ignore[no-untyped-def]
    """The text right after a line break (a link or code span counts as text)."""
    for token in tokens[idx + 1 :]:
        if token.type in ("softbreak", "hardbreak"):
            return ""
        if token.content:
            return str(token.content)
    return ""


def _line_width(tokens, idx) -> int:  # type: ignore[no-untyped-def]
    """How long the line that ends at this line break is, in characters."""
    width = 0
    for token in reversed(tokens[:idx]):
        if token.type in ("softbreak", "hardbreak"):
            break
        width += len(token.content or "")
    return width


def _autolink_rule(state) -> None:  # type: ignore[no-untyped-def]
    """Turn bare URLs in text into links, stopping at CJK text and full-width punctuation."""
    from markdown_it.token import Token

    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        depth = 0
        for token in block.children:
            if token.type == "link_open":
                depth += 1
            elif token.type == "link_close":
                depth -= 1
            if token.type != "text" or depth > 0 or "http" not in token.content:
                children.append(token)
                continue
            pos = 0
            for start, end, url in find_urls(token.content):
                if start > pos:
                    children.append(_text_token(token.content[pos:start]))
                link = Token("link_open", "a", 1)
                link.attrs = {"href": url}
                children.extend([link, _text_token(url), Token("link_close", "a", -1)])
                pos = end
            if pos < len(token.content):
                children.append(_text_token(token.content[pos:]))
        block.children = children


def _text_token(content: str):  # type: ignore[no-untyped-def]
    from markdown_it.token import Token

    token = Token("text", "", 0)
    token.content = content
    return token


def _image_as_link(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    """Images pasted from WeChat do not load outside it: show a link to the picture instead.

    The link shows the alt text, else the picture's file name: no words of digest's own,
    so it reads the same in any language.
    """
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    name = unquote(urlsplit(src).path.rstrip("/").rsplit("/", 1)[-1]) if src else ""
    alt = html.escape(token.content or name or src)
    return f'<a href="{html.escape(src)}">[🖼 {alt}]</a>'


_HTML_HREF = re.compile(r"""\bhref\s*=\s*["']?\s*(https?://[^"'\s>]+)""", re.I)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)


@functools.cache
def _link_reader():  # type: ignore[no-untyped-def]
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["strikethrough", "table"])


def normalize_link(url: str) -> str:
    """A URL as markdown links carry it in HTML (non-ASCII text percent-encoded, IDNA hosts)."""
    return str(_link_reader().normalizeLink(url.strip()))


def hard_wrapped(lines: list[str]) -> bool:
    """Whether a line break in the document's prose is a wrap (a space), as CommonMark reads it.

    It is, unless the lines that run on into the next are mostly long (the usual one, the
    80th percentile, over 120 columns, CJK counted double): such a writer does not wrap,
    and ends each line where the sentence or the point ends.
    """
    widths = []
    for line, following in itertools.pairwise(lines):
        text, after = line.strip(), following.strip()
        if text and after and not _BLOCK_START.match(after) and not _BLOCK_START.match(text):
            widths.append(len(text) + len(_WIDE_CHAR.findall(text)))
    if len(widths) < 3:
        return True
    widths.sort()
    return widths[int(len(widths) * 0.8) - 1] <= 120


def markdown_links(markdown: str) -> list[tuple[int, str]]:
    """Every http(s) link of a markdown text, with its 0-based line: what a reader could follow.

    Links, images, autolinks, bare URLs and ``href`` in raw HTML count; code and HTML
    comments do not, nor a reference link whose definition is missing.
    """
    found: list[tuple[int, str]] = []
    for token in _link_reader().parse(markdown):
        line = token.map[0] if token.map else 0
        if token.type == "html_block":
            found.extend((line, url) for url in _HTML_HREF.findall(_COMMENT.sub("", token.content)))
        elif token.type == "inline":
            found.extend((line, url) for url in _inline_links(token.children or []))
    return [(line, url) for line, url in found if url.lower().startswith(("http://", "https://"))]


def _inline_links(children: list) -> Iterator[str]:  # type: ignore[type-arg]
    depth = 0
    for token in children:
        if token.type == "link_open":
            depth += 1
            yield str(token.attrGet("href") or "")
        elif token.type == "link_close":
            depth -= 1
        elif token.type == "image":
            yield str(token.attrGet("src") or "")
        elif token.type == "html_inline" and not token.content.startswith("<!--"):
            yield from _HTML_HREF.findall(token.content)
        elif token.type == "text" and depth == 0 and "http" in token.content:
            yield from (url for _, _, url in find_urls(token.content))


def markdown_to_html(
    markdown: str, references: Mapping[str, str] | None = None, *, breaks: bool = False
) -> str:
    """Render block markdown (summaries) to sanitised HTML.

    ``references`` (label -> URL) are the issue's reference-link definitions: those the
    fragment names are appended, so ``[text][label]`` works anywhere, even across lines.
    ``breaks``: the document's lines are not wrapped, so each line break is kept (see
    :func:`hard_wrapped`).
    """
    if not markdown.strip():
        return ""
    if references and "]" in markdown:
        folded = " ".join(markdown.split()).casefold()
        used = [f"[{label}]: <{url}>" for label, url in references.items() if f"[{label}]" in folded]
        if used:
            markdown = markdown + "\n\n" + "\n".join(used)
    return sanitize_html(_renderer(breaks).render(markdown))


def inline_markdown_to_html(markdown: str) -> str:
    """Render one line of markdown (a warm-up entry) to sanitised inline HTML."""
    if not markdown.strip():
        return ""
    return sanitize_html(_renderer().renderInline(markdown))


def sanitize_html(fragment: str) -> str:
    """Keep only an allowlist of tags and attributes, and no javascript:/data:/vbscript: URL."""
    import nh3

    schemes = set(SAFE_SCHEMES)
    for found in _HREF_SCHEMES.findall(fragment):
        scheme = found.lower()
        if scheme not in UNSAFE_SCHEMES:
            schemes.update((scheme, found))
    return nh3.clean(
        strip_xml_illegal(fragment),
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=schemes,
        link_rel="noopener noreferrer",
    ).strip()


def absolutize_links(fragment: str, base_url: str) -> str:
    """Make every relative href absolute against ``base_url`` (RSS-to-email tools ignore xml:base)."""

    def fix(match: re.Match[str]) -> str:
        href = html.unescape(match.group(2))
        absolute = absolute_url(href, base_url)
        if absolute == href:
            return match.group(0)
        return f"{match.group(1)}{html.escape(absolute, quote=True)}{match.group(3)}"

    return _HREF_RE.sub(fix, fragment)


def _link_as_text(match: re.Match[str]) -> str:
    url = html.unescape(match.group(1))
    label = match.group(2)
    shown = html.unescape(_TAG_RE.sub("", label)).strip()
    return label if not url or shown == url else f"{label} ({html.escape(url)})"


def strip_xml_illegal(text: str) -> str:
    """Remove characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE/FFFF)."""
    return _XML_ILLEGAL.sub("", text)


def absolute_url(url: str, base: str) -> str:
    """``url`` resolved against ``base`` when it is relative (feeds and mail have no base URL)."""
    if not url or urlsplit(url).scheme:
        return url
    return urljoin(base, url)


def html_to_text(fragment: str, *, urls: bool = False) -> str:
    """Plain text of sanitised HTML, one line per block; ``urls`` writes each link's target after it."""
    if urls:
        fragment = _LINK_RE.sub(_link_as_text, fragment)
    text = _BLOCK_END_RE.sub("\n", fragment)
    text = re.sub(r"<li[^>]*>", "- ", text)
    text = html.unescape(_TAG_RE.sub("", text))
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)
