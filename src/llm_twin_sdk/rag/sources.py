"""Document sources: a JSONL file, a folder of Markdown/text notes, or Python objects; every
loader returns validated :class:`~llm_twin_sdk.types.Document` objects, e.g.
``rag.ingest(load_documents("notes/"))`` (a folder: skipped files are logged).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeAlias

import yaml  # type: ignore[import-untyped, unused-ignore]

from ..errors import InvalidDocumentError, InvalidParameterError
from ..types import Document, DocumentMetadata
from ..validation import build_document, validate_documents

__all__ = [
    "DEFAULT_PATTERNS",
    "DocumentSource",
    "FolderLoad",
    "SkippedFile",
    "load_documents",
    "load_folder",
    "load_jsonl",
    "read_jsonl",
]

logger = logging.getLogger(__name__)

DEFAULT_PATTERNS: tuple[str, ...] = ("*.md", "*.markdown", "*.txt")
"""File name patterns :func:`load_folder` reads by default."""

DocumentSource: TypeAlias = "str | os.PathLike[str] | Iterable[Document | Mapping[str, Any]]"
"""What :func:`load_documents` accepts: a ``.jsonl`` path, a folder, or documents."""

_FRONT_MATTER_FENCE = "---"
_FRONT_MATTER_KEYS = frozenset(DocumentMetadata.model_fields) | {"id"}


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file :func:`load_folder` did not load, and why."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class FolderLoad:
    """The result of :func:`load_folder`: loaded documents and skipped files, in path order.

    Example: ``for skipped in load_folder("notes/").skipped: print(skipped.path, skipped.reason)``
    """

    documents: tuple[Document, ...]
    skipped: tuple[SkippedFile, ...]


def load_jsonl(path: str | os.PathLike[str]) -> list[Document]:
    """Documents from a JSONL file: one JSON object per line, blank lines skipped.

    Each object has the fields of :class:`~llm_twin_sdk.types.Document` (``id``, ``text``,
    optional ``metadata``). The file is one unit, loaded all or nothing.

    Raises:
        InvalidParameterError / InvalidDocumentError: as :func:`read_jsonl`; also a document
            that fails validation or repeats an earlier id (file and line named).
    """
    documents: list[Document] = []
    first_line: dict[str, str] = {}
    for where, data in read_jsonl(path, "JSONL file"):
        try:
            doc = build_document(data)
        except InvalidDocumentError as exc:
            raise InvalidDocumentError(f"{where}: {exc}") from exc
        if doc.id in first_line:
            raise InvalidDocumentError(
                f"{where}: duplicate document id {doc.id!r} (first on line {first_line[doc.id]})"
            )
        first_line[doc.id] = where.rsplit(":", 1)[1]
        documents.append(doc)
    return documents


def read_jsonl(path: str | os.PathLike[str], what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("<file>:<line>", object)`` for each non-blank line of a JSONL file (``what`` names
    the file in errors).

    Raises:
        InvalidParameterError: the file does not exist, is not a file or cannot be read.
        InvalidDocumentError: a line is not UTF-8, not JSON (also: nested too deeply, a number
            too long to read) or not an object; the message names the file and line.
    """
    file = Path(path)
    if not file.is_file():
        problem = "is not a file" if file.exists() else "does not exist"
        raise InvalidParameterError(f"{what} {str(file)!r} {problem}")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InvalidParameterError(f"cannot read {what} {str(file)!r}: {exc}") from exc
    for number, line in enumerate(raw.splitlines(), start=1):
        where = f"{file}:{number}"
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            if not text.strip():
                continue
            data = json.loads(text)
        except UnicodeDecodeError as exc:
            raise InvalidDocumentError(f"{where}: not valid UTF-8 ({exc.reason})") from exc
        except RecursionError:
            raise InvalidDocumentError(f"{where}: invalid JSON: nested too deeply") from None
        except ValueError as exc:  # a JSON error, or a number too long to convert
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise InvalidDocumentError(f"{where}: invalid JSON: {detail}") from exc
        if not isinstance(data, dict):
            raise InvalidDocumentError(
                f"{where}: expected a JSON object, got {type(data).__name__}"
            )
        yield where, data


