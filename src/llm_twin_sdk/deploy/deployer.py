"""Deployer: the SageMaker control plane of the twin — plan, deploy, wait, status, list, delete.

Every resource name derives from the :class:`~llm_twin_sdk.deploy.spec.EndpointSpec`
(``<name>-<content hash>``), so deploying is idempotent: an unchanged spec makes no write
call, a changed spec creates a new model and endpoint config and moves the endpoint to them
with a blue/green update, and a failed deployment removes what it created (an update leaves
the previous, good endpoint config in service).

Example::

    from llm_twin_sdk.deploy.deployer import Deployer
    from llm_twin_sdk.deploy.spec import EndpointSpec

    spec = EndpointSpec(name="twin", role_arn="arn:aws:iam::123456789012:role/twin-sagemaker")
    deployer = Deployer(region="eu-central-1", on_progress=print)

    print(deployer.plan(spec))           # read-only: what would be created / updated / kept
    endpoint = deployer.deploy(spec)     # waits for InService; idempotent
    print(deployer.status("twin"))
    for managed in deployer.list():      # endpoints tagged managed-by=llm-twin-sdk
        print(managed.name, managed.status)
    deployer.delete("twin")              # autoscaling, components, endpoint, configs, models

Every AWS call goes through :func:`llm_twin_sdk.aws.call_aws` (retried under the one
:class:`~llm_twin_sdk.retry.RetryPolicy`, errors converted to :mod:`llm_twin_sdk.errors`).
Tests inject ``sagemaker_client`` (a ``Stubber``-wrapped client or one pointed at moto),
``sleep`` and ``clock``.
"""

from __future__ import annotations

import builtins
import importlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from pydantic import Field

from ..aws import AWSClients, call_aws
from ..errors import (
    ConfigurationError,
    DeploymentError,
    EndpointTimeoutError,
    InvalidParameterError,
    LLMTwinError,
    ResourceNotFoundError,
)
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ..types import _Model
from .images import resolve_image_uri
from .plan import DeploymentPlan, PlannedResource, describe_rollout
from .spec import MANAGED_BY_TAG, EndpointRef, EndpointSpec, RolloutSpec, gpus_of
from .waiting import Outcome, Poller, Settled, WaitProgress

if TYPE_CHECKING:
    from ..inference.client import InferenceClient

__all__ = [
    "Deployer",
    "Endpoint",
    "EndpointStatus",
    "InferenceComponentStatus",
    "ScalingRemover",
    "component_specification",
    "deployment_config",
    "endpoint_config_request",
]

logger = logging.getLogger(__name__)

Response: TypeAlias = dict[str, Any]

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_?key|access_?key)", re.IGNORECASE)
_MASK = "**********"
_NAME_MAX = 63
_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
_BROKEN = frozenset({"Failed", "UpdateRollbackFailed", "OutOfService"})
_CLEANUP_TIMEOUT_S = 1800.0
_AUTOSCALER_MODULE = "llm_twin_sdk.scaling.autoscaler"


# -- public models --------------------------------------------------------------------------


class Endpoint(EndpointRef):
    """A deployed endpoint, as ``Deployer.deploy`` left it.

    An :class:`~llm_twin_sdk.deploy.spec.EndpointRef` (name, variant, inference component)
    plus what is useful to know about the deployment.
    """

    status: str = Field(description="SageMaker's EndpointStatus when deploy returned.")
    region: str
    endpoint_config_name: str
    model_name: str
    config_hash: str = Field(description="Content hash of the spec's endpoint config.")
    arn: str | None = None

    def client(self, *, aws: AWSClients | None = None, **options: Any) -> InferenceClient:
        """An :class:`~llm_twin_sdk.InferenceClient` bound to this endpoint (and component).

        Args:
            aws: clients to use (default: built for this endpoint's region).
            options: more ``SageMakerBackend`` arguments (``api``, ``context_window``,
                ``tokenizer``, ``timeout``...).

        Example::

            endpoint = Deployer(region="eu-central-1").deploy(spec)
            print(endpoint.client().generate("What is an LLM twin?").text)
        """
        from ..inference.backends.sagemaker import SageMakerBackend
        from ..inference.client import InferenceClient

        backend = SageMakerBackend(
            self.name,
            inference_component_name=self.inference_component_name,
            aws=aws or AWSClients(region=self.region),
            **options,
        )
        return InferenceClient(backend)


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
    """

    name: str
    status: str
    endpoint_config_name: str | None = None
    pending_config_name: str | None = Field(
        None, description="The config an update in progress moves to."
    )
    kind: Literal["model", "inference-component"] | None = None
    variant_name: str | None = None
    instance_type: str | None = None
    current_instance_count: int | None = None
    desired_instance_count: int | None = None
    inference_components: tuple[InferenceComponentStatus, ...] = ()
    failure_reason: str | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None
    managed: bool = Field(False, description="Carries the managed-by: llm-twin-sdk tag.")
    arn: str | None = None

    @property
    def copies(self) -> int | None:
        """Running copies over all inference components (``None`` for model-based)."""
        counts = [c.current_copies for c in self.inference_components]
        known = [c for c in counts if c is not None]
        return sum(known) if known else None

    def ref(self) -> EndpointRef:
        """The endpoint's identity (first inference component, if any)."""
        return EndpointRef(
            name=self.name,
            variant_name=self.variant_name or "AllTraffic",
            inference_component_name=(
                self.inference_components[0].name if self.inference_components else None
            ),
        )

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


class ScalingRemover(Protocol):
    """What ``Deployer.delete`` needs of an autoscaler (``AutoScaler`` satisfies it)."""

    def remove(self, endpoint: EndpointRef) -> None:
        """Remove every scaling target, policy and alarm of ``endpoint``; idempotent."""


# -- request builders (pure functions of the spec) -------------------------------------------


