"""What SageMaker says about an endpoint: :class:`EndpointStatus`, read (describe and list calls
only) through :class:`~llm_twin_sdk.deploy.resources.Resources`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TypeAlias

from pydantic import Field

from ..display import Shown, brief, html_block, listing, paragraph, table
from ..endpoint import EndpointRef, has_sdk_tag
from ..types import _Model
from .resources import Resources, Response

__all__ = ["EndpointStatus", "InferenceComponentStatus", "layout", "list_managed", "read_status"]

Kind: TypeAlias = Literal["model", "inference-component"]


class InferenceComponentStatus(_Model):
    """One inference component of an endpoint."""

    name: str
    status: str | None = None
    model_name: str | None = None
    desired_copies: int | None = None
    current_copies: int | None = None
    failure_reason: str | None = None


class EndpointStatus(_Model):
    """What SageMaker says about one endpoint (``Deployer.status`` / ``Deployer.list``).

    Counts are ``None`` when SageMaker does not report them (for instance while creating).
    Example: ``st = deployer.status("twin"); print(st); st.kind, st.copies, st.ref()``.
    """

    name: str
    status: str
    endpoint_config_name: str | None = None
    pending_config_name: str | None = Field(
        None, description="The config an update in progress moves to."
    )
    kind: Kind | None = None
    variant_name: str | None = None
    instance_type: str | None = None
    current_instance_count: int | None = None
    desired_instance_count: int | None = None
    inference_components: tuple[InferenceComponentStatus, ...] = ()
    asynchronous: bool = Field(False, description="Its config has an AsyncInferenceConfig.")
    failure_reason: str | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None
    managed: bool = Field(False, description="Carries the managed-by: llm-twin-sdk tag.")
    arn: str | None = None

    @property
    def copies(self) -> int | None:
        """Running copies over all inference components (``None`` for model-based)."""
        known = [
            c.current_copies for c in self.inference_components if c.current_copies is not None
        ]
        return sum(known) if known else None

    def ref(self) -> EndpointRef:
        """The endpoint's identity (first inference component, if any)."""
        return EndpointRef(
            name=self.name,
            variant_name=self.variant_name or "AllTraffic",
            inference_component_name=(
                self.inference_components[0].name if self.inference_components else None
            ),
            asynchronous=self.asynchronous,
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # What is known, briefly: no ARN, dates or per-component details (see the HTML).
        yield "name", self.name
        yield "status", self.status
        for name in ("kind", "endpoint_config_name", "pending_config_name"):
            if (value := getattr(self, name)) is not None:
                yield name, value
        if self.current_instance_count is not None:
            yield "instances", Shown(self._instances())
        if self.inference_components:
            yield "components", listing([c.name for c in self.inference_components], shown=2)
        if self.failure_reason:
            yield "failure_reason", brief(self.failure_reason, 36)

    def _instances(self) -> str:
        count = f"{self.current_instance_count}"
        if self.desired_instance_count not in (None, self.current_instance_count):
            count += f" (desired {self.desired_instance_count})"
        return f"{count} x {self.instance_type or '?'}"

    def _repr_html_(self) -> str:
        """The status in Jupyter: the endpoint's facts, then one row per inference component
        (every value escaped)."""
        facts: dict[str, object] = {"kind": self.kind, "config": self.endpoint_config_name}
        if self.pending_config_name:
            facts["updating to"] = self.pending_config_name
        if self.current_instance_count is not None:
            facts["instances"] = self._instances()
        facts |= {"copies": self.copies, "managed by the SDK": "yes" if self.managed else "no"}
        facts |= {"created": self.created_at, "modified": self.modified_at}
        parts = [paragraph(f"failure: {self.failure_reason}")] if self.failure_reason else []
        if self.inference_components:
            rows = [
                [
                    c.name,
                    c.status,
                    c.model_name,
                    c.current_copies,
                    c.desired_copies,
                    c.failure_reason,
                ]
                for c in self.inference_components
            ]
            header = ["component", "status", "model", "copies", "desired", "failure"]
            parts.append(table(header, rows))
        shown = {name: value for name, value in facts.items() if value is not None}
        return html_block(f"Endpoint {self.name}: {self.status}", *parts, fields=shown)

    def __str__(self) -> str:
        parts = [f"{self.name}: {self.status}"]
        if self.endpoint_config_name:
            parts.append(f"config {self.endpoint_config_name}")
        if self.current_instance_count is not None:
            parts.append(f"{self.current_instance_count} x {self.instance_type or '?'}")
        if self.copies is not None:
            parts.append(f"{self.copies} cop{'y' if self.copies == 1 else 'ies'}")
        if self.failure_reason:
            parts.append(f"failure: {self.failure_reason}")
        return ", ".join(parts)


def variants(answer: Response | None) -> list[Response]:
    """The ``ProductionVariants`` of an endpoint or endpoint-config answer."""
    return list((answer or {}).get("ProductionVariants") or [])


def pending_config(endpoint: Response) -> str | None:
    """The endpoint config an update in progress moves the endpoint to."""
    name = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    return str(name) if name else None


def layout(
    res: Resources, endpoint: Response
) -> tuple[Response | None, Kind | None, list[Response]]:
    """An endpoint's config (``None``: none), its kind (``None``: unknown) and the answers of
    its inference components (none for a model-based endpoint)."""
    config_name = endpoint.get("EndpointConfigName")
    config = res.describe("endpoint-config", config_name) if config_name else None
    held = ["ModelName" in variant for variant in variants(config)]
    kind: Kind | None = None
    if config is not None:  # inference components: no variant holds a model
        kind = "inference-component" if held and not any(held) else "model"
    if kind == "model":
        return config, kind, []
    name = str(endpoint["EndpointName"])
    found = [
        res.describe("inference-component", str(summary["InferenceComponentName"]))
        for summary in res.get_all("inference-component", EndpointNameEquals=name)
    ]
    return config, kind, [component for component in found if component is not None]


def read_status(
    res: Resources, endpoint: Response, *, tags: list[Response] | None = None
) -> EndpointStatus:
    """The :class:`EndpointStatus` of one ``describe_endpoint`` answer (reads its config,
    its components and, unless given, its tags)."""
    config, kind, components = layout(res, endpoint)
    live, configured = variants(endpoint), variants(config)
    current = [v["CurrentInstanceCount"] for v in live if "CurrentInstanceCount" in v]
    desired = [v["DesiredInstanceCount"] for v in live if "DesiredInstanceCount" in v]
    if tags is None and endpoint.get("EndpointArn"):
        tags = res.tags(str(endpoint["EndpointArn"]))
    return EndpointStatus(
        name=str(endpoint["EndpointName"]),
        status=str(endpoint.get("EndpointStatus")),
        endpoint_config_name=endpoint.get("EndpointConfigName"),
        pending_config_name=pending_config(endpoint),
        kind=kind,
        variant_name=(live or configured or [{}])[0].get("VariantName"),
        instance_type=(configured or [{}])[0].get("InstanceType"),
        current_instance_count=sum(current) if current else None,
        desired_instance_count=sum(desired) if desired else None,
        inference_components=tuple(_component_status(c) for c in components),
        asynchronous="AsyncInferenceConfig" in (config or {}),
        failure_reason=endpoint.get("FailureReason"),
        created_at=endpoint.get("CreationTime"),
        modified_at=endpoint.get("LastModifiedTime"),
        managed=has_sdk_tag(tags or []),
        arn=endpoint.get("EndpointArn"),
    )


def _component_status(component: Response) -> InferenceComponentStatus:
    runtime = component.get("RuntimeConfig") or {}
    return InferenceComponentStatus(
        name=str(component["InferenceComponentName"]),
        status=component.get("InferenceComponentStatus"),
        model_name=(component.get("Specification") or {}).get("ModelName"),
        desired_copies=runtime.get("DesiredCopyCount"),
        current_copies=runtime.get("CurrentCopyCount"),
        failure_reason=component.get("FailureReason"),
    )


def list_managed(res: Resources) -> list[EndpointStatus]:
    """The endpoints tagged ``managed-by: llm-twin-sdk``, by name."""
    found = []
    for summary in res.get_all("endpoint", SortBy="Name"):
        tags = res.tags(str(summary["EndpointArn"]))
        if not has_sdk_tag(tags):
            continue
        endpoint = res.describe("endpoint", str(summary["EndpointName"]))
        if endpoint is not None:  # deleted since the listing
            found.append(read_status(res, endpoint, tags=tags))
    return found
