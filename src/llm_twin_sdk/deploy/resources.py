"""SageMaker's resources as data: one table of kinds, and describe / delete / list / wait over it.

Where sagemaker-core gives every resource class ``get_all`` and ``wait_for_*``, :data:`KINDS`
names each kind's operations and fields, and :class:`Resources` serves every kind through the
AWS seam (botocore's waiters cover endpoints only, without progress or an injected clock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..aws import call_aws, delete_if_exists, describe_or_none, pages
from ..errors import EndpointTimeoutError
from ..retry import RetryPolicy
from .waiting import Outcome, ResourceKind, Settled, WaitProgress

__all__ = ["KINDS", "Judge", "Kind", "Resources", "Response"]

logger = logging.getLogger(__name__)

Response: TypeAlias = dict[str, Any]
Judge: TypeAlias = Callable[[Response | None], Outcome]
"""Tells ``"done"``, ``"failed"`` or ``"waiting"`` from one ``describe_*`` answer (None: gone)."""


@dataclass(frozen=True)
class Kind:
    """How SageMaker names the operations and fields of one kind of resource."""

    describe: str
    delete: str
    list: str
    list_key: str
    """Key of the items in a ``list_*`` page."""
    name_key: str
    """The name's parameter in every call, and its field in answers and list items."""
    arn_key: str
    status_key: str | None = None
    blocks_endpoint: bool = False
    """Its endpoint can be deleted only once it is gone (so its deletion is waited for)."""


KINDS: Mapping[ResourceKind, Kind] = {
    "model": Kind(
        "describe_model", "delete_model", "list_models", "Models", "ModelName", "ModelArn"
    ),
    "endpoint-config": Kind(
        "describe_endpoint_config", "delete_endpoint_config", "list_endpoint_configs",
        "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn",
    ),
    "endpoint": Kind(
        "describe_endpoint", "delete_endpoint", "list_endpoints", "Endpoints", "EndpointName",
        "EndpointArn", "EndpointStatus",
    ),
    "inference-component": Kind(
        "describe_inference_component", "delete_inference_component",
        "list_inference_components", "InferenceComponents", "InferenceComponentName",
        "InferenceComponentArn", "InferenceComponentStatus", blocks_endpoint=True,
    ),
}  # fmt: skip
"""The one table of the SageMaker resource kinds the SDK deploys."""

_DELETE_HINT = "The deletion goes on in SageMaker; call Deployer.delete again to keep waiting."


@dataclass(frozen=True)
class Resources:
    """SageMaker resources of every kind, through one client and retry policy.

    Waits poll every ``poll_interval_s`` seconds and call ``on_progress`` with every
    observation; tests inject ``sleep`` and ``clock`` (monotonic seconds).
    """

    client: Any
    retry: RetryPolicy
    poll_interval_s: float = 15.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    on_progress: Callable[[WaitProgress], None] | None = field(default=None, repr=False)

    def call(self, operation: str, **params: Any) -> Response:
        """One SageMaker call (retried, errors converted); its answer as a dict."""
        answer = call_aws(self.client, operation, policy=self.retry, **params)
        return dict(answer) if answer else {}

    def get(self, kind: ResourceKind, name: str) -> Response:
        """``describe_<kind>``; :class:`~llm_twin_sdk.errors.ResourceNotFoundError` if none."""
        return self.call(KINDS[kind].describe, **{KINDS[kind].name_key: name})

    def describe(self, kind: ResourceKind, name: str) -> Response | None:
        """``describe_<kind>``, or ``None`` when there is no such resource."""
        table = KINDS[kind]
        return describe_or_none(
            self.client, table.describe, policy=self.retry, **{table.name_key: name}
        )

    def delete(self, kind: ResourceKind, name: str) -> bool:
        """``delete_<kind>``; ``False`` when there was nothing to delete."""
        table = KINDS[kind]
        return delete_if_exists(
            self.client, table.delete, policy=self.retry, **{table.name_key: name}
        )

    def get_all(self, kind: ResourceKind, **filters: Any) -> Iterator[Response]:
        """Every item of ``list_<kind>s`` (all pages), e.g. ``NameContains="twin"``."""
        table = KINDS[kind]
        return pages(self.client, table.list, table.list_key, policy=self.retry, **filters)

    def tags(self, arn: str) -> list[Response]:
        """The tags of one resource, as ``[{"Key": ..., "Value": ...}]``."""
        return list(pages(self.client, "list_tags", "Tags", policy=self.retry, ResourceArn=arn))

    def wait_for_status(
        self,
        kind: ResourceKind,
        name: str,
        judge: Judge,
        *,
        deadline: float,
        endpoint_name: str | None = None,
        first: Response | None = None,
        hint: str = "",
    ) -> Settled:
        """Poll ``describe_<kind>`` until ``judge`` says done or failed, or until ``deadline``;
        ``first`` is an answer already read (it saves a call when it is terminal).

        Raises:
            EndpointTimeoutError: still waiting at ``deadline`` (``hint`` says what to do).
        """
        start = self.clock()
        timeout_s = max(deadline - start, 0.0)
        answer = first if first is not None else self.describe(kind, name)
        while True:
            elapsed = max(self.clock() - start, 0.0)
            key, outcome = KINDS[kind].status_key or "", judge(answer)
            status = "gone" if answer is None else str(answer.get(key) or "unknown")
            reason = (answer or {}).get("FailureReason") if outcome == "failed" else None
            progress = WaitProgress(
                resource=kind,
                name=name,
                status=status,
                elapsed_s=elapsed,
                timeout_s=max(timeout_s, 1e-9),
                failure_reason=str(reason) if reason else None,
            )
            logger.info("%s", progress)
            if self.on_progress is not None:
                self.on_progress(progress)
            if outcome != "waiting":
                return Settled(outcome=outcome, response=answer, elapsed_s=elapsed)
            if elapsed >= timeout_s:
                message = (
                    f"{kind} {name!r} is still {status} after {elapsed:.0f} s "
                    f"(timeout_s={timeout_s:g}). {hint}"
                )
                raise EndpointTimeoutError(message.strip(), endpoint_name=endpoint_name or name)
            self.sleep(min(self.poll_interval_s, timeout_s - elapsed))
            answer = self.describe(kind, name)

    def wait_for_delete(
        self,
        kind: ResourceKind,
        name: str,
        *,
        deadline: float,
        endpoint_name: str | None = None,
        hint: str = _DELETE_HINT,
    ) -> None:
        """Poll ``describe_<kind>`` until the resource is gone, or until ``deadline``."""
        self.wait_for_status(
            kind,
            name,
            lambda answer: "done" if answer is None else "waiting",
            deadline=deadline,
            endpoint_name=endpoint_name,
            hint=hint,
        )