def _compute_requirements(spec: EndpointSpec) -> dict[str, Any]:
    assert spec.components is not None
    parts = spec.components
    compute: dict[str, Any] = {"MinMemoryRequiredInMb": parts.memory_mb}
    if parts.accelerators:
        compute["NumberOfAcceleratorDevicesRequired"] = parts.accelerators
    if parts.cpu_cores is not None:
        compute["NumberOfCpuCoresRequired"] = parts.cpu_cores
    return compute


def component_specification(spec: EndpointSpec) -> dict[str, Any]:
    """The ``Specification`` of the spec's inference component (model, start-up, compute)."""
    if spec.components is None:
        raise InvalidParameterError("component_specification needs a spec with components=")
    return {
        "ModelName": spec.model_name,
        "StartupParameters": {
            "ContainerStartupHealthCheckTimeoutInSeconds": spec.health_check_timeout_s
        },
        "ComputeResourceRequirements": _compute_requirements(spec),
    }


def endpoint_config_request(spec: EndpointSpec) -> dict[str, Any]:
    """The ``create_endpoint_config`` parameters of ``spec``.

    Model-based: one variant holding the model. Inference components: the config carries the
    execution role, and the variant has no model but managed instance scaling and
    least-outstanding-requests routing.
    """
    if spec.components is None:
        variant: dict[str, Any] = {
            "VariantName": spec.variant_name,
            "ModelName": spec.model_name,
            "InitialInstanceCount": spec.instance_count,
            "InstanceType": spec.instance_type,
            "ContainerStartupHealthCheckTimeoutInSeconds": spec.health_check_timeout_s,
        }
        return {
            "EndpointConfigName": spec.endpoint_config_name,
            "ProductionVariants": [variant],
            "Tags": spec.aws_tags(),
        }
    parts = spec.components
    initial = min(max(spec.instance_count, parts.min_instances, 1), parts.max_instances)
    variant = {
        "VariantName": spec.variant_name,
        "InstanceType": spec.instance_type,
        "InitialInstanceCount": initial,
        "ManagedInstanceScaling": {
            "Status": "ENABLED",
            "MinInstanceCount": parts.min_instances,
            "MaxInstanceCount": parts.max_instances,
        },
        "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
    }
    return {
        "EndpointConfigName": spec.endpoint_config_name,
        "ExecutionRoleArn": spec.role_arn,
        "ProductionVariants": [variant],
        "Tags": spec.aws_tags(),
    }


def deployment_config(rollout: RolloutSpec) -> dict[str, Any]:
    """The blue/green ``DeploymentConfig`` of ``update_endpoint`` for ``rollout``.

    ``step_wait_s`` is the wait between traffic steps (canary, linear) or the baking period
    after the all-at-once shift; ``rollback_alarms`` roll the update back when they fire.
    """
    routing: dict[str, Any] = {
        "Type": rollout.traffic.upper(),
        "WaitIntervalInSeconds": rollout.step_wait_s,
    }
    step = {"Type": "CAPACITY_PERCENT", "Value": rollout.step_percent}
    if rollout.traffic == "canary":
        routing["CanarySize"] = step
    elif rollout.traffic == "linear":
        routing["LinearStepSize"] = step
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": rollout.termination_wait_s,
        }
    }
    if rollout.rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": alarm} for alarm in rollout.rollback_alarms]
        }
    return config


# -- validation (before any AWS call) --------------------------------------------------------


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > _NAME_MAX:
        raise InvalidParameterError(
            f"endpoint name must be 1-{_NAME_MAX} letters, digits and hyphens, starting and "
            f"ending with a letter or digit; got {name!r}"
        )
    return name


def _check_timeout(timeout_s: float) -> float:
    if not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise InvalidParameterError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    return float(timeout_s)


def _check_spec(spec: object) -> EndpointSpec:
    if not isinstance(spec, EndpointSpec):
        raise InvalidParameterError(f"expected an EndpointSpec, got {type(spec).__name__}")
    rollout = spec.rollout
    if rollout.traffic == "canary" and rollout.step_percent > 50:
        raise InvalidParameterError(
            f"rollout.step_percent: a canary may take at most 50% of the fleet "
            f"(allowed 1-50), got {rollout.step_percent}"
        )
    if rollout.traffic == "linear" and not 10 <= rollout.step_percent <= 50:
        raise InvalidParameterError(
            f"rollout.step_percent: a linear step must be 10-50% of the fleet, "
            f"got {rollout.step_percent}"
        )
    parts = spec.components
    if parts is not None and parts.accelerators:
        if gpus_of(spec.instance_type) == 0:
            raise InvalidParameterError(
                f"components.accelerators: {spec.instance_type} has no GPU; set "
                "accelerators=0 (and cpu_cores) or choose a GPU instance type"
            )
        if spec.gpus != parts.accelerators:
            raise InvalidParameterError(
                f"num_gpus: each inference-component copy gets {parts.accelerators} "
                f"accelerator(s) (components.accelerators) but the container would shard over "
                f"{spec.gpus} (SM_NUM_GPUS); set num_gpus={parts.accelerators}"
            )
    return spec


# -- reading SageMaker responses -------------------------------------------------------------


def _variants(config: Response | None) -> list[Response]:
    return list((config or {}).get("ProductionVariants") or [])


def _is_component_config(config: Response) -> bool:
    variants = _variants(config)
    return bool(variants) and all("ModelName" not in v for v in variants)


def _pending_config(endpoint: Response) -> str | None:
    pending = endpoint.get("PendingDeploymentSummary") or {}
    name = pending.get("EndpointConfigName")
    return str(name) if name else None


