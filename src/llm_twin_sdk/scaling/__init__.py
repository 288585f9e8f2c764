"""Autoscaling of SageMaker endpoints: target tracking, scale-to-zero and schedules.

Example::

    scaler = AutoScaler(region="eu-central-1")
    endpoint = EndpointRef(name="twin")           # from llm_twin_sdk.endpoint, or Endpoint
    scaler.apply(endpoint, TargetTracking(metric="invocations", target=50,
                                          min_capacity=1, max_capacity=4))
    print(scaler.describe(endpoint))
    scaler.remove(endpoint)
"""

from __future__ import annotations

from .autoscaler import AutoScaler
from .policies import ScaleToZero, ScalingPolicy, Scheduled, ScheduledAction, TargetTracking
from .state import AlarmState, PolicyState, ScalableTargetState, ScalingState, ScheduledActionState

__all__ = [
    "AlarmState",
    "AutoScaler",
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
