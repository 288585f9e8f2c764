"""Self-query: the author / platform / kind a question names, as retrieval filters."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from ...errors import InvalidParameterError
from ...types import DocumentKind, GenerationParams, Prompt
from ...validation import check_query
from ..filters import check_filters, string_values
from .llm import ask_model, shown, step_prompt
from .metadata import METADATA_FIELDS, read_metadata

if TYPE_CHECKING:
    from ...inference.client import InferenceClient

__all__ = ["SelfQuery"]

logger = logging.getLogger(__name__)

_KIND_WORDS: dict[str, set[str]] = {
    "post": {"post", "posts", "posted", "posting"},
    "article": {"article", "articles", "blog", "blogs", "essay", "essays"},
    "repository": {"repository", "repositories", "repo", "repos"},
}
"""Words of a question that name a kind of content (lower case, as :func:`_words` gives)."""

_NAME: dict[str, Any] = {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]}
"""An author or platform: at most 40 characters, or null (``anyOf``: llama.cpp's grammar
ignores ``maxLength`` beside a list of types)."""
_SELF_QUERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "author": _NAME,
        "platform": _NAME,
        "kind": {"enum": [*get_args(DocumentKind), None]},
    },
    "required": list(METADATA_FIELDS),
    "additionalProperties": False,
}
"""The JSON object self-query asks for; sent as ``json_schema`` so that servers able to
constrain decoding (llama.cpp, TGI, vLLM) always produce it, with names short enough that the
object ends within the token budget (a small model otherwise runs on inside a string until
the budget cuts it). Parsing stays lenient for servers that ignore it."""

_SELF_QUERY_PARAMS = GenerationParams(
    max_new_tokens=64,
    temperature=0.0,
    top_p=1.0,
    repetition_penalty=1.0,
    json_schema=_SELF_QUERY_SCHEMA,
)
"""Extraction is deterministic: greedy decoding, no repetition penalty (JSON repeats quotes),
output constrained to :data:`_SELF_QUERY_SCHEMA`."""


_POSSESSIVE = re.compile(r"['\u2019]s\b")
_PLACEHOLDER = re.compile(r"[<>{}\[\]]")
"""Characters of a placeholder (``<name>``) that a small model copies from a prompt."""
_FILLER = frozenset(
    {"a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to"}
    | {"name", "none", "null", "unknown", "author", "platform", "kind", "website", "person"}
    | {"question", "user", "document", "passage", "text", "writer", "creator", "site"}
    | {"com", "www", "org", "net", "io"}
    | {word for words in _KIND_WORDS.values() for word in words}
)
"""Words that do not show a name is in a question: ``"the"``, the prompt's own words, what
a small model writes instead of a name (``"the author of the article"``), the parts of a
web address."""
_NOT_NAMED = "not named in the question"


def _words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens, possessives removed (``"Okafor's"`` -> ``("okafor",)``)."""
    return tuple(re.findall(r"[^\W_]+", _POSSESSIVE.sub("", text.casefold())))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as contiguous whole words."""
    size = len(needle)
    return size > 0 and any(
        haystack[i : i + size] == needle for i in range(len(haystack) - size + 1)
    )


def _match_known(value: str, known: Collection[str]) -> tuple[str | None, str]:
    """The known spelling ``value`` stands for, or ``None`` and why not: an exact match (case,
    spacing and punctuation aside) first; then the value's words inside exactly one known value
    (``"Okafor"`` -> ``"Maya Okafor"``), or one known value's words inside the value."""
    words = _words(value)
    exact = [k for k in known if words and _words(k) == words]
    inside = [k for k in known if _contains(_words(k), words)]
    around = [k for k in known if _contains(words, _words(k))]
    for found in (exact[:1], inside, [] if inside else around):
        if len(found) == 1:
            return found[0], ""
    if len(inside) > 1 or len(around) > 1:
        return None, f"ambiguous: matches {sorted(inside or around)!r}"
    return None, "matches no known value"


def _distinctive(words: tuple[str, ...]) -> set[str]:
    """The words of a name that can show it is named: not filler, more than one character."""
    return {word for word in words if len(word) > 1 and word not in _FILLER}


def _grounded(
    name: str, value: str, question: set[str], known: Collection[str] | None
) -> tuple[str | None, str]:
    """The value to filter ``name`` on, or ``None`` and why not. A placeholder is never
    kept; a kind must be named by one of its words; every distinctive word of an author or
    platform must occur in the question; with ``known``, the value must match a stored one,
    which for an author or platform the question names too."""
    if _PLACEHOLDER.search(value):
        return None, "a placeholder, not a value"
    kind = name == "kind"
    words = _distinctive(_words(value))
    if not (_KIND_WORDS[value] & question if kind else words and words <= question):
        return None, _NOT_NAMED
    if known is None:
        return value, ""
    match, why = _match_known(value, known)
    if match is None:
        return None, why
    if not kind and not _distinctive(_words(match)) & question:
        return None, f"matches {match!r}, which the question does not name"
    return match, ""


