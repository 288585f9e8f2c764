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
from .policies import ScaleToZero, Scheduled, TargetTracking

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

Params = dict[str, Any]


@dataclass(frozen=True)
class ScalingTarget:
    """The scalable target of an endpoint: its variant, or its inference component."""

    endpoint: str
    resource_id: str
    dimension: str
    component: str | None

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
        return cls(endpoint.name, resource, VARIANT_DIMENSION, None)

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
        """Alarm names are region-wide, so the component's name is part of it."""
        return None if self.component is None else self.name(f"{self.component}-scale-from-zero")

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
    target: ScalingTarget,
    capacity: TargetTracking | ScaleToZero | None,
    scheduled: Scheduled | None,
) -> Desired:
    """The state that ``capacity`` and ``scheduled`` (one at least) ask of ``target``."""
    tracking = capacity.target_tracking if isinstance(capacity, ScaleToZero) else capacity
    bounds = tracking or scheduled
    assert bounds is not None  # the caller gives one policy at least
    policies: dict[str, Params] = {}
    if tracking is not None:
        metric = tracking.predefined_metric(inference_component=target.component is not None)
        policies[target.name("target-tracking")] = {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": float(tracking.target),
                "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                "ScaleInCooldown": tracking.scale_in_cooldown_s,
                "ScaleOutCooldown": tracking.scale_out_cooldown_s,
                "DisableScaleIn": tracking.disable_scale_in,
            },
        }
    alarm: Params | None = None
    alarm_policy: str | None = None
    if isinstance(capacity, ScaleToZero):
        assert target.component is not None
        alarm_policy = target.name("scale-from-zero")
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
