"""What a scaling policy asks of AWS, as request parameters: pure functions, no AWS call.

:func:`desired` turns policies into the parameters :class:`~llm_twin_sdk.scaling.AutoScaler`
converges to, named after the endpoint: policies ``llm-twin-<endpoint>-target-tracking`` and
``-scale-from-zero``, scheduled actions ``llm-twin-<endpoint>-<action>``, the alarm
``llm-twin-<endpoint>-<component>-scale-from-zero``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..endpoint import EndpointRef
from ..errors import InvalidParameterError
from .policies import BacklogScaling, CapacityPolicy, ScaleToZero, Scheduled, TargetTracking

__all__ = [
    "COMPONENT_DIMENSION",
    "SERVICE_NAMESPACE",
    "VARIANT_DIMENSION",
    "Desired",
    "ScalingTarget",
    "bounds_ok",
    "desired",
    "same",
]

SERVICE_NAMESPACE = "sagemaker"
VARIANT_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
COMPONENT_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
NAME_PREFIX = "llm-twin"
NO_CAPACITY_METRIC = "NoCapacityInvocationFailures"
BACKLOG_METRIC = "ApproximateBacklogSizePerInstance"
BACKLOG_WITHOUT_CAPACITY_METRIC = "HasBacklogWithoutCapacity"

Params = dict[str, Any]


@dataclass(frozen=True)
class ScalingTarget:
    """The scalable target of an endpoint: its variant, or its inference component."""

    endpoint: str
    resource_id: str
    dimension: str
    component: str | None
    asynchronous: bool = False

    @classmethod
    def of(cls, endpoint: EndpointRef) -> ScalingTarget:
        if not isinstance(endpoint, EndpointRef):
            raise InvalidParameterError(
                f"endpoint: expected an EndpointRef (or Endpoint), got {type(endpoint).__name__}"
            )
        component = endpoint.inference_component_name
        if component is not None:
            resource = f"inference-component/{component}"
            return cls(endpoint.name, resource, COMPONENT_DIMENSION, component)
        resource = f"endpoint/{endpoint.name}/variant/{endpoint.variant_name}"
        return cls(endpoint.name, resource, VARIANT_DIMENSION, None, endpoint.asynchronous)

    @property
    def key(self) -> dict[str, str]:
        """The three parameters that name the target in every Application Auto Scaling call."""
        return {
            "ServiceNamespace": SERVICE_NAMESPACE,
            "ResourceId": self.resource_id,
            "ScalableDimension": self.dimension,
        }

    @property
    def alarm_name(self) -> str | None:
        """The scale-from-zero alarm of a component or an asynchronous endpoint (``None``:
        neither); alarm names are region-wide, so the component's name is part of it."""
        if self.component is not None:
            return self.name(f"{self.component}-scale-from-zero")
        return self.name("scale-from-zero") if self.asynchronous else None

    def name(self, suffix: str) -> str:
        """``llm-twin-<endpoint>-<suffix>``: a policy's or scheduled action's name."""
        return f"{NAME_PREFIX}-{self.endpoint}-{suffix}"


@dataclass(frozen=True)
class Desired:
    """What the target should hold: bounds, policies, alarm and scheduled actions."""

    min_capacity: int
    max_capacity: int
    policies: dict[str, Params]  # name -> PutScalingPolicy params beyond the target key
    alarm: Params | None  # PutMetricAlarm params but AlarmActions and Tags
    alarm_policy: str | None  # name of the policy the alarm triggers
    scheduled: dict[str, Params]  # name -> PutScheduledAction params beyond the key


def desired(
    target: ScalingTarget, capacity: CapacityPolicy | None, scheduled: Scheduled | None
) -> Desired:
    """The state that ``capacity`` and ``scheduled`` (one at least) ask of ``target``."""
    tracking = capacity.target_tracking if isinstance(capacity, ScaleToZero) else capacity
    bounds = tracking or scheduled
    assert bounds is not None  # the caller gives one policy at least
    policies: dict[str, Params] = {}
    if tracking is not None:
        policies[target.name("target-tracking")] = _tracking(target, tracking)
    alarm: Params | None = None
    alarm_policy: str | None = None
    if from_zero := _from_zero(target, capacity):
        policy, metric, dimension, statistic, description = from_zero
        alarm_policy = target.name("scale-from-zero")
        policies[alarm_policy] = _step_out(policy.scale_out_cooldown_s, statistic)
        alarm = _alarm(
            target,
            policy,
            metric=metric,
            dimension=dimension,
            statistic=statistic,
            description=description,
        )
    actions = {
        target.name(action.name): {
            "Schedule": action.schedule,
            "Timezone": action.timezone,
            "ScalableTargetAction": {
                "MinCapacity": action.min_capacity,
                "MaxCapacity": action.max_capacity,
            },
        }
        for action in (scheduled.actions if scheduled is not None else ())
    }
    return Desired(bounds.min_capacity, bounds.max_capacity, policies, alarm, alarm_policy, actions)