def _component_matches(component: Response, spec: EndpointSpec) -> bool:
    """The component already runs ``spec``'s model with its compute and start-up settings."""
    current = component.get("Specification") or {}
    wanted = component_specification(spec)
    have = current.get("ComputeResourceRequirements") or {}
    want = wanted["ComputeResourceRequirements"]
    keys = ("NumberOfAcceleratorDevicesRequired", "NumberOfCpuCoresRequired")
    same_compute = all(float(have.get(k) or 0) == float(want.get(k) or 0) for k in keys) and int(
        have.get("MinMemoryRequiredInMb") or 0
    ) == int(want["MinMemoryRequiredInMb"])
    startup = (current.get("StartupParameters") or {}).get(
        "ContainerStartupHealthCheckTimeoutInSeconds"
    )
    return (
        current.get("ModelName") == spec.model_name
        and same_compute
        and startup == spec.health_check_timeout_s
    )


def _masked(environment: dict[str, str]) -> dict[str, str]:
    """The environment with every secret-looking value hidden (the HF token already is)."""
    return {k: _MASK if _SECRET_KEY.search(k) else v for k, v in environment.items()}


def _has_sdk_tag(tags: list[Response]) -> bool:
    key, value = MANAGED_BY_TAG
    return any(t.get("Key") == key and t.get("Value") == value for t in tags)


# -- the deployer ----------------------------------------------------------------------------


@dataclass
class _Observed:
    """What ``plan`` read from SageMaker, kept for ``deploy``."""

    plan: DeploymentPlan
    endpoint: Response | None
    component: Response | None
    config_name: str
    """The endpoint config the endpoint should run (the spec's)."""


