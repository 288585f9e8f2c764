"""A Griffe extension for the API reference (mkdocs.yml): the SDK's docstrings name other
objects with Sphinx roles (``:class:`Answer```, ``:meth:`~llm_twin_sdk.LLMTwin.ask```), which
Markdown would print as they are. Each role becomes a cross-reference to the object it names,
resolved the way Python would from where the docstring stands: a link when the reference shows
that object, code otherwise (a private helper has no page). A role that names nothing is a
warning, so ``mkdocs build --strict`` fails on it.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`(?P<tilde>[~!]?)(?P<name>[^`]+)`")
LITERAL = re.compile(r"(\S) ?::$", re.MULTILINE)  # reST's "Example::" before an indented block
logger = griffe.get_logger("sphinx_roles")


def _target(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` stands for in the docstring of ``obj``, or None."""
    if name.startswith("."):  # a module relative to this one: ``:mod:`.points```
        module = obj.module
        package = module.path if module.is_package else module.path.rpartition(".")[0]
        dots = len(name) - len(name.lstrip("."))
        base = package.rsplit(".", dots - 1)[0] if dots > 1 else package
        return f"{base}.{name.lstrip('.')}"
    if name.split(".", maxsplit=1)[0] == obj.package.name:
        return name
    first, _, rest = name.partition(".")
    try:
        base = obj.resolve(first)
    except griffe.NameResolutionError:  # a member the class inherits: ``:meth:`from_settings```
        scope: griffe.Object | None = obj if obj.is_class else obj.parent
        if scope is None or not scope.is_class or first not in scope.all_members:
            return None
        base = f"{scope.path}.{first}"
    return f"{base}.{rest}" if rest else base


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`name``` in every docstring as an optional autorefs cross-reference."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return

        def link(match: re.Match[str]) -> str:
            name = match["name"]
            shown = name.rpartition(".")[2] if match["tilde"] == "~" else name
            code = f"<code>{html.escape(shown)}</code>"
            target = _target(obj, name)
            if target is None:
                logger.warning("%s: %s names nothing the reference knows", obj.path, match[0])
                return code
            return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'

        obj.docstring.value = LITERAL.sub(r"\1:", ROLE.sub(link, obj.docstring.value))
