"""AutoScaler against moto in server mode: real HTTP round trips on 127.0.0.1.

moto implements variant autoscaling (targets, policies, scheduled actions) and CloudWatch
alarms, but rejects the inference-component dimension: the scale-to-zero alarm test below
stubs the autoscaling client and keeps CloudWatch on moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.spec import EndpointRef
from llm_twin_sdk.errors import AWSError, InvalidParameterError
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.scaling import (
    AutoScaler,
    ScaleToZero,
    ScalingState,
    Scheduled,
    ScheduledAction,
    TargetTracking,
)

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"
TWIN = EndpointRef(name="twin")
RID = "endpoint/twin/variant/AllTraffic"

STEADY = TargetTracking(metric="invocations", target=50, min_capacity=1, max_capacity=4)
OFFICE = Scheduled(
    actions=(
        ScheduledAction(
            name="day",
            schedule="cron(0 8 ? * MON-FRI *)",
            min_capacity=2,
            max_capacity=4,
            timezone="Europe/Berlin",
        ),
        ScheduledAction(
            name="night",
            schedule="cron(0 20 ? * MON-FRI *)",
            min_capacity=1,
            max_capacity=1,
            timezone="Europe/Berlin",
        ),
    )
)


@dataclass
class Calls:
    """Operation names of every request sent to AWS (moto), in order."""

    names: list[str] = field(default_factory=list)

    @property
    def writes(self) -> list[str]:
        return [name for name in self.names if not name.startswith("Describe")]

    def clear(self) -> None:
        self.names.clear()


@pytest.fixture
def calls(moto_aws: AWSClients) -> Calls:
    recorded = Calls()

    def record(event_name: str, **_: Any) -> None:
        recorded.names.append(event_name.rsplit(".", 1)[-1])

    for service in ("application-autoscaling", "cloudwatch"):
        moto_aws.client(service).meta.events.register(f"before-send.{service}.*", record)
    return recorded


@pytest.fixture
def scaler(moto_aws: AWSClients, fast_retry: RetryPolicy) -> AutoScaler:
    return AutoScaler(aws=moto_aws, retry=fast_retry)


@pytest.fixture
def aas(moto_aws: AWSClients) -> Any:
    return moto_aws.client("application-autoscaling")


def _raw(aas: Any, resource_id: str = RID) -> dict[str, list[dict[str, Any]]]:
    """What moto holds for one resource, read without the SDK."""
    targets = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[resource_id])
    policies = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=resource_id)
    actions = aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=resource_id)
    return {
        "targets": targets["ScalableTargets"],
        "policies": [p for p in policies["ScalingPolicies"] if p["ResourceId"] == resource_id],
        "actions": actions["ScheduledActions"],
    }


def test_variant_target_tracking_apply_describe_remove(
    scaler: AutoScaler, aas: Any, calls: Calls
) -> None:
    state = scaler.apply(TWIN, STEADY)

    assert state.enabled
    assert state.resource_id == RID
    assert state.scalable_dimension == DIM
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (1, 4)
    (policy,) = state.policies
    assert policy.name == "llm-twin-twin-target-tracking"
    assert policy.type == "TargetTrackingScaling"
    assert policy.metric == "SageMakerVariantInvocationsPerInstance"
    assert policy.target_value == 50
    assert policy.arn.startswith("arn:aws:autoscaling:us-east-1:")
    assert state.alarms == ()
    assert state.scheduled_actions == ()
    assert scaler.describe(TWIN) == state
    assert calls.writes == ["RegisterScalableTarget", "PutScalingPolicy"]
    assert "DescribeAlarms" not in calls.names  # variants need no CloudWatch permission

    raw = _raw(aas)
    (target,) = raw["targets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert raw["policies"][0]["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 50.0,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
        },
        "ScaleInCooldown": 300,
        "ScaleOutCooldown": 60,
        "DisableScaleIn": False,
    }
    assert "llm-twin-twin-target-tracking" in str(state)

    calls.clear()
    scaler.remove(TWIN)
    assert calls.writes == ["DeleteScalingPolicy", "DeregisterScalableTarget"]
    assert _raw(aas) == {"targets": [], "policies": [], "actions": []}
    after = scaler.describe(TWIN)
    assert not after.enabled
    assert after.policies == ()
    assert "no autoscaling" in str(after)


def test_concurrency_metric_on_a_named_variant(scaler: AutoScaler, aas: Any) -> None:
    blue = EndpointRef(name="twin", variant_name="Blue")
    policy = TargetTracking(
        metric="concurrency",
        target=3.5,
        min_capacity=2,
        max_capacity=6,
        scale_in_cooldown_s=600,
        scale_out_cooldown_s=0,
        disable_scale_in=True,
    )
    state = scaler.apply(blue, policy)
    assert state.resource_id == "endpoint/twin/variant/Blue"
    assert state.policies[0].metric == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    config = _raw(aas, "endpoint/twin/variant/Blue")["policies"][0]
    assert config["TargetTrackingScalingPolicyConfiguration"]["DisableScaleIn"] is True
    assert config["TargetTrackingScalingPolicyConfiguration"]["ScaleOutCooldown"] == 0


def test_target_tracking_with_scheduled_actions(scaler: AutoScaler, aas: Any, calls: Calls) -> None:
    state = scaler.apply(TWIN, [STEADY, OFFICE])

    assert calls.writes == [
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "PutScheduledAction",
        "PutScheduledAction",
    ]
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (1, 4)
    assert [p.name for p in state.policies] == ["llm-twin-twin-target-tracking"]
    actions = {a.name: a for a in state.scheduled_actions}
    assert set(actions) == {"llm-twin-twin-day", "llm-twin-twin-night"}
    day = actions["llm-twin-twin-day"]
    assert (day.schedule, day.timezone) == ("cron(0 8 ? * MON-FRI *)", "Europe/Berlin")
    assert (day.min_capacity, day.max_capacity) == (2, 4)
    night = actions["llm-twin-twin-night"]
    assert (night.min_capacity, night.max_capacity) == (1, 1)
    assert night.arn is not None
    assert "schedule llm-twin-twin-night" in str(state)

    scaler.remove(TWIN)
    assert _raw(aas) == {"targets": [], "policies": [], "actions": []}


def test_scheduled_alone_registers_the_widest_bounds(scaler: AutoScaler) -> None:
    state = scaler.apply(TWIN, OFFICE)
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (1, 4)
    assert state.policies == ()
    assert len(state.scheduled_actions) == 2


@pytest.mark.parametrize("policy", [STEADY, OFFICE, [STEADY, OFFICE]], ids=["tt", "sched", "both"])
def test_reapplying_the_same_policy_writes_nothing(
    scaler: AutoScaler, calls: Calls, policy: Any
) -> None:
    first = scaler.apply(TWIN, policy)
    assert calls.writes
    calls.clear()

    again = scaler.apply(TWIN, policy)

    assert calls.writes == []
    assert calls.names  # it did look
    assert again == first


def test_reapply_after_a_scheduled_action_ran_keeps_its_bounds(
    scaler: AutoScaler, aas: Any, calls: Calls
) -> None:
    scaler.apply(TWIN, [STEADY, OFFICE])
    # What AWS does at 20:00: the night action sets the target's bounds to 1..1.
    aas.register_scalable_target(
        ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM, MinCapacity=1, MaxCapacity=1
    )
    calls.clear()

    state = scaler.apply(TWIN, [STEADY, OFFICE])

    assert calls.writes == []  # re-applying does not undo the schedule
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (1, 1)


def test_changing_one_setting_updates_only_that(scaler: AutoScaler, calls: Calls) -> None:
    scaler.apply(TWIN, [STEADY, OFFICE])
    calls.clear()

    state = scaler.apply(TWIN, [STEADY.model_copy(update={"target": 70.0}), OFFICE])

    assert calls.writes == ["PutScalingPolicy"]
    assert state.policies[0].target_value == 70


def test_applying_another_policy_replaces_the_old_one(
    scaler: AutoScaler, aas: Any, calls: Calls
) -> None:
    scaler.apply(TWIN, [STEADY, OFFICE])
    calls.clear()

    burst = TargetTracking(metric="concurrency", target=4, min_capacity=2, max_capacity=8)
    state = scaler.apply(TWIN, burst)

    assert sorted(calls.writes) == [
        "DeleteScheduledAction",
        "DeleteScheduledAction",
        "PutScalingPolicy",
        "RegisterScalableTarget",
    ]
    raw = _raw(aas)
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in raw["targets"]] == [(2, 8)]
    assert len(raw["policies"]) == 1
    assert raw["actions"] == []
    assert state.policies[0].metric == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    assert state.scheduled_actions == ()

    # And back to a schedule only: the tracking policy goes too.
    state = scaler.apply(TWIN, OFFICE)
    raw = _raw(aas)
    assert raw["policies"] == []
    assert len(raw["actions"]) == 2
    assert state.policies == ()


def test_a_policy_someone_else_put_on_the_target_is_replaced(scaler: AutoScaler, aas: Any) -> None:
    scaler.apply(TWIN, STEADY)
    aas.put_scaling_policy(
        PolicyName="hand-made",
        ServiceNamespace=NS,
        ResourceId=RID,
        ScalableDimension=DIM,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 10.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
    )
    state = scaler.apply(TWIN, STEADY)
    assert [p.name for p in state.policies] == ["llm-twin-twin-target-tracking"]


def test_remove_twice_and_remove_without_scaling_are_fine(
    scaler: AutoScaler, aas: Any, calls: Calls
) -> None:
    scaler.remove(EndpointRef(name="never-scaled"))
    assert calls.writes == []

    scaler.apply(TWIN, [STEADY, OFFICE])
    scaler.remove(TWIN)
    calls.clear()
    scaler.remove(TWIN)

    assert calls.writes == []
    assert _raw(aas) == {"targets": [], "policies": [], "actions": []}


def test_remove_leaves_other_endpoints_alone(scaler: AutoScaler, aas: Any) -> None:
    other = EndpointRef(name="twin-2")
    scaler.apply(TWIN, [STEADY, OFFICE])
    scaler.apply(other, [STEADY, OFFICE])

    scaler.remove(TWIN)

    assert _raw(aas) == {"targets": [], "policies": [], "actions": []}
    state = scaler.describe(other)
    assert state.enabled
    assert len(state.policies) == 1
    assert len(state.scheduled_actions) == 2


def test_bad_policy_for_a_model_endpoint_fails_before_any_call(
    scaler: AutoScaler, calls: Calls
) -> None:
    with pytest.raises(InvalidParameterError, match=r"min_capacity"):
        scaler.apply(TWIN, STEADY.model_copy(update={"min_capacity": 0}))
    zero = ScaleToZero(target_tracking=STEADY.model_copy(update={"min_capacity": 0}))
    with pytest.raises(InvalidParameterError, match=r"ScaleToZero"):
        scaler.apply(TWIN, zero)
    assert calls.names == []


def test_aws_errors_arrive_typed_over_http(scaler: AutoScaler) -> None:
    """moto rejects the inference-component dimension: a real ValidationException."""
    component = EndpointRef(name="twin", inference_component_name="twin-ic")
    with pytest.raises(AWSError) as caught:
        scaler.apply(component, STEADY)
    assert caught.value.code == "ValidationException"
    assert caught.value.service == "application-autoscaling"
    assert caught.value.operation == "describe_scalable_targets"
    assert "ValidationException" in str(caught.value)


# -- scale-to-zero: autoscaling stubbed (moto lacks the dimension), CloudWatch on moto --------

IC = EndpointRef(name="twin", inference_component_name="twin-ic")
IC_KEY = {
    "ServiceNamespace": NS,
    "ResourceId": "inference-component/twin-ic",
    "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
}
STEP_ARN = (
    "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:1111:resource/sagemaker/"
    "inference-component/twin-ic:policyName/llm-twin-twin-scale-from-zero"
)
TT_ARN = STEP_ARN.replace("1111", "2222").replace("scale-from-zero", "target-tracking")
ALARM = "llm-twin-twin-twin-ic-scale-from-zero"
TO_ZERO = ScaleToZero(
    target_tracking=TargetTracking(metric="concurrency", target=4, min_capacity=0, max_capacity=2)
)


def _ic_policies() -> list[dict[str, Any]]:
    return [
        {
            "PolicyARN": TT_ARN,
            "PolicyName": "llm-twin-twin-target-tracking",
            **IC_KEY,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 4.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": (
                        "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
                    )
                },
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
                "DisableScaleIn": False,
            },
            "CreationTime": 0,
        },
        {
            "PolicyARN": STEP_ARN,
            "PolicyName": "llm-twin-twin-scale-from-zero",
            **IC_KEY,
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Maximum",
                "Cooldown": 60,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
            "CreationTime": 0,
        },
    ]


def _stub_ic_reads(stub: Stubber, *, scaled: bool) -> None:
    target = [{**IC_KEY, "MinCapacity": 0, "MaxCapacity": 2, "RoleARN": "r", "CreationTime": 0}]
    stub.add_response(
        "describe_scalable_targets",
        {"ScalableTargets": target if scaled else []},
        {
            "ServiceNamespace": NS,
            "ResourceIds": [IC_KEY["ResourceId"]],
            "ScalableDimension": IC_KEY["ScalableDimension"],
        },
    )
    stub.add_response(
        "describe_scaling_policies",
        {"ScalingPolicies": _ic_policies() if scaled else []},
        IC_KEY,
    )
    stub.add_response("describe_scheduled_actions", {"ScheduledActions": []}, IC_KEY)


@pytest.fixture
def stubbed_aas() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "application-autoscaling",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # never reached: the Stubber answers
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stub:
        yield client, stub


def test_scale_to_zero_alarm_lives_in_cloudwatch_and_goes_with_remove(
    moto_aws: AWSClients, stubbed_aas: tuple[Any, Stubber], calls: Calls
) -> None:
    client, stub = stubbed_aas
    cloudwatch = moto_aws.client("cloudwatch")
    scaler = AutoScaler(autoscaling_client=client, cloudwatch_client=cloudwatch)

    _stub_ic_reads(stub, scaled=False)
    stub.add_response("register_scalable_target", {"ScalableTargetARN": "arn:t"})
    stub.add_response("put_scaling_policy", {"PolicyARN": TT_ARN})
    stub.add_response("put_scaling_policy", {"PolicyARN": STEP_ARN})
    _stub_ic_reads(stub, scaled=True)  # describe after the writes
    state: ScalingState = scaler.apply(IC, TO_ZERO)
    stub.assert_no_pending_responses()

    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert alarm["MetricName"] == "NoCapacityInvocationFailures"
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "twin-ic"}]
    assert alarm["AlarmActions"] == [STEP_ARN]
    assert (alarm["Threshold"], alarm["Period"], alarm["Statistic"]) == (1.0, 30, "Maximum")
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    (seen,) = state.alarms
    assert seen.name == ALARM
    assert seen.actions == (STEP_ARN,)
    assert seen.dimensions == {"InferenceComponentName": "twin-ic"}

    # Re-applying reads the alarm back from moto, finds it equal and writes nothing.
    calls.clear()
    _stub_ic_reads(stub, scaled=True)
    scaler.apply(IC, TO_ZERO)
    stub.assert_no_pending_responses()
    assert calls.names == ["DescribeAlarms"]

    # remove: the alarm goes first (from moto), then the policies and the target.
    _stub_ic_reads(stub, scaled=True)
    for name in ("llm-twin-twin-target-tracking", "llm-twin-twin-scale-from-zero"):
        stub.add_response("delete_scaling_policy", {}, {"PolicyName": name, **IC_KEY})
    stub.add_response("deregister_scalable_target", {}, IC_KEY)
    scaler.remove(IC)
    stub.assert_no_pending_responses()
    assert cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"] == []

    # remove again: nothing left anywhere, nothing written.
    calls.clear()
    _stub_ic_reads(stub, scaled=False)
    scaler.remove(IC)
    stub.assert_no_pending_responses()
    assert calls.names == ["DescribeAlarms"]
