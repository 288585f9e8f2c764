"""What a question names about the documents it is after, read leniently from a model's reply.

:func:`parse_metadata` finds the first JSON object in a reply (inside prose or a code fence;
single quotes and trailing commas accepted) and validates it as :class:`QueryMetadata`.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from typing import Any, get_args

from pydantic import ConfigDict, ValidationInfo, field_validator

from ...errors import InvalidParameterError
from ...types import DocumentKind, _Model
from ..filters import check_filters

__all__ = ["METADATA_FIELDS", "QueryMetadata", "parse_metadata", "read_metadata"]

METADATA_FIELDS = ("author", "platform", "kind")
"""The fields self-query extracts (each one a retrieval filter field)."""

_KIND_ALIASES = {"repo": "repository", "repos": "repository", "repositories": "repository"}
_KIND_ALIASES |= {f"{kind}s": kind for kind in get_args(DocumentKind)}  # plurals
_NULLISH = frozenset({"", "null", "none", "nil", "unknown", "n/a", "na", "not specified", "-"})


class QueryMetadata(_Model):
    """What a question names about the documents it is after; ``None`` where it names nothing.

    Strings are stripped; ``""``, ``"null"``, ``"none"``, ``"unknown"``, ``"n/a"`` become
    ``None``. ``kind`` is lower-cased and accepts plurals (``"posts"``) and ``"repo"``.
    Unknown keys are ignored; a wrong type raises
    :class:`~llm_twin_sdk.InvalidParameterError`.
    """

    model_config = ConfigDict(**{**_Model.model_config, "extra": "ignore"})

    author: str | None = None
    platform: str | None = None
    kind: DocumentKind | None = None

    @field_validator("author", "platform", "kind", mode="before")
    @classmethod
    def _clean(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        value = " ".join(value.split()).strip("\"'`").strip()
        if value.casefold() in _NULLISH:
            return None
        if info.field_name == "kind":
            return _KIND_ALIASES.get(value.casefold(), value.casefold())
        return value

    def as_filters(self) -> dict[str, tuple[str, ...]]:
        """The fields that are set, as validated filters (``{field: (value,)}``)."""
        return check_filters(
            {name: value for name in METADATA_FIELDS if (value := getattr(self, name)) is not None}
        )


def _unquoted(text: str, start: int = 0) -> Iterator[int]:
    """Indexes of ``text`` from ``start`` that are outside quoted strings (``"..."`` or
    ``'...'``, backslash escapes honoured)."""
    quote, escaped = "", False
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        else:
            yield i


def _json_object_spans(text: str, max_starts: int = 32) -> Iterator[str]:
    """Every balanced ``{...}`` in ``text``, by opening brace, aware of quoted strings."""
    starts = [i for i, char in enumerate(text) if char == "{"][:max_starts]
    for start in starts:
        depth = 0
        for end in _unquoted(text, start):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    yield text[start : end + 1]
                    break


class _JsonNames(ast.NodeTransformer):
    """JSON's ``null``, ``true`` and ``false`` as the constants ``literal_eval`` accepts."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        words = {"null": None, "true": True, "false": False}
        return ast.Constant(words[node.id]) if node.id in words else node


def _load_object(candidate: str) -> dict[str, Any] | None:
    """``candidate`` as a dict: JSON first, then a Python-style literal (single quotes,
    trailing commas); ``None`` when it is neither."""
    try:
        value: object = json.loads(candidate)
    except RecursionError:  # absurdly deep nesting: no metadata is shaped like that
        return None
    except ValueError:
        if len(candidate) > 4000:  # literal_eval of a huge input is slow; no metadata is that long
            return None
        try:
            value = ast.literal_eval(_JsonNames().visit(ast.parse(candidate, mode="eval")))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    if not isinstance(value, dict):
        return None
    return {str(key).strip().casefold(): item for key, item in value.items()}


def _find_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` that parses as an object; a lone nested object under
    a wrapper key (``{"metadata": {...}}``) is unwrapped."""
    for candidate in _json_object_spans(text[:20_000]):
        found = _load_object(candidate)
        if found is None:
            continue
        if not set(found) & set(METADATA_FIELDS):
            nested = [v for v in found.values() if isinstance(v, dict)]
            if len(found) == 1 and len(nested) == 1:
                inner = {str(k).strip().casefold(): v for k, v in nested[0].items()}
                if set(inner) & set(METADATA_FIELDS):
                    return inner
        return found
    return None


def read_metadata(text: str) -> tuple[QueryMetadata | None, list[str]]:
    """The metadata in a model reply and the problems met: fields with a wrong type or an
    unknown kind are dropped one by one, the valid ones kept."""
    found = _find_object(text)
    if found is None:
        return None, []
    fields: dict[str, str | None] = {}
    problems: list[str] = []
    for name in [name for name in METADATA_FIELDS if name in found]:
        try:
            fields[name] = getattr(QueryMetadata(**{name: found[name]}), name)
        except InvalidParameterError as exc:
            problems.append(str(exc))
    return QueryMetadata(**fields), problems


def parse_metadata(text: str) -> QueryMetadata | None:
    """The :class:`QueryMetadata` in a model reply; ``None`` when it holds no JSON object.

    Accepts JSON inside prose or a ```` ```json ```` fence, single-quoted or trailing-comma
    objects, and a lone wrapper key. Fields with a wrong type (``"author": 3``) or an unknown
    kind (``"tweet"``) are dropped; the valid ones are kept. Never raises.

    >>> parse_metadata('Sure! {"author": "Maya Okafor", "kind": "posts"} Hope it helps.')
    QueryMetadata(author='Maya Okafor', platform=None, kind='post')
    >>> parse_metadata("no idea") is None
    True
    """
    return read_metadata(text)[0]
