"""Jinja2 environments over the built-in ``templates/`` and a newsletter's own.

A newsletter can point ``[theme] templates`` (or ``[email] templates``) at a
directory of its own; a template found there wins over the built-in one of the
same name. Every built-in template is also reachable as ``digest/<name>``, so a
newsletter's ``digest.mjml.j2`` can be ``{% extends "digest/digest.mjml.j2" %}``
and override one block (``header``, ``masthead``, ``section``, ``item``,
``footer``) while the rest keeps following digest. Every
environment speaks one language: ``{% trans %}`` and ``_()`` read the catalog
of ``[site] language`` (see :mod:`digest.i18n`), and ``|format_date`` writes
dates as that language does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import TemplateError
from digest.i18n import date_pattern, format_date, resolve_language, translations

if TYPE_CHECKING:
    import jinja2

    from digest.config import Config

__all__ = [
    "BUILTIN_PREFIX",
    "builtin_templates",
    "newsletter_templates",
    "render_template",
    "template_environment",
]

BUILTIN_PREFIX = "digest"  # {% extends "digest/digest.mjml.j2" %} names the built-in template


def builtin_templates() -> Path:
    """The shipped templates: inside the package when installed, else the repo's ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise TemplateError("the built-in templates are missing; reinstall digest")


@functools.cache
def template_environment(
    custom: Path | None = None, *, autoescape: bool = True, language: str = "zh-CN"
) -> jinja2.Environment:
    """The environment for one template directory and one catalog."""
    import jinja2

    builtin = jinja2.FileSystemLoader(str(builtin_templates()))
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(custom))] if custom else []
    loaders += [builtin, jinja2.PrefixLoader({BUILTIN_PREFIX: builtin})]
    catalog = resolve_language(language)
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(catalog), newstyle=True)  # type: ignore[attr-defined]
    env.filters["format_date"] = functools.partial(format_date, language=catalog)
    env.globals["date_pattern"] = functools.partial(date_pattern, catalog)
    return env


def newsletter_templates(config: Config) -> Path | None:
    """The newsletter's own template folder: ``[theme] templates``, else ``[email] templates``."""
    return config.theme.templates or config.email.templates


def render_template(
    name: str,
    custom: Path | None = None,
    *,
    autoescape: bool = True,
    language: str | None = None,
    **context: object,
) -> str:
    """Render one template; a missing or broken template is a :class:`TemplateError`.

    ``language`` is a ``[site] language`` tag; without it, that of the ``site`` in the context.
    """
    import jinja2

    if language is None:
        site = context.get("site")
        if site is None or not isinstance(getattr(site, "language", None), str):
            raise TemplateError(f"template {name} rendered without a language")
        language = site.language  # type: ignore[union-attr]
    try:
        template = template_environment(custom, autoescape=autoescape, language=language).get_template(name)
        return template.render(**context)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name} not found in {custom or builtin_templates()}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}", path=exc.filename, line=exc.lineno
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name} uses an unknown value: {exc.message}") from None
