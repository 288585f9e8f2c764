"""BacklogScaling: asynchronous endpoints scaled on their queue, down to zero instances.

The requests are checked as AWS documents them (pure), then applied through moto in server
mode (variant autoscaling and CloudWatch alarms, real HTTP on 127.0.0.1, parameters checked
by botocore against the service models).
"""

from __future__ import annotations

from typing import Any

import pytest

from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.async_inference import AsyncInferenceSpec
from llm_twin_sdk.deploy.costs import estimate_cost
from llm_twin_sdk.deploy.spec import EndpointRef, EndpointSpec
from llm_twin_sdk.errors import InvalidParameterError
from llm_twin_sdk.scaling import (
    AutoScaler,
    BacklogScaling,
    Scheduled,
    ScheduledAction,
    TargetTracking,
)
from llm_twin_sdk.scaling.autoscaler import check_policy, describe_policy
from llm_twin_sdk.scaling.requests import ScalingTarget, desired

ASYNC = EndpointRef(name="twin-async", asynchronous=True)
RID = "endpoint/twin-async/variant/AllTraffic"
TRACKING = "llm-twin-twin-async-target-tracking"
STEP = "llm-twin-twin-async-scale-from-zero"
ALARM = "llm-twin-twin-async-scale-from-zero"
TO_ZERO = BacklogScaling(target=5, min_capacity=0, max_capacity=4)


def test_the_requests_are_the_ones_aws_documents_for_async_endpoints() -> None:
    want = desired(ScalingTarget.of(ASYNC), TO_ZERO, None)

    assert (want.min_capacity, want.max_capacity) == (0, 4)
    assert want.policies[TRACKING] == {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 5.0,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{"Name": "EndpointName", "Value": "twin-async"}],
                "Statistic": "Average",
            },
            "ScaleInCooldown": 600,
            "ScaleOutCooldown": 300,
            "DisableScaleIn": False,
        },
    }
    assert want.policies[STEP]["StepScalingPolicyConfiguration"] == {
        "AdjustmentType": "ChangeInCapacity",
        "MetricAggregationType": "Average",
        "Cooldown": 300,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
    }
    assert want.alarm_policy == STEP
    alarm = want.alarm or {}
    assert alarm["AlarmName"] == ALARM
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity"
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "twin-async"}]
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 2, 2)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        1.0,
        "GreaterThanOrEqualToThreshold",
    )


def test_a_floor_above_zero_needs_no_scale_from_zero_alarm() -> None:
    want = desired(
        ScalingTarget.of(ASYNC), BacklogScaling(target=2, min_capacity=1, max_capacity=2), None
    )
    assert list(want.policies) == [TRACKING]
    assert want.alarm is None


@pytest.mark.parametrize(
    "endpoint",
    [EndpointRef(name="twin"), EndpointRef(name="twin", inference_component_name="twin-ic")],
)
def test_backlog_scaling_is_refused_on_a_real_time_endpoint(endpoint: EndpointRef) -> None:
    with pytest.raises(InvalidParameterError, match=r"not asynchronous.*async_inference"):
        check_policy(endpoint, TO_ZERO)


def test_async_endpoints_may_rest_at_zero_under_a_schedule_too() -> None:
    night = Scheduled(
        actions=(
            ScheduledAction(name="night", schedule="cron(0 20 * * ? *)", min_capacity=0,
                            max_capacity=1),
        )
    )  # fmt: skip
    assert check_policy(ASYNC, [TO_ZERO, night]) == (TO_ZERO, night)
    with pytest.raises(InvalidParameterError, match="0 is allowed only"):
        check_policy(EndpointRef(name="twin"), night)
    with pytest.raises(InvalidParameterError, match="at most one"):
        check_policy(ASYNC, [TO_ZERO, TargetTracking(metric="invocations", target=5,
                                                     min_capacity=1, max_capacity=2)])  # fmt: skip
    assert describe_policy(TO_ZERO) == "BacklogScaling(backlog -> 5, 0..4)"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"target": 0}, "target"),
        ({"min_capacity": 3, "max_capacity": 2}, "max_capacity"),
        ({"alarm_period_s": 30}, "multiple of 60"),
        ({"evaluation_periods": 1, "datapoints_to_alarm": 2}, "datapoints_to_alarm"),
    ],
)
def test_bad_backlog_settings_are_refused(fields: dict[str, Any], match: str) -> None:
    values: dict[str, Any] = {"target": 5, "max_capacity": 4} | fields
    with pytest.raises(InvalidParameterError, match=match):
        BacklogScaling(**values)


def test_apply_on_moto_writes_target_policies_and_alarm_then_converges(
    moto_aws: AWSClients,
) -> None:
    scaler = AutoScaler(aws=moto_aws)
    writes: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        name = event_name.rsplit(".", 1)[-1]
        if not name.startswith("Describe"):
            writes.append(name)

    for service in ("application-autoscaling", "cloudwatch"):
        moto_aws.client(service).meta.events.register(f"before-send.{service}.*", record)

    state = scaler.apply(ASYNC, TO_ZERO)

    assert writes == [
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "PutScalingPolicy",
        "PutMetricAlarm",
    ]
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (0, 4)
    alarms = moto_aws.client("cloudwatch").describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert alarms[0]["MetricName"] == "HasBacklogWithoutCapacity"
    policies = moto_aws.client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=RID
    )["ScalingPolicies"]
    step_arn = next(p["PolicyARN"] for p in policies if p["PolicyName"] == STEP)
    assert alarms[0]["AlarmActions"] == [step_arn]

    writes.clear()
    scaler.apply(ASYNC, TO_ZERO)
    assert writes == []  # already as asked
    assert scaler.plan(ASYNC, TO_ZERO).is_noop

    scaler.apply(ASYNC, BacklogScaling(target=5, min_capacity=1, max_capacity=4))
    assert "DeleteAlarms" in writes  # no scale-from-zero above a floor of one
    assert "DeleteScalingPolicy" in writes

    writes.clear()
    scaler.remove(ASYNC)
    assert not scaler.describe(ASYNC).enabled
    assert "DeregisterScalableTarget" in writes


def test_the_cost_estimate_counts_the_backlog_bounds_down_to_zero() -> None:
    spec = EndpointSpec(
        name="twin-async",
        role_arn="arn:aws:iam::123456789012:role/twin-sagemaker",
        async_inference=AsyncInferenceSpec(output_path="s3://twin-jobs/out"),
    )
    cost = estimate_cost(spec, TO_ZERO, region="us-east-1")
    assert (cost.min_instances, cost.max_instances) == (0, 4)
    assert cost.monthly_at_min == 0.0
    assert cost.scales_to_zero
