"""Query expansion: other phrasings of a question, written by the model, the original first."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import ConfigurationError, InvalidParameterError
from ...types import GenerationParams, Prompt
from ...validation import check_query
from .llm import ask_model, shown, step_prompt

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ...inference.client import InferenceClient

__all__ = [
    "EXPANSION_SEPARATOR",
    "EXPANSION_WEIGHT",
    "MIN_SIMILARITY",
    "Phrasing",
    "QueryExpander",
    "parse_phrasings",
]

logger = logging.getLogger(__name__)

EXPANSION_SEPARATOR = "#next-question#"
"""What the expansion prompt asks the model to put between phrasings (the reference design's)."""
EXPANSION_WEIGHT = 0.05
"""Default weight of a written phrasing in fusion; the question itself weighs 1. Measured with
the default SmolLM2-135M on both evaluation sets (docs/benchmarks.md, section 6): at 0.5 its
phrasings lowered recall@10 on the numpy-docs set (0.951 -> 0.939), at 0.15 the sample set's
nDCG@10; at 0.05 they only reorder near-ties (recall@5 0.878 -> 0.889, MRR@10 0.774 -> 0.783,
no metric lower on either set). With a capable model, raise it (``QueryExpander(weight=0.5)``,
``LLM_TWIN_QUERY_EXPANSION_WEIGHT``)."""
MIN_SIMILARITY = 0.3
"""Default least cosine similarity of a phrasing's embedding to the question's: below it, the
phrasing has left the question's topic and is not searched. Low on purpose: a useful phrasing
says the question in other words, and all-MiniLM-L6-v2 scores such pairs from about 0.15 to
0.75 ("Which header disables proxy buffering for SSE?" against "How did Lukas Brenner stop
nginx from buffering server-sent events?": 0.33), so the threshold only drops what is plainly
off-topic; the lower :data:`EXPANSION_WEIGHT` bounds the harm of the rest."""


@dataclass(frozen=True)
class Phrasing:
    """One query a retrieval searches, and how much its results count when the rankings of
    all phrasings are fused (the question itself: ``1.0``; a written phrasing: less).

    >>> Phrasing("How can I lower GPU spend?", 0.5)
    Phrasing(text='How can I lower GPU spend?', weight=0.5)
    """

    text: str
    weight: float = 1.0


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
    letters or digits, lines much longer than the question (``> 2 x len + 80`` characters:
    an answer or an essay, not a phrasing), the question itself and duplicates (case,
    spacing and punctuation aside) are dropped.
    Never raises.

    >>> parse_phrasings('Here are 2 versions:\\n1. "Cheaper GPUs?"\\n2. cheaper gpus', "q?", 5)
    ['Cheaper GPUs?']
    """
    longest = 2 * len(question) + 80
    seen = {_key(question)}
    found: list[str] = []
    for line in map(_clean_line, _SPLIT.split(text)):
        key = _key(line)
        preamble = line.endswith(":") or _PREAMBLE.match(line)
        if key and key not in seen and not preamble and len(line) <= longest:
            seen.add(key)
            found.append(line)
    return found[: max(limit, 0)]


def _number(name: str, value: object, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``, else :class:`ConfigurationError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigurationError(f"{name} must be a number from {low} to {high}, got {value!r}")
    return float(value)


class QueryExpander:
    """Write ``n - 1`` alternative phrasings of a question (query expansion); the original
    always comes first.

    Searching with several phrasings and fusing the results finds documents worded otherwise
    than the question. With ``n == 1`` (queries returned at most) no model is called and the
    client may be ``None``. The reply is parsed with :func:`parse_phrasings`, its last
    phrasing dropped when the token limit cut it; fewer usable phrasings give a shorter list
    (``INFO``), a failure or nothing usable ``[question]`` (``WARNING``). ``params`` default:
    greedy, with a token budget for ``n - 1`` phrasings. Holds no per-call state.

    A small model drifts: its phrasings answer the question, or change its topic. So
    :meth:`phrasings` weighs each written phrasing ``weight`` (default 0.5) against the
    question's 1.0, and :meth:`close_to_question` keeps only those whose embedding has a
    cosine similarity of at least ``min_similarity`` (default 0.3) with the question's
    (:class:`~llm_twin_sdk.RAGPipeline` applies both). Expansion pays off with a capable
    model (several billion parameters); the default 135M model cannot carry it.

    Example: ``QueryExpander(client, n=3).expand(question)`` -> ``[question, "...", "..."]``.

    Raises:
        ConfigurationError: ``n < 1``, no client while ``n > 1``, ``weight`` outside
            ``(0, 1]`` or ``min_similarity`` outside ``[-1, 1]``.
    """

    SYSTEM: ClassVar[str] = (
        "You help a search engine find documents in a vector database. Rewrite the user's "
        "question {k} different ways, each from another angle and with other words, keeping "
        "its meaning. Do not answer the question. Write each version on its own line and "
        f"separate versions with {EXPANSION_SEPARATOR}. Write only the questions: no "
        "numbering, no explanations."
    )
    """The system instruction of :meth:`prompt` (``{k}``: the number of phrasings asked)."""

    def __init__(
        self,
        client: InferenceClient | None,
        *,
        n: int = 3,
        params: GenerationParams | None = None,
        weight: float = EXPANSION_WEIGHT,
        min_similarity: float = MIN_SIMILARITY,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"n must be an integer >= 1 (queries returned), got {n!r}")
        if client is None and n > 1:
            raise ConfigurationError(
                f"QueryExpander(n={n}) needs a client to write alternatives; pass one, or n=1"
            )
        self._weight = _number("weight", weight, 0.0, 1.0)
        if self._weight == 0:
            raise ConfigurationError("weight must be > 0 (use n=1 for no expansion), got 0")
        self._min_similarity = _number("min_similarity", min_similarity, -1.0, 1.0)
        self._client = client
        self._n = n
        self._params = params

    def __repr__(self) -> str:
        return (
            f"QueryExpander(client={self._client!r}, n={self._n}, "
            f"params={None if self._params is None else self._params._short_repr()}, "
            f"weight={self._weight}, min_similarity={self._min_similarity})"
        )

    @property
    def client(self) -> InferenceClient | None:
        return self._client

    @property
    def n(self) -> int:
        """The number of queries :meth:`expand` returns at most, the original included."""
        return self._n

    @property
    def weight(self) -> float:
        """The fusion weight of each written phrasing (the question's is 1)."""
        return self._weight

    @property
    def min_similarity(self) -> float:
        """The least cosine similarity to the question a written phrasing needs."""
        return self._min_similarity

    def prompt(self, question: str) -> Prompt:
        """The chat messages sent for ``question``: the instruction, then the question."""
        return step_prompt(self.SYSTEM.format(k=max(1, self._n - 1)), question)

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
        per_phrasing = len(question) // 3 + 24  # ~3 characters a token, plus a list marker
        params = self._params or GenerationParams(  # greedy, room for `wanted` phrasings
            max_new_tokens=min(1024, wanted * per_phrasing + 16),
            temperature=0.0,
            top_p=1.0,
            repetition_penalty=1.1,
        )
        generation = ask_model(self._client, self.prompt(question), params, "query expansion")
        if generation is None:
            return [question]
        text = generation.text
        if generation.finish_reason == "length":
            cut = max((m.start() for m in _SPLIT.finditer(text.rstrip())), default=-1)
            if cut > 0:
                text = text[:cut]
        alternatives = parse_phrasings(text, question, wanted)
        if not alternatives:
            logger.warning(
                "query expansion gave no usable phrasing; model output %s", shown(generation.text)
            )
        elif len(alternatives) < wanted:
            logger.info("query expansion gave %d of %d phrasings asked", len(alternatives), wanted)
        return [question, *alternatives]

    def phrasings(self, question: str) -> list[Phrasing]:
        """:meth:`expand` with the fusion weights: the question ``1.0``, each written phrasing
        :attr:`weight`. Raises as :meth:`expand` does."""
        first, *written = self.expand(question)
        return [Phrasing(first), *(Phrasing(text, self._weight) for text in written)]

    def close_to_question(
        self, phrasings: Sequence[Phrasing], vectors: npt.NDArray[np.floating[Any]]
    ) -> list[int]:
        """The indexes of the phrasings to search: the first (the question) and each other
        whose embedding (row of ``vectors``) has a cosine similarity of at least
        :attr:`min_similarity` with the first's. Those dropped are logged (``INFO``)."""
        import numpy as np

        if len(phrasings) != len(vectors):
            raise InvalidParameterError(f"{len(phrasings)} phrasings but {len(vectors)} embeddings")
        if len(phrasings) <= 1:
            return list(range(len(phrasings)))
        rows = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(rows, axis=1)
        norms[norms == 0] = 1.0
        similarity = (rows / norms[:, None]) @ (rows[0] / norms[0])
        kept = [0]
        for index in range(1, len(phrasings)):
            if similarity[index] >= self._min_similarity:
                kept.append(index)
            else:
                logger.info(
                    "query expansion: phrasing %r dropped: similarity %.2f to the question < %.2f",
                    phrasings[index].text,
                    similarity[index],
                    self._min_similarity,
                )
        return kept
