"""BM25-style sparse lexical vectors, computed by the SDK (no model, no vocabulary file).

Lexical matching finds the exact technical names dense embeddings blur. Indices are stable
32-bit hashes of the terms; values are BM25 term weights for documents (against a constant
average length, so a vector does not depend on the corpus) and ``1`` per distinct query term;
Qdrant applies IDF at query time (``Modifier.IDF``), so their dot product is the BM25 score.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["LexicalEncoder", "SparseVector", "term_index", "tokenize"]

# A token: a run of word characters, possibly joined to more runs by connectors that belong
# to technical names (``ml.g5.2xlarge``, ``X-Accel-Buffering``, ``ef_construct=200``,
# ``a/b``, ``10:30``), with an optional leading ``-``/``--`` (command-line flags).
_TOKEN = re.compile(r"-{0,2}\w+(?:[.\-=/:+]\w+)*")
_CONNECTOR = re.compile(r"[.\-=/:+]")

_STOPWORDS = """a an and are as at be but by can do does for from has have how i if in into
is it its me my no not of on or our so than that the their them then there these they this to
was we were what when where which while who why will with you your"""
STOPWORDS = frozenset(_STOPWORDS.split())
"""Words too common to carry lexical signal (kept when part of a compound token)."""


def tokenize(text: str) -> list[str]:
    """Lowercased terms of ``text``, technical names kept whole, in order.

    A compound token (joined by ``.``, ``-``, ``=``, ``/``, ``:`` or ``+``) yields itself and
    its parts: ``ef_construct=200`` -> ``ef_construct=200``, ``ef_construct``, ``200``;
    ``--max-num-seqs`` -> ``--max-num-seqs``, ``max``, ``num``, ``seqs``. Underscores never
    split (``max_new_tokens`` stays one term). Stop words standing alone are dropped.
    """
    terms: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group()
        body = token.lstrip("-")
        if _CONNECTOR.search(body):
            terms.append(token)
            terms.extend(part for part in _CONNECTOR.split(body) if part)
        elif token != body:  # a flag: -v, --verbose
            terms.append(token)
        elif body not in STOPWORDS:
            terms.append(body)
    return terms


def term_index(term: str) -> int:
    """Stable index of ``term`` in ``[0, 2**32)``: CRC-32 of its UTF-8 bytes.

    The same in every process and Python version (unlike ``hash``), with no vocabulary to
    ship. Two terms sharing an index (rare) simply count as one.
    """
    return zlib.crc32(term.encode("utf-8"))


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
    """Texts to BM25-style sparse vectors (document side) and term sets (query side).

    Args:
        k1: term-frequency saturation; a term's weight tends to ``k1 + 1`` as it repeats.
        b: length normalisation, 0 (none) to 1 (full).
        avg_length: the average document length in terms that lengths are compared to; a
            constant, so that a document's vector never depends on the rest of the corpus.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_length: float = 60.0) -> None:
        if not k1 > 0:
            raise ConfigurationError(f"k1 must be > 0, got {k1}")
        if not 0 <= b <= 1:
            raise ConfigurationError(f"b must be between 0 and 1, got {b}")
        if not avg_length > 0:
            raise ConfigurationError(f"avg_length must be > 0, got {avg_length}")
        self.k1 = float(k1)
        self.b = float(b)
        self.avg_length = float(avg_length)

    def __repr__(self) -> str:
        return f"LexicalEncoder(k1={self.k1}, b={self.b}, avg_length={self.avg_length})"

    def encode_document(self, text: str) -> SparseVector:
        """BM25 term weights of one document (without IDF, which Qdrant applies)."""
        terms = tokenize(text)
        counts = Counter(term_index(t) for t in terms)
        norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avg_length)
        indices = tuple(sorted(counts))
        values = tuple(counts[i] * (self.k1 + 1.0) / (counts[i] + norm) for i in indices)
        return SparseVector(indices, values)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """:meth:`encode_document` of every text, in order."""
        return [self.encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """Weight 1 for each distinct term of the query."""
        unique = tuple(sorted({term_index(t) for t in tokenize(text)}))
        return SparseVector(unique, (1.0,) * len(unique))

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """:meth:`encode_query` of every text, in order."""
        return [self.encode_query(text) for text in texts]
