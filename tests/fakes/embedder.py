"""HashingEmbedder: a deterministic bag-of-words embedder that loads no model (no torch), for
fast-lane tests that need a real pipeline and store but not real semantic search.

Words (lower-cased ``\\w+`` runs) are hashed into ``dimension`` signed buckets (feature
hashing) and the vector is scaled to unit length: texts sharing words are close. Its
"tokens" are those words, so chunking works on word offsets.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from llm_twin_sdk import Embedder
from llm_twin_sdk.rag.embedder import Vectors

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    """Feature hashing of words into ``dimension`` buckets, unit length."""

    def __init__(self, dimension: int = 64) -> None:  # loads nothing: no super().__init__
        self.model_name = f"hashing-{dimension}"
        self.batch_size = 32
        self.dimension = dimension
        self.max_tokens = 256

    def encode(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                vectors[row, value % self.dimension] += 1.0 if value & (1 << 63) else -1.0
            norm = float(np.linalg.norm(vectors[row]))
            vectors[row] = vectors[row] / norm if norm else 1.0 / np.sqrt(self.dimension)
        return vectors

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _WORD.finditer(text)] for text in texts]
