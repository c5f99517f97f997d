"""Jinja2 environments over the built-in ``templates/`` and a newsletter's own.

A newsletter can point ``[email] templates`` at a directory of its own; a
template found there wins over the built-in one of the same name.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import TemplateError

if TYPE_CHECKING:
    import jinja2

__all__ = ["builtin_templates", "render_template", "template_environment"]


def builtin_templates() -> Path:
    """The shipped templates: inside the package when installed, else the repo's ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise TemplateError("the built-in templates are missing; reinstall digest")


@functools.cache
def template_environment(custom: Path | None = None, *, autoescape: bool = True) -> jinja2.Environment:
    import jinja2

    search = [str(custom)] if custom else []
    search.append(str(builtin_templates()))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(
    name: str, custom: Path | None = None, *, autoescape: bool = True, **context: object
) -> str:
    """Render one template; a missing or broken template is a :class:`TemplateError`."""
    import jinja2

    try:
        template = template_environment(custom, autoescape=autoescape).get_template(name)
        return template.render(**context)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name} not found in {custom or builtin_templates()}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}", path=exc.filename, line=exc.lineno
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name} uses an unknown value: {exc.message}") from None
