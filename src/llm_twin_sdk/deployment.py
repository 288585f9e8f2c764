"""TwinDeployment: one declarative object from deploy to answer (docs/deployment.md, "One object
from deploy to answer").

An endpoint spec, a scaling policy and the retrieval settings, declared once; ``plan`` reads,
``up`` converges (deploy, wait, scale) and returns a twin answering from the endpoint, ``down``
removes everything. ``up`` and ``down`` are idempotent: a second ``up`` with the same inputs
makes no write call. Example::

    deployment = TwinDeployment(
        EndpointSpec(name="twin", role_arn=role),
        TargetTracking(metric="invocations", target=10, min_capacity=1, max_capacity=2),
        settings=TwinSettings(qdrant_url="http://qdrant:6333"),
    )
    print(deployment.plan())                       # describe calls only
    with deployment.up(progress=print) as twin:    # deploys, scales, binds a client
        print(twin.ask("What is an LLM twin?").text)
    deployment.down()                              # scaling, components, endpoint, configs, models
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from .aws import AWSClients
from .config import TwinSettings
from .deploy.costs import CostEstimate, Prices, estimate_cost, resolve_prices
from .deploy.deployer import Deployer, Endpoint
from .deploy.plan import DeploymentPlan
from .deploy.spec import EndpointSpec
from .deploy.waiting import WaitProgress
from .display import Shown, changes, html_block, short
from .errors import ConfigurationError, InvalidParameterError, LLMTwinError
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .scaling.autoscaler import AutoScaler, check_policy, describe_policy
from .scaling.plan import ScalingPlan
from .scaling.policies import ScaleToZero, ScalingPolicy
from .types import Timeouts, _Model

if TYPE_CHECKING:
    from .twin import LLMTwin

__all__ = ["Progress", "Scaling", "TwinDeployment", "TwinDeploymentPlan"]

logger = logging.getLogger(__name__)

Scaling: TypeAlias = ScalingPolicy | Sequence[ScalingPolicy] | None
"""A :class:`~llm_twin_sdk.scaling.TargetTracking`, :class:`~llm_twin_sdk.scaling.ScaleToZero`,
:class:`~llm_twin_sdk.scaling.Scheduled`, a list of them, or ``None`` (no autoscaling)."""

Progress: TypeAlias = Callable[[WaitProgress], None]
"""Called with every :class:`~llm_twin_sdk.deploy.waiting.WaitProgress` while ``up`` waits."""


class TwinDeploymentPlan(_Model):
    """What ``up`` would change: the endpoint's resources and its autoscaling (read-only)."""

    endpoint: DeploymentPlan
    scaling: ScalingPlan

    @property
    def is_noop(self) -> bool:
        """True when ``up`` would make no write call."""
        return self.endpoint.is_noop and self.scaling.is_noop

    @property
    def cost(self) -> CostEstimate | None:
        """What the deployment costs a month under its scaling policy (``endpoint.cost``)."""
        return self.endpoint.cost

    def __str__(self) -> str:
        return f"{self.endpoint}\n\n{self.scaling}"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The changes of both plans and the cost; print() shows them in full.
        yield "endpoint_name", self.endpoint.endpoint_name
        yield "endpoint", changes((r.action, r.resource) for r in self.endpoint.changes)
        yield "scaling", changes((c.action, c.item) for c in self.scaling.changes)
        if self.cost is not None:
            yield "cost", Shown(self.cost.per_month)

    def _repr_html_(self) -> str:
        """The plan in Jupyter: the endpoint's plan (with its cost), then the autoscaling's."""
        return html_block(
            f"What up() would do: {self.endpoint.endpoint_name}",
            self.endpoint._repr_html_(),
            self.scaling._repr_html_(),
            fields={
                "changes": f"{len(self.endpoint.changes)} to the endpoint, "
                f"{len(self.scaling.changes)} to its autoscaling"
            },
        )