class Deployer:
    """Deploys an :class:`~llm_twin_sdk.deploy.spec.EndpointSpec` to SageMaker, idempotently.

    Args:
        sagemaker_client: a boto3 SageMaker client to use (tests: Stubber or moto).
        aws: the SDK's client factory; also gives the autoscaler its clients.
        region / profile: build ``AWSClients`` from these (when no client is injected).
        retry: the retry policy of every AWS call.
        poll_interval_s: seconds between two status polls while waiting.
        sleep / clock: injected in tests so that no time passes.
        autoscaler: removes autoscaling in ``delete``; default:
            ``AutoScaler(aws=aws, retry=retry)``, built on first use when ``aws`` (or
            region/profile) is known. With only a ``sagemaker_client``, ``delete`` warns that
            it cannot remove autoscaling.
        on_progress: called with every :class:`~llm_twin_sdk.deploy.waiting.WaitProgress`.

    Example::

        deployer = Deployer(region="us-east-1")
        endpoint = deployer.deploy(spec, timeout_s=3600)
        endpoint.name, endpoint.endpoint_config_name, endpoint.status   # 'InService'
    """

    def __init__(
        self,
        *,
        sagemaker_client: Any = None,
        aws: AWSClients | None = None,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        poll_interval_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        autoscaler: ScalingRemover | None = None,
        on_progress: Callable[[WaitProgress], None] | None = None,
    ) -> None:
        if (region is not None or profile is not None) and (
            aws is not None or sagemaker_client is not None
        ):
            raise ConfigurationError(
                "pass region=/profile= or injected clients (aws=, sagemaker_client=), not both"
            )
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self._poller = Poller(
            poll_interval_s=poll_interval_s, sleep=sleep, clock=clock, on_progress=on_progress
        )
        if sagemaker_client is None:
            aws = aws if aws is not None else AWSClients(region=region, profile=profile)
            sagemaker_client = aws.client("sagemaker")
        self._aws = aws
        self._client = sagemaker_client
        self._retry = retry
        self._clock = clock
        self._autoscaler = autoscaler

    def __repr__(self) -> str:
        region = getattr(getattr(self._client, "meta", None), "region_name", None)
        return f"Deployer(region={region!r})"

    @property
    def region(self) -> str:
        """The region of the SageMaker client (used for the container image lookup)."""
        region = getattr(getattr(self._client, "meta", None), "region_name", None)
        if not region:
            raise ConfigurationError(
                "the SageMaker client has no region: pass region= (or set AWS_DEFAULT_REGION)"
            )
        return str(region)

    # -- AWS helpers --------------------------------------------------------------------------

    def _call(self, operation: str, **params: Any) -> Response:
        response = call_aws(self._client, operation, policy=self._retry, **params)
        return dict(response) if response else {}

    def _describe(self, operation: str, **params: Any) -> Response | None:
        """A ``describe_*`` answer, or ``None`` when the resource does not exist."""
        try:
            return self._call(operation, **params)
        except ResourceNotFoundError:
            return None

    def _delete(self, operation: str, **params: Any) -> bool:
        """Call a ``delete_*``; ``False`` when there was nothing to delete."""
        try:
            self._call(operation, **params)
        except ResourceNotFoundError:
            return False
        return True

    def _pages(self, operation: str, key: str, **params: Any) -> Iterator[Response]:
        token: str | None = None
        while True:
            page = self._call(operation, **params, **({"NextToken": token} if token else {}))
            yield from page.get(key) or []
            token = page.get("NextToken")
            if not token:
                return

    def _tags(self, arn: str) -> list[Response]:
        return builtins.list(self._pages("list_tags", "Tags", ResourceArn=arn))

    # -- plan ---------------------------------------------------------------------------------

    def plan(self, spec: EndpointSpec) -> DeploymentPlan:
        """What ``deploy(spec)`` would create, update or keep — describe calls only.

        Example::

            plan = deployer.plan(spec)
            print(plan)                       # a readable table; secrets are masked
            plan.action("endpoint")           # 'create' | 'update' | 'keep'
            plan.is_noop                      # True when the endpoint already runs spec

        Raises:
            InvalidParameterError / ConfigurationError: invalid spec or unknown image,
                before any AWS call.
        """
        return self._observe(spec).plan

    def _observe(self, spec: EndpointSpec) -> _Observed:
        spec = _check_spec(spec)
        region = self.region
        image_uri = resolve_image_uri(spec, region)  # offline; fails before any AWS call
        model = self._describe("describe_model", ModelName=spec.model_name)
        config = self._describe(
            "describe_endpoint_config", EndpointConfigName=spec.endpoint_config_name
        )
        endpoint = self._describe("describe_endpoint", EndpointName=spec.name)
        component: Response | None = None
        config_name = spec.endpoint_config_name
        if spec.components is not None:
            assert spec.inference_component_name is not None
            component = self._describe(
                "describe_inference_component",
                InferenceComponentName=spec.inference_component_name,
            )
            if component is not None and component.get("EndpointName") != spec.name:
                raise DeploymentError(
                    f"inference component {spec.inference_component_name!r} belongs to "
                    f"endpoint {component.get('EndpointName')!r}, not {spec.name!r}; delete "
                    "it or rename the endpoint",
                    endpoint_name=spec.name,
                )

        resources = [
            PlannedResource(
                resource="model",
                name=spec.model_name,
                action="keep" if model is not None else "create",
                detail="exists"
                if model is not None
                else f"{spec.engine} serving {spec.model_data or spec.model_id}",
            )
        ]
        if config is not None:
            config_entry = PlannedResource(
                resource="endpoint-config", name=config_name, action="keep", detail="exists"
            )
        else:
            fleet = (
                f"{spec.instance_count} x {spec.instance_type}"
                if spec.components is None
                else f"{spec.instance_type}, managed scaling "
                f"{spec.components.min_instances}-{spec.components.max_instances}"
            )
            config_entry = PlannedResource(
                resource="endpoint-config", name=config_name, action="create", detail=fleet
            )
        resources.append(config_entry)
        resources.append(self._plan_endpoint(spec, endpoint, config_name))
        if spec.components is not None:
            resources.append(self._plan_component(spec, component))
        plan = DeploymentPlan(
            endpoint_name=spec.name,
            region=region,
            kind=spec.kind,
            image_uri=image_uri,
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
            resources=tuple(resources),
            environment=_masked(spec.container_environment()),
            current_config_name=(endpoint or {}).get("EndpointConfigName"),
            current_status=(endpoint or {}).get("EndpointStatus"),
            rollout=spec.rollout,
        )
        return _Observed(plan=plan, endpoint=endpoint, component=component, config_name=config_name)

    @staticmethod
    def _plan_endpoint(
        spec: EndpointSpec, endpoint: Response | None, config_name: str
    ) -> PlannedResource:
        if endpoint is None or endpoint.get("EndpointStatus") == "Deleting":
            detail = f"with config {config_name}"
            if endpoint is not None:
                detail += " (after the endpoint being deleted is gone)"
            return PlannedResource(
                resource="endpoint", name=spec.name, action="create", detail=detail
            )
        status = str(endpoint.get("EndpointStatus"))
        current = endpoint.get("EndpointConfigName")
        if current == config_name:
            return PlannedResource(
                resource="endpoint", name=spec.name, action="keep", detail=status
            )
        if _pending_config(endpoint) == config_name:
            return PlannedResource(
                resource="endpoint",
                name=spec.name,
                action="keep",
                detail=f"update to this config in progress ({status})",
            )
        return PlannedResource(
            resource="endpoint",
            name=spec.name,
            action="update",
            detail=f"{current} -> {config_name} ({describe_rollout(spec.rollout)})",
        )

    @staticmethod
    def _plan_component(spec: EndpointSpec, component: Response | None) -> PlannedResource:
        assert spec.components is not None
        assert spec.inference_component_name is not None
        name = spec.inference_component_name
        if component is None:
            parts = spec.components
            return PlannedResource(
                resource="inference-component",
                name=name,
                action="create",
                detail=f"{parts.copies} cop{'y' if parts.copies == 1 else 'ies'} of "
                f"{spec.model_name}, {parts.accelerators} accelerator(s) and "
                f"{parts.memory_mb} MB each",
            )
        if _component_matches(component, spec):
            return PlannedResource(
                resource="inference-component",
                name=name,
                action="keep",
                detail=str(component.get("InferenceComponentStatus")),
            )
        current = (component.get("Specification") or {}).get("ModelName")
        detail = (
            f"model {current} -> {spec.model_name}"
            if current != spec.model_name
            else "compute or start-up settings change"
        )
        return PlannedResource(
            resource="inference-component", name=name, action="update", detail=detail
        )

    # -- deploy -------------------------------------------------------------------------------

    def deploy(
        self, spec: EndpointSpec, *, wait: bool = True, timeout_s: float = 1800.0
    ) -> Endpoint:
        """Create or update the endpoint so that it runs ``spec``; idempotent.

        * No endpoint: creates the model, the endpoint config and the endpoint.
        * An endpoint with another config: creates the new model and config, then a
          blue/green ``update_endpoint`` driven by ``spec.rollout``.
        * An unchanged spec: no write call at all.
        * Inference components: the component is created (or updated to the new model)
          once the endpoint is InService.

        ``wait=False`` returns after the last write call; an inference-component deployment
        still waits for the endpoint, since a component can only be placed on an InService
        endpoint. ``timeout_s`` bounds the whole call.

        Example::

            endpoint = deployer.deploy(spec)                  # InService when it returns
            again = deployer.deploy(spec)                     # no write call
            deployer.deploy(spec.model_copy(update={"instance_count": 2}))   # blue/green

        Raises:
            DeploymentError: SageMaker reported ``Failed`` (``failure_reason`` holds its
                FailureReason); what this call created has been removed, and on an update
                the previous endpoint config stays in service.
            EndpointTimeoutError: still not InService after ``timeout_s``; nothing is
                removed — deploy the same spec again to keep waiting.
            AWSError: an AWS call failed (after retries); what this call created is removed.
        """
        timeout_s = _check_timeout(timeout_s)
        spec = _check_spec(spec)
        deadline = self._clock() + timeout_s
        observed = self._observe(spec)
        observed = self._ready(spec, observed, deadline)
        plan = observed.plan
        config_name = observed.config_name
        created: builtins.list[tuple[str, str]] = []
        endpoint_arn = (observed.endpoint or {}).get("EndpointArn")
        status = str((observed.endpoint or {}).get("EndpointStatus") or "Creating")
        component_action = plan.action("inference-component")
        waiting = False  # an error while waiting is not a failed deployment: keep everything
        try:
            endpoint_action = plan.action("endpoint")
            arn = self._write_endpoint(spec, plan, config_name, created)
            endpoint_arn = arn or endpoint_arn
            status = {"create": "Creating", "update": "Updating"}.get(str(endpoint_action), status)
            if wait or component_action in {"create", "update"}:
                waiting = True
                settled = self._wait_endpoint(
                    spec.name,
                    config_name,
                    deadline,
                    first=observed.endpoint if endpoint_action == "keep" else None,
                )
                waiting = False
                if settled.outcome == "failed":
                    self._fail(spec, "endpoint", settled, created)
                status = str((settled.response or {}).get("EndpointStatus") or status)
            if spec.components is not None:
                assert spec.inference_component_name is not None
                self._write_component(spec, component_action, created)
                if wait:
                    waiting = True
                    settled = self._wait_component(
                        spec.inference_component_name,
                        spec.model_name,
                        deadline,
                        endpoint_name=spec.name,
                        first=observed.component if component_action == "keep" else None,
                    )
                    waiting = False
                    if settled.outcome == "failed":
                        self._fail(spec, "inference component", settled, created)
        except EndpointTimeoutError:
            raise  # not a failure: SageMaker may still finish; deploying again resumes
        except LLMTwinError as exc:
            # DeploymentError from _fail has cleaned up already.
            if created and not waiting and not isinstance(exc, DeploymentError):
                removed, left = self._roll_back(spec, created, in_use=set())
                exc.add_note(_cleanup_note(removed, left, spec.name))
            raise
        return Endpoint(
            name=spec.name,
            variant_name=spec.variant_name,
            inference_component_name=spec.inference_component_name,
            status=status,
            region=plan.region,
            endpoint_config_name=config_name,
            model_name=spec.model_name,
            config_hash=spec.config_hash,
            arn=endpoint_arn,
        )

    def _write_endpoint(
        self,
        spec: EndpointSpec,
        plan: DeploymentPlan,
        config_name: str,
        created: builtins.list[tuple[str, str]],
    ) -> str | None:
        """Create the model, config and endpoint, or update the endpoint, as planned.

        Appends what it creates to ``created``; returns the new endpoint's ARN, if any.
        """
        if plan.action("model") == "create":
            self._create_model(spec, plan.image_uri)
            created.append(("model", spec.model_name))
        if plan.action("endpoint-config") == "create":
            logger.info("creating endpoint config %s", config_name)
            self._call("create_endpoint_config", **endpoint_config_request(spec))
            created.append(("endpoint-config", config_name))
        action = plan.action("endpoint")
        if action == "create":
            logger.info("creating endpoint %s with config %s", spec.name, config_name)
            answer = self._call(
                "create_endpoint",
                EndpointName=spec.name,
                EndpointConfigName=config_name,
                Tags=spec.aws_tags(),
            )
            created.append(("endpoint", spec.name))
            return str(answer["EndpointArn"]) if answer.get("EndpointArn") else None
        if action == "update":
            logger.info(
                "updating endpoint %s: %s -> %s (%s)",
                spec.name,
                plan.current_config_name,
                config_name,
                describe_rollout(spec.rollout),
            )
            self._call(
                "update_endpoint",
                EndpointName=spec.name,
                EndpointConfigName=config_name,
                DeploymentConfig=deployment_config(spec.rollout),
            )
        return None

    def _ready(self, spec: EndpointSpec, observed: _Observed, deadline: float) -> _Observed:
        """Wait out a deletion or an operation in progress before writing; refuse a broken one."""
        endpoint = observed.endpoint
        if endpoint is None:
            return observed
        status = endpoint.get("EndpointStatus")
        if status == "Deleting":
            logger.info("endpoint %s is being deleted; waiting until it is gone", spec.name)
            self._wait_gone_endpoint(
                spec.name,
                deadline,
                hint="Nothing was created; deploy again once the old endpoint is gone.",
            )
            return self._observe(spec)
        if observed.plan.action("endpoint") != "update":
            return observed
        if status in _BROKEN:
            raise DeploymentError(
                f"endpoint {spec.name!r} is {status}"
                + (f" ({endpoint['FailureReason']})" if endpoint.get("FailureReason") else "")
                + f" and cannot be updated; delete it with Deployer.delete({spec.name!r}) "
                "and deploy again",
                endpoint_name=spec.name,
                failure_reason=endpoint.get("FailureReason"),
            )
        if status in _TRANSITIONAL:
            logger.info("endpoint %s is %s; waiting before updating it", spec.name, status)
            self._poller.wait(
                resource="endpoint",
                name=spec.name,
                describe=lambda: self._describe("describe_endpoint", EndpointName=spec.name),
                judge=lambda out: (
                    "waiting"
                    if out is not None and out.get("EndpointStatus") in _TRANSITIONAL
                    else "done"
                ),
                status_of=_endpoint_status,
                timeout_s=max(deadline - self._clock(), 0.0),
                first=endpoint,
                hint="Nothing was changed; deploy again once the endpoint has settled.",
            )
            return self._ready(spec, self._observe(spec), deadline)
        return observed

    def _create_model(self, spec: EndpointSpec, image_uri: str) -> None:
        container: dict[str, Any] = {
            "Image": image_uri,
            "Environment": spec.container_environment(reveal_secrets=True),
        }
        if spec.model_data:
            container["ModelDataUrl"] = spec.model_data
        logger.info("creating model %s (image %s)", spec.model_name, image_uri)
        self._call(
            "create_model",
            ModelName=spec.model_name,
            PrimaryContainer=container,
            ExecutionRoleArn=spec.role_arn,
            Tags=spec.aws_tags(),
        )

    def _write_component(
        self,
        spec: EndpointSpec,
        action: str | None,
        created: builtins.list[tuple[str, str]],
    ) -> None:
        assert spec.components is not None
        assert spec.inference_component_name is not None
        name = spec.inference_component_name
        if action == "create":
            logger.info("creating inference component %s on %s", name, spec.name)
            self._call(
                "create_inference_component",
                InferenceComponentName=name,
                EndpointName=spec.name,
                VariantName=spec.variant_name,
                Specification=component_specification(spec),
                RuntimeConfig={"CopyCount": spec.components.copies},
                Tags=spec.aws_tags(),
            )
            created.append(("inference-component", name))
        elif action == "update":
            # The copy count is left alone: after creation it belongs to autoscaling.
            logger.info("updating inference component %s to %s", name, spec.model_name)
            self._call(
                "update_inference_component",
                InferenceComponentName=name,
                Specification=component_specification(spec),
            )

    # -- failure handling ---------------------------------------------------------------------

    def _fail(
        self,
        spec: EndpointSpec,
        what: str,
        settled: Settled,
        created: builtins.list[tuple[str, str]],
    ) -> None:
        """Remove what this call created (unless in use), then raise DeploymentError."""
        response = settled.response or {}
        reason = settled.failure_reason
        status = response.get("EndpointStatus") or response.get("InferenceComponentStatus")
        # What the failed resource still points at stays, unless this call created it
        # (then it is removed first, and what it pointed at goes with it).
        in_use: set[str] = set()
        if response.get("EndpointConfigName") and ("endpoint", spec.name) not in created:
            in_use.add(str(response["EndpointConfigName"]))
        model_in_use = (response.get("Specification") or {}).get("ModelName")
        component = response.get("InferenceComponentName")
        if model_in_use and ("inference-component", component) not in created:
            in_use.add(str(model_in_use))
        if spec.components is None and spec.endpoint_config_name in in_use:
            in_use.add(spec.model_name)  # the config in service points at this model
        if status == "UpdateRollbackFailed":
            # Neither the update nor its rollback finished: what is in use is unknown.
            removed: builtins.list[str] = []
            left = [f"{kind} {name}" for kind, name in created]
        else:
            removed, left = self._roll_back(spec, created, in_use=in_use)
        if settled.response is None:
            message = f"{what} of {spec.name!r} disappeared while deploying"
        elif status == "InService":
            message = f"{what} of {spec.name!r} rolled back to its previous configuration"
        else:
            message = f"{what} of {spec.name!r} is {status}"
        if reason:
            message += f": {reason}"
        message += ". " + _cleanup_note(removed, left, spec.name)
        raise DeploymentError(message, endpoint_name=spec.name, failure_reason=reason)

    def _roll_back(
        self,
        spec: EndpointSpec,
        created: builtins.list[tuple[str, str]],
        *,
        in_use: set[str],
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Delete what this call created, newest first; best effort."""
        removed: builtins.list[str] = []
        left: builtins.list[str] = []
        deadline = self._clock() + _CLEANUP_TIMEOUT_S
        for kind, name in reversed(created):
            if name in in_use:
                left.append(f"{kind} {name} (in service)")
                continue
            try:
                if kind == "inference-component":
                    self._delete("delete_inference_component", InferenceComponentName=name)
                    self._wait_gone_component(name, deadline, endpoint_name=spec.name)
                elif kind == "endpoint":
                    self._delete("delete_endpoint", EndpointName=name)
                elif kind == "endpoint-config":
                    self._delete("delete_endpoint_config", EndpointConfigName=name)
                else:
                    self._delete("delete_model", ModelName=name)
            except LLMTwinError as exc:
                logger.warning("could not remove %s %s: %s", kind, name, exc)
                left.append(f"{kind} {name}")
                continue
            logger.info("removed %s %s", kind, name)
            removed.append(f"{kind} {name}")
        return removed, left

    # -- waiting ------------------------------------------------------------------------------

    def _wait_endpoint(
        self, name: str, config_name: str, deadline: float, *, first: Response | None = None
    ) -> Settled:
        moved = False

        def judge(out: Response | None) -> Outcome:
            nonlocal moved
            if out is None:
                return "failed"
            status = out.get("EndpointStatus")
            if status in {"Failed", "UpdateRollbackFailed"}:
                return "failed"
            if status == "InService":
                if out.get("EndpointConfigName") == config_name:
                    return "done"
                if _pending_config(out) != config_name and (moved or out.get("FailureReason")):
                    return "failed"  # the update was rolled back
                return "waiting"
            moved = True
            return "waiting"

        return self._poller.wait(
            resource="endpoint",
            name=name,
            describe=lambda: self._describe("describe_endpoint", EndpointName=name),
            judge=judge,
            status_of=_endpoint_status,
            timeout_s=max(deadline - self._clock(), 0.0),
            first=first,
            hint="Nothing was deleted: deploy the same spec again to keep waiting, check it "
            f"with Deployer.status({name!r}), or remove it with Deployer.delete({name!r}).",
        )

    def _wait_component(
        self,
        name: str,
        model_name: str,
        deadline: float,
        *,
        endpoint_name: str,
        first: Response | None = None,
    ) -> Settled:
        moved = False

        def judge(out: Response | None) -> Outcome:
            nonlocal moved
            if out is None:
                return "failed"
            status = out.get("InferenceComponentStatus")
            if status == "Failed":
                return "failed"
            if status == "InService":
                if (out.get("Specification") or {}).get("ModelName") == model_name:
                    return "done"
                return "failed" if moved or out.get("FailureReason") else "waiting"
            moved = True
            return "waiting"

        return self._poller.wait(
            resource="inference-component",
            name=name,
            describe=lambda: self._describe(
                "describe_inference_component", InferenceComponentName=name
            ),
            judge=judge,
            status_of=_component_status,
            timeout_s=max(deadline - self._clock(), 0.0),
            endpoint_name=endpoint_name,
            first=first,
            hint="Nothing was deleted: deploy the same spec again to keep waiting, or remove "
            f"the endpoint with Deployer.delete({endpoint_name!r}).",
        )

    def _wait_gone_endpoint(
        self,
        name: str,
        deadline: float,
        *,
        hint: str = "The deletion goes on in SageMaker; call Deployer.delete again to keep "
        "waiting.",
    ) -> None:
        self._poller.wait(
            resource="endpoint",
            name=name,
            describe=lambda: self._describe("describe_endpoint", EndpointName=name),
            judge=lambda out: "done" if out is None else "waiting",
            status_of=_endpoint_status,
            timeout_s=max(deadline - self._clock(), 0.0),
            hint=hint,
        )

    def _wait_gone_component(
        self, name: str, deadline: float, *, endpoint_name: str, first: Response | None = None
    ) -> None:
        self._poller.wait(
            resource="inference-component",
            name=name,
            describe=lambda: self._describe(
                "describe_inference_component", InferenceComponentName=name
            ),
            judge=lambda out: "done" if out is None else "waiting",
            status_of=_component_status,
            timeout_s=max(deadline - self._clock(), 0.0),
            endpoint_name=endpoint_name,
            first=first,
            hint="The deletion goes on in SageMaker; call Deployer.delete again to keep waiting.",
        )

    # -- status / list ------------------------------------------------------------------------

    def status(self, name: str) -> EndpointStatus:
        """What SageMaker says about endpoint ``name``.

        Example::

            st = deployer.status("twin")
            st.status, st.endpoint_config_name, st.current_instance_count, st.copies

        Raises:
            ResourceNotFoundError: there is no such endpoint.
        """
        name = _check_name(name)
        endpoint = self._call("describe_endpoint", EndpointName=name)
        return self._status_of(endpoint)

    def list(self) -> builtins.list[EndpointStatus]:
        """The endpoints this SDK manages (tagged ``managed-by: llm-twin-sdk``), by name.

        Example::

            for st in deployer.list():
                print(st)             # "twin: InService, config twin-3fd415d4, 1 x ml.g5..."
        """
        found: builtins.list[EndpointStatus] = []
        for summary in self._pages("list_endpoints", "Endpoints", SortBy="Name"):
            tags = self._tags(str(summary["EndpointArn"]))
            if not _has_sdk_tag(tags):
                continue
            endpoint = self._describe("describe_endpoint", EndpointName=summary["EndpointName"])
            if endpoint is not None:  # deleted since the listing
                found.append(self._status_of(endpoint, tags=tags))
        return found

    def _status_of(
        self, endpoint: Response, *, tags: builtins.list[Response] | None = None
    ) -> EndpointStatus:
        name = str(endpoint["EndpointName"])
        config_name = endpoint.get("EndpointConfigName")
        config = (
            self._describe("describe_endpoint_config", EndpointConfigName=config_name)
            if config_name
            else None
        )
        kind: Literal["model", "inference-component"] | None = None
        if config is not None:
            kind = "inference-component" if _is_component_config(config) else "model"
        components: builtins.list[InferenceComponentStatus] = []
        if kind != "model":
            for component in self._components_of(name):
                runtime = component.get("RuntimeConfig") or {}
                components.append(
                    InferenceComponentStatus(
                        name=str(component["InferenceComponentName"]),
                        status=component.get("InferenceComponentStatus"),
                        model_name=(component.get("Specification") or {}).get("ModelName"),
                        desired_copies=runtime.get("DesiredCopyCount"),
                        current_copies=runtime.get("CurrentCopyCount"),
                        failure_reason=component.get("FailureReason"),
                    )
                )
        variants = _variants(endpoint)
        config_variants = _variants(config)
        current = [v["CurrentInstanceCount"] for v in variants if "CurrentInstanceCount" in v]
        desired = [v["DesiredInstanceCount"] for v in variants if "DesiredInstanceCount" in v]
        if tags is None and endpoint.get("EndpointArn"):
            tags = self._tags(str(endpoint["EndpointArn"]))
        return EndpointStatus(
            name=name,
            status=str(endpoint.get("EndpointStatus")),
            endpoint_config_name=config_name,
            pending_config_name=_pending_config(endpoint),
            kind=kind,
            variant_name=(variants or config_variants or [{}])[0].get("VariantName"),
            instance_type=(config_variants or [{}])[0].get("InstanceType"),
            current_instance_count=sum(current) if current else None,
            desired_instance_count=sum(desired) if desired else None,
            inference_components=tuple(components),
            failure_reason=endpoint.get("FailureReason"),
            created_at=endpoint.get("CreationTime"),
            modified_at=endpoint.get("LastModifiedTime"),
            managed=_has_sdk_tag(tags or []),
            arn=endpoint.get("EndpointArn"),
        )

    def _components_of(self, endpoint_name: str) -> builtins.list[Response]:
        components = []
        for summary in self._pages(
            "list_inference_components", "InferenceComponents", EndpointNameEquals=endpoint_name
        ):
            described = self._describe(
                "describe_inference_component",
                InferenceComponentName=summary["InferenceComponentName"],
            )
            if described is not None:
                components.append(described)
        return components

    # -- delete -------------------------------------------------------------------------------

    def delete(
        self, name: str, *, wait: bool = True, timeout_s: float = 1800.0
    ) -> builtins.list[str]:
        """Remove endpoint ``name`` and everything the SDK created for it; idempotent.

        In order: its autoscaling (through the autoscaler), its inference components
        (waiting until they are gone), the endpoint, then every endpoint config and model
        named ``<name>-<8 hex>`` that carries the SDK's ``managed-by`` tag. Deleting an
        endpoint that does not exist (or twice) is not an error.

        Example::

            removed = deployer.delete("twin")
            # ['endpoint twin', 'endpoint-config twin-3fd415d4', 'model twin-12fd0641']

        Returns:
            What was removed, as ``"<kind> <name>"`` strings.
        """
        name = _check_name(name)
        deadline = self._clock() + _check_timeout(timeout_s)
        removed: builtins.list[str] = []
        endpoint = self._describe("describe_endpoint", EndpointName=name)
        if endpoint is not None:
            config_name = endpoint.get("EndpointConfigName")
            config = (
                self._describe("describe_endpoint_config", EndpointConfigName=config_name)
                if config_name
                else None
            )
            model_based = config is not None and not _is_component_config(config)
            components = [] if model_based else self._components_of(name)
            self._remove_scaling(name, endpoint, config, components)
            for component in components:
                component_name = str(component["InferenceComponentName"])
                if component.get("InferenceComponentStatus") != "Deleting":
                    self._delete(
                        "delete_inference_component", InferenceComponentName=component_name
                    )
                logger.info("deleting inference component %s", component_name)
                removed.append(f"inference-component {component_name}")
            for component in components:
                self._wait_gone_component(
                    str(component["InferenceComponentName"]), deadline, endpoint_name=name
                )
            if endpoint.get("EndpointStatus") == "Deleting" or self._delete(
                "delete_endpoint", EndpointName=name
            ):
                logger.info("deleting endpoint %s", name)
                removed.append(f"endpoint {name}")
        removed.extend(self._sweep(name))
        if wait and endpoint is not None:
            self._wait_gone_endpoint(name, deadline)
        return removed

    def _remove_scaling(
        self,
        name: str,
        endpoint: Response,
        config: Response | None,
        components: builtins.list[Response],
    ) -> None:
        if components:
            refs = [
                EndpointRef(
                    name=name,
                    variant_name=str(c.get("VariantName") or "AllTraffic"),
                    inference_component_name=str(c["InferenceComponentName"]),
                )
                for c in components
            ]
        else:
            variants = _variants(endpoint) or _variants(config) or [{"VariantName": "AllTraffic"}]
            refs = [EndpointRef(name=name, variant_name=str(v["VariantName"])) for v in variants]
        scaler = self._scaler()
        if scaler is None:
            return
        for ref in refs:
            logger.info(
                "removing autoscaling of %s (%s)",
                ref.name,
                ref.inference_component_name or f"variant {ref.variant_name}",
            )
            scaler.remove(ref)

    def _scaler(self) -> ScalingRemover | None:
        if self._autoscaler is not None:
            return self._autoscaler
        if self._aws is None:
            logger.warning(
                "autoscaling not removed: this Deployer was given a sagemaker_client only; "
                "pass aws= or autoscaler= so that delete() can remove scaling targets, "
                "policies and alarms"
            )
            return None
        try:
            module = importlib.import_module(_AUTOSCALER_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name not in {_AUTOSCALER_MODULE, _AUTOSCALER_MODULE.rsplit(".", 1)[0]}:
                raise
            logger.debug("%s is not available; autoscaling removal skipped", _AUTOSCALER_MODULE)
            return None
        scaler: ScalingRemover = module.AutoScaler(aws=self._aws, retry=self._retry)
        self._autoscaler = scaler
        return scaler

    def _sweep(self, name: str) -> builtins.list[str]:
        """Delete the SDK-tagged endpoint configs and models named ``<name>-<8 hex>``."""
        pattern = re.compile(rf"^{re.escape(name)}-[0-9a-f]{{8}}$")
        removed: builtins.list[str] = []
        kinds = (
            ("endpoint-config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfig"),
            ("model", "list_models", "Models", "Model"),
        )
        for kind, operation, key, prefix in kinds:
            for summary in builtins.list(self._pages(operation, key, NameContains=name)):
                resource = str(summary[f"{prefix}Name"])
                if not pattern.match(resource):
                    continue
                try:
                    tags = self._tags(str(summary[f"{prefix}Arn"]))
                except ResourceNotFoundError:
                    continue
                if not _has_sdk_tag(tags):
                    logger.info("keeping %s %s: not created by llm-twin-sdk", kind, resource)
                    continue
                deleted = (
                    self._delete("delete_endpoint_config", EndpointConfigName=resource)
                    if kind == "endpoint-config"
                    else self._delete("delete_model", ModelName=resource)
                )
                if deleted:
                    logger.info("deleted %s %s", kind, resource)
                    removed.append(f"{kind} {resource}")
        return removed


def _endpoint_status(out: Response | None) -> str:
    return "gone" if out is None else str(out.get("EndpointStatus") or "unknown")


def _component_status(out: Response | None) -> str:
    return "gone" if out is None else str(out.get("InferenceComponentStatus") or "unknown")


def _cleanup_note(removed: builtins.list[str], left: builtins.list[str], name: str) -> str:
    parts = []
    if removed:
        parts.append("Removed what this deployment created: " + ", ".join(removed) + ".")
    if left:
        parts.append(
            "Left in place: " + ", ".join(left) + f"; Deployer.delete({name!r}) removes all."
        )
    return " ".join(parts) or "Nothing was created by this deployment."
