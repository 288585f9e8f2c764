"""AutoScaler: apply, describe and remove Application Auto Scaling on a SageMaker endpoint.

The scalable target is the endpoint's variant (``DesiredInstanceCount``) for a model-based
endpoint, or its inference component (``DesiredCopyCount``) for an inference-component
endpoint. :meth:`AutoScaler.apply` is declarative and idempotent: it reads what is in place,
compares it with what the policy asks for and writes only the differences, so applying the
same policy twice makes no write call, and applying another policy replaces the previous one
with nothing left behind. :meth:`AutoScaler.remove` deletes the alarm, the policies, the
scheduled actions and the scalable target; removing twice is fine.

Example::

    from llm_twin_sdk.deploy.spec import EndpointRef
    from llm_twin_sdk.scaling import AutoScaler, ScaleToZero, TargetTracking

    scaler = AutoScaler(region="eu-central-1")
    twin = EndpointRef(name="twin")                       # model-based, variant AllTraffic
    state = scaler.apply(
        twin, TargetTracking(metric="invocations", target=50, min_capacity=1, max_capacity=4)
    )
    print(state)                                          # target 1..4, one policy
    scaler.remove(twin)

    component = EndpointRef(name="twin", inference_component_name="twin-ic")
    scaler.apply(component, ScaleToZero(target_tracking=TargetTracking(
        metric="concurrency", target=4, min_capacity=0, max_capacity=2)))

Names are derived from the endpoint: policies ``llm-twin-<endpoint>-target-tracking`` and
``llm-twin-<endpoint>-scale-from-zero``, scheduled actions ``llm-twin-<endpoint>-<action>``,
and the scale-from-zero alarm ``llm-twin-<endpoint>-<component>-scale-from-zero``.

Every AWS call goes through :func:`~llm_twin_sdk.aws.call_aws`: throttling is retried under
the SDK's :class:`~llm_twin_sdk.retry.RetryPolicy` and every AWS failure is raised as an
:class:`~llm_twin_sdk.errors.AWSError` (``AccessDeniedError``, ``AWSThrottledError``...). When
an apply fails part-way, calling it again finishes the job (or ``remove`` cleans up).

IAM: ``application-autoscaling:Describe*``, ``RegisterScalableTarget``,
``DeregisterScalableTarget``, ``PutScalingPolicy``, ``DeleteScalingPolicy``,
``PutScheduledAction``, ``DeleteScheduledAction``, ``TagResource``; for scale-to-zero also
``cloudwatch:DescribeAlarms``, ``PutMetricAlarm``, ``DeleteAlarms``, ``TagResource``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ..aws import AWSClients, call_aws
from ..deploy.spec import MANAGED_BY_TAG, EndpointRef
from ..errors import ConfigurationError, InvalidParameterError, ResourceNotFoundError, ScalingError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ..types import _Model
from .policies import ScaleToZero, ScalingPolicy, Scheduled, TargetTracking

__all__ = [
    "COMPONENT_DIMENSION",
    "SERVICE_NAMESPACE",
    "VARIANT_DIMENSION",
    "AlarmState",
    "AutoScaler",
    "PolicyState",
    "ScalableTargetState",
    "ScalingState",
    "ScheduledActionState",
]

logger = logging.getLogger(__name__)

SERVICE_NAMESPACE = "sagemaker"
VARIANT_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
COMPONENT_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
NAME_PREFIX = "llm-twin"
NO_CAPACITY_METRIC = "NoCapacityInvocationFailures"


# -- state, as AWS reports it ----------------------------------------------------------------


class ScalableTargetState(_Model):
    """The registered scalable target and its capacity bounds."""

    min_capacity: int
    max_capacity: int
    arn: str | None = None


class PolicyState(_Model):
    """A scaling policy on the target.

    ``metric`` and ``target_value`` are set for target tracking; ``alarm_names`` lists the
    CloudWatch alarms AWS reports for the policy (for target tracking, the ones it manages).
    """

    name: str
    type: str = Field(description="TargetTrackingScaling, StepScaling or PredictiveScaling.")
    arn: str
    metric: str | None = None
    target_value: float | None = None
    alarm_names: tuple[str, ...] = ()


class AlarmState(_Model):
    """A CloudWatch alarm this SDK created for the target (scale from zero)."""

    name: str
    arn: str | None = None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
    actions: tuple[str, ...] = Field((), description="AlarmActions: ARNs the alarm triggers.")
    state: str | None = Field(None, description="OK, ALARM or INSUFFICIENT_DATA.")


class ScheduledActionState(_Model):
    """A scheduled action on the target."""

    name: str
    schedule: str
    timezone: str | None = None
    min_capacity: int | None = None
    max_capacity: int | None = None
    arn: str | None = None


class ScalingState(_Model):
    """Autoscaling of one endpoint variant or inference component, as AWS reports it.

    ``target`` is ``None`` when the endpoint has no autoscaling. Printing it gives a short
    readable summary.

    Example::

        state = scaler.describe(endpoint)
        if state.enabled:
            print(state.target.min_capacity, [p.name for p in state.policies])
    """

    endpoint_name: str
    resource_id: str
    scalable_dimension: str
    target: ScalableTargetState | None = None
    policies: tuple[PolicyState, ...] = ()
    alarms: tuple[AlarmState, ...] = ()
    scheduled_actions: tuple[ScheduledActionState, ...] = ()

    @property
    def enabled(self) -> bool:
        """True when a scalable target is registered."""
        return self.target is not None

    def __str__(self) -> str:
        if self.target is None:
            head = f"{self.resource_id}: no autoscaling"
        else:
            head = (
                f"{self.resource_id} ({self.scalable_dimension}): "
                f"{self.target.min_capacity}..{self.target.max_capacity}"
            )
        lines = [head]
        for policy in self.policies:
            detail = (
                f" {policy.metric} -> {policy.target_value:g}"
                if policy.metric is not None and policy.target_value is not None
                else ""
            )
            lines.append(f"  policy {policy.name} [{policy.type}]{detail}")
        for alarm in self.alarms:
            lines.append(f"  alarm {alarm.name} on {alarm.metric_name} [{alarm.state}]")
        for action in self.scheduled_actions:
            lines.append(
                f"  schedule {action.name}: {action.schedule} {action.timezone or 'UTC'} -> "
                f"{action.min_capacity}..{action.max_capacity}"
            )
        return "\n".join(lines)


# -- what the endpoint's scaling resources are called ----------------------------------------


@dataclass(frozen=True)
class _Target:
    endpoint: str
    resource_id: str
    dimension: str
    component: str | None

    @classmethod
    def of(cls, endpoint: EndpointRef) -> _Target:
        if not isinstance(endpoint, EndpointRef):
            raise InvalidParameterError(
                f"endpoint: expected an EndpointRef (or Endpoint), got {type(endpoint).__name__}"
            )
        component = endpoint.inference_component_name
        if component is not None:
            return cls(
                endpoint.name, f"inference-component/{component}", COMPONENT_DIMENSION, component
            )
        return cls(
            endpoint.name,
            f"endpoint/{endpoint.name}/variant/{endpoint.variant_name}",
            VARIANT_DIMENSION,
            None,
        )

    @property
    def key(self) -> dict[str, str]:
        return {
            "ServiceNamespace": SERVICE_NAMESPACE,
            "ResourceId": self.resource_id,
            "ScalableDimension": self.dimension,
        }

    @property
    def target_tracking_name(self) -> str:
        return f"{NAME_PREFIX}-{self.endpoint}-target-tracking"

    @property
    def scale_from_zero_name(self) -> str:
        return f"{NAME_PREFIX}-{self.endpoint}-scale-from-zero"

    @property
    def alarm_name(self) -> str | None:
        """Alarm names are region-wide, so the component's name is part of it."""
        if self.component is None:
            return None
        return f"{NAME_PREFIX}-{self.endpoint}-{self.component}-scale-from-zero"

    def scheduled_name(self, action: str) -> str:
        return f"{NAME_PREFIX}-{self.endpoint}-{action}"


