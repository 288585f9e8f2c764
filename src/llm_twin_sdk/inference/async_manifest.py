"""The manifest of an asynchronous-inference job: where it runs, what it asked, which items
are done. Saved as JSON to a local file or an S3 object; :meth:`AsyncJobs.resume
<llm_twin_sdk.inference.async_jobs.AsyncJobs.resume>` reads it and never resends an item
that SageMaker accepted.

An item moves ``pending`` (not sent) -> ``submitted`` (SageMaker has it; output and failure
locations known) -> ``done`` (output read) or ``failed`` (its error kept).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, TypeAlias

from pydantic import Field

from ..aws import call_aws, split_s3_uri
from ..errors import AWSError, JobManifestError
from ..retry import RetryPolicy
from ..types import _Model

__all__ = ["AnswerKind", "ItemState", "JobItem", "JobManifest", "load_manifest", "save_manifest"]

ItemState: TypeAlias = Literal["pending", "submitted", "done", "failed"]
AnswerKind: TypeAlias = Literal["raw", "generate"]
"""``raw``: bodies as given; ``generate``: TGI generate requests, outputs read as answers."""
MANIFEST_VERSION = 1
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
"""S3 error codes of an object that is not there."""


class JobItem(_Model):
    """One request of a job: its input object, SageMaker's answer locations, its state."""

    index: int = Field(ge=0)
    input_location: str
    state: ItemState = "pending"
    uploaded: bool = Field(False, description="The body is at input_location.")
    inference_id: str | None = None
    output_location: str | None = None
    failure_location: str | None = None
    error: str | None = Field(None, description="Why the item failed (state 'failed').")


class JobManifest(_Model):
    """Where a job runs and what it holds: the endpoint, the request settings, the items."""

    version: int = MANIFEST_VERSION
    job_id: str
    endpoint_name: str
    content_type: str
    accept: str
    invocation_timeout_s: int
    request_ttl_s: int
    answers: AnswerKind = "raw"
    items: tuple[JobItem, ...]

    def counts(self) -> dict[str, int]:
        """Items per state, e.g. ``{"done": 10, "submitted": 2}``."""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.state] = counts.get(item.state, 0) + 1
        return counts


def save_manifest(manifest: JobManifest, where: str | Path, s3: Any, retry: RetryPolicy) -> None:
    """Write ``manifest`` to a local path (atomically: a temporary file renamed) or to an
    ``s3://bucket/key`` object (``s3``: an S3 client, used only for S3)."""
    data = manifest.model_dump_json(indent=1).encode("utf-8")
    if isinstance(where, str) and where.startswith("s3://"):
        bucket, key = split_s3_uri(where)
        call_aws(s3, "put_object", policy=retry, Bucket=bucket, Key=key, Body=data)
        return
    path = Path(where)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise JobManifestError(f"cannot write the job manifest {str(path)!r}: {exc}") from exc


def load_manifest(where: str | Path, s3: Any, retry: RetryPolicy) -> JobManifest:
    """Read a manifest written by :func:`save_manifest`.

    Raises:
        JobManifestError: the file or object is missing, not JSON, or not a manifest.
    """
    if isinstance(where, str) and where.startswith("s3://"):
        bucket, key = split_s3_uri(where)
        try:
            answer = call_aws(s3, "get_object", policy=retry, Bucket=bucket, Key=key)
            raw: bytes = answer["Body"].read()
        except AWSError as exc:
            if exc.code in MISSING_CODES:
                raise JobManifestError(f"no job manifest at {where}") from exc
            raise
    else:
        try:
            raw = Path(where).read_bytes()
        except OSError as exc:
            raise JobManifestError(f"cannot read the job manifest {str(where)!r}: {exc}") from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"not a version-{MANIFEST_VERSION} job manifest")
        return JobManifest.model_validate(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobManifestError(f"{where} is not a job manifest: {exc}") from exc
