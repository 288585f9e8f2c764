"""AsyncInferenceSpec: an asynchronous-inference endpoint (``InvokeEndpointAsync``).

Set ``EndpointSpec(async_inference=AsyncInferenceSpec(output_path="s3://bucket/out"))`` and the
endpoint config carries SageMaker's ``AsyncInferenceConfig``: where results and failures are
written, the SNS topics told of each, and how many requests one instance works on at once.
Requests wait in SageMaker's queue (up to six hours), run up to an hour each, and the
endpoint can scale down to zero instances on its backlog
(:class:`~llm_twin_sdk.scaling.BacklogScaling`). Jobs: :mod:`llm_twin_sdk.inference.async_jobs`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..aws import S3_URI, split_s3_uri
from ..types import _Model

__all__ = ["AsyncInferenceSpec"]

_SNS_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")
_PATH_MAX = 512  # SageMaker's limit on S3OutputPath and S3FailurePath


class AsyncInferenceSpec(_Model):
    """How an asynchronous-inference endpoint stores and announces its results.

    Example::

        AsyncInferenceSpec(
            output_path="s3://twin-jobs/results",
            failure_path="s3://twin-jobs/failures",
            max_concurrent_invocations_per_instance=4,
        )
    """

    output_path: str = Field(description="s3://bucket/prefix where SageMaker writes results.")
    failure_path: str | None = Field(
        None, description="s3://bucket/prefix for failed requests' errors; None: none kept."
    )
    success_topic: str | None = Field(None, description="SNS topic ARN told of each result.")
    error_topic: str | None = Field(None, description="SNS topic ARN told of each failure.")
    max_concurrent_invocations_per_instance: int | None = Field(
        None, ge=1, le=1000, description="Requests one instance works on at once; None: AWS's."
    )
    input_path: str | None = Field(
        None,
        description="s3://bucket/prefix where jobs upload request bodies (the role may read "
        "it); not part of the endpoint config.",
    )

    @field_validator("output_path", "failure_path", "input_path")
    @classmethod
    def _s3(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not S3_URI.match(value):
            raise ValueError("must be an S3 URI: s3://<bucket>/<prefix> (lowercase bucket name)")
        if len(value) > _PATH_MAX:
            raise ValueError(f"must be at most {_PATH_MAX} characters (SageMaker's limit)")
        return value.rstrip("/")

    @field_validator("success_topic", "error_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not _SNS_TOPIC.match(value):
            raise ValueError("must be an SNS topic ARN: arn:aws:sns:<region>:<account>:<topic>")
        return value

    @model_validator(mode="after")
    def _distinct_paths(self) -> AsyncInferenceSpec:
        if self.failure_path is not None and self.failure_path == self.output_path:
            raise ValueError("failure_path must differ from output_path")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The output path, then what is set.
        return self._changed_args("output_path")

    def request(self) -> dict[str, Any]:
        """SageMaker's ``AsyncInferenceConfig`` for ``create_endpoint_config``."""
        output: dict[str, Any] = {"S3OutputPath": self.output_path}
        if self.failure_path is not None:
            output["S3FailurePath"] = self.failure_path
        topics = {"SuccessTopic": self.success_topic, "ErrorTopic": self.error_topic}
        if notify := {key: arn for key, arn in topics.items() if arn is not None}:
            output["NotificationConfig"] = notify
        config: dict[str, Any] = {"OutputConfig": output}
        if (limit := self.max_concurrent_invocations_per_instance) is not None:
            config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": limit}
        return config

    def role_statements(self, *, partition: str = "aws") -> list[dict[str, Any]]:
        """The IAM statements SageMaker's execution role needs for this endpoint: write the
        output and failure paths, read the input path, publish to the topics (used by
        :func:`~llm_twin_sdk.deploy.iam.ensure_execution_role`)."""

        def objects(uri: str) -> str:
            bucket, prefix = split_s3_uri(uri)
            return f"arn:{partition}:s3:::{bucket}/{prefix + '/' if prefix else ''}*"

        write = [objects(p) for p in (self.output_path, self.failure_path) if p is not None]
        statements: list[dict[str, Any]] = [
            {"Sid": "AsyncOutputWrite", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": write},
        ]  # fmt: skip
        if self.input_path is not None:
            statements.append(
                {"Sid": "AsyncInputRead", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": objects(self.input_path)}
            )  # fmt: skip
        if topics := sorted({t for t in (self.success_topic, self.error_topic) if t}):
            statements.append(
                {"Sid": "AsyncNotify", "Effect": "Allow", "Action": "sns:Publish",
                 "Resource": topics}
            )  # fmt: skip
        return statements

    def describe(self) -> str:
        """One line for plans, e.g. ``"results to s3://b/out, 4 per instance"``."""
        text = f"results to {self.output_path}"
        if self.failure_path is not None:
            text += f", failures to {self.failure_path}"
        if self.success_topic or self.error_topic:
            text += ", SNS notifications"
        if (limit := self.max_concurrent_invocations_per_instance) is not None:
            text += f", {limit} per instance"
        return text
