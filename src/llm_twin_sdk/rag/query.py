"""Query rewriting with the LLM before retrieval: self-query and query expansion.

Both steps work with any backend through an :class:`~llm_twin_sdk.InferenceClient`, and
both *degrade* instead of failing: when the model is unreachable, times out, or writes
something unusable, :class:`SelfQuery` returns no filters and :class:`QueryExpander` returns
the question alone, with a ``WARNING`` on this module's logger saying why. Retrieval then
proceeds as if the step were switched off. Only a wrong *input* (an empty question, unknown
``known`` fields) or a misconfigured client (:class:`~llm_twin_sdk.ConfigurationError`)
raises.

Example::

    from llm_twin_sdk import InferenceClient, LocalBackend
    from llm_twin_sdk.rag.query import QueryExpander, SelfQuery

    client = InferenceClient(LocalBackend())
    filters = SelfQuery(client).extract(
        "What did Okafor write about LoRA?", known={"author": ["Maya Okafor", "Liam Chen"]}
    )                                                   # {"author": ("Maya Okafor",)}
    queries = QueryExpander(client, n=3).expand("How do I cut GPU cost?")
    # ["How do I cut GPU cost?", "<alternative 1>", "<alternative 2>"]

The parsers are public and pure, for reuse with other prompts: :func:`parse_metadata` (the
first JSON object in a model's reply) and :func:`parse_phrasings` (one phrasing per line or
per ``#next-question#`` separator, list markers, quotes and preambles removed).
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from pydantic import ConfigDict, ValidationInfo, field_validator

from ..errors import ConfigurationError, InvalidParameterError, LLMTwinError
from ..types import DocumentKind, GenerationParams, Message, Prompt, _Model
from ..validation import check_query
from .filters import check_filters

if TYPE_CHECKING:
    from ..inference.client import InferenceClient

__all__ = [
    "EXPANSION_SEPARATOR",
    "METADATA_FIELDS",
    "QueryExpander",
    "QueryMetadata",
    "SelfQuery",
    "parse_metadata",
    "parse_phrasings",
]

logger = logging.getLogger(__name__)

METADATA_FIELDS = ("author", "platform", "kind")
"""The fields self-query extracts (each one a retrieval filter field)."""

EXPANSION_SEPARATOR = "#next-question#"
"""What the expansion prompt asks the model to put between phrasings (the reference design's)."""

_KINDS: frozenset[str] = frozenset(get_args(DocumentKind))
_KIND_WORDS: dict[str, set[str]] = {
    "post": {"post", "posts", "posted", "posting"},
    "article": {"article", "articles", "blog", "blogs", "essay", "essays"},
    "repository": {"repository", "repositories", "repo", "repos"},
}
"""Words of a question that name a kind of content (lower case, as :func:`_words` gives)."""

_KIND_ALIASES = {"repo": "repository", "repos": "repository", "repositories": "repository"}
_NULLISH = frozenset({"", "null", "none", "nil", "unknown", "n/a", "na", "not specified", "-"})
_SHOWN = 200  # characters of model output shown in a log line

_SELF_QUERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "author": {"type": ["string", "null"]},
        "platform": {"type": ["string", "null"]},
        "kind": {"enum": [*get_args(DocumentKind), None]},
    },
    "required": list(METADATA_FIELDS),
    "additionalProperties": False,
}
"""The JSON object self-query asks for; sent as ``json_schema`` so that servers able to
constrain decoding (llama.cpp, TGI, vLLM) always produce it. Parsing stays lenient for
servers that ignore it."""

_SELF_QUERY_PARAMS = GenerationParams(
    max_new_tokens=64,
    temperature=0.0,
    top_p=1.0,
    repetition_penalty=1.0,
    json_schema=_SELF_QUERY_SCHEMA,
)
"""Extraction is deterministic: greedy decoding, no repetition penalty (JSON repeats quotes),
output constrained to :data:`_SELF_QUERY_SCHEMA`."""


def _shown(text: str) -> str:
    """The model output as it appears in a log line: repr'd, at most ~200 characters."""
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


# -- self-query --------------------------------------------------------------------------


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
            kind = value.casefold()
            kind = _KIND_ALIASES.get(kind, kind)
            if kind not in _KINDS and kind.endswith("s") and kind[:-1] in _KINDS:
                kind = kind[:-1]
            return kind
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


_JSON_WORDS = {"null": "None", "true": "True", "false": "False"}
_JSON_WORD = re.compile(r"(null|true|false)\b")


