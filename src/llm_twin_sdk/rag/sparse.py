"""BM25 sparse lexical vectors from Qdrant's own BM25 (``qdrant_edge.Bm25``).

Lexical matching finds the exact technical names dense embeddings blur. The terms are those
of Qdrant's ``qdrant/bm25`` model — a word tokenizer, lowercasing, the language's stopwords
and Snowball stemmer, so "compile" meets "compilation" — and the indices are Qdrant's
hashes of them; every footing (embedded or a server) gets its vectors from this encoder,
in-process, so they are identical. Document values are BM25 term weights against a
constant average length (a vector never depends on the rest of the corpus), query values
``1`` per distinct term; Qdrant applies IDF at query time (``Modifier.IDF``), so their dot
product is the BM25 score::

    encoder = LexicalEncoder()                       # English: stemming and stopwords
    encoder.encode_document("Compilation of max_new_tokens limits")
    encoder.encode_query("compile max_new_tokens")   # meets both terms of the document
    LexicalEncoder(language="german")                # another Snowball language
    LexicalEncoder(language="none")                  # no stemming, no stopwords

Technical names stay searchable as a whole. A compound token — joined by ``.``, ``_``,
``-``, ``=``, ``/``, ``:`` or ``+``, or a command-line flag — adds itself (``ml.g5.2xlarge``)
and its exact, unstemmed pieces (``~ml``, ``~g5``, ``~2xlarge``) to a document's words, which
still hold its parts as words (``ml``, ``g5``, ``2xlarg``: a query in plain words finds it).
A query naming an identifier searches it whole and by its exact pieces, not by stemmed words:
it ranks the document that holds the name above one that only scatters its parts, and a word
that merely shares a stem with a piece ("buffer" for ``X-Accel-Buffering``) does not match.
Both footings tokenize alike, and the same model (``Bm25`` with the whitespace tokenizer, no
stemming, no stopwords) hashes these extra terms.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

from ..errors import ConfigurationError
from ..lexical_languages import LANGUAGES, check_language

if TYPE_CHECKING:
    import qdrant_edge

__all__ = ["LANGUAGES", "LexicalEncoder", "SparseVector", "check_language", "compound_terms"]

Tokenizer = Literal["word", "code"]
TOKENIZERS: tuple[Tokenizer, ...] = ("word", "code")

# A compound token: word-character runs joined by connectors that belong to technical names
# (``ml.g5.2xlarge``, ``max_new_tokens``, ``ef_construct=200``, ``a/b``, ``10:30``, ``c++``
# is not one), with an optional leading ``-``/``--`` (command-line flags).
_TOKEN = re.compile(r"-{0,2}\w+(?:[.\-=/:+]\w+)*")
_JOINED = re.compile(r"[._\-=/:+]")
_SIDES = re.compile(r"[=/:]")  # an assignment, a path, a key: value
_NAME = re.compile(r"[._\-+]")  # what joins the parts of one name
_PIECES = re.compile(r"[\W_]+")
_PUNCTUATION = ".,;:!?()[]{}<>\"'`*"
# What every compound token holds once lowercased: a connector or underscore before a word
# character (``a.b``, ``a_b``, ``-v``). A text without it has no compound terms: ingestion
# skips the word-by-word split for it.
_MAYBE_COMPOUND = re.compile(r"[._\-=/:+]\w")


def compound_terms(text: str) -> list[str]:
    """The lowercased compound tokens of ``text``, in order, repeats kept: names joined by
    ``.``, ``_``, ``-``, ``=``, ``/``, ``:`` or ``+`` (``ml.g5.2xlarge``, ``max_new_tokens``)
    and flags (``--max-num-seqs``, ``-v``); plain words are not. An assignment or path adds
    its compound sides too: ``max_new_tokens=1200`` -> ``max_new_tokens=1200``,
    ``max_new_tokens``."""
    return _split_compounds(text)[1]


def _split_compounds(text: str) -> tuple[list[str], list[str], list[str]]:
    """The words of ``text`` that hold no compound token, its compound terms, and their
    pieces marked apart from words (``x-accel-buffering`` -> ``~x``, ``~accel``,
    ``~buffering``: unstemmed, they match pieces of names only)."""
    plain: list[str] = []
    terms: list[str] = []
    pieces: list[str] = []
    for word in text.split():
        if word.strip(_PUNCTUATION).isalnum():  # a plain word (most of them): no regex
            plain.append(word)
            continue
        found = False
        for token in _TOKEN.findall(word.lower()):
            if _JOINED.search(token.strip("_")) or token.startswith("-"):
                found = True
                terms.append(token)
                pieces.extend(f"~{piece}" for piece in _PIECES.split(token) if piece)
                if _SIDES.search(token):
                    terms.extend(s for s in _SIDES.split(token) if _NAME.search(s.strip("_")))
        if not found:
            plain.append(word)
    return plain, terms, pieces


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse vector: ascending unique ``indices`` and their ``values``."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(f"{len(self.indices)} indices but {len(self.values)} values")

    def __len__(self) -> int:
        return len(self.indices)

    def as_dict(self) -> dict[int, float]:
        """``{index: value}``."""
        return dict(zip(self.indices, self.values, strict=True))


class LexicalEncoder:
    """Texts to BM25 sparse vectors (document side) and term sets (query side), computed by
    Qdrant's BM25 (built once, on first use, and reused; thread-safe).

    Args:
        language: one of :data:`LANGUAGES` (its stopwords and stemmer), ``"none"`` for
            neither.
        tokenizer: ``"word"`` (words, split at punctuation and underscores) or ``"code"``
            (also splits ``camelCase`` and keeps ``snake_case`` names joined).
        compounds: also index each compound token whole and by its exact pieces, and search
            a query's compound tokens that way (:func:`compound_terms`; module docstring).
        k1: term-frequency saturation; a term's weight tends to ``k1 + 1`` as it repeats.
        b: length normalisation, 0 (none) to 1 (full).
        avg_length: the average document length in terms that lengths are compared to; a
            constant, so that a document's vector never depends on the rest of the corpus.

    Raises:
        ConfigurationError: an unknown language or tokenizer, or a parameter out of range
            (before anything is built).

    ``repr`` names every setting that changes vectors: ingestion fingerprints include it.
    """

    def __init__(
        self,
        *,
        language: str = "english",
        tokenizer: Tokenizer = "word",
        compounds: bool = True,
        k1: float = 1.2,
        b: float = 0.75,
        avg_length: float = 256.0,
    ) -> None:
        check_language(language)
        if tokenizer not in TOKENIZERS:
            raise ConfigurationError(
                f"unknown lexical tokenizer {tokenizer!r}; accepted: {', '.join(TOKENIZERS)}"
            )
        if not k1 > 0:
            raise ConfigurationError(f"k1 must be > 0, got {k1}")
        if not 0 <= b <= 1:
            raise ConfigurationError(f"b must be between 0 and 1, got {b}")
        if not avg_length > 0:
            raise ConfigurationError(f"avg_length must be > 0, got {avg_length}")
        self.language = language
        self.tokenizer: Tokenizer = tokenizer
        self.compounds = bool(compounds)
        self.k1 = float(k1)
        self.b = float(b)
        self.avg_length = float(avg_length)
        self._models: tuple[qdrant_edge.Bm25, qdrant_edge.Bm25] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LexicalEncoder(bm25='qdrant', language={self.language!r}, "
            f"tokenizer={self.tokenizer!r}, compounds={self.compounds}, k1={self.k1}, "
            f"b={self.b}, avg_length={self.avg_length})"
        )

    def _bm25(self) -> tuple[qdrant_edge.Bm25, qdrant_edge.Bm25]:
        """The words model and the whole-compound model (built on first use)."""
        if self._models is None:
            with self._lock:
                if self._models is None:
                    self._models = self._build()
        return self._models

    def _build(self) -> tuple[qdrant_edge.Bm25, qdrant_edge.Bm25]:
        from qdrant_edge import Bm25, Bm25Config, DisabledStemmer, StopwordsSet, TokenizerType

        config = partial(Bm25Config, k=self.k1, b=self.b, avg_len=self.avg_length, lowercase=True)
        kind = TokenizerType.Code if self.tokenizer == "code" else TokenizerType.Word
        if self.language == "none":
            words = config(tokenizer=kind, stemmer=DisabledStemmer(), stopwords=StopwordsSet())
        else:
            words = config(tokenizer=kind, language=self.language)
        whole = config(
            tokenizer=TokenizerType.Whitespace, stemmer=DisabledStemmer(), stopwords=StopwordsSet()
        )
        return Bm25(words), Bm25(whole)

    def encode_document(self, text: str) -> SparseVector:
        """BM25 term weights of one document (without IDF, which Qdrant applies)."""
        words, whole = self._bm25()
        vector = words.embed_document(text)
        extra = None
        if self.compounds and _MAYBE_COMPOUND.search(text.lower()):
            _, terms, pieces = _split_compounds(text)
            if terms:
                extra = whole.embed_document(" ".join(terms + pieces))
        return _merged(vector.indices, vector.values, extra)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """:meth:`encode_document` of every text, in order."""
        return [self.encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """Weight 1 for each distinct term of the query."""
        words, whole = self._bm25()
        extra = None
        if self.compounds:
            plain, terms, pieces = _split_compounds(text)
            if terms:  # a named identifier is searched whole and by its exact pieces only
                text = " ".join(plain)
                extra = whole.embed_query(" ".join(terms + pieces))
        vector = words.embed_query(text)
        return _merged(vector.indices, vector.values, extra)

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """:meth:`encode_query` of every text, in order."""
        return [self.encode_query(text) for text in texts]


def _merged(
    indices: list[int], values: list[float], extra: qdrant_edge.SparseVector | None
) -> SparseVector:
    """One sparse vector, ascending indices: ``indices``/``values`` and ``extra``'s terms
    (a term in both keeps the larger weight)."""
    if indices != sorted(indices):  # Qdrant's are ascending; never rely on it
        pairs = sorted(zip(indices, values, strict=True))
        indices, values = [i for i, _ in pairs], [v for _, v in pairs]
    if extra is not None:
        for index, value in zip(extra.indices, extra.values, strict=True):
            at = bisect_left(indices, index)
            if at < len(indices) and indices[at] == index:
                values[at] = max(values[at], value)
            else:
                indices.insert(at, index)
                values.insert(at, value)
    return SparseVector(tuple(indices), tuple(values))
