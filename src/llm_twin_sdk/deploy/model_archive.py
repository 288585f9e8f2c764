"""The ``model.tar.gz`` of a :class:`~llm_twin_sdk.deploy.custom_code.CustomCodeSpec`: built
deterministically, uploaded to S3 once per content hash.

The layout the SageMaker PyTorch inference toolkit expects: the weights (``model_dir``) at the
archive's root, the code (``source_dir``) under ``code/``. Entries are sorted, with fixed
times, owners and modes, and the gzip header carries no time or name, so the same files give
the same tar. Its SHA-256 (of the tar, before gzip, so a different zlib changes nothing) names
the upload: ``<artifact_path>/<sha256>/model.tar.gz``, and a redeploy of unchanged files
uploads nothing. ``plan`` only hashes the tar (:func:`content_hash`), compressing nothing.
Example::

    with tempfile.TemporaryDirectory() as folder:
        archive = build_model_archive(code, Path(folder))
        uri, uploaded = upload_model_archive(s3, archive, code)   # head_object first
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..aws import aws_error, call_aws, is_retryable_aws_error, split_s3_uri
from ..errors import AWSError, ModelArchiveError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .custom_code import CustomCodeSpec
from .spec import EndpointSpec

__all__ = [
    "MAX_PUT_BYTES",
    "ModelArchive",
    "archive_exists",
    "archive_members",
    "build_model_archive",
    "content_hash",
    "package_spec",
    "upload_model_archive",
]

MAX_PUT_BYTES = 5 * 1024**3
"""S3 takes at most 5 GiB in one PutObject."""

_MTIME = 0  # every entry's time, and the gzip header's
_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})  # head_object of a missing key


@dataclass(frozen=True)
class ModelArchive:
    """A built ``model.tar.gz``: its file, SHA-256 (hex), size and entries, in order."""

    path: Path
    sha256: str
    size: int
    members: tuple[str, ...]

    def describe(self) -> str:
        """``"3 files, 1.2 kB"``."""
        return f"{len(self.members)} file(s), {_size(self.size)}"


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(path relative to root, file)`` of every file under ``root``, caches skipped."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for name in names:
            if not name.endswith(_SKIPPED_SUFFIXES):
                path = Path(folder) / name
                yield path.relative_to(root).as_posix(), path


def archive_members(code: CustomCodeSpec) -> list[tuple[str, Path]]:
    """``(name in the archive, file)``, sorted by name: ``model_dir``'s files at the root,
    ``source_dir``'s under ``code/``."""
    members = [(f"code/{name}", path) for name, path in _files(code.source_dir)]
    if code.model_dir is not None:
        members += list(_files(code.model_dir))
    return sorted(members)


def _entry(name: str, path: Path) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mtime = _MTIME
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingSink:
    """What ``tarfile`` writes to: hashed (the archive's content hash is the SHA-256 of the
    uncompressed tar, so it does not depend on the zlib version), then passed on to ``sink``
    (the gzip stream) when there is one."""

    def __init__(self, sink: _Writable | None) -> None:
        self.digest = hashlib.sha256()
        self._sink = sink

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        if self._sink is not None:
            self._sink.write(data)
        return len(data)


def _write_tar(members: list[tuple[str, Path]], sink: _Writable | None) -> str:
    """Write the tar of ``members`` into ``sink`` (``None``: hash only); its SHA-256 (hex)."""
    hashing = _HashingSink(sink)
    try:
        # "w|": a stream, written front to back (no seek or tell on the sink); typeshed wants
        # a file object where anything with write() will do
        with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for name, path in members:
                with path.open("rb") as data:
                    tar.addfile(_entry(name, path), data)
    except OSError as exc:
        raise ModelArchiveError(f"cannot pack the model archive: {exc}") from exc
    return hashing.digest.hexdigest()


def content_hash(code: CustomCodeSpec) -> tuple[str, tuple[str, ...]]:
    """The archive's content hash and entries, without compressing or writing anything: what
    ``plan`` needs to look the archive up in S3.

    Raises:
        ModelArchiveError: a file cannot be read.
    """
    members = archive_members(code)
    return _write_tar(members, None), tuple(name for name, _ in members)