def _pythonize(candidate: str) -> str:
    """JSON's ``null/true/false`` outside strings as Python literals (for ``literal_eval``)."""
    out: list[str] = []
    done = 0
    for i in _unquoted(candidate):
        if i < done:
            continue
        match = _JSON_WORD.match(candidate, i)
        if match and (i == 0 or not (candidate[i - 1].isalnum() or candidate[i - 1] == "_")):
            out += (candidate[done:i], _JSON_WORDS[match.group(1)])
            done = match.end()
    out.append(candidate[done:])
    return "".join(out)


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
            value = ast.literal_eval(_pythonize(candidate))
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


def _parse_metadata(text: str) -> tuple[QueryMetadata | None, list[str]]:
    """The metadata in a model reply and the problems met: fields with a wrong type or an
    unknown kind are dropped one by one, the valid ones kept."""
    found = _find_object(text)
    if found is None:
        return None, []
    fields: dict[str, str] = {}
    problems: list[str] = []
    for name in METADATA_FIELDS:
        if name not in found:
            continue
        try:
            value = getattr(QueryMetadata(**{name: found[name]}), name)
        except InvalidParameterError as exc:
            problems.append(str(exc))
            continue
        if value is not None:
            fields[name] = value
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
    return _parse_metadata(text)[0]


_POSSESSIVE = re.compile(r"['\u2019]s\b")


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
    """The known spelling ``value`` stands for, or ``None`` and why not.

    Exact (case, spacing and punctuation aside) first; then an unambiguous partial match:
    the value's words inside exactly one known value (``"Okafor"`` -> ``"Maya Okafor"``), or
    exactly one known value's words inside the value (``"Dr. Maya Okafor"``).
    """
    words = _words(value)
    exact = [k for k in known if _words(k) == words and words]
    if exact:
        return exact[0], ""
    inside = [k for k in known if _contains(_words(k), words)]
    if len(inside) == 1:
        return inside[0], ""
    around = [k for k in known if _contains(words, _words(k))]
    if not inside and len(around) == 1:
        return around[0], ""
    if len(inside) > 1 or len(around) > 1:
        return None, f"ambiguous: matches {sorted(inside or around)!r}"
    return None, "matches no known value"


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
        items = (values,) if isinstance(values, str) else tuple(values)
        if not all(isinstance(v, str) for v in items):
            raise InvalidParameterError(f"known[{name!r}] must hold strings")
        checked[name] = tuple(v for v in items if v.strip())
    return checked


class SelfQuery:
    """Extract author / platform / kind named in a question, as retrieval filters (read-only).

    The model is asked for one JSON object ``{"author", "platform", "kind"}``. Its reply is
    parsed leniently (:func:`parse_metadata`), then checked:

    - ``author`` and ``platform`` are kept only when one of their words occurs in the
      question (a cheap guard against invented names: a filter on a wrong author finds
      nothing, no filter finds something);
    - with ``known`` values for a field (what exists in the store), a value is kept only
      when it matches one of them -- case, spacing and punctuation aside, or unambiguously
      by whole words (``"Okafor"`` -> ``"Maya Okafor"``) -- and the known spelling is
      returned; without ``known``, values are kept as the model wrote them;
    - ``kind`` must be one of ``post``, ``article``, ``repository``, and is kept only when
      the question names that kind of content (``"posted"``, ``"articles"``, ``"blog"``,
      ``"repo"``...): small models otherwise fill it in on every question.

    Inference errors and unusable replies give ``{}`` (or the valid fields only) and a
    ``WARNING`` log; values dropped by the checks above are logged at ``INFO``. The object
    holds no per-call state: share one between threads.

    Args:
        client: the model to ask (built once, reused for every call).
        params: generation settings; default: greedy, 64 new tokens, output constrained to
            the JSON object's schema (``json_schema``) on servers that support it.

    Example::

        self_query = SelfQuery(client)
        filters = self_query.extract(
            "What did Maya Okafor write about LoRA?",
            known={"author": ["Maya Okafor", "Liam Chen"]},
        )
        # {"author": ("Maya Okafor",)}
        twin.ask(question, filters=filters or None)
    """

    SYSTEM: ClassVar[str] = (
        "You extract search filters from a user's question. Reply with ONE JSON object and "
        "nothing else, with exactly these keys:\n"
        '"author": the full name of the person whose writing the question asks about\n'
        '"platform": the website the question names, in lower case (e.g. linkedin, medium, '
        "substack, github)\n"
        '"kind": "post", "article" or "repository", when the question names the kind of '
        "content\n"
        "Use null for anything the question does not name. Never guess.\n"
        "Example question: What did Jane Doe post on LinkedIn about RAG?\n"
        'Example answer: {"author": "Jane Doe", "platform": "linkedin", "kind": "post"}'
    )
    """The system instruction of :meth:`prompt`."""

    def __init__(self, client: InferenceClient, *, params: GenerationParams | None = None) -> None:
        self._client = client
        self._params = params or _SELF_QUERY_PARAMS

    def __repr__(self) -> str:
        return f"SelfQuery(client={self._client!r}, params={self._params!r})"

    @property
    def client(self) -> InferenceClient:
        return self._client

    @property
    def params(self) -> GenerationParams:
        return self._params

    def prompt(self, question: str) -> Prompt:
        """The chat messages sent for ``question``: the instruction, then the question."""
        return [
            Message(role="system", content=self.SYSTEM),
            Message(role="user", content=check_query(question)),
        ]

    def extract(
        self, question: str, known: Mapping[str, Collection[str]] | None = None
    ) -> dict[str, tuple[str, ...]]:
        """The filters ``question`` names, e.g. ``{"author": ("Maya Okafor",)}``; ``{}`` for
        none (or when the model fails).

        Args:
            question: the user's question.
            known: per field, the values that exist in the store (``{"author": [...]}``).

        Raises:
            EmptyQueryError: ``question`` is empty or blank.
            InvalidParameterError: ``known`` names a field other than author, platform, kind.
            ConfigurationError: the client cannot send this prompt (e.g. chat messages to a
                TGI-native backend without ``prompt_format``).
        """
        question = check_query(question)
        allowed = _check_known(known)
        try:
            text = self._client.generate(self.prompt(question), self._params).text
        except ConfigurationError:
            raise
        except LLMTwinError as exc:
            logger.warning(
                "self-query skipped: the model call failed (%s: %s)", type(exc).__name__, exc
            )
            return {}
        metadata, problems = _parse_metadata(text)
        if metadata is None:
            logger.warning(
                "self-query skipped: no JSON object in the model output %s", _shown(text)
            )
            return {}
        for problem in problems:
            logger.warning("self-query: field dropped (%s); model output %s", problem, _shown(text))
        question_words = set(_words(question))
        kept: dict[str, str] = {}
        for name in METADATA_FIELDS:
            value = getattr(metadata, name)
            if value is None:
                continue
            named = _KIND_WORDS[value] if name == "kind" else set(_words(value))
            if not named & question_words:
                logger.info("self-query: %s %r dropped: not named in the question", name, value)
                continue
            if name in allowed:
                match, why = _match_known(value, allowed[name])
                if match is None:
                    logger.info("self-query: %s %r dropped: %s", name, value, why)
                    continue
                value = match
            kept[name] = value
        return check_filters(kept)


