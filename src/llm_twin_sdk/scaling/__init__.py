"""Autoscaling of SageMaker endpoints: target tracking, scale-to-zero and schedules.

Example: ``AutoScaler().apply(EndpointRef(name="twin"), TargetTracking(metric="invocations",
target=50, min_capacity=1, max_capacity=4))`` (docs/deployment.md).
"""

from __future__ import annotations

from .autoscaler import AutoScaler
from .policies import (
    BacklogScaling,
    ScaleToZero,
    ScalingPolicy,
    Scheduled,
    ScheduledAction,
    TargetTracking,
)
from .state import AlarmState, PolicyState, ScalableTargetState, ScalingState, ScheduledActionState

__all__ = [
    "AlarmState",
    "AutoScaler",
    "BacklogScaling",
    "PolicyState",
    "ScalableTargetState",
    "ScaleToZero",
    "Scheduled",
    "ScheduledAction",
    "ScalingPolicy",
    "ScalingState",
    "ScheduledActionState",
    "TargetTracking",
]