def build_model_archive(code: CustomCodeSpec, folder: Path) -> ModelArchive:
    """Write ``folder/model.tar.gz`` for ``code`` and return it with its content hash (the
    SHA-256 of the tar inside, the same as :func:`content_hash`).

    Raises:
        ModelArchiveError: a file cannot be read, or the archive is over 5 GiB (S3's limit
            for one upload: put such weights in S3 yourself and use ``model_data``).
    """
    members = archive_members(code)
    target = folder / "model.tar.gz"
    try:
        with (
            target.open("wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=_MTIME
            ) as zipped,
        ):
            sha256 = _write_tar(members, zipped)
    except OSError as exc:
        raise ModelArchiveError(f"cannot pack the model archive: {exc}") from exc
    size = target.stat().st_size
    if size > MAX_PUT_BYTES:
        raise ModelArchiveError(
            f"the model archive is {_size(size)}; one upload takes at most 5 GiB. Upload it "
            "yourself (aws s3 cp) and deploy it with model_data and your own image"
        )
    return ModelArchive(target, sha256, size, tuple(name for name, _ in members))


def archive_exists(s3: Any, uri: str, *, retry: RetryPolicy = DEFAULT_RETRY_POLICY) -> bool:
    """True when ``uri`` is already in S3 (``head_object``; a missing object is ``False``)."""
    bucket, key = split_s3_uri(uri)
    try:
        call_aws(s3, "head_object", policy=retry, Bucket=bucket, Key=key)
    except AWSError as exc:
        if exc.code in _MISSING:
            return False
        raise
    return True


def upload_model_archive(
    s3: Any,
    archive: ModelArchive,
    code: CustomCodeSpec,
    *,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> tuple[str, bool]:
    """Put ``archive`` at its content-hash URI unless it is there (one ``head_object``);
    ``(uri, uploaded)``. Retried under ``retry``; errors are SDK errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri = code.archive_uri(archive.sha256)
    if archive_exists(s3, uri, retry=retry):
        return uri, False
    bucket, key = split_s3_uri(uri)
    with archive.path.open("rb") as body:

        def put() -> Any:
            body.seek(0)  # every attempt sends the whole file
            return s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType="application/gzip",
                Metadata={"sha256": archive.sha256},
            )

        try:
            retry.call(put, is_retryable_aws_error)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, s3, "put_object") from exc
    return uri, True


def package_spec(
    spec: EndpointSpec,
    *,
    region: str,
    s3: Any,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    upload: bool,
) -> tuple[EndpointSpec, str | None]:
    """``spec`` as deployed: for ``custom_code``, its archive built (in a temporary folder),
    looked up in S3 and uploaded when missing (``upload``; else only looked up), the spec's
    ``model_data`` set to it and ``SAGEMAKER_REGION`` to ``region`` (unless ``environment``
    sets it); with a line for the plan (``"upload: s3://... (3 file(s), 1.2 kB)"``,
    ``"uploaded: ..."`` or ``"unchanged: ..."``). A spec without custom code is returned as is.
    """
    code = spec.custom_code
    if code is None:
        return spec, None
    if upload:
        with tempfile.TemporaryDirectory(prefix="llm-twin-archive-") as folder:
            archive = build_model_archive(code, Path(folder))
            uri, uploaded = upload_model_archive(s3, archive, code, retry=retry)
        line = f"{'uploaded' if uploaded else 'unchanged'}: {uri} ({archive.describe()})"
    else:
        sha256, members = content_hash(code)
        uri = code.archive_uri(sha256)
        note = "unchanged" if archive_exists(s3, uri, retry=retry) else "upload"
        line = f"{note}: {uri} ({len(members)} file(s))"
    environment = {"SAGEMAKER_REGION": region, **spec.environment}
    resolved = spec.model_copy(update={"model_data": uri, "environment": environment})
    return resolved, line