def load_folder(
    path: str | os.PathLike[str],
    *,
    pattern: str | Sequence[str] = DEFAULT_PATTERNS,
    recursive: bool = True,
) -> FolderLoad:
    """Documents from a folder of Markdown/text files, one document per file.

    A file may start with YAML front matter (PyYAML's ``safe_load``) between two ``---``
    lines, giving ``id`` and metadata; the rest of the file is the document's text::

        ---
        id: gpu-cost          # default: the path relative to the folder, without extension
        author: Maya Okafor   # also: platform, kind (post | article | repository), url, title
        ---
        Quantize before you scale out...

    Files are read in sorted path order (default ids: ``blog/gpu-cost.md`` -> ``blog/gpu-cost``).
    A file is skipped (in :attr:`FolderLoad.skipped`, logged at WARNING) when it is not UTF-8,
    its front matter is invalid, unclosed or has unknown keys, its metadata fails validation,
    its body is empty, or its id was used by an earlier file. ``pattern``: glob pattern(s) of
    the files to read. Example: ``load_folder("notes/", pattern="*.md", recursive=False)``.

    Raises:
        InvalidParameterError: ``path`` does not exist or is not a folder, or no pattern
            is given.
    """
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise InvalidParameterError(f"document folder {str(folder)!r} {what}")
    patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise InvalidParameterError(f"pattern must be one or more glob patterns, got {pattern!r}")

    files: dict[str, Path] = {}
    for glob in patterns:
        for file in folder.rglob(glob) if recursive else folder.glob(glob):
            if file.is_file():
                files[file.relative_to(folder).as_posix()] = file

    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    used_by: dict[str, str] = {}
    for relative in sorted(files):
        file = files[relative]
        try:
            doc = _read_note(file, default_id=PurePosixPath(relative).with_suffix("").as_posix())
            if doc.id in used_by:
                raise _SkipFileError(
                    f"duplicate document id {doc.id!r} (already used by {used_by[doc.id]})"
                )
            used_by[doc.id] = relative
            documents.append(doc)
        except _SkipFileError as skip:
            logger.warning("skipped %s: %s", file, skip)
            skipped.append(SkippedFile(path=file, reason=str(skip)))
    return FolderLoad(documents=tuple(documents), skipped=tuple(skipped))


def load_documents(source: DocumentSource) -> list[Document]:
    """Validated documents from any source: a path ending in ``.jsonl`` (:func:`load_jsonl`,
    strict), a folder (:func:`load_folder`; skipped files are logged, not raised), or an
    iterable of ``Document`` or mappings, e.g. ``load_documents([{"id": "p1", "text": "Hi"}])``.

    Raises:
        InvalidParameterError: a path that is neither a folder nor an existing ``.jsonl`` file.
        InvalidDocumentError: an invalid document (from JSONL or the iterable), a duplicate
            id, or a single document/mapping given instead of an iterable of them.
    """
    if isinstance(source, (str, os.PathLike)):
        target = Path(source)
        if target.is_dir():
            loaded = load_folder(target)
            if loaded.skipped:
                logger.warning(
                    "loaded %d documents from %s, skipped %d files",
                    len(loaded.documents),
                    target,
                    len(loaded.skipped),
                )
            return list(loaded.documents)
        if target.suffix.lower() == ".jsonl":
            return load_jsonl(target)
        what = "does not exist" if not target.exists() else "is not a .jsonl file"
        raise InvalidParameterError(
            f"document source {str(target)!r} {what}: give a .jsonl file, a folder of "
            "Markdown/text files, or a list of documents"
        )
    if isinstance(source, (bytes, Document, Mapping)) or not isinstance(source, Iterable):
        single = isinstance(source, (Document, Mapping))
        raise InvalidDocumentError(
            "load_documents takes a .jsonl path, a folder or a list of documents, not "
            + ("a single document" if single else type(source).__name__)
        )
    return validate_documents(source)


class _SkipFileError(Exception):
    """The current folder file is skipped, for the reason in the message."""


def _read_note(file: Path, *, default_id: str) -> Document:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise _SkipFileError(f"cannot read file: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _SkipFileError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    fields, body = _split_front_matter(content)
    if not body.strip():
        raise _SkipFileError("empty body: the file has no text after its front matter")
    metadata = {key: value for key, value in fields.items() if key != "id"}
    doc_id = fields.get("id", default_id)
    try:
        return build_document({"id": doc_id, "text": body, "metadata": metadata})
    except InvalidDocumentError as exc:
        raise _SkipFileError(str(exc)) from exc


def _split_front_matter(content: str) -> tuple[dict[str, Any], str]:
    """Front-matter fields (validated keys, raw values) and the body of a note."""
    lines = content.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != _FRONT_MATTER_FENCE:
        return {}, content
    for end in range(1, len(lines)):
        if lines[end].rstrip() == _FRONT_MATTER_FENCE:
            break
    else:
        raise _SkipFileError("front matter is not closed: add a '---' line after it")
    header = "".join(lines[1:end])
    body = "".join(lines[end + 1 :]).lstrip("\r\n")
    try:
        data = yaml.safe_load(header)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise _SkipFileError(f"front matter is not valid YAML: {detail}") from exc
    if data is None:
        return {}, body
    if not isinstance(data, dict):
        raise _SkipFileError(
            f"front matter must be a mapping of keys to values, got {type(data).__name__}"
        )
    unknown = sorted(repr(key) for key in data if key not in _FRONT_MATTER_KEYS)
    if unknown:
        raise _SkipFileError(
            f"unknown front matter key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_FRONT_MATTER_KEYS))}"
        )
    return data, body
