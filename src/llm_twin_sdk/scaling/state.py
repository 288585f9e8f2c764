"""ScalingState: the autoscaling of one endpoint variant or inference component, as AWS reports it.

Example: ``state = AutoScaler(region="eu-central-1").describe(endpoint); print(state)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ..display import Shown, listing
from ..types import _Model
from .requests import ScalingTarget

__all__ = ["AlarmState", "Current", "PolicyState", "ScalableTargetState", "ScalingState"]

Items = dict[str, dict[str, Any]]
"""AWS answers by name (policies, alarms, scheduled actions)."""


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

    ``target`` is ``None`` when the endpoint has no autoscaling; ``print(state)`` summarises.
    Example: ``if state.enabled: print(state.target.min_capacity, state.policies)``.
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

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Bounds and the names of what is in place; str() gives the details.
        yield "resource_id", self.resource_id
        target = self.target
        bounds = None if target is None else Shown(f"{target.min_capacity}..{target.max_capacity}")
        yield "target", bounds
        for name in ("policies", "alarms", "scheduled_actions"):
            if items := getattr(self, name):
                yield name, listing([item.name for item in items], shown=2)

    def __str__(self) -> str:
        if self.target is None:
            lines = [f"{self.resource_id}: no autoscaling"]
        else:
            bounds = f"{self.target.min_capacity}..{self.target.max_capacity}"
            lines = [f"{self.resource_id} ({self.scalable_dimension}): {bounds}"]
        for policy in self.policies:
            detail = (
                f" {policy.metric} -> {policy.target_value:g}"
                if policy.metric is not None and policy.target_value is not None
                else ""
            )
            lines.append(f"  policy {policy.name} [{policy.type}]{detail}")
        lines += [f"  alarm {a.name} on {a.metric_name} [{a.state}]" for a in self.alarms]
        lines += [
            f"  schedule {a.name}: {a.schedule} {a.timezone or 'UTC'} -> "
            f"{a.min_capacity}..{a.max_capacity}"
            for a in self.scheduled_actions
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class Current:
    """What AWS holds for a scalable target now (answers by name)."""

    target: dict[str, Any] | None
    policies: Items
    scheduled: Items
    alarms: Items

    def state(self, target: ScalingTarget) -> ScalingState:
        """The :class:`ScalingState` these answers describe."""

        def policy(name: str, item: Mapping[str, Any]) -> PolicyState:
            tracking = item.get("TargetTrackingScalingPolicyConfiguration") or {}
            metric = tracking.get("PredefinedMetricSpecification") or {}
            return PolicyState(
                name=name,
                type=item.get("PolicyType", "unknown"),
                arn=item.get("PolicyARN", ""),
                metric=metric.get("PredefinedMetricType"),
                target_value=tracking.get("TargetValue"),
                alarm_names=tuple(a["AlarmName"] for a in item.get("Alarms") or ()),
            )

        def alarm(name: str, item: Mapping[str, Any]) -> AlarmState:
            return AlarmState(
                name=name,
                arn=item.get("AlarmArn"),
                namespace=item.get("Namespace"),
                metric_name=item.get("MetricName"),
                dimensions={d["Name"]: d["Value"] for d in item.get("Dimensions") or ()},
                actions=tuple(item.get("AlarmActions") or ()),
                state=item.get("StateValue"),
            )

        def action(name: str, item: Mapping[str, Any]) -> ScheduledActionState:
            bounds = item.get("ScalableTargetAction") or {}
            return ScheduledActionState(
                name=name,
                schedule=item.get("Schedule", ""),
                timezone=item.get("Timezone"),
                min_capacity=bounds.get("MinCapacity"),
                max_capacity=bounds.get("MaxCapacity"),
                arn=item.get("ScheduledActionARN"),
            )

        found = self.target
        return ScalingState(
            endpoint_name=target.endpoint,
            resource_id=target.resource_id,
            scalable_dimension=target.dimension,
            target=None
            if found is None
            else ScalableTargetState(
                min_capacity=found["MinCapacity"],
                max_capacity=found["MaxCapacity"],
                arn=found.get("ScalableTargetARN"),
            ),
            policies=tuple(policy(name, item) for name, item in self.policies.items()),
            alarms=tuple(alarm(name, item) for name, item in self.alarms.items()),
            scheduled_actions=tuple(action(name, item) for name, item in self.scheduled.items()),
        )
