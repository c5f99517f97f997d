"""The JSON shape of a parsed issue, as ``digest parse --json`` prints it.

Kept apart from the model so the model stays plain data and the public JSON
keys are spelled out in one place.
"""

from __future__ import annotations

from typing import Any

from digest.newsletter.model import Finding, Issue, Item, Prose, Section

__all__ = ["finding_to_dict", "issue_to_dict"]


def issue_to_dict(issue: Issue) -> dict[str, Any]:
    return {
        "path": str(issue.path),
        "stem": issue.stem,
        "date": issue.date.isoformat(),
        "published": issue.published.isoformat(),
        "send_at": issue.send_at.isoformat() if issue.send_at else None,
        "title": issue.title,
        "headline": issue.headline,
        "tagline": issue.tagline,
        "intro": issue.intro,
        "intro_html": issue.intro_html,
        "draft": issue.draft,
        "number": issue.number,
        "warmup": list(issue.warmup),
        "warmup_html": list(issue.warmup_html),
        "preamble": [_prose(p) for p in issue.preamble],
        "sections": [_section(section) for section in issue.sections],
        "notes": list(issue.notes),
        "left_out": [{"markdown": p.markdown, "line": p.line} for p in issue.left_out],
        "warnings": [finding_to_dict(f) for f in issue.findings],
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "line": finding.line,
        "code": finding.code,
        "severity": str(finding.severity),
        "message": finding.message,
    }


def _section(section: Section) -> dict[str, Any]:
    return {
        "name": section.name,
        "slug": section.slug,
        "line": section.line,
        "subsections": list(section.subsections),
        "prose": [_prose(p) for p in section.prose],
        "items": [_item(item) for item in section.items],
    }


def _prose(prose: Prose) -> dict[str, Any]:
    return {
        "markdown": prose.markdown,
        "html": prose.html,
        "line": prose.line,
        "subsection": prose.subsection,
    }


def _item(item: Item) -> dict[str, Any]:
    return {
        "title": item.title,
        "url": item.url,
        "source": item.source,
        "labels": list(item.labels),
        "summary": item.summary,
        "summary_html": item.summary_html,
        "links": [{"label": link.label, "url": link.url} for link in item.links],
        "fields": [{"label": f.label, "text": f.text} for f in item.fields],
        "line": item.line,
        "subsection": item.subsection,
    }
