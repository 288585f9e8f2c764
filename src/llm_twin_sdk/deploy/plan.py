"""DeploymentPlan: what ``Deployer.deploy`` would create, update or keep, readable when printed.

Computed from ``describe_*`` answers only (:func:`build_plan` is pure), secrets masked; a row
of ``print(deployer.plan(spec))`` reads ``update  endpoint  twin  twin-0badc0de -> twin-3fd4...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, TypeAlias

from pydantic import Field

from ..display import Shown, changes, html_block, paragraph
from ..display import table as html_table
from ..scaling.plan import table
from ..types import _Model
from .costs import CostEstimate
from .requests import component_specification
from .resources import Response
from .security import SecuritySpec
from .spec import EndpointSpec, RolloutSpec
from .status import pending_config
from .waiting import ResourceKind

__all__ = ["Action", "DeploymentPlan", "PlannedResource", "build_plan", "describe_rollout"]

Action: TypeAlias = Literal["create", "update", "keep"]


class PlannedResource(_Model):
    """One SageMaker resource of the plan and what deploying would do to it."""

    resource: ResourceKind
    name: str
    action: Action
    detail: str = ""


def describe_rollout(rollout: RolloutSpec) -> str:
    """One line describing a blue/green rollout, e.g. ``"blue/green canary 10% then ..."``."""
    step, wait = rollout.step_percent, rollout.step_wait_s
    text = (
        "blue/green "
        + {
            "all_at_once": "all at once",
            "canary": f"canary {step}% then the rest after {wait} s",
            "linear": f"linear {step}% every {wait} s",
        }[rollout.traffic]
    )
    if rollout.termination_wait_s:
        text += f", old fleet kept {rollout.termination_wait_s} s"
    if rollout.rollback_alarms:
        text += ", rollback on alarms " + ", ".join(rollout.rollback_alarms)
    return text


class DeploymentPlan(_Model):
    """What ``Deployer.deploy(spec)`` would do, resource by resource (in deploy order), with
    the image, the fleet, the container environment (secrets masked), the endpoint config in
    service now (``None``: no endpoint yet), the blue/green rollout of an update, and the
    networking and encryption (``security``: VPC, isolation, KMS keys) the endpoint gets."""

    endpoint_name: str
    region: str
    kind: Literal["model", "inference-component"]
    image_uri: str
    instance_type: str
    instance_count: int
    resources: tuple[PlannedResource, ...]
    environment: dict[str, str]
    current_config_name: str | None = None
    current_status: str | None = None
    rollout: RolloutSpec
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    cost: CostEstimate | None = None
    """What the fleet costs a month (``None``: not estimated); see :mod:`.costs`."""
    async_inference: str | None = None
    """Where an asynchronous endpoint writes results, and its concurrency (``None``: real-time)."""
    model_archive: str | None = None
    """Your own code's ``model.tar.gz``: ``"upload: s3://..."`` or ``"unchanged: s3://..."``
    (``None``: no custom code)."""

    def get(self, resource: ResourceKind) -> PlannedResource | None:
        """The planned entry of one resource kind (``None`` when the plan has none)."""
        return next((r for r in self.resources if r.resource == resource), None)

    def action(self, resource: ResourceKind) -> Action | None:
        """``"create"``, ``"update"`` or ``"keep"`` for one resource kind."""
        return entry.action if (entry := self.get(resource)) else None

    @property
    def changes(self) -> tuple[PlannedResource, ...]:
        """The resources that deploying would create or update."""
        return tuple(r for r in self.resources if r.action != "keep")

    @property
    def is_noop(self) -> bool:
        """True when deploying would make no write call at all."""
        return not self.changes

    @property
    def summary(self) -> str:
        """The plan in one line: how many changes, or that there is nothing to do."""
        if self.is_noop:
            return "nothing to do: the endpoint already runs this spec"
        return f"{len(self.changes)} change(s) to apply"

    def _facts(self) -> dict[str, str]:
        kind = "model-based" if self.kind == "model" else "inference components"
        facts = {"region": self.region, "kind": kind, "image": self.image_uri}
        facts["instances"] = f"{self.instance_count} x {self.instance_type}"
        facts |= self.security.describe()
        if self.async_inference is not None:
            facts["async inference"] = self.async_inference
        if self.model_archive is not None:
            facts["model archive"] = self.model_archive
        if self.current_config_name is not None:
            facts["in service now"] = f"{self.current_config_name} ({self.current_status or '?'})"
        return facts

    def __str__(self) -> str:
        facts = self._facts()
        lines = [
            f"Deployment plan for endpoint {self.endpoint_name!r} "
            f"({facts.pop('region')}, {facts.pop('kind')})",
            *(f"  {name}: {value}" for name, value in facts.items()),
        ]
        rows = [("ACTION", "RESOURCE", "NAME", "DETAIL")]
        rows += [(r.action, r.resource, r.name, r.detail) for r in self.resources]
        lines += ["", *table(rows)]
        if self.cost is not None:
            lines += ["", "  " + str(self.cost).replace("\n", "\n  ")]
        lines += ["", "  container environment:"]
        lines += [f"    {key}={value}" for key, value in sorted(self.environment.items())]
        lines += ["", f"  {self.summary}"]
        return "\n".join(lines)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # What would change and what it costs; print() shows every resource and variable.
        yield "endpoint_name", self.endpoint_name
        yield "region", self.region
        yield "kind", self.kind
        yield "instances", Shown(f"{self.instance_count} x {self.instance_type}")
        yield "changes", changes((r.action, r.resource) for r in self.changes)
        if words := self.security.keywords():
            yield "security", Shown(", ".join(words))
        if self.cost is not None:
            yield "cost", Shown(self.cost.per_month)

    def _repr_html_(self) -> str:
        """The plan in Jupyter: the resources and what deploying does to each, the cost
        estimate, the container environment (secrets masked); every value escaped."""
        rows = [(r.action, r.resource, r.name, r.detail) for r in self.resources]
        parts = [html_table(["action", "resource", "name", "detail"], rows)]
        if self.cost is not None:
            parts.append(self.cost._repr_html_())
        environment = sorted(self.environment.items())
        parts.append(html_table(["container variable", "value"], environment))
        parts.append(paragraph(self.summary))
        title = f"Deployment plan: endpoint {self.endpoint_name}"
        return html_block(title, *parts, fields=self._facts())


Step: TypeAlias = tuple[Action, str]
"""What deploying would do to one resource, and why."""


def build_plan(
    spec: EndpointSpec,
    *,
    region: str,
    image_uri: str,
    model: Response | None,
    config: Response | None,
    endpoint: Response | None,
    component: Response | None = None,
) -> DeploymentPlan:
    """The plan of deploying ``spec`` where SageMaker answered these (``None``: no such one)."""
    parts = spec.components
    weights = f"{spec.engine} serving {spec.model_data or spec.model_id}"
    fleet = f"{spec.instance_count} x {spec.instance_type}"
    if parts is not None:
        fleet = f"{spec.instance_type}, managed scaling {parts.min_instances}-{parts.max_instances}"
    if spec.async_inference is not None:
        fleet += ", asynchronous"
    exists: Step = ("keep", "exists")
    steps: list[tuple[ResourceKind, str, Step]] = [
        ("model", spec.model_name, exists if model is not None else ("create", weights)),
        (
            "endpoint-config",
            spec.endpoint_config_name,
            exists if config is not None else ("create", fleet),
        ),
        ("endpoint", spec.name, _endpoint_step(spec, endpoint)),
    ]
    if spec.inference_component_name is not None:
        name = spec.inference_component_name
        steps.append(("inference-component", name, _component_step(spec, component)))
    return DeploymentPlan(
        endpoint_name=spec.name,
        region=region,
        kind=spec.kind,
        image_uri=image_uri,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        resources=tuple(
            PlannedResource(resource=kind, name=name, action=action, detail=detail)
            for kind, name, (action, detail) in steps
        ),
        environment=spec.container_environment(),
        current_config_name=(endpoint or {}).get("EndpointConfigName"),
        current_status=(endpoint or {}).get("EndpointStatus"),
        rollout=spec.rollout,
        security=spec.security,
        async_inference=spec.async_inference.describe() if spec.async_inference else None,
    )


def _endpoint_step(spec: EndpointSpec, endpoint: Response | None) -> Step:
    config_name = spec.endpoint_config_name
    if endpoint is None:
        return "create", f"with config {config_name}"
    status, current = str(endpoint.get("EndpointStatus")), endpoint.get("EndpointConfigName")
    if status == "Deleting":
        return "create", f"with config {config_name} (after the endpoint being deleted is gone)"
    if current == config_name:
        return "keep", status
    if pending_config(endpoint) == config_name:
        return "keep", f"update to this config in progress ({status})"
    return "update", f"{current} -> {config_name} ({describe_rollout(spec.rollout)})"


def component_matches(component: Response, spec: EndpointSpec) -> bool:
    """The component already runs ``spec``'s model with its compute and start-up settings."""
    current = component.get("Specification") or {}
    have = current.get("ComputeResourceRequirements") or {}
    want = component_specification(spec)["ComputeResourceRequirements"]
    keys = ("NumberOfAcceleratorDevicesRequired", "NumberOfCpuCoresRequired")
    same_compute = all(float(have.get(k) or 0) == float(want.get(k) or 0) for k in keys)
    memory = int(have.get("MinMemoryRequiredInMb") or 0) == int(want["MinMemoryRequiredInMb"])
    startup = (current.get("StartupParameters") or {}).get(
        "ContainerStartupHealthCheckTimeoutInSeconds"
    )
    return (
        current.get("ModelName") == spec.model_name
        and same_compute
        and memory
        and startup == spec.health_check_timeout_s
    )


def _component_step(spec: EndpointSpec, component: Response | None) -> Step:
    parts = spec.components
    assert parts is not None
    if component is None:
        copies = f"{parts.copies} cop{'y' if parts.copies == 1 else 'ies'}"
        each = f"{parts.accelerators} accelerator(s) and {parts.memory_mb} MB each"
        return "create", f"{copies} of {spec.model_name}, {each}"
    if component_matches(component, spec):
        return "keep", str(component.get("InferenceComponentStatus"))
    current = (component.get("Specification") or {}).get("ModelName")
    if current != spec.model_name:
        return "update", f"model {current} -> {spec.model_name}"
    return "update", "compute or start-up settings change"