def _from_zero(
    target: ScalingTarget, capacity: CapacityPolicy | None
) -> tuple[ScaleToZero | BacklogScaling, str, Params, str, str] | None:
    """What starts ``target`` again from zero: the policy, its alarm's metric, dimension,
    statistic (also the step policy's aggregation) and description; ``None`` when it never
    rests at zero."""
    if isinstance(capacity, ScaleToZero):
        assert target.component is not None
        return (
            capacity,
            NO_CAPACITY_METRIC,
            {"Name": "InferenceComponentName", "Value": target.component},
            "Maximum",
            f"Scale inference component {target.component} out from zero copies on the first "
            "request (managed by llm-twin-sdk)",
        )
    if isinstance(capacity, BacklogScaling) and capacity.min_capacity == 0:
        return (
            capacity,
            BACKLOG_WITHOUT_CAPACITY_METRIC,
            {"Name": "EndpointName", "Value": target.endpoint},
            "Average",
            f"Scale asynchronous endpoint {target.endpoint} out from zero instances when "
            "requests wait (managed by llm-twin-sdk)",
        )
    return None


def _tracking(target: ScalingTarget, tracking: TargetTracking | BacklogScaling) -> Params:
    """The target-tracking policy: a predefined metric, or an async endpoint's backlog."""
    if isinstance(tracking, BacklogScaling):
        metric: Params = {
            "CustomizedMetricSpecification": {
                "MetricName": BACKLOG_METRIC,
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{"Name": "EndpointName", "Value": target.endpoint}],
                "Statistic": "Average",
            }
        }
        scale_in = False
    else:
        name = tracking.predefined_metric(inference_component=target.component is not None)
        metric = {"PredefinedMetricSpecification": {"PredefinedMetricType": name}}
        scale_in = tracking.disable_scale_in
    return {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(tracking.target),
            **metric,
            "ScaleInCooldown": tracking.scale_in_cooldown_s,
            "ScaleOutCooldown": tracking.scale_out_cooldown_s,
            "DisableScaleIn": scale_in,
        },
    }


def _step_out(cooldown_s: int, aggregation: str) -> Params:
    """The scale-from-zero step policy: one more instance (or copy) while its alarm fires."""
    return {
        "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": aggregation,
            "Cooldown": cooldown_s,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        },
    }


def _alarm(
    target: ScalingTarget,
    policy: ScaleToZero | BacklogScaling,
    *,
    metric: str,
    dimension: Params,
    statistic: str,
    description: str,
) -> Params:
    """The scale-from-zero alarm (``PutMetricAlarm`` but its actions and tags)."""
    return {
        "AlarmName": target.alarm_name,
        "AlarmDescription": description,
        "Namespace": "AWS/SageMaker",
        "MetricName": metric,
        "Dimensions": [dimension],
        "Statistic": statistic,
        "Period": policy.alarm_period_s,
        "EvaluationPeriods": policy.evaluation_periods,
        "DatapointsToAlarm": policy.datapoints_to_alarm,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "missing",
    }


def bounds_ok(desired: Desired, target: Mapping[str, Any] | None) -> bool:
    """Whether the registered bounds need no change.

    A scheduled action, when it runs, sets the target's bounds to its own: bounds equal to
    one of the desired actions' are the schedule at work, not a difference to undo.
    """
    if target is None:
        return False
    allowed = {(desired.min_capacity, desired.max_capacity)}
    for action in desired.scheduled.values():
        limits = action["ScalableTargetAction"]
        allowed.add((limits["MinCapacity"], limits["MaxCapacity"]))
    return (target.get("MinCapacity"), target.get("MaxCapacity")) in allowed


def same(want: Any, have: Any) -> bool:
    """True when everything in ``want`` is in ``have`` (AWS adds fields of its own)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            same(value, have[key]) if key in have else value is False for key, value in want.items()
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(want) == len(have)
            and all(same(w, h) for w, h in zip(want, have, strict=True))
        )
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return math.isclose(want, have, rel_tol=1e-9, abs_tol=1e-12)
    return bool(want == have)
