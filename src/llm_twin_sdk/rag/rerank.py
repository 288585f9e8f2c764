"""Rerank retrieved chunks with a cross-encoder, which reads the query and a passage together:
slower than the bi-encoder of vector search, sharper on the few chunks it keeps."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigurationError, InvalidParameterError, ModelLoadError, RerankError
from ..extras import require
from ..types import Chunk
from ..validation import check_k, check_query
from .embedder import model_location, quiet_loading

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

__all__ = ["Reranker"]

logger = logging.getLogger(__name__)


class Reranker:
    """Rerank retrieved chunks with a cross-encoder (sentence-transformers ``CrossEncoder``).

    ``model``: a saved cross-encoder's folder, or a hub name (downloaded once into the Hugging
    Face cache unless ``HF_HUB_OFFLINE=1``); ``batch_size``: pairs per forward pass;
    ``max_length``: tokens per pair (longer pairs are truncated; ``None``: the model's).
    Either below 1 raises :class:`ConfigurationError`; without the ``local`` extra,
    :class:`~llm_twin_sdk.errors.MissingExtraError`. The model is loaded on the first
    :meth:`score` / :meth:`rerank` call (or by :meth:`load`), once, even across threads;
    :meth:`check` says beforehand, without loading it, whether it can be (``RAGPipeline``
    calls it when it is built, so a missing model fails before any ingest).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> None:
        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise ConfigurationError(
                f"model must be a cross-encoder folder or hub name, got {model!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            raise ConfigurationError(
                f"max_length must be None or an integer >= 1, got {max_length!r}"
            )
        require(
            "sentence_transformers",
            "torch",
            feature="Reranker (a sentence-transformers CrossEncoder)",
            instead="or retrieve without a reranker",
        )
        self.model_name = str(model)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._source = model
        self._model: CrossEncoder | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Reranker(model={self.model_name!r}, device={self.device!r})"

    @property
    def loaded(self) -> bool:
        """Whether the cross-encoder is in memory."""
        return self._model is not None

    def load(self) -> None:
        """Load the cross-encoder now (otherwise it is loaded on first use). Idempotent.

        Raises:
            ModelLoadError: the folder is missing, is not a cross-encoder, or cannot be loaded;
                or the hub name cannot be downloaded (or is not cached, offline).
        """
        self._get_model()

    def _get_model(self) -> CrossEncoder:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def check(self) -> None:
        """Check that the model can be loaded, without loading it (a file read, no download):
        a folder must hold a ``config.json`` whose architecture scores pairs
        (``...ForSequenceClassification``); a hub name must be in the Hugging Face cache when
        the hub is offline (``HF_HUB_OFFLINE=1``). Online, a hub name is downloaded on first
        use. Example::

            Reranker("cross-encoder/ms-marco-MiniLM-L-4-v2").check()  # offline, not cached: raises

        Raises:
            ModelLoadError: what :meth:`load` would raise for these reasons, with its hint.
        """
        where, local = model_location(self._source, "cross-encoder")
        if local:
            config = Path(where) / "config.json"
            try:
                architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures")
            except (OSError, ValueError, AttributeError) as exc:
                raise ModelLoadError(
                    f"could not load cross-encoder {self.model_name!r}: no readable "
                    f"config.json in {where} ({type(exc).__name__}). {_hint(where, local)}."
                ) from exc
            self._check_architectures(architectures if isinstance(architectures, list) else [])
            return
        from huggingface_hub import constants, try_to_load_from_cache

        if constants.HF_HUB_OFFLINE and not isinstance(
            try_to_load_from_cache(where, "config.json"), str
        ):
            raise ModelLoadError(
                f"could not load cross-encoder {self.model_name!r}: it is not in the Hugging "
                f"Face cache and the hub is offline (HF_HUB_OFFLINE). {_hint(where, local)}."
            )

    def _check_architectures(self, architectures: Sequence[object]) -> None:
        # sentence-transformers turns any encoder (an embedding model, a bare BERT) into a
        # CrossEncoder with a random, untrained scoring head, whose scores would be noise.
        if architectures and not any(
            str(name).endswith("ForSequenceClassification") for name in architectures
        ):
            raise ModelLoadError(
                f"{self.model_name!r} is not a cross-encoder (architecture "
                f"{', '.join(map(str, architectures))}, no trained scoring head): pass a "
                "cross-encoder such as cross-encoder/ms-marco-MiniLM-L-4-v2"
            )

    def _load(self) -> CrossEncoder:
        where, local = model_location(self._source, "cross-encoder")
        hint = _hint(where, local)
        from sentence_transformers import CrossEncoder

        try:
            with quiet_loading():
                model: CrossEncoder = CrossEncoder(
                    where, device=self.device, max_length=self.max_length
                )
        except Exception as exc:
            raise ModelLoadError(
                f"could not load cross-encoder {self.model_name!r}: "
                f"{str(exc).strip().rstrip('.')}. {hint}."
            ) from exc
        config = getattr(model, "config", None)
        self._check_architectures(getattr(config, "architectures", None) or [])
        num_labels = getattr(model, "num_labels", 1)
        if num_labels != 1:
            raise ModelLoadError(
                f"{self.model_name!r} has {num_labels} output labels; reranking needs a "
                "cross-encoder with one relevance score per pair"
            )
        logger.debug("loaded cross-encoder %s on %s", self.model_name, self.device)
        return model

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance of each text to ``query``, higher is better, in the order of ``texts``.

        All pairs go through one batched ``CrossEncoder.predict`` call (``batch_size`` pairs
        per forward pass). An empty ``texts`` returns ``[]`` without loading the model.
        Example: ``reranker.score("scale to zero", ["min capacity 0", "a cat"])`` (~ 0.91, 0.02).

        Raises:
            EmptyQueryError: ``query`` is empty or whitespace.
            InvalidParameterError: ``texts`` is a single string or holds a non-string.
            ModelLoadError: the model could not be loaded.
            RerankError: scoring failed.
        """
        check_query(query)
        if isinstance(texts, str):
            raise InvalidParameterError("texts must be a sequence of strings, not one string")
        items = list(texts)
        if wrong := [index for index, text in enumerate(items) if not isinstance(text, str)]:
            name = type(items[wrong[0]]).__name__
            raise InvalidParameterError(f"texts[{wrong[0]}] must be a string, got {name}")
        if not items:
            return []
        model = self._get_model()
        try:
            raw = model.predict(
                [(query, text) for text in items],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
            scores = np.asarray(raw, dtype=np.float64).reshape(-1)
        except Exception as exc:
            raise RerankError(
                f"cross-encoder {self.model_name!r} failed to score {len(items)} text(s): {exc}"
            ) from exc
        if scores.shape[0] != len(items):
            raise RerankError(
                f"cross-encoder {self.model_name!r} returned {scores.shape[0]} score(s) "
                f"for {len(items)} text(s)"
            )
        if not np.isfinite(scores).all():
            raise RerankError(
                f"cross-encoder {self.model_name!r} returned non-finite scores: "
                "the model is probably corrupt"
            )
        return [float(value) for value in scores]

    def rerank(
        self, query: str, chunks: Sequence[Chunk], keep_top_k: int | None = None
    ) -> list[Chunk]:
        """``chunks`` sorted by cross-encoder score, best first, with ``score`` replaced.

        Ties keep the input order. ``keep_top_k`` keeps only the best ones (``None``: all).
        An empty ``chunks`` returns ``[]`` without loading the model. Example::

            Reranker("cross-encoder/ms-marco-MiniLM-L-4-v2").rerank(question, chunks, keep_top_k=3)

        Raises:
            InvalidParameterError: ``keep_top_k`` is not a positive integer; and as :meth:`score`.
        """
        check_query(query)
        if keep_top_k is not None:
            check_k(keep_top_k, "keep_top_k")
        items = list(chunks)
        if not items:
            return []
        scores = self.score(query, [chunk.text for chunk in items])
        order = sorted(range(len(items)), key=lambda index: -scores[index])[:keep_top_k]
        return [items[index].model_copy(update={"score": scores[index]}) for index in order]


def _hint(where: str, local: bool) -> str:
    """What to do about a cross-encoder that cannot be loaded from ``where``."""
    if local:
        return "Check that it holds a saved cross-encoder (config.json, weights, tokenizer)"
    return (
        "A hub name needs network access to download it once (or the model in the "
        f"Hugging Face cache, e.g. `hf download {where}`); or pass a local folder"
    )