@dataclass(frozen=True)
class _Desired:
    min_capacity: int
    max_capacity: int
    policies: dict[str, dict[str, Any]]  # name -> PutScalingPolicy params beyond the target key
    alarm: dict[str, Any] | None  # PutMetricAlarm params but AlarmActions and Tags
    alarm_policy: str | None  # name of the policy the alarm triggers
    scheduled: dict[str, dict[str, Any]]  # name -> PutScheduledAction params beyond the key


@dataclass(frozen=True)
class _Current:
    target: dict[str, Any] | None
    policies: dict[str, dict[str, Any]]
    scheduled: dict[str, dict[str, Any]]
    alarms: dict[str, dict[str, Any]]


# -- validation and the desired state (no AWS call) ------------------------------------------


def _split(
    policy: ScalingPolicy | Sequence[ScalingPolicy],
) -> tuple[TargetTracking | ScaleToZero | None, Scheduled | None]:
    kinds = (TargetTracking, ScaleToZero, Scheduled)
    if isinstance(policy, kinds):
        items: list[object] = [policy]
    elif isinstance(policy, Sequence) and not isinstance(policy, str | bytes):
        items = list(policy)
    else:
        raise InvalidParameterError(
            "policy: expected TargetTracking, ScaleToZero, Scheduled or a list of them, "
            f"got {type(policy).__name__}"
        )
    if not items:
        raise InvalidParameterError("policy: the list is empty; give at least one policy")
    for item in items:
        if not isinstance(item, kinds):
            raise InvalidParameterError(
                "policy: expected TargetTracking, ScaleToZero or Scheduled items, "
                f"got {type(item).__name__}"
            )
    capacity = [p for p in items if isinstance(p, TargetTracking | ScaleToZero)]
    scheduled = [p for p in items if isinstance(p, Scheduled)]
    if len(capacity) > 1:
        raise InvalidParameterError(
            "policy: at most one TargetTracking or ScaleToZero per endpoint "
            "(ScaleToZero already holds its own target tracking)"
        )
    if len(scheduled) > 1:
        raise InvalidParameterError(
            "policy: at most one Scheduled per endpoint; put all actions in one Scheduled"
        )
    return (capacity[0] if capacity else None), (scheduled[0] if scheduled else None)


