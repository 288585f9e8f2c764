"""Deployer: the SageMaker control plane of the twin — plan, deploy, wait, status, list, delete.

Names derive from the :class:`~llm_twin_sdk.deploy.spec.EndpointSpec` (``<name>-<content
hash>``), so deploying is idempotent: an unchanged spec makes no write call, a changed one gets
a new model and endpoint config and a blue/green update, and a failed deployment removes what
it created (an update leaves the previous, good endpoint config in service).

Example::

    spec = EndpointSpec(name="twin", role_arn="arn:aws:iam::123456789012:role/twin-sagemaker")
    deployer = Deployer(region="eu-central-1", on_progress=print)
    print(deployer.plan(spec))           # read-only: what would be created / updated / kept
    endpoint = deployer.deploy(spec)     # waits for InService; idempotent
    print(deployer.status("twin"), deployer.list())   # list: endpoints tagged by the SDK
    deployer.delete("twin")              # autoscaling, components, endpoint, configs, models

Requests are built by :mod:`.requests` (pure), plans by :mod:`.plan`; SageMaker is reached
through :mod:`.resources` (one table of resource kinds); :mod:`.status` reads, :mod:`.teardown`
removes. Tests inject ``sagemaker_client`` (Stubber or moto), ``sleep`` and ``clock``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..aws import AWSClients
from ..endpoint import EndpointRef
from ..errors import (
    ConfigurationError,
    DeploymentError,
    InvalidParameterError,
    LLMTwinError,
)
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ..scaling.autoscaler import AutoScaler
from .images import resolve_image_uri
from .plan import DeploymentPlan, build_plan, describe_rollout
from .requests import (
    check_spec,
    component_request,
    component_update_request,
    endpoint_config_request,
    endpoint_request,
    model_request,
    update_request,
)
from .resources import KINDS, Resources, Response
from .spec import RESOURCE_NAME, EndpointSpec
from .status import EndpointStatus, InferenceComponentStatus, list_managed, pending_config
from .status import read_status as _read_status
from .teardown import ScalingRemover, cleanup_note, delete_endpoint, roll_back
from .waiting import Outcome, Poller, ResourceKind, Settled, WaitProgress

if TYPE_CHECKING:
    from ..inference.client import InferenceClient

__all__ = ["Deployer", "Endpoint", "EndpointStatus", "InferenceComponentStatus", "ScalingRemover"]

logger = logging.getLogger(__name__)

_NAME_MAX = 63
_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
_BROKEN = frozenset({"Failed", "UpdateRollbackFailed", "OutOfService"})
_FAILED = frozenset({"Failed", "UpdateRollbackFailed"})


class Endpoint(EndpointRef):
    """A deployed endpoint, as ``Deployer.deploy`` left it.

    An :class:`~llm_twin_sdk.endpoint.EndpointRef` (name, variant, inference component)
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


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not RESOURCE_NAME.match(name) or len(name) > _NAME_MAX:
        raise InvalidParameterError(
            f"endpoint name must be 1-{_NAME_MAX} letters, digits and hyphens, starting and "
            f"ending with a letter or digit; got {name!r}"
        )
    return name


def _check_timeout(timeout_s: float) -> float:
    if not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise InvalidParameterError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    return float(timeout_s)


_RUNS: Mapping[ResourceKind, Callable[[Response, EndpointSpec], bool]] = {
    "endpoint": lambda out, spec: out.get("EndpointConfigName") == spec.endpoint_config_name,
    "inference-component": lambda out, spec: (
        (out.get("Specification") or {}).get("ModelName") == spec.model_name
    ),
}
"""When a deployed resource runs the spec."""