def _check_known(known: Mapping[str, Collection[str]] | None) -> dict[str, tuple[str, ...]]:
    if known is None:
        return {}
    if not isinstance(known, Mapping):
        raise InvalidParameterError(
            f"known must map a field to its values, e.g. {{'author': ['Maya Okafor']}}, got "
            f"{type(known).__name__}"
        )
    checked: dict[str, tuple[str, ...]] = {}
    for name, values in known.items():
        if name not in METADATA_FIELDS:
            raise InvalidParameterError(
                f"known: no field {name!r}; self-query extracts {', '.join(METADATA_FIELDS)}"
            )
        items = string_values(values)
        if items is None:
            raise InvalidParameterError(f"known[{name!r}] must hold strings, got {values!r}")
        checked[name] = tuple(v for v in items if v.strip())
    return checked


class SelfQuery:
    """Extract author / platform / kind named in a question, as retrieval filters (read-only).

    The model is asked for one JSON object ``{"author", "platform", "kind"}`` by a prompt
    whose examples hold placeholders, no name to copy (small models copy examples into
    every answer),
    parsed leniently (:func:`parse_metadata`), then kept only where grounded in the question:

    - a placeholder (``"<name>"``) is never kept;
    - ``author`` and ``platform`` are kept only when the question holds every distinctive
      word of them (not ``"the"``, ``"of"``...): a filter on an invented author finds
      nothing, no filter finds something;
    - with ``known`` values for a field (what exists in the store; :class:`RAGPipeline`
      always passes them), a value is kept only when it matches one -- case, spacing and
      punctuation aside, or unambiguously by whole words (``"Okafor"`` -> ``"Maya Okafor"``)
      -- that the question names too, and the known spelling is returned;
    - ``kind`` is kept only when the question names that kind of content (``"posted"``,
      ``"blog"``, ``"repo"``...): small models otherwise fill it in on every question.

    Inference errors and unusable replies give ``{}`` (or the valid fields only) and a
    ``WARNING``; values dropped by the checks are logged at ``INFO``. Holds no per-call
    state: share one between threads. ``params`` default: greedy, 64 tokens, JSON-constrained.

    Example::

        SelfQuery(client).extract("What did Okafor write?", known={"author": ["Maya Okafor"]})
    """

    SYSTEM: ClassVar[str] = (
        "You extract search filters from a user's question. Reply with ONE JSON object and "
        "nothing else, with exactly the keys author, platform and kind:\n"
        '"author": the name of a person, copied from the question, when the question asks '
        "about that person's writing; else null\n"
        '"platform": the name of a website, copied from the question, when the question names '
        "one; else null\n"
        '"kind": "post", "article" or "repository" when the question names that kind of '
        "content; else null\n"
        "Copy names exactly as the question writes them. Most questions name none of these: "
        "then every value is null. Never guess a name the question does not contain.\n"
        "Example question: What did <person> post on <website> about <topic>?\n"
        'Example answer: {"author": "<person>", "platform": "<website>", "kind": "post"}\n'
        "Example question: How do I <do something>?\n"
        'Example answer: {"author": null, "platform": null, "kind": null}'
    )
    """The system instruction of :meth:`prompt`. Its examples hold placeholders, never a
    name: a small model copies an example's values into every answer, and a placeholder
    (``"<person>"``) is never kept as a filter."""

    def __init__(self, client: InferenceClient, *, params: GenerationParams | None = None) -> None:
        self._client = client
        self._params = params or _SELF_QUERY_PARAMS

    def __repr__(self) -> str:
        custom = self._params != _SELF_QUERY_PARAMS  # the default's JSON schema is long
        params = f", params={self._params._short_repr()}" if custom else ""
        return f"SelfQuery(client={self._client!r}{params})"

    @property
    def client(self) -> InferenceClient:
        return self._client

    @property
    def params(self) -> GenerationParams:
        return self._params

    def prompt(self, question: str) -> Prompt:
        """The chat messages sent for ``question``: the instruction, then the question."""
        return step_prompt(self.SYSTEM, question)

    def extract(
        self, question: str, known: Mapping[str, Collection[str]] | None = None
    ) -> dict[str, tuple[str, ...]]:
        """The filters ``question`` names, e.g. ``{"author": ("Maya Okafor",)}``; ``{}`` for
        none (or when the model fails). ``known``: per field, the values in the store.

        Raises:
            EmptyQueryError: ``question`` is empty or blank.
            InvalidParameterError: ``known`` names a field other than author, platform, kind.
            ConfigurationError: the client cannot send this prompt (e.g. chat messages to a
                TGI-native backend without ``prompt_format``).
        """
        question = check_query(question)
        allowed = _check_known(known)
        generation = ask_model(self._client, self.prompt(question), self._params, "self-query")
        if generation is None:
            return {}
        text = generation.text
        metadata, problems = read_metadata(text)
        if metadata is None:
            logger.warning("self-query skipped: no JSON object in the model output %s", shown(text))
            return {}
        for problem in problems:
            logger.warning("self-query: field dropped (%s); model output %s", problem, shown(text))
        question_words = set(_words(question))
        kept: dict[str, str] = {}
        for name, (value,) in metadata.as_filters().items():
            match, why = _grounded(name, value, question_words, allowed.get(name))
            if match is None:
                logger.info("self-query: %s %r dropped: %s", name, value, why)
                continue
            kept[name] = match
        return check_filters(kept)