def _check_fits(
    endpoint: EndpointRef,
    capacity: TargetTracking | ScaleToZero | None,
    scheduled: Scheduled | None,
) -> None:
    """Raise InvalidParameterError when a policy cannot apply to this kind of endpoint."""
    if endpoint.kind == "inference-component":
        if isinstance(capacity, TargetTracking) and capacity.min_capacity == 0:
            logger.warning(
                "TargetTracking with min_capacity=0 on %s: target tracking can scale in to "
                "zero copies but never back out; use ScaleToZero to restart on demand",
                endpoint.inference_component_name,
            )
        return
    where = f"endpoint {endpoint.name!r} is model-based (variant {endpoint.variant_name!r})"
    if isinstance(capacity, ScaleToZero):
        raise InvalidParameterError(
            f"ScaleToZero: scale-to-zero needs an inference-component endpoint, but {where}. "
            "Use TargetTracking with min_capacity >= 1, or deploy with inference components "
            "(EndpointSpec.components) and pass an EndpointRef with inference_component_name."
        )
    if isinstance(capacity, TargetTracking) and capacity.min_capacity < 1:
        raise InvalidParameterError(
            f"TargetTracking.min_capacity: 0 is allowed only for inference components, but "
            f"{where}; use min_capacity >= 1"
        )
    if scheduled is not None:
        for index, action in enumerate(scheduled.actions):
            if action.min_capacity < 1:
                raise InvalidParameterError(
                    f"Scheduled.actions[{index}].min_capacity ({action.name!r}): 0 is allowed "
                    f"only for inference components, but {where}; use min_capacity >= 1"
                )


