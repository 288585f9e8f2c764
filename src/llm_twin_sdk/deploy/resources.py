"""SageMaker's resources as data: one table of kinds, and describe / delete / list / wait over it.

Where sagemaker-core gives every resource class ``get_all``, ``wait_for_status`` and
``wait_for_delete``, one table, :data:`KINDS`, names each kind's operations and fields, and
:class:`Resources` serves every kind through the AWS seam (one retry policy, one code table)::

    res.describe("endpoint", "twin")                  # the answer, or None: no such endpoint
    res.delete("model", "twin-12fd0641")              # False: it was already gone
    res.wait_for_delete("inference-component", "twin-ic", deadline=res.clock() + 600)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..aws import call_aws, delete_if_exists, describe_or_none, pages
from ..retry import RetryPolicy
from .waiting import Outcome, Poller, ResourceKind, Settled

__all__ = ["KINDS", "Judge", "Kind", "Resources", "Response"]

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


class Resources:
    """SageMaker resources of every kind, through one client, retry policy and poller."""

    def __init__(self, client: Any, *, retry: RetryPolicy, poller: Poller) -> None:
        self.client = client
        self.retry = retry
        self.poller = poller
        self.clock = poller.clock

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

    @staticmethod
    def status_of(kind: ResourceKind, answer: Response | None) -> str:
        """The status of one ``describe_*`` answer; ``"gone"`` when there is none."""
        if answer is None:
            return "gone"
        key = KINDS[kind].status_key
        return str((answer.get(key) if key else None) or "unknown")

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
        """Poll ``describe_<kind>`` until ``judge`` says done or failed, or until ``deadline``.

        Raises:
            EndpointTimeoutError: still waiting at ``deadline`` (``hint`` says what to do).
        """
        return self.poller.wait(
            resource=kind,
            name=name,
            describe=lambda: self.describe(kind, name),
            judge=judge,
            status_of=lambda answer: self.status_of(kind, answer),
            timeout_s=max(deadline - self.clock(), 0.0),
            endpoint_name=endpoint_name,
            first=first,
            hint=hint,
        )

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
