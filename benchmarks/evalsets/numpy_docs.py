"""A retrieval corpus nobody on the team wrote: the docstrings of the installed numpy.

Each document is one public callable (a function, ufunc or class) of ``numpy``,
``numpy.linalg`` or ``numpy.fft``, or a public method of ``numpy.random.Generator``::

    from evalsets.numpy_docs import build_corpus      # benchmarks/ on sys.path

    docs = build_corpus()
    docs[0].id                    # 'numpy.abs'... a qualified name
    docs[0].metadata.platform     # 'numpy', 'numpy.linalg', 'numpy.fft' or 'numpy.random'

A document's text is ``"qualified_name(signature)"``, a blank line and the cleaned docstring.
Kept: docstrings of at least :data:`MIN_DOC_CHARS` characters, once each (an alias sharing
its docstring with another name keeps the name equal to the object's ``__name__``, else the
shortest); dropped: deprecated aliases and numpy's scalar types (``np.float64``...), whose
docstrings are a boilerplate line and a character code. Deterministic: the same numpy gives
the same documents in the same order. The labelled questions of ``numpy_docs_queries.jsonl``
were written against :data:`NUMPY_VERSION`; another installed version warns.

Run ``python benchmarks/evalsets/numpy_docs.py`` for a summary.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from llm_twin_sdk import Document, DocumentMetadata

__all__ = ["MIN_DOC_CHARS", "NUMPY_VERSION", "QUERIES", "build_corpus"]

NUMPY_VERSION = "2.4.6"
"""The numpy whose docstrings the questions were written against and labelled on."""

MIN_DOC_CHARS = 300
"""Shorter docstrings (thin aliases, abstract scalar bases) say too little to retrieve."""

MIN_SCALAR_DOC_CHARS = 600
"""A scalar type (``np.generic`` subclass) is kept only with a real docstring (datetime64,
void), not the usual 'X-bit type, compatible with C ...' and character code."""

DEPRECATED_ALIASES = frozenset({"numpy.row_stack"})
"""Names numpy keeps only for compatibility (``row_stack``: deprecated in 2.0 for vstack)."""

QUERIES = Path(__file__).resolve().parent / "numpy_docs_queries.jsonl"
"""The labelled questions over this corpus (``load_queries(QUERIES)``)."""

_MODULES: tuple[tuple[str, ModuleType], ...] = (
    ("numpy", np),
    ("numpy.linalg", np.linalg),
    ("numpy.fft", np.fft),
)
_GENERATOR = "numpy.random.Generator"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _is_public_callable(obj: object) -> bool:
    return inspect.isroutine(obj) or inspect.isclass(obj) or isinstance(obj, np.ufunc)


def _is_boilerplate_scalar(obj: object, doc: str) -> bool:
    return inspect.isclass(obj) and issubclass(obj, np.generic) and len(doc) < MIN_SCALAR_DOC_CHARS


def _signature(obj: object) -> str:
    """``(a, axis=None, ...)`` as inspect gives it, without a method's ``self`` or memory
    addresses; '' when inspect cannot tell."""
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]  # any callable; failures caught
    except (TypeError, ValueError):
        return ""
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name == "self":
        signature = signature.replace(parameters=parameters[1:])
    return _ADDRESS.sub("", str(signature))  # a default's repr must not change run to run


def _candidates() -> Iterator[tuple[str, str, str, object]]:
    """(qualified name, platform, attribute name, object) of every public callable."""
    for platform, module in _MODULES:
        for name in sorted(module.__all__):
            obj = getattr(module, name, None)
            if name.startswith("_") or not _is_public_callable(obj):
                continue
            yield f"{platform}.{name}", platform, name, obj
    for name in sorted(vars(np.random.Generator)):
        obj = getattr(np.random.Generator, name)
        if not name.startswith("_") and inspect.isroutine(obj):
            yield f"{_GENERATOR}.{name}", "numpy.random", name, obj


def _canonical_rank(qualified: str, name: str, obj: object) -> tuple[bool, int, str]:
    """Sort key of an alias: its own ``__name__`` first, then the shortest, then by name."""
    return (getattr(obj, "__name__", None) != name, len(qualified), qualified)


def build_corpus() -> list[Document]:
    """One :class:`~llm_twin_sdk.Document` per documented public numpy callable, sorted by id.

    Warns (``UserWarning``) when the installed numpy is not :data:`NUMPY_VERSION`: the
    documents then differ from the ones the questions were labelled on.
    """
    if np.__version__ != NUMPY_VERSION:
        warnings.warn(
            f"numpy {np.__version__} is installed; the numpy-docs questions were labelled on "
            f"numpy {NUMPY_VERSION}: scores are not comparable",
            stacklevel=2,
        )
    by_doc: dict[str, list[tuple[str, str, str, object]]] = {}
    for qualified, platform, name, obj in _candidates():
        doc = inspect.cleandoc(obj.__doc__ or "")
        if (
            len(doc) < MIN_DOC_CHARS
            or qualified in DEPRECATED_ALIASES
            or _is_boilerplate_scalar(obj, doc)
        ):
            continue
        by_doc.setdefault(doc, []).append((qualified, platform, name, obj))
    documents = []
    for doc, owners in by_doc.items():
        qualified, platform, _, obj = min(owners, key=lambda o: _canonical_rank(o[0], o[2], o[3]))
        documents.append(
            Document(
                id=qualified,
                text=f"{qualified}{_signature(obj)}\n\n{doc}",
                metadata=DocumentMetadata(title=qualified, platform=platform, kind="article"),
            )
        )
    return sorted(documents, key=lambda d: d.id)


def _summary(documents: list[Document]) -> str:
    per_platform = Counter(d.metadata.platform for d in documents)
    lines = [f"numpy {np.__version__} docstrings (questions written against {NUMPY_VERSION})"]
    lines += [f"  {platform:<14} {count:>4} documents" for platform, count in per_platform.items()]
    chars = sum(len(d.text) for d in documents)
    lines.append(f"  {'total':<14} {len(documents):>4} documents, {chars:,} characters")
    return "\n".join(lines)


if __name__ == "__main__":
    print(_summary(build_corpus()))
