"""Autoscaling of SageMaker endpoints: target tracking, scale-to-zero and schedules.

Example::

    from llm_twin_sdk.endpoint import EndpointRef
    from llm_twin_sdk.scaling import AutoScaler, TargetTracking

    scaler = AutoScaler(region="eu-central-1")
    endpoint = EndpointRef(name="twin")
    scaler.apply(endpoint, TargetTracking(metric="invocations", target=50,
                                          min_capacity=1, max_capacity=4))
    print(scaler.describe(endpoint))
    scaler.remove(endpoint)

The policies are in :mod:`.policies`, what they ask of AWS in :mod:`.requests`, how they are
applied in :mod:`.autoscaler`, and what AWS reports back in :mod:`.state`.
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