class TwinDeployment:
    """The twin's deployment, declared: endpoint spec, scaling policy, retrieval settings.

    Args:
        spec: the SageMaker endpoint (model, container, instances).
        scaling: its autoscaling; ``None``: none (``up`` removes autoscaling found on it).
        settings: the retrieval side of the twin ``up`` returns (vector store, embedder,
            chunking, generation defaults); the LLM settings are the endpoint's
            (:meth:`settings_for_endpoint`). Default: ``TwinSettings()`` (environment, .env).
        aws: the AWS clients of every call (deploy, scale, invoke); default: the profile's.
        retry: the retry policy of AWS calls.
        poll_interval_s: seconds between status polls.

    Every argument is checked here, before any AWS call: a wrong type, an invalid spec, or a
    policy that does not fit the spec (``ScaleToZero`` on a model-based endpoint, a floor of 0
    instances), an asynchronous spec (a twin cannot call it: use ``Deployer`` and
    ``endpoint.jobs``), a spec with your own inference code (``custom_code``: use
    ``Deployer`` and ``client.invoke``) raise :class:`~llm_twin_sdk.errors.InvalidParameterError` or
    :class:`~llm_twin_sdk.errors.ConfigurationError`.
    """

    def __init__(
        self,
        spec: EndpointSpec,
        scaling: Scaling = None,
        *,
        settings: TwinSettings | None = None,
        aws: AWSClients | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        poll_interval_s: float = 15.0,
    ) -> None:
        if not isinstance(spec, EndpointSpec):
            raise InvalidParameterError(
                f"spec: expected an EndpointSpec, got {type(spec).__name__}"
            )
        if spec.async_inference is not None:
            raise ConfigurationError(
                f"spec {spec.name!r} is asynchronous (async_inference): a twin answers through "
                "real-time InvokeEndpoint, which an asynchronous endpoint refuses. Deploy it with "
                "Deployer(...).deploy(spec) and submit prompts with endpoint.jobs(...) (AsyncJobs)"
            )
        if spec.custom_code is not None:
            raise ConfigurationError(
                f"spec {spec.name!r} runs your own inference code (engine {spec.engine!r}): a "
                "twin generates text, which that container does not. Deploy it with "
                "Deployer(...).deploy(spec) and call endpoint.client().invoke(body, "
                "content_type=...)"
            )
        capacity = check_policy(spec.ref(), scaling)[0] if scaling is not None else None
        parts = spec.components
        if isinstance(capacity, ScaleToZero) and parts is not None and parts.min_instances > 0:
            logger.warning(
                "ScaleToZero on %s with components.min_instances=%d: copies go to zero but "
                "the instances keep running (and billing); set min_instances=0",
                spec.name,
                parts.min_instances,
            )
        if settings is not None and not isinstance(settings, TwinSettings):
            raise ConfigurationError(
                f"settings: expected TwinSettings, got {type(settings).__name__}"
            )
        if settings is not None and settings.sagemaker_endpoint not in (None, spec.name):
            raise ConfigurationError(
                f"settings name endpoint {settings.sagemaker_endpoint!r} but the spec deploys "
                f"{spec.name!r}: leave sagemaker_endpoint unset (the deployment sets it)"
            )
        if aws is not None and not isinstance(aws, AWSClients):
            raise ConfigurationError(f"aws: expected AWSClients, got {type(aws).__name__}")
        self._spec = spec
        self._scaling = scaling
        self._settings = settings
        self._aws = aws or AWSClients()
        self._progress: Progress | None = None
        self._scaler = AutoScaler(aws=self._aws, retry=retry)
        self._deployer = Deployer(
            aws=self._aws,
            retry=retry,
            poll_interval_s=poll_interval_s,
            autoscaler=self._scaler,
            on_progress=self._report,
        )

    @classmethod
    def from_settings(
        cls, spec: EndpointSpec, scaling: Scaling = None, settings: TwinSettings | None = None
    ) -> TwinDeployment:
        """A deployment whose AWS region and profile, and retrieval side, come from settings
        (``LLM_TWIN_AWS_REGION``, ``LLM_TWIN_AWS_PROFILE``, ``LLM_TWIN_QDRANT_URL``...).

        Example: ``TwinDeployment.from_settings(spec, TargetTracking(...)).up()``.
        """
        s = settings if settings is not None else TwinSettings()
        if not isinstance(s, TwinSettings):
            raise ConfigurationError(f"settings: expected TwinSettings, got {type(s).__name__}")
        aws = AWSClients(region=s.aws_region, profile=s.aws_profile)
        return cls(spec, scaling, settings=s, aws=aws)

    def __repr__(self) -> str:
        spec = self.spec
        return (
            f"TwinDeployment(endpoint={spec.name!r}, model_id={short(spec.model_id, 40)!r}, "
            f"instance_type={spec.instance_type!r}, scaling={describe_policy(self.scaling)}, "
            f"aws={self._aws!r})"
        )

    @property
    def spec(self) -> EndpointSpec:
        """The endpoint this deployment declares."""
        return self._spec

    @property
    def scaling(self) -> Scaling:
        """Its autoscaling policy (``None``: no autoscaling)."""
        return self._scaling

    @property
    def region(self) -> str:
        """The AWS region the endpoint lives in."""
        return self._deployer.region

    def plan(self, *, prices: Prices = None, idle_fraction: float = 0.5) -> TwinDeploymentPlan:
        """What :meth:`up` would create, update or delete, on the endpoint and its autoscaling
        — describe calls only — and what it costs a month (``plan.cost``: at the policy's
        minimum and maximum, and what scale-to-zero saves when idle ``idle_fraction`` of the
        time). ``print(deployment.plan())`` shows it all; secrets masked.

        ``prices``: ``None`` (the table shipped with the SDK), a
        :class:`~llm_twin_sdk.deploy.costs.PriceTable`, overrides
        ``{"eu-west-1": {"ml.g5.2xlarge": 1.69}}`` or a JSON file extending the shipped table.
        An instance type or region the table lacks gives ``plan.cost.hourly_price is None``
        and a reason, not an error. Without ``prices``, the settings' ``price_file``
        (``LLM_TWIN_PRICE_FILE``) extends the shipped table when set.
        """
        if prices is None and self._settings is not None:
            prices = self._settings.price_file
        table = resolve_prices(prices)
        cost = estimate_cost(
            self.spec, self.scaling, region=self.region, prices=table, idle_fraction=idle_fraction
        )
        endpoint = self._deployer.plan(self.spec, prices=table, idle_fraction=idle_fraction)
        endpoint = endpoint.model_copy(update={"cost": cost})
        scaling = self._scaler.plan(self.spec.ref(), self.scaling)
        return TwinDeploymentPlan(endpoint=endpoint, scaling=scaling)

    def deploy(self, *, progress: Progress | None = None, timeout_s: float = 1800.0) -> Endpoint:
        """Deploy the spec, wait until it serves, make its autoscaling the policy; the
        :class:`~llm_twin_sdk.Endpoint`. What :meth:`up` does before binding a twin.

        Raises:
            DeploymentError: SageMaker failed the deployment; what this call created is removed.
            EndpointTimeoutError: not in service after ``timeout_s``; nothing is removed (run
                ``up`` again to keep waiting, or ``down``).
            AWSError: an AWS call failed after retries. When scaling fails, the endpoint stays
                deployed (the error says so): ``up`` again converges, ``down`` removes it.
        """
        if progress is not None and not callable(progress):
            raise InvalidParameterError(
                f"progress: expected a callable taking a WaitProgress, got {progress!r}"
            )
        self._progress = progress
        started = time.monotonic()
        try:
            endpoint = self._deployer.deploy(self.spec, wait=True, timeout_s=timeout_s)
        finally:
            self._progress = None
        try:
            if self.scaling is None:
                self._scaler.remove(endpoint)
            else:
                self._scaler.apply(endpoint, self.scaling)
        except LLMTwinError as exc:
            exc.add_note(
                f"Endpoint {endpoint.name!r} is deployed but its autoscaling is not as asked: "
                "call up() again to converge, or down() to remove everything."
            )
            raise
        logger.info("deployment of %s is up (%.1f s)", endpoint.name, time.monotonic() - started)
        return endpoint

    def up(self, *, progress: Progress | None = None, timeout_s: float = 1800.0) -> LLMTwin:
        """Deploy and scale (:meth:`deploy`), then return an :class:`~llm_twin_sdk.LLMTwin`
        that answers from the endpoint and retrieves as the settings say. The twin owns its
        client and pipeline: close it (``with deployment.up() as twin:``). A second ``up``
        with the same inputs makes no write call.

        Example: ``twin = deployment.up(progress=print); twin.ask("...").sources``.
        """
        endpoint = self.deploy(progress=progress, timeout_s=timeout_s)
        try:
            return self._twin(endpoint)
        except LLMTwinError as exc:
            exc.add_note(
                f"Endpoint {endpoint.name!r} is deployed and scaled; only the twin could not "
                "be built: fix the settings and call up() again (no write), or down()."
            )
            raise

    def _twin(self, endpoint: Endpoint) -> LLMTwin:
        from .twin import LLMTwin

        s = self.settings_for_endpoint()
        client = endpoint.client(
            aws=self._aws,
            params=s.generation,
            prompt_format=s.prompt_format,
            api=s.sagemaker_api,
            context_window=s.context_window,
            timeout=Timeouts(connect_s=s.connect_timeout_s, read_s=s.read_timeout_s),
        )
        return LLMTwin._compose(s, client, llm=client)  # owns both (ownership.py)

    def settings_for_endpoint(self) -> TwinSettings:
        """The settings with the LLM side pointing at this endpoint: ``backend="sagemaker"``,
        its name, component, region, and ``context_window`` = the spec's
        ``max_total_tokens``. ``LLMTwin.from_settings(deployment.settings_for_endpoint())``
        answers from what :meth:`up` deployed; :meth:`environment` gives the same as
        ``LLM_TWIN_*`` variables for another process.
        """
        base = self._settings if self._settings is not None else TwinSettings()
        return base.model_copy(
            update={
                "backend": "sagemaker",
                "sagemaker_endpoint": self.spec.name,
                "sagemaker_inference_component": self.spec.inference_component_name,
                "aws_region": self.region,
                "aws_profile": self._aws.profile or base.aws_profile,
                "context_window": self.spec.max_total_tokens,
            }
        )

    def environment(self) -> dict[str, str]:
        """The ``LLM_TWIN_*`` variables that make ``LLMTwin.from_settings()`` (in any process)
        answer from this endpoint; no secret is among them.

        Example: ``print("\\n".join(f"{k}={v}" for k, v in deployment.environment().items()))``.
        """
        s = self.settings_for_endpoint()
        env = {
            "LLM_TWIN_BACKEND": "sagemaker",
            "LLM_TWIN_SAGEMAKER_ENDPOINT": self.spec.name,
            "LLM_TWIN_SAGEMAKER_API": s.sagemaker_api,
            "LLM_TWIN_AWS_REGION": self.region,
            "LLM_TWIN_CONTEXT_WINDOW": str(s.context_window),
        }
        if self.spec.inference_component_name is not None:
            env["LLM_TWIN_SAGEMAKER_INFERENCE_COMPONENT"] = self.spec.inference_component_name
        if s.aws_profile:
            env["LLM_TWIN_AWS_PROFILE"] = s.aws_profile
        return env

    def down(self, *, wait: bool = True, timeout_s: float = 1800.0) -> list[str]:
        """Remove everything ``up`` made: autoscaling, inference components, the endpoint,
        its SDK-tagged configs and models; idempotent. Returns what was removed (as
        ``Deployer.delete``). A twin from ``up`` is not closed: its owner closes it.
        """
        self._scaler.remove(self.spec.ref())  # also when the endpoint is gone already
        return self._deployer.delete(self.spec.name, wait=wait, timeout_s=timeout_s)

    def _report(self, progress: WaitProgress) -> None:
        if self._progress is not None:
            self._progress(progress)