@dataclass
class _Observed:
    """What ``plan`` read from SageMaker, kept for ``deploy``."""

    plan: DeploymentPlan
    endpoint: Response | None
    component: Response | None


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
        poller = Poller(
            poll_interval_s=poll_interval_s, sleep=sleep, clock=clock, on_progress=on_progress
        )
        if sagemaker_client is None:
            aws = aws if aws is not None else AWSClients(region=region, profile=profile)
            sagemaker_client = aws.client("sagemaker")
        self._aws = aws
        self._res = Resources(sagemaker_client, retry=retry, poller=poller)
        self._autoscaler = autoscaler

    def __repr__(self) -> str:
        region = getattr(getattr(self._res.client, "meta", None), "region_name", None)
        return f"Deployer(region={region!r})"

    @property
    def region(self) -> str:
        """The region of the SageMaker client (used for the container image lookup)."""
        region = getattr(getattr(self._res.client, "meta", None), "region_name", None)
        if not region:
            raise ConfigurationError(
                "the SageMaker client has no region: pass region= (or set AWS_DEFAULT_REGION)"
            )
        return str(region)

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
        spec = check_spec(spec)
        region = self.region
        image_uri = resolve_image_uri(spec, region)  # offline; fails before any AWS call
        model = self._res.describe("model", spec.model_name)
        config = self._res.describe("endpoint-config", spec.endpoint_config_name)
        endpoint = self._res.describe("endpoint", spec.name)
        component = None
        if spec.inference_component_name is not None:
            component = self._res.describe("inference-component", spec.inference_component_name)
            if component is not None and component.get("EndpointName") != spec.name:
                raise DeploymentError(
                    f"inference component {spec.inference_component_name!r} belongs to "
                    f"endpoint {component.get('EndpointName')!r}, not {spec.name!r}; delete "
                    "it or rename the endpoint",
                    endpoint_name=spec.name,
                )
        plan = build_plan(
            spec,
            region=region,
            image_uri=image_uri,
            model=model,
            config=config,
            endpoint=endpoint,
            component=component,
        )
        return _Observed(plan=plan, endpoint=endpoint, component=component)

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
        spec = check_spec(spec)
        deadline = self._res.clock() + timeout_s
        observed = self._ready(spec, self._observe(spec), deadline)
        plan, live = observed.plan, observed.endpoint or {}
        created: list[tuple[ResourceKind, str]] = []
        endpoint_action = plan.action("endpoint")
        component_action = plan.action("inference-component")
        with self._undone_on_error(spec, created):
            arn = self._write_endpoint(spec, plan, created) or live.get("EndpointArn")
        status = {"create": "Creating", "update": "Updating"}.get(
            str(endpoint_action), str(live.get("EndpointStatus") or "Creating")
        )
        if wait or component_action in {"create", "update"}:
            first = observed.endpoint if endpoint_action == "keep" else None
            answer = self._settle(spec, "endpoint", created, deadline, first)
            status = str(answer.get("EndpointStatus") or status)
        if spec.inference_component_name is not None:
            with self._undone_on_error(spec, created):
                self._write_component(spec, component_action, created)
            if wait:
                first = observed.component if component_action == "keep" else None
                self._settle(spec, "inference-component", created, deadline, first)
        return Endpoint(
            name=spec.name,
            variant_name=spec.variant_name,
            inference_component_name=spec.inference_component_name,
            status=status,
            region=plan.region,
            endpoint_config_name=spec.endpoint_config_name,
            model_name=spec.model_name,
            config_hash=spec.config_hash,
            arn=arn,
        )

    @contextmanager
    def _undone_on_error(
        self, spec: EndpointSpec, created: list[tuple[ResourceKind, str]]
    ) -> Iterator[None]:
        """Around write calls: an error removes what this deployment created (noted on it)."""
        try:
            yield
        except LLMTwinError as exc:
            if created:
                removed, left = roll_back(self._res, created, in_use=set(), endpoint_name=spec.name)
                exc.add_note(cleanup_note(removed, left, spec.name))
            raise

    def _settle(
        self,
        spec: EndpointSpec,
        kind: ResourceKind,
        created: list[tuple[ResourceKind, str]],
        deadline: float,
        first: Response | None,
    ) -> Response:
        """Wait until ``kind`` runs ``spec``; when it failed, roll back and raise.

        SageMaker rolls a failed change back by itself: InService without the change, once
        it moved or with a FailureReason, is a failure. A timeout or an error while waiting
        removes nothing, since SageMaker may still finish.
        """
        moved = False
        status_key = KINDS[kind].status_key or ""

        def judge(out: Response | None) -> Outcome:
            nonlocal moved
            status = None if out is None else out.get(status_key)
            if out is None or status in _FAILED:
                return "failed"
            if status != "InService":
                moved = True
                return "waiting"
            if _RUNS[kind](out, spec):
                return "done"
            pending = pending_config(out) == spec.endpoint_config_name
            return "failed" if not pending and (moved or out.get("FailureReason")) else "waiting"

        settled = self._res.wait_for_status(
            kind,
            spec.name if kind == "endpoint" else str(spec.inference_component_name),
            judge,
            deadline=deadline,
            endpoint_name=spec.name,
            first=first,
            hint="Nothing was deleted: deploy the same spec again to keep waiting, check it "
            f"with Deployer.status({spec.name!r}), or remove it with "
            f"Deployer.delete({spec.name!r}).",
        )
        if settled.outcome == "failed":
            self._fail(spec, kind, settled, created)
        return settled.response or {}

    def _create(
        self, kind: ResourceKind, request: dict[str, Any], created: list[tuple[ResourceKind, str]]
    ) -> Response:
        name = str(request[KINDS[kind].name_key])
        logger.info("creating %s %s", kind, name)
        answer = self._res.create(kind, request)
        created.append((kind, name))
        return answer

    def _write_endpoint(
        self, spec: EndpointSpec, plan: DeploymentPlan, created: list[tuple[ResourceKind, str]]
    ) -> str | None:
        """Create the model, config and endpoint, or update the endpoint, as planned.

        Appends what it creates to ``created``; returns the new endpoint's ARN, if any.
        """
        if plan.action("model") == "create":
            self._create("model", model_request(spec, plan.image_uri), created)
        if plan.action("endpoint-config") == "create":
            self._create("endpoint-config", endpoint_config_request(spec), created)
        action = plan.action("endpoint")
        if action == "create":
            arn = self._create("endpoint", endpoint_request(spec), created).get("EndpointArn")
            return str(arn) if arn else None
        if action == "update":
            logger.info(
                "updating endpoint %s: %s -> %s (%s)",
                spec.name,
                plan.current_config_name,
                spec.endpoint_config_name,
                describe_rollout(spec.rollout),
            )
            self._res.call("update_endpoint", **update_request(spec))
        return None

    def _write_component(
        self, spec: EndpointSpec, action: str | None, created: list[tuple[ResourceKind, str]]
    ) -> None:
        if action == "create":
            self._create("inference-component", component_request(spec), created)
        elif action == "update":
            logger.info("updating inference component of %s to %s", spec.name, spec.model_name)
            self._res.call("update_inference_component", **component_update_request(spec))

    def _ready(self, spec: EndpointSpec, observed: _Observed, deadline: float) -> _Observed:
        """Wait out a deletion or an operation in progress before writing; refuse a broken one."""
        endpoint = observed.endpoint
        if endpoint is None:
            return observed
        status = endpoint.get("EndpointStatus")
        if status == "Deleting":
            logger.info("endpoint %s is being deleted; waiting until it is gone", spec.name)
            self._res.wait_for_delete(
                "endpoint",
                spec.name,
                deadline=deadline,
                hint="Nothing was created; deploy again once the old endpoint is gone.",
            )
            return self._observe(spec)
        if observed.plan.action("endpoint") != "update":
            return observed
        if status in _BROKEN:
            reason = endpoint.get("FailureReason")
            raise DeploymentError(
                f"endpoint {spec.name!r} is {status}"
                + (f" ({reason})" if reason else "")
                + f" and cannot be updated; delete it with Deployer.delete({spec.name!r}) "
                "and deploy again",
                endpoint_name=spec.name,
                failure_reason=reason,
            )
        if status in _TRANSITIONAL:
            logger.info("endpoint %s is %s; waiting before updating it", spec.name, status)
            self._res.wait_for_status(
                "endpoint",
                spec.name,
                lambda out: (
                    "waiting"
                    if out is not None and out.get("EndpointStatus") in _TRANSITIONAL
                    else "done"
                ),
                deadline=deadline,
                first=endpoint,
                hint="Nothing was changed; deploy again once the endpoint has settled.",
            )
            return self._ready(spec, self._observe(spec), deadline)
        return observed

    def _fail(
        self,
        spec: EndpointSpec,
        kind: ResourceKind,
        settled: Settled,
        created: list[tuple[ResourceKind, str]],
    ) -> None:
        """Remove what this call created (unless in use), then raise DeploymentError."""
        response = settled.response or {}
        reason = settled.failure_reason
        status = response.get(KINDS[kind].status_key or "")
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
            removed: list[str] = []
            left = [f"{what} {name}" for what, name in created]
        else:
            removed, left = roll_back(self._res, created, in_use=in_use, endpoint_name=spec.name)
        what = kind.replace("-", " ")
        if settled.response is None:
            message = f"{what} of {spec.name!r} disappeared while deploying"
        elif status == "InService":
            message = f"{what} of {spec.name!r} rolled back to its previous configuration"
        else:
            message = f"{what} of {spec.name!r} is {status}"
        if reason:
            message += f": {reason}"
        message += ". " + cleanup_note(removed, left, spec.name)
        raise DeploymentError(message, endpoint_name=spec.name, failure_reason=reason)

    # -- status / list / delete ---------------------------------------------------------------

    def status(self, name: str) -> EndpointStatus:
        """What SageMaker says about endpoint ``name``.

        Example::

            st = deployer.status("twin")
            st.status, st.endpoint_config_name, st.current_instance_count, st.copies

        Raises:
            ResourceNotFoundError: there is no such endpoint.
        """
        return _read_status(self._res, self._res.get("endpoint", _check_name(name)))

    def delete(self, name: str, *, wait: bool = True, timeout_s: float = 1800.0) -> list[str]:
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
        deadline = self._res.clock() + _check_timeout(timeout_s)
        return delete_endpoint(self._res, name, scaler=self._scaler, deadline=deadline, wait=wait)

    def _scaler(self) -> ScalingRemover | None:
        if self._autoscaler is None and self._aws is not None:
            self._autoscaler = AutoScaler(aws=self._aws, retry=self._res.retry)
        if self._autoscaler is None:
            logger.warning(
                "autoscaling not removed: this Deployer was given a sagemaker_client only; "
                "pass aws= or autoscaler= so that delete() can remove scaling targets, "
                "policies and alarms"
            )
        return self._autoscaler

    # Last in the class: below this method, `list` in annotations would name it.
    def list(self) -> list[EndpointStatus]:
        """The endpoints this SDK manages (tagged ``managed-by: llm-twin-sdk``), by name.

        Example::

            for st in deployer.list():
                print(st)             # "twin: InService, config twin-3fd415d4, 1 x ml.g5..."
        """
        return list_managed(self._res)