def _desired(
    target: _Target,
    capacity: TargetTracking | ScaleToZero | None,
    scheduled: Scheduled | None,
) -> _Desired:
    tracking = capacity.target_tracking if isinstance(capacity, ScaleToZero) else capacity
    if tracking is not None:
        low, high = tracking.min_capacity, tracking.max_capacity
    else:
        assert scheduled is not None  # _split guarantees one policy at least
        low, high = scheduled.min_capacity, scheduled.max_capacity

    policies: dict[str, dict[str, Any]] = {}
    if tracking is not None:
        metric = tracking.predefined_metric(inference_component=target.component is not None)
        policies[target.target_tracking_name] = {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": float(tracking.target),
                "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                "ScaleInCooldown": tracking.scale_in_cooldown_s,
                "ScaleOutCooldown": tracking.scale_out_cooldown_s,
                "DisableScaleIn": tracking.disable_scale_in,
            },
        }

    alarm: dict[str, Any] | None = None
    alarm_policy: str | None = None
    if isinstance(capacity, ScaleToZero):
        assert target.component is not None
        assert target.alarm_name is not None
        alarm_policy = target.scale_from_zero_name
        policies[alarm_policy] = {
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Maximum",
                "Cooldown": capacity.scale_out_cooldown_s,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
        }
        alarm = {
            "AlarmName": target.alarm_name,
            "AlarmDescription": (
                f"Scale inference component {target.component} out from zero copies on the "
                "first request (managed by llm-twin-sdk)"
            ),
            "Namespace": "AWS/SageMaker",
            "MetricName": NO_CAPACITY_METRIC,
            "Dimensions": [{"Name": "InferenceComponentName", "Value": target.component}],
            "Statistic": "Maximum",
            "Period": capacity.alarm_period_s,
            "EvaluationPeriods": capacity.evaluation_periods,
            "DatapointsToAlarm": capacity.datapoints_to_alarm,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "missing",
        }

    actions = {
        target.scheduled_name(action.name): {
            "Schedule": action.schedule,
            "Timezone": action.timezone,
            "ScalableTargetAction": {
                "MinCapacity": action.min_capacity,
                "MaxCapacity": action.max_capacity,
            },
        }
        for action in (scheduled.actions if scheduled is not None else ())
    }
    return _Desired(low, high, policies, alarm, alarm_policy, actions)


def _bounds_ok(desired: _Desired, target: Mapping[str, Any] | None) -> bool:
    """Whether the registered bounds need no change.

    A scheduled action, when it runs, sets the target's bounds to its own: bounds equal to
    one of the desired actions' are the schedule at work, not a difference to undo.
    """
    if target is None:
        return False
    bounds = (target.get("MinCapacity"), target.get("MaxCapacity"))
    allowed = {(desired.min_capacity, desired.max_capacity)}
    for action in desired.scheduled.values():
        limits = action["ScalableTargetAction"]
        allowed.add((limits["MinCapacity"], limits["MaxCapacity"]))
    return bounds in allowed


