"""Autoscaling of SageMaker endpoints: target tracking, scale-to-zero and schedules.

Example::

    from llm_twin_sdk.deploy.spec import EndpointRef
    from llm_twin_sdk.scaling import AutoScaler, TargetTracking

    scaler = AutoScaler(region="eu-central-1")
    endpoint = EndpointRef(name="twin")
    scaler.apply(endpoint, TargetTracking(metric="invocations", target=50,
                                          min_capacity=1, max_capacity=4))
    print(scaler.describe(endpoint))
    scaler.remove(endpoint)

See :mod:`llm_twin_sdk.scaling.policies` for the policies and
:mod:`llm_twin_sdk.scaling.autoscaler` for how they are applied.
"""

from __future__ import annotations

from .autoscaler import (
    AlarmState,
    AutoScaler,
    PolicyState,
    ScalableTargetState,
    ScalingState,
    ScheduledActionState,
)
from .policies import ScaleToZero, ScalingPolicy, Scheduled, ScheduledAction, TargetTracking

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
