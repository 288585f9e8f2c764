"""CustomCodeSpec: your own inference code on a SageMaker framework container (PyTorch).

As the LLM Twin book's first example deploys a model: an ``inference.py`` with the SageMaker
inference toolkit's handlers (``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``) in
``source_dir``, the weights in ``model_dir``. The :class:`~llm_twin_sdk.deploy.deployer.Deployer`
packs both into one ``model.tar.gz`` (weights at its root, the code under ``code/``), uploads
it once per content hash under ``artifact_path`` and points the model at it. Example::

    EndpointSpec(
        name="twin-classifier",
        role_arn=role,
        engine="pytorch",
        instance_type="ml.m5.xlarge",
        custom_code=CustomCodeSpec(
            source_dir="src/serving",
            entry_point="inference.py",
            model_dir="artifacts/model",
            framework_version="2.6",
            artifact_path="s3://twin-models/custom",
        ),
    )
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..aws import S3_URI, split_s3_uri
from ..types import _Model

__all__ = ["CODE_DIR", "RESERVED_ENVIRONMENT", "CustomCodeSpec"]

CODE_DIR = "/opt/ml/model/code"
"""Where the container finds the code: ``code/`` of the model archive, unpacked under
``/opt/ml/model`` (``SAGEMAKER_SUBMIT_DIRECTORY``)."""

RESERVED_ENVIRONMENT = frozenset(
    {"SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY", "SAGEMAKER_CONTAINER_LOG_LEVEL"}
)
"""Container variables set from the spec (``SAGEMAKER_REGION``: the Deployer's region, unless
the spec's ``environment`` sets it)."""

_PATH_MAX = 900  # the S3 key of <prefix>/<64 hex>/model.tar.gz stays below S3's 1024 bytes


class CustomCodeSpec(_Model):
    """Your own inference code (and weights) for a framework container.

    Paths are checked when the spec is built (folders exist, the entry point is a ``.py``
    file inside ``source_dir``); the framework version and Python version against the
    SageMaker image table (offline) when the image is resolved, before any AWS call.
    """

    source_dir: Path = Field(description="Folder with the entry point (and requirements.txt).")
    entry_point: str = Field(description="The handler script, relative to source_dir.")
    model_dir: Path | None = Field(
        None, description="Folder of weights, packed at the archive's root; None: code only."
    )
    framework: Literal["pytorch"] = "pytorch"
    framework_version: str = Field(description="Framework version of the image, e.g. '2.6'.")
    py_version: str | None = Field(
        None, description="Python of the image, e.g. 'py312'; None: the newest listed."
    )
    artifact_path: str = Field(
        description="s3://bucket/prefix where archives go, as <sha256>/model.tar.gz."
    )
    log_level: int = Field(
        logging.INFO, ge=0, le=50, description="SAGEMAKER_CONTAINER_LOG_LEVEL (10 = DEBUG)."
    )

    @field_validator("source_dir", "model_dir")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser().absolute()
        if not path.is_dir():
            raise ValueError(f"{str(value)!r} is not a folder")
        return path

    @field_validator("artifact_path")
    @classmethod
    def _s3(cls, value: str) -> str:
        if not S3_URI.match(value):
            raise ValueError("must be an S3 URI: s3://<bucket>/<prefix> (lowercase bucket name)")
        if len(value) > _PATH_MAX:
            raise ValueError(f"must be at most {_PATH_MAX} characters")
        return value.rstrip("/")

    @field_validator("framework_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("must be a version such as '2.6'")
        return value

    @model_validator(mode="after")
    def _entry_point_inside(self) -> CustomCodeSpec:
        relative = PurePosixPath(self.program)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(
                f"entry_point {self.entry_point!r} must be a path inside source_dir, relative "
                "to it (e.g. 'inference.py')"
            )
        if relative.suffix != ".py":
            raise ValueError(f"entry_point {self.entry_point!r} must be a Python file (.py)")
        script = self.source_dir / relative
        inside = script.resolve().is_relative_to(self.source_dir.resolve())
        if not inside:  # a symbolic link out of the folder
            raise ValueError(f"entry_point {self.entry_point!r} points outside source_dir")
        if not script.is_file():
            raise ValueError(
                f"entry_point {self.entry_point!r} is not a file in {str(self.source_dir)!r}"
            )
        if self.model_dir is not None and (self.model_dir / "code").exists():
            raise ValueError(
                "model_dir holds a 'code' entry, where the archive puts source_dir; rename it"
            )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Where the code is, then what is set.
        return self._changed_args("source_dir", "entry_point", "framework_version")

    @property
    def program(self) -> str:
        """``SAGEMAKER_PROGRAM``: the entry point, relative to the code folder."""
        return PurePosixPath(self.entry_point.replace("\\", "/")).as_posix()

    def environment(self) -> dict[str, str]:
        """The container variables of the code (``SAGEMAKER_REGION`` is the Deployer's)."""
        return {
            "SAGEMAKER_PROGRAM": self.program,
            "SAGEMAKER_SUBMIT_DIRECTORY": CODE_DIR,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": str(self.log_level),
        }

    def is_archive_uri(self, uri: str) -> bool:
        """``uri`` is where this spec's archives go (``<artifact_path>/<sha256>/model.tar.gz``)."""
        pattern = re.escape(self.artifact_path) + r"/[0-9a-f]{64}/model\.tar\.gz"
        return re.fullmatch(pattern, uri) is not None

    def archive_uri(self, sha256: str) -> str:
        """Where the archive of content hash ``sha256`` lives: ``<artifact_path>/<sha256>/
        model.tar.gz``."""
        return f"{self.artifact_path}/{sha256}/model.tar.gz"

    def role_statements(self, *, partition: str = "aws") -> list[dict[str, Any]]:
        """What SageMaker's execution role needs: read the archives under ``artifact_path``
        (used by :func:`~llm_twin_sdk.deploy.iam.ensure_execution_role`)."""
        bucket, prefix = split_s3_uri(self.artifact_path)
        where = f"arn:{partition}:s3:::{bucket}/{prefix + '/' if prefix else ''}*"
        return [
            {"Sid": "ModelArchiveRead", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": where},
        ]  # fmt: skip