def _same(want: Any, have: Any) -> bool:
    """True when everything in ``want`` is in ``have`` (AWS adds fields of its own)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            _same(value, have[key]) if key in have else value is False
            for key, value in want.items()
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(want) == len(have)
            and all(_same(w, h) for w, h in zip(want, have, strict=True))
        )
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return math.isclose(want, have, rel_tol=1e-9, abs_tol=1e-12)
    return bool(want == have)


def _state(target: _Target, current: _Current) -> ScalingState:
    scalable = None
    if current.target is not None:
        scalable = ScalableTargetState(
            min_capacity=current.target["MinCapacity"],
            max_capacity=current.target["MaxCapacity"],
            arn=current.target.get("ScalableTargetARN"),
        )
    policies = []
    for name, policy in current.policies.items():
        tracking = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
        policies.append(
            PolicyState(
                name=name,
                type=policy.get("PolicyType", "unknown"),
                arn=policy.get("PolicyARN", ""),
                metric=(tracking.get("PredefinedMetricSpecification") or {}).get(
                    "PredefinedMetricType"
                ),
                target_value=tracking.get("TargetValue"),
                alarm_names=tuple(a["AlarmName"] for a in policy.get("Alarms") or ()),
            )
        )
    alarms = [
        AlarmState(
            name=name,
            arn=alarm.get("AlarmArn"),
            namespace=alarm.get("Namespace"),
            metric_name=alarm.get("MetricName"),
            dimensions={d["Name"]: d["Value"] for d in alarm.get("Dimensions") or ()},
            actions=tuple(alarm.get("AlarmActions") or ()),
            state=alarm.get("StateValue"),
        )
        for name, alarm in current.alarms.items()
    ]
    actions = []
    for name, action in current.scheduled.items():
        bounds = action.get("ScalableTargetAction") or {}
        actions.append(
            ScheduledActionState(
                name=name,
                schedule=action.get("Schedule", ""),
                timezone=action.get("Timezone"),
                min_capacity=bounds.get("MinCapacity"),
                max_capacity=bounds.get("MaxCapacity"),
                arn=action.get("ScheduledActionARN"),
            )
        )
    return ScalingState(
        endpoint_name=target.endpoint,
        resource_id=target.resource_id,
        scalable_dimension=target.dimension,
        target=scalable,
        policies=tuple(policies),
        alarms=tuple(alarms),
        scheduled_actions=tuple(actions),
    )


# -- the scaler ------------------------------------------------------------------------------


class AutoScaler:
    """Applies, describes and removes autoscaling on SageMaker endpoints.

    Args:
        autoscaling_client: a boto3 ``application-autoscaling`` client; built from ``aws``
            (or ``region`` / ``profile``) on first use when omitted.
        cloudwatch_client: a boto3 ``cloudwatch`` client (scale-to-zero alarms only).
        aws: the :class:`~llm_twin_sdk.aws.AWSClients` to build missing clients from.
        region: AWS region, when ``aws`` is not given.
        profile: AWS profile, when ``aws`` is not given.
        retry: the retry policy for every AWS call (throttling, AWS-side errors).

    Clients built here never retry by themselves; injected clients keep their own botocore
    retry settings, which multiply with ``retry`` (configure them with
    :func:`~llm_twin_sdk.aws.botocore_config`).

    Example::

        scaler = AutoScaler(region="eu-central-1")
        scaler.apply(endpoint, TargetTracking(metric="invocations", target=50,
                                              min_capacity=1, max_capacity=4))
        print(scaler.describe(endpoint))
        scaler.remove(endpoint)
    """

    def __init__(
        self,
        *,
        autoscaling_client: Any = None,
        cloudwatch_client: Any = None,
        aws: AWSClients | None = None,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        if aws is not None and (region is not None or profile is not None):
            raise ConfigurationError(
                "AutoScaler: pass either aws= or region=/profile=, not both "
                "(the AWSClients already has its region and profile)"
            )
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(
                f"AutoScaler: retry must be a RetryPolicy, got {type(retry).__name__}"
            )
        self._autoscaling = autoscaling_client
        self._cloudwatch = cloudwatch_client
        self._aws = aws
        if self._aws is None and (autoscaling_client is None or cloudwatch_client is None):
            self._aws = AWSClients(region=region, profile=profile)
        self.retry = retry

    def __repr__(self) -> str:
        return f"AutoScaler(aws={self._aws!r}, retry={self.retry!r})"

    @property
    def autoscaling_client(self) -> Any:
        """The ``application-autoscaling`` client (built on first use)."""
        if self._autoscaling is None:
            assert self._aws is not None
            self._autoscaling = self._aws.client("application-autoscaling")
        return self._autoscaling

    @property
    def cloudwatch_client(self) -> Any:
        """The ``cloudwatch`` client (built on first use)."""
        if self._cloudwatch is None:
            assert self._aws is not None
            self._cloudwatch = self._aws.client("cloudwatch")
        return self._cloudwatch

    # -- public API ---------------------------------------------------------------------

    def apply(
        self, endpoint: EndpointRef, policy: ScalingPolicy | Sequence[ScalingPolicy]
    ) -> ScalingState:
        """Make the endpoint's autoscaling exactly ``policy``; return the resulting state.

        ``policy`` is one policy, or a list of at most one :class:`TargetTracking` /
        :class:`ScaleToZero` and at most one :class:`Scheduled`. Policies and scheduled
        actions on the target that ``policy`` does not contain are deleted. When everything
        already matches, nothing is written.

        With a :class:`Scheduled`, the target's current bounds are kept when they equal one
        of its actions' bounds: that action has run, and re-applying must not undo it.

        Raises:
            InvalidParameterError: the policy does not fit the endpoint (``min_capacity=0``
                or ``ScaleToZero`` on a model-based endpoint...); raised before any AWS call.
            AWSError: an AWS call failed (after retries for throttling).

        Example::

            scaler.apply(endpoint, [
                TargetTracking(metric="invocations", target=50, min_capacity=1, max_capacity=4),
                Scheduled(actions=(
                    ScheduledAction(name="day", schedule="cron(0 8 ? * MON-FRI *)",
                                    min_capacity=2, max_capacity=4),
                    ScheduledAction(name="night", schedule="cron(0 20 ? * MON-FRI *)",
                                    min_capacity=1, max_capacity=1),
                )),
            ])
        """
        capacity, scheduled = _split(policy)
        _check_fits(endpoint, capacity, scheduled)
        target = _Target.of(endpoint)
        desired = _desired(target, capacity, scheduled)
        current = self._read(target)
        writes = self._converge(target, desired, current)
        if writes == 0:
            logger.info("autoscaling of %s is already as asked: nothing to do", target.resource_id)
            return _state(target, current)
        logger.info("autoscaling of %s applied (%d changes)", target.resource_id, writes)
        return self.describe(endpoint)

    def describe(self, endpoint: EndpointRef) -> ScalingState:
        """The endpoint's autoscaling as AWS reports it (``target is None`` when there is none).

        Example::

            state = scaler.describe(endpoint)
            print(state)
        """
        target = _Target.of(endpoint)
        return _state(target, self._read(target))

    def remove(self, endpoint: EndpointRef) -> None:
        """Delete the alarm, policies, scheduled actions and scalable target of the endpoint.

        Safe to call when there is no autoscaling (or none any more): it then does nothing.

        Example::

            scaler.remove(endpoint)
            assert not scaler.describe(endpoint).enabled
        """
        target = _Target.of(endpoint)
        writes = self._converge(target, None, self._read(target))
        logger.info("autoscaling of %s removed (%d deletions)", target.resource_id, writes)

    # -- reading ------------------------------------------------------------------------

    def _call(self, client: Any, operation: str, **params: Any) -> Any:
        return call_aws(client, operation, policy=self.retry, **params)

    def _pages(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call(
                self.autoscaling_client,
                operation,
                **params,
                **({"NextToken": token} if token else {}),
            )
            items.extend(page.get(key) or ())
            token = page.get("NextToken")
            if not token:
                return items

    def _read(self, target: _Target) -> _Current:
        mine = target.key

        def matches(item: Mapping[str, Any]) -> bool:
            return bool(
                item.get("ResourceId") == target.resource_id
                and item.get("ScalableDimension") == target.dimension
            )

        targets = self._pages(
            "describe_scalable_targets",
            "ScalableTargets",
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceIds=[target.resource_id],
            ScalableDimension=target.dimension,
        )
        policies = self._pages("describe_scaling_policies", "ScalingPolicies", **mine)
        scheduled = self._pages("describe_scheduled_actions", "ScheduledActions", **mine)
        alarms: dict[str, dict[str, Any]] = {}
        if target.alarm_name is not None:
            out = self._call(
                self.cloudwatch_client,
                "describe_alarms",
                AlarmNames=[target.alarm_name],
                AlarmTypes=["MetricAlarm"],
            )
            alarms = {a["AlarmName"]: a for a in out.get("MetricAlarms") or ()}
        return _Current(
            target=next((t for t in targets if matches(t)), None),
            policies={p["PolicyName"]: p for p in policies if matches(p)},
            scheduled={s["ScheduledActionName"]: s for s in scheduled if matches(s)},
            alarms=alarms,
        )

    # -- writing ------------------------------------------------------------------------

    def _delete(self, client: Any, operation: str, **params: Any) -> int:
        """A delete call; something already gone counts as done."""
        try:
            self._call(client, operation, **params)
        except ResourceNotFoundError:
            logger.info("%s: already gone (%s)", operation, params)
        return 1

    def _converge(self, target: _Target, desired: _Desired | None, current: _Current) -> int:
        """Write what differs between ``current`` and ``desired`` (None: remove everything).

        The order keeps every intermediate state valid: the target exists before its
        policies, an alarm goes before the policy it triggers, the target goes last.
        Returns the number of write calls made.
        """
        writes = 0
        if desired is not None and not _bounds_ok(desired, current.target):
            writes += self._register(target, desired, exists=current.target is not None)
        wanted_alarm = desired.alarm if desired is not None else None
        for name in current.alarms:
            if wanted_alarm is None or wanted_alarm["AlarmName"] != name:
                logger.info("deleting alarm %s", name)
                writes += self._delete(self.cloudwatch_client, "delete_alarms", AlarmNames=[name])
        arns, policy_writes = self._converge_policies(
            target, desired.policies if desired is not None else {}, current.policies
        )
        writes += policy_writes
        if desired is not None and desired.alarm is not None and desired.alarm_policy:
            writes += self._converge_alarm(
                desired.alarm, arns[desired.alarm_policy], current.alarms
            )
        writes += self._converge_scheduled(
            target, desired.scheduled if desired is not None else {}, current.scheduled
        )
        if desired is None and current.target is not None:
            logger.info("deregistering %s", target.resource_id)
            aas = self.autoscaling_client
            writes += self._delete(aas, "deregister_scalable_target", **target.key)
        return writes

    def _register(self, target: _Target, desired: _Desired, *, exists: bool) -> int:
        logger.info(
            "registering %s: %d..%d", target.resource_id, desired.min_capacity, desired.max_capacity
        )
        self._call(
            self.autoscaling_client,
            "register_scalable_target",
            **target.key,
            MinCapacity=desired.min_capacity,
            MaxCapacity=desired.max_capacity,
            **({} if exists else {"Tags": dict([MANAGED_BY_TAG])}),
        )
        return 1

    def _converge_policies(
        self,
        target: _Target,
        wanted: Mapping[str, dict[str, Any]],
        current: Mapping[str, dict[str, Any]],
    ) -> tuple[dict[str, str], int]:
        """Delete unwanted policies, put changed ones; return every wanted policy's ARN."""
        aas, key, writes = self.autoscaling_client, target.key, 0
        for name, policy in current.items():
            want = wanted.get(name)
            if want is None or want["PolicyType"] != policy.get("PolicyType"):
                logger.info("deleting scaling policy %s", name)
                writes += self._delete(aas, "delete_scaling_policy", PolicyName=name, **key)
        arns: dict[str, str] = {}
        for name, want in wanted.items():
            have = current.get(name)
            if have is not None and _same(want, have):
                arns[name] = have["PolicyARN"]
                continue
            logger.info("putting scaling policy %s", name)
            out = self._call(aas, "put_scaling_policy", PolicyName=name, **key, **want)
            writes += 1
            if not out.get("PolicyARN"):
                raise ScalingError(
                    f"put_scaling_policy returned no PolicyARN for {name!r} on "
                    f"{target.resource_id}; run apply again, or remove() to clean up"
                )
            arns[name] = out["PolicyARN"]
        return arns, writes

    def _converge_alarm(
        self, alarm: Mapping[str, Any], policy_arn: str, current: Mapping[str, dict[str, Any]]
    ) -> int:
        params = {**alarm, "AlarmActions": [policy_arn]}
        have = current.get(alarm["AlarmName"])
        if have is not None and _same(params, have):
            return 0
        logger.info("putting alarm %s -> %s", alarm["AlarmName"], policy_arn)
        tags = [{"Key": MANAGED_BY_TAG[0], "Value": MANAGED_BY_TAG[1]}]
        self._call(self.cloudwatch_client, "put_metric_alarm", **params, Tags=tags)
        return 1

    def _converge_scheduled(
        self,
        target: _Target,
        wanted: Mapping[str, dict[str, Any]],
        current: Mapping[str, dict[str, Any]],
    ) -> int:
        aas, key, writes = self.autoscaling_client, target.key, 0
        for name in current:
            if name not in wanted:
                logger.info("deleting scheduled action %s", name)
                writes += self._delete(
                    aas, "delete_scheduled_action", ScheduledActionName=name, **key
                )
        for name, want in wanted.items():
            have = current.get(name)
            if have is None or not _same(want, have):
                logger.info("putting scheduled action %s", name)
                self._call(aas, "put_scheduled_action", ScheduledActionName=name, **key, **want)
                writes += 1
        return writes