# -- query expansion ---------------------------------------------------------------------

_SPLIT = re.compile(r"\r\n|[\n\r\u2028\u2029]|#+\s*next[\s_-]*question\s*#*", re.IGNORECASE)
_MARKER = re.compile(
    r"^(?:[-*\u2022+>]\s+"  # bullets, quotes
    r"|\(?\d{1,3}[.):\]](?:\s+|$)"  # 1. 2) (3) 4:
    r"|(?:original\s+|alternative\s+|rephrased\s+)?(?:question|version|query|q)\s*\d{0,3}\s*"
    r"[:.)\-]\s*)",  # Question 2: / Q: / Version 1 -
    re.IGNORECASE,
)
_QUOTES = ('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`")
_PREAMBLE = re.compile(r"^(?:here\s+(?:are|is)|sure\b|certainly\b|of course\b)", re.IGNORECASE)


def _key(text: str) -> str:
    """Comparison key of a phrasing: case, spacing and surrounding punctuation ignored."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def _clean_line(line: str) -> str:
    """One candidate phrasing with markdown emphasis, list markers and quotes removed."""
    previous = None
    while line != previous:
        previous = line
        line = line.strip()
        if line.startswith("**") and "**" in line[2:]:
            line = line.replace("**", "")
        line = _MARKER.sub("", line, count=1)
        for opening, closing in _QUOTES:
            if len(line) >= 2 and line.startswith(opening) and line.endswith(closing):
                line = line[1:-1]
    return line


def parse_phrasings(text: str, question: str, limit: int) -> list[str]:
    """Alternative phrasings of ``question`` in a model reply, at most ``limit``.

    Phrasings are separated by line breaks or ``#next-question#``. List markers (``1.``,
    ``2)``, ``-``, ``*``, ``Question 2:``), surrounding quotes and ``**`` are removed;
    preamble lines (ending with ``:``, or starting ``Here are`` / ``Sure``), lines without
    letters or digits, lines far longer than the question (``> 4 x len + 200``), the
    question itself and duplicates (case, spacing and punctuation aside) are dropped.
    Never raises.

    >>> parse_phrasings('Here are 2 versions:\\n1. "Cheaper GPUs?"\\n2. cheaper gpus', "q?", 5)
    ['Cheaper GPUs?']
    """
    if limit <= 0:
        return []
    longest = 4 * len(question) + 200
    seen = {_key(question)}
    found: list[str] = []
    for raw in _SPLIT.split(text):
        line = _clean_line(raw)
        key = _key(line)
        if (
            not key
            or line.endswith(":")
            or _PREAMBLE.match(line)
            or len(line) > longest
            or key in seen
        ):
            continue
        seen.add(key)
        found.append(line)
        if len(found) == limit:
            break
    return found


def _expansion_params(question: str, alternatives: int) -> GenerationParams:
    """Greedy decoding with room for ``alternatives`` phrasings about as long as
    ``question`` (~3 characters a token, plus markers and separators)."""
    per_phrasing = len(question) // 3 + 24
    return GenerationParams(
        max_new_tokens=min(1024, alternatives * per_phrasing + 16),
        temperature=0.0,
        top_p=1.0,
        repetition_penalty=1.1,
    )


class QueryExpander:
    """Write ``n - 1`` alternative phrasings of a question (query expansion); the original
    always comes first.

    Searching with several phrasings and fusing the results finds documents that word the
    topic differently than the user did. With ``n == 1`` no model is called (the client may
    then be ``None``). The reply is parsed with :func:`parse_phrasings`; when the model wrote
    fewer usable phrasings the result is shorter (logged at ``INFO``), and when it failed or
    wrote nothing usable the result is ``[question]`` (logged at ``WARNING``). When the
    reply was cut by the token limit, its last, unfinished phrasing is dropped. Holds no
    per-call state: share one between threads.

    Args:
        client: the model to ask (built once, reused for every call).
        n: the number of queries returned at most, the original included (>= 1).
        params: generation settings; default: greedy, with a token budget sized for ``n - 1``
            phrasings of the question's length.

    Raises:
        ConfigurationError: ``n < 1``, or no client while ``n > 1``.

    Example::

        expander = QueryExpander(client, n=3)
        expander.expand("How do I cut GPU cost?")  # ["How do I cut GPU cost?", "...", "..."]
    """

    SYSTEM: ClassVar[str] = (
        "You help a search engine find documents in a vector database. Rewrite the user's "
        "question {k} different ways, each from another angle and with other words, keeping "
        "its meaning. Write each version on its own line and separate versions with "
        f"{EXPANSION_SEPARATOR}. Write only the questions: no numbering, no explanations."
    )
    """The system instruction of :meth:`prompt` (``{k}``: the number of phrasings asked)."""

    def __init__(
        self,
        client: InferenceClient | None,
        *,
        n: int = 3,
        params: GenerationParams | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"n must be an integer >= 1 (queries returned), got {n!r}")
        if client is None and n > 1:
            raise ConfigurationError(
                f"QueryExpander(n={n}) needs a client to write alternatives; pass one, or n=1"
            )
        self._client = client
        self._n = n
        self._params = params

    def __repr__(self) -> str:
        return f"QueryExpander(client={self._client!r}, n={self._n}, params={self._params!r})"

    @property
    def client(self) -> InferenceClient | None:
        return self._client

    @property
    def n(self) -> int:
        """The number of queries :meth:`expand` returns at most, the original included."""
        return self._n

    def prompt(self, question: str) -> Prompt:
        """The chat messages sent for ``question``: the instruction, then the question."""
        return [
            Message(role="system", content=self.SYSTEM.format(k=max(1, self._n - 1))),
            Message(role="user", content=check_query(question)),
        ]

    def expand(self, question: str) -> list[str]:
        """``[question, *alternatives]``, between 1 and ``n`` distinct queries.

        Raises:
            EmptyQueryError: ``question`` is empty or blank.
            ConfigurationError: the client cannot send this prompt.
        """
        question = check_query(question)
        wanted = self._n - 1
        if wanted == 0 or self._client is None:
            return [question]
        params = self._params or _expansion_params(question, wanted)
        try:
            generation = self._client.generate(self.prompt(question), params)
        except ConfigurationError:
            raise
        except LLMTwinError as exc:
            logger.warning(
                "query expansion skipped: the model call failed (%s: %s)", type(exc).__name__, exc
            )
            return [question]
        text = generation.text
        if generation.finish_reason == "length":
            cut = max((m.start() for m in _SPLIT.finditer(text.rstrip())), default=-1)
            if cut > 0:
                text = text[:cut]
        alternatives = parse_phrasings(text, question, wanted)
        if not alternatives:
            logger.warning(
                "query expansion gave no usable phrasing; model output %s", _shown(generation.text)
            )
        elif len(alternatives) < wanted:
            logger.info("query expansion gave %d of %d phrasings asked", len(alternatives), wanted)
        return [question, *alternatives]
