"""Deployer: the SageMaker control plane of the twin — plan, deploy, wait, status, list, delete.

Names derive from the spec's content (``<name>-<hash>``), so deploying is idempotent
(docs/deployment.md). Example::

    deployer = Deployer(region="eu-central-1", on_progress=print)
    print(deployer.plan(spec))           # read-only: what would be created / updated / kept
    endpoint = deployer.deploy(spec)     # waits for InService; idempotent
    deployer.delete("twin")              # autoscaling, components, endpoint, configs, models
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..aws import AWSClients, check_client_options
from ..endpoint import EndpointRef
from ..errors import ConfigurationError, DeploymentError, InvalidParameterError, LLMTwinError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ..scaling.autoscaler import AutoScaler
from .costs import Prices, estimate_cost
from .images import resolve_image_uri
from .model_archive import package_spec
from .plan import DeploymentPlan, build_plan
from .requests import check_spec, write_request
from .resources import KINDS, Resources, Response
from .security import check_key_regions
from .spec import FRAMEWORK_ENGINES, RESOURCE_NAME, EndpointSpec, Engine
from .status import EndpointStatus, InferenceComponentStatus, list_managed, pending_config
from .status import read_status as _read_status
from .teardown import Created, ScalingRemover, cleanup_note, delete_endpoint, fail, roll_back
from .waiting import Outcome, ResourceKind, WaitProgress

if TYPE_CHECKING:
    from ..inference.async_jobs import AsyncJobs
    from ..inference.client import InferenceClient
    from ..inference.prompt_format import PromptFormat
    from ..types import GenerationParams

__all__ = ["Deployer", "Endpoint", "EndpointStatus", "InferenceComponentStatus", "ScalingRemover"]

logger = logging.getLogger(__name__)

_TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
_BROKEN = frozenset({"Failed", "UpdateRollbackFailed", "OutOfService"})
_FAILED = frozenset({"Failed", "UpdateRollbackFailed"})
_RUNS: Mapping[ResourceKind, Callable[[Response, EndpointSpec], bool]] = {
    "endpoint": lambda out, spec: out.get("EndpointConfigName") == spec.endpoint_config_name,
    "inference-component": lambda out, spec: (
        (out.get("Specification") or {}).get("ModelName") == spec.model_name
    ),
}
"""When a deployed resource runs the spec."""


class Endpoint(EndpointRef):
    """A deployed endpoint, as ``Deployer.deploy`` left it: its
    :class:`~llm_twin_sdk.endpoint.EndpointRef` and what is useful to know about it."""

    status: str = Field(description="SageMaker's EndpointStatus when deploy returned.")
    region: str
    endpoint_config_name: str
    model_name: str
    config_hash: str = Field(description="Content hash of the spec's endpoint config.")
    arn: str | None = None
    engine: Engine | None = Field(
        None, description="The serving container; 'pytorch': your own code, called by invoke."
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # What is set (no ARN: the name says it; the engine only when it is your own code).
        for name, value in super().__repr_args__():
            if name == "engine" and value not in FRAMEWORK_ENGINES:
                continue
            if value is not None and name != "arn":
                yield name, value

    def client(
        self,
        *,
        aws: AWSClients | None = None,
        params: GenerationParams | None = None,
        prompt_format: PromptFormat | None = None,
        **options: Any,
    ) -> InferenceClient:
        """An :class:`~llm_twin_sdk.InferenceClient` bound to this endpoint (and component);
        ``aws`` defaults to clients for its region, ``params`` and ``prompt_format`` are the
        client's defaults, ``options`` go to ``SageMakerBackend``. The client owns the backend
        it builds: closing the client closes it. An endpoint running your own code (engine
        ``"pytorch"``) is called with ``client.invoke(body, content_type=...)``; its
        ``generate`` and ``stream`` raise :class:`~llm_twin_sdk.errors.InvokeOnlyEndpointError`.

        Example: ``Deployer().deploy(spec).client().generate("What is an LLM twin?").text``.

        Raises:
            InvalidParameterError: the endpoint is asynchronous (it refuses ``InvokeEndpoint``):
                use :meth:`jobs`.
        """
        from ..inference.backends.sagemaker import SageMakerBackend
        from ..inference.client import InferenceClient

        if self.asynchronous:
            raise InvalidParameterError(
                f"endpoint {self.name!r} is asynchronous: it answers InvokeEndpointAsync only, "
                "so no real-time client can call it; submit jobs with endpoint.jobs(...)"
            )

        if self.engine in FRAMEWORK_ENGINES:
            options.setdefault("api", "invoke")
        backend = SageMakerBackend(
            self.name,
            inference_component_name=self.inference_component_name,
            aws=aws or AWSClients(region=self.region),
            **options,
        )
        client = InferenceClient(backend, params=params, prompt_format=prompt_format)
        client._own(backend)  # built here: closed with the client
        return client

    def jobs(self, *, input_path: str, aws: AWSClients | None = None, **options: Any) -> AsyncJobs:
        """:class:`~llm_twin_sdk.AsyncJobs` for this asynchronous endpoint: request bodies
        uploaded under ``input_path``; ``options`` go to ``AsyncJobs``.

        Example: ``endpoint.jobs(input_path="s3://twin-jobs/in").submit_prompts(prompts,
        manifest="s3://twin-jobs/jobs/run-1.json").collect()``.

        Raises:
            InvalidParameterError: the endpoint was not deployed with ``async_inference``.
        """
        from ..inference.async_jobs import AsyncJobs

        if not self.asynchronous:
            raise InvalidParameterError(
                f"endpoint {self.name!r} is real-time: jobs need an endpoint deployed with "
                "EndpointSpec(async_inference=AsyncInferenceSpec(...)); use client() here"
            )
        return AsyncJobs(
            self.name, input_path=input_path, aws=aws or AWSClients(region=self.region), **options
        )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not RESOURCE_NAME.match(name) or len(name) > 63:
        raise InvalidParameterError(
            "endpoint name must be 1-63 letters, digits and hyphens, starting and ending with a "
            f"letter or digit; got {name!r}"
        )
    return name


def _check_timeout(timeout_s: float) -> float:
    if not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise InvalidParameterError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    return float(timeout_s)


@dataclass
class _Observed:
    """What ``plan`` read from SageMaker, kept for ``deploy``."""

    plan: DeploymentPlan
    endpoint: Response | None
    component: Response | None


@dataclass
class _Run:
    """One ``deploy`` call: its spec, deadline, and what it has created so far."""

    res: Resources
    spec: EndpointSpec
    deadline: float
    created: Created = field(default_factory=list)

    def write(self, plan: DeploymentPlan, *kinds: ResourceKind) -> Response:
        """Make the planned creates and updates of ``kinds``, in plan order; on an error,
        remove what this call created (and say so on the error). Returns the last answer."""
        answer: Response = {}
        try:
            for entry in plan.resources:
                if entry.resource in kinds and entry.action != "keep":
                    logger.info(
                        "%s %s %s: %s", entry.action, entry.resource, entry.name, entry.detail
                    )
                    operation, request = write_request(
                        self.spec, entry.resource, entry.action, plan.image_uri
                    )
                    answer = self.res.call(operation, **request)
                    if entry.action == "create":
                        self.created.append((entry.resource, entry.name))
        except LLMTwinError as exc:
            if self.created:
                removed, left = roll_back(self.res, self.created, endpoint_name=self.spec.name)
                exc.add_note(cleanup_note(removed, left, self.spec.name))
            raise
        return answer

    def settle(self, kind: ResourceKind, first: Response | None) -> Response:
        """Wait until ``kind`` runs the spec; when it failed, roll back and raise.

        SageMaker rolls a failed change back by itself: InService without the change, once
        it moved or with a FailureReason, is a failure. A timeout or an error while waiting
        removes nothing, since SageMaker may still finish.
        """
        spec, moved = self.spec, False

        def judge(out: Response | None) -> Outcome:
            nonlocal moved
            status = None if out is None else out.get(KINDS[kind].status_key or "")
            if out is None or status in _FAILED:
                return "failed"
            if status != "InService":
                moved = True
                return "waiting"
            if _RUNS[kind](out, spec):
                return "done"
            pending = pending_config(out) == spec.endpoint_config_name
            return "failed" if not pending and (moved or out.get("FailureReason")) else "waiting"

        settled = self.res.wait_for_status(
            kind,
            spec.name if kind == "endpoint" else str(spec.inference_component_name),
            judge,
            deadline=self.deadline,
            endpoint_name=spec.name,
            first=first,
            hint="Nothing was deleted: deploy the same spec again to keep waiting, check it "
            f"with Deployer.status({spec.name!r}), or remove it with "
            f"Deployer.delete({spec.name!r}).",
        )
        if settled.outcome == "failed":
            fail(self.res, spec, kind, settled, self.created)
        return settled.response or {}


class Deployer:
    """Deploys an :class:`~llm_twin_sdk.deploy.spec.EndpointSpec` to SageMaker, idempotently.

    Args:
        sagemaker_client: an injected boto3 SageMaker client (tests: Stubber or moto).
        aws: or the SDK's clients (they also serve the autoscaler); default: from region /
            profile.
        sleep: injected in tests so that no time passes (with ``clock``).
        clock: injected in tests so that no time passes (with ``sleep``).
        autoscaler: removes autoscaling in ``delete``; default: an ``AutoScaler`` on ``aws``
            (with only a ``sagemaker_client``, ``delete`` warns that it cannot).
        on_progress: called with every :class:`~llm_twin_sdk.deploy.waiting.WaitProgress`.

    Example: ``Deployer(region="us-east-1").deploy(spec, timeout_s=3600).status  # InService``
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
        clients = {"aws": aws, "sagemaker_client": sagemaker_client}
        check_client_options("Deployer", region, profile, retry, **clients)
        if not poll_interval_s > 0:
            raise ConfigurationError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        if sagemaker_client is None:
            aws = aws if aws is not None else AWSClients(region=region, profile=profile)
            sagemaker_client = aws.client("sagemaker")
        self._aws = aws
        self._res = Resources(sagemaker_client, retry, poll_interval_s, sleep, clock, on_progress)
        self._autoscaler = autoscaler
        self._region = getattr(getattr(sagemaker_client, "meta", None), "region_name", None)

    def __repr__(self) -> str:
        return f"Deployer(region={self._region!r})"

    @property
    def region(self) -> str:
        """The region of the SageMaker client (used for the container image lookup)."""
        region = self._region
        if not region:
            raise ConfigurationError(
                "the SageMaker client has no region: pass region= (or set AWS_DEFAULT_REGION)"
            )
        return str(region)

    def plan(
        self, spec: EndpointSpec, *, prices: Prices = None, idle_fraction: float = 0.5
    ) -> DeploymentPlan:
        """What ``deploy(spec)`` would create, update or keep — describe calls only — and what
        its fleet costs (``plan.cost``: the spec's instances at ``prices``, by default the
        table shipped with the SDK; see :func:`~llm_twin_sdk.deploy.costs.estimate_cost`).

        Example::

            print(plan := deployer.plan(spec))   # a readable table; secrets are masked
            plan.action("endpoint"), plan.is_noop   # 'create' | 'update' | 'keep', no write?

        Raises:
            InvalidParameterError / ConfigurationError: invalid spec or unknown image,
                before any AWS call (also a bad price table or ``idle_fraction``).
        """
        spec, archive = self._package(check_spec(spec), upload=False)
        cost = estimate_cost(spec, region=self.region, prices=prices, idle_fraction=idle_fraction)
        return self._observe(spec).plan.model_copy(update={"cost": cost, "model_archive": archive})

    def _package(self, spec: EndpointSpec, *, upload: bool) -> tuple[EndpointSpec, str | None]:
        """``spec`` with its own code packed and (``upload``) put in S3 once per content hash
        (:func:`~llm_twin_sdk.deploy.model_archive.package_spec`); the image and the spec are
        checked first, so a bad one uploads nothing."""
        if spec.custom_code is None:
            return spec, None
        region = self.region
        check_key_regions(spec.security, region)
        resolve_image_uri(spec, region)  # offline: an unknown version fails before the upload
        if self._aws is None:
            raise ConfigurationError(
                f"endpoint {spec.name!r} packs your own code into an S3 archive: build the "
                "Deployer with aws= (or region=), not a sagemaker_client alone"
            )
        s3 = self._aws.client("s3")
        return package_spec(spec, region=region, s3=s3, retry=self._res.retry, upload=upload)

    def _observe(self, spec: EndpointSpec) -> _Observed:
        spec = check_spec(spec)
        region = self.region
        check_key_regions(spec.security, region)
        image_uri = resolve_image_uri(spec, region)  # offline; fails before any AWS call
        model = self._res.describe("model", spec.model_name)
        config = self._res.describe("endpoint-config", spec.endpoint_config_name)
        endpoint = self._res.describe("endpoint", spec.name)
        component = None
        if spec.inference_component_name is not None:
            component = self._res.describe("inference-component", spec.inference_component_name)
            owner = (component or {}).get("EndpointName", spec.name)
            if owner != spec.name:
                raise DeploymentError(
                    f"inference component {spec.inference_component_name!r} belongs to "
                    f"endpoint {owner!r}, not {spec.name!r}; delete it or rename the endpoint",
                    endpoint_name=spec.name,
                )
        live = {"endpoint": endpoint, "component": component}
        plan = build_plan(
            spec, region=region, image_uri=image_uri, model=model, config=config, **live
        )
        return _Observed(plan, **live)

    def deploy(
        self, spec: EndpointSpec, *, wait: bool = True, timeout_s: float = 1800.0
    ) -> Endpoint:
        """Create what is missing, move the endpoint to a new config blue/green, create or update
        its inference component; an unchanged spec makes no write call (docs/deployment.md).

        ``wait=False`` returns after the last write call; an inference-component deployment
        still waits for the endpoint, since a component can only be placed on an InService
        endpoint. ``timeout_s`` bounds the whole call.

        Example: ``deployer.deploy(spec.model_copy(update={"instance_count": 2}))`` (blue/green).

        A spec with ``custom_code`` first packs its code and weights into ``model.tar.gz``
        and uploads it, unless an archive of the same content is already there.

        Raises (what each leaves in AWS: docs/deployment.md, "Waiting and failures"):
            DeploymentError: SageMaker reported ``Failed`` (``failure_reason``); what this call
                created is removed, and an update's previous endpoint config stays in service.
            EndpointTimeoutError: not InService after ``timeout_s``; nothing is removed.
            AWSError: an AWS call failed (after retries); what this call created is removed.
        """
        deadline = self._res.clock() + _check_timeout(timeout_s)
        spec = self._package(check_spec(spec), upload=True)[0]
        run = _Run(self._res, spec, deadline)
        observed = self._ready(run, self._observe(spec))
        plan, live = observed.plan, observed.endpoint or {}
        endpoint_action = plan.action("endpoint")
        component_action = plan.action("inference-component")
        arn = run.write(plan, "model", "endpoint-config", "endpoint").get("EndpointArn")
        status = {"create": "Creating", "update": "Updating"}.get(
            str(endpoint_action), str(live.get("EndpointStatus") or "Creating")
        )
        if wait or component_action in {"create", "update"}:
            answer = run.settle("endpoint", live if endpoint_action == "keep" else None)
            status = str(answer.get("EndpointStatus") or status)
        if spec.inference_component_name is not None:
            run.write(plan, "inference-component")
            if wait:
                first = observed.component if component_action == "keep" else None
                run.settle("inference-component", first)
        return Endpoint(
            **dict(spec.ref()),
            status=status,
            region=plan.region,
            endpoint_config_name=spec.endpoint_config_name,
            model_name=spec.model_name,
            config_hash=spec.config_hash,
            arn=arn or live.get("EndpointArn"),
            engine=spec.engine,
        )

    def _ready(self, run: _Run, observed: _Observed) -> _Observed:
        """Wait out a deletion or an operation in progress before writing; refuse a broken one."""
        endpoint, name = observed.endpoint, run.spec.name
        status = (endpoint or {}).get("EndpointStatus")
        if endpoint is None or (
            status != "Deleting" and observed.plan.action("endpoint") != "update"
        ):
            return observed
        if status == "Deleting":
            logger.info("endpoint %s is being deleted; waiting until it is gone", name)
            hint = "Nothing was created; deploy again once the old endpoint is gone."
            self._res.wait_for_delete("endpoint", name, deadline=run.deadline, hint=hint)
            return self._observe(run.spec)
        if status in _BROKEN:
            reason = endpoint.get("FailureReason")
            raise DeploymentError(
                f"endpoint {name!r} is {status}"
                + (f" ({reason})" if reason else "")
                + f" and cannot be updated; delete it with Deployer.delete({name!r}) and "
                "deploy again",
                endpoint_name=name,
                failure_reason=reason,
            )
        if status in _TRANSITIONAL:
            logger.info("endpoint %s is %s; waiting before updating it", name, status)
            self._res.wait_for_status(
                "endpoint",
                name,
                lambda out: (
                    "waiting" if (out or {}).get("EndpointStatus") in _TRANSITIONAL else "done"
                ),
                deadline=run.deadline,
                first=endpoint,
                hint="Nothing was changed; deploy again once the endpoint has settled.",
            )
            return self._ready(run, self._observe(run.spec))
        return observed

    def status(self, name: str) -> EndpointStatus:
        """What SageMaker says about endpoint ``name``; ResourceNotFoundError when none.

        Example: ``st = deployer.status("twin"); st.status, st.current_instance_count``.
        """
        return _read_status(self._res, self._res.get("endpoint", _check_name(name)))

    def delete(
        self, name: str, *, wait: bool = True, timeout_s: float = 1800.0, dry_run: bool = False
    ) -> list[str]:
        """Remove endpoint ``name`` and everything the SDK created for it (its autoscaling,
        components, SDK-tagged ``<name>-<8 hex>`` configs and models); idempotent.

        Returns what was removed, as ``"<kind> <name>"`` strings: ``deployer.delete("twin")``
        gives ``['endpoint twin', 'endpoint-config twin-3fd415d4', 'model twin-12fd0641']``.
        ``dry_run=True`` returns what would be removed and makes read calls only (the
        autoscaling it would remove: ``AutoScaler.plan(endpoint, None)``).
        """
        name = _check_name(name)
        deadline = self._res.clock() + _check_timeout(timeout_s)
        return delete_endpoint(
            self._res, name, scaler=self._scaler, deadline=deadline, wait=wait, dry_run=dry_run
        )

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

        Example: ``for st in deployer.list(): print(st)  # "twin: InService, config ..."``.
        """
        return list_managed(self._res)
