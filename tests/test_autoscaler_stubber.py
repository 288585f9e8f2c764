"""AutoScaler on inference components and scale-to-zero, with botocore's Stubber.

moto rejects the inference-component dimension, so these tests stub real boto3 clients
(built by the SDK's own AWSClients with fake credentials): every call is checked against
AWS's service model (parameter names and types, required response fields), its parameters
compared exactly, and the whole sequence asserted with ``assert_no_pending_responses``.
Nothing is sent anywhere: the Stubber answers before a request is made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.stub import Stubber

from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.spec import EndpointRef
from llm_twin_sdk.errors import (
    AccessDeniedError,
    AWSThrottledError,
    InvalidParameterError,
    LLMTwinError,
)
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.scaling import AutoScaler, ScaleToZero, Scheduled, ScheduledAction, TargetTracking

NS = "sagemaker"
IC = EndpointRef(name="twin", inference_component_name="twin-ic")
KEY = {
    "ServiceNamespace": NS,
    "ResourceId": "inference-component/twin-ic",
    "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
}
TT_NAME = "llm-twin-twin-target-tracking"
STEP_NAME = "llm-twin-twin-scale-from-zero"
ALARM = "llm-twin-twin-twin-ic-scale-from-zero"
TT_ARN = (
    "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:aaaa:resource/sagemaker/"
    f"inference-component/twin-ic:policyName/{TT_NAME}"
)
STEP_ARN = TT_ARN.replace("aaaa", "bbbb").replace(TT_NAME, STEP_NAME)
MANAGED_TAGS = [{"Key": "managed-by", "Value": "llm-twin-sdk"}]

PER_COPY = TargetTracking(metric="invocations", target=20, min_capacity=1, max_capacity=3)
TO_ZERO = ScaleToZero(
    target_tracking=TargetTracking(metric="concurrency", target=4, min_capacity=0, max_capacity=2)
)


@dataclass
class Stubs:
    aas: Stubber
    cw: Stubber
    calls: list[str]  # operation names across both clients, in order

    def assert_done(self) -> None:
        self.aas.assert_no_pending_responses()
        self.cw.assert_no_pending_responses()


@pytest.fixture
def clients(aws_credentials: None) -> AWSClients:
    # The SDK's own clients (no botocore retries); the URL is never reached.
    return AWSClients(region="us-east-1", endpoint_url="http://127.0.0.1:9")


@pytest.fixture
def stubs(clients: AWSClients) -> Iterator[Stubs]:
    calls: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    aas, cw = clients.client("application-autoscaling"), clients.client("cloudwatch")
    for client in (aas, cw):
        client.meta.events.register("before-parameter-build.*.*", record)
    with Stubber(aas) as aas_stub, Stubber(cw) as cw_stub:
        yield Stubs(aas_stub, cw_stub, calls)


@pytest.fixture
def scaler(clients: AWSClients, fast_retry: RetryPolicy) -> AutoScaler:
    return AutoScaler(aws=clients, retry=fast_retry)


# -- canned AWS answers ------------------------------------------------------------------------


def _target(low: int, high: int) -> dict[str, Any]:
    return {**KEY, "MinCapacity": low, "MaxCapacity": high, "RoleARN": "arn:r", "CreationTime": 0}


def _tt_policy(metric: str, target: float, arn: str = TT_ARN) -> dict[str, Any]:
    return {
        "PolicyARN": arn,
        "PolicyName": TT_NAME,
        **KEY,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": target,
            "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
            "DisableScaleIn": False,
        },
        "Alarms": [{"AlarmName": "TargetTracking-x-AlarmHigh-1", "AlarmARN": "arn:a:hi"}],
        "CreationTime": 0,
    }


def _step_policy(cooldown: int = 60, arn: str = STEP_ARN) -> dict[str, Any]:
    return {
        "PolicyARN": arn,
        "PolicyName": STEP_NAME,
        **KEY,
        "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Maximum",
            "Cooldown": cooldown,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        },
        "Alarms": [{"AlarmName": ALARM, "AlarmARN": f"arn:aws:cloudwatch:::alarm:{ALARM}"}],
        "CreationTime": 0,
    }


CONCURRENCY_IC = "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
INVOCATIONS_IC = "SageMakerInferenceComponentInvocationsPerCopy"

ALARM_PARAMS: dict[str, Any] = {
    "AlarmName": ALARM,
    "AlarmDescription": (
        "Scale inference component twin-ic out from zero copies on the first request "
        "(managed by llm-twin-sdk)"
    ),
    "Namespace": "AWS/SageMaker",
    "MetricName": "NoCapacityInvocationFailures",
    "Dimensions": [{"Name": "InferenceComponentName", "Value": "twin-ic"}],
    "Statistic": "Maximum",
    "Period": 30,
    "EvaluationPeriods": 1,
    "DatapointsToAlarm": 1,
    "Threshold": 1.0,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    "TreatMissingData": "missing",
    "AlarmActions": [STEP_ARN],
}


def _alarm(actions: list[str] | None = None) -> dict[str, Any]:
    return {
        **ALARM_PARAMS,
        "AlarmActions": actions or [STEP_ARN],
        "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}",
        "StateValue": "INSUFFICIENT_DATA",
        "ActionsEnabled": True,
    }


def _reads(
    stubs: Stubs,
    *,
    target: dict[str, Any] | None = None,
    policies: list[dict[str, Any]] | None = None,
    actions: list[dict[str, Any]] | None = None,
    alarms: list[dict[str, Any]] | None = None,
) -> None:
    """The four reads every apply / describe / remove starts with."""
    stubs.aas.add_response(
        "describe_scalable_targets",
        {"ScalableTargets": [target] if target else []},
        {
            "ServiceNamespace": NS,
            "ResourceIds": [KEY["ResourceId"]],
            "ScalableDimension": KEY["ScalableDimension"],
        },
    )
    stubs.aas.add_response("describe_scaling_policies", {"ScalingPolicies": policies or []}, KEY)
    stubs.aas.add_response("describe_scheduled_actions", {"ScheduledActions": actions or []}, KEY)
    stubs.cw.add_response(
        "describe_alarms",
        {"MetricAlarms": alarms or []},
        {"AlarmNames": [ALARM], "AlarmTypes": ["MetricAlarm"]},
    )


def _register(stubs: Stubs, low: int, high: int, *, new: bool = True) -> None:
    params: dict[str, Any] = {**KEY, "MinCapacity": low, "MaxCapacity": high}
    if new:
        params["Tags"] = {"managed-by": "llm-twin-sdk"}
    stubs.aas.add_response("register_scalable_target", {"ScalableTargetARN": "arn:t"}, params)


def _put_tt(stubs: Stubs, metric: str, target: float) -> None:
    stubs.aas.add_response(
        "put_scaling_policy",
        {"PolicyARN": TT_ARN, "Alarms": []},
        {
            "PolicyName": TT_NAME,
            **KEY,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": target,
                "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
                "DisableScaleIn": False,
            },
        },
    )


def _put_step(stubs: Stubs, cooldown: int = 60, arn: str = STEP_ARN) -> None:
    stubs.aas.add_response(
        "put_scaling_policy",
        {"PolicyARN": arn, "Alarms": []},
        {
            "PolicyName": STEP_NAME,
            **KEY,
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Maximum",
                "Cooldown": cooldown,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
        },
    )


def _put_alarm(stubs: Stubs, arn: str = STEP_ARN) -> None:
    stubs.cw.add_response(
        "put_metric_alarm", {}, {**ALARM_PARAMS, "AlarmActions": [arn], "Tags": MANAGED_TAGS}
    )


SCALED_TO_ZERO: dict[str, Any] = {
    "target": _target(0, 2),
    "policies": [_tt_policy(CONCURRENCY_IC, 4.0), _step_policy()],
    "alarms": [_alarm()],
}


# -- inference-component target tracking ------------------------------------------------------


def test_inference_component_target_tracking(scaler: AutoScaler, stubs: Stubs) -> None:
    _reads(stubs)
    _register(stubs, 1, 3)
    _put_tt(stubs, INVOCATIONS_IC, 20.0)
    _reads(stubs, target=_target(1, 3), policies=[_tt_policy(INVOCATIONS_IC, 20.0)])

    state = scaler.apply(IC, PER_COPY)

    stubs.assert_done()
    assert stubs.calls == [
        "DescribeScalableTargets",
        "DescribeScalingPolicies",
        "DescribeScheduledActions",
        "DescribeAlarms",
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "DescribeScalableTargets",
        "DescribeScalingPolicies",
        "DescribeScheduledActions",
        "DescribeAlarms",
    ]
    assert state.resource_id == "inference-component/twin-ic"
    assert state.scalable_dimension == "sagemaker:inference-component:DesiredCopyCount"
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (1, 3)
    (policy,) = state.policies
    assert (policy.name, policy.metric, policy.arn) == (TT_NAME, INVOCATIONS_IC, TT_ARN)
    assert policy.alarm_names == ("TargetTracking-x-AlarmHigh-1",)
    assert state.alarms == ()


def test_inference_component_reapply_is_a_no_op(scaler: AutoScaler, stubs: Stubs) -> None:
    _reads(stubs, target=_target(1, 3), policies=[_tt_policy(INVOCATIONS_IC, 20.0)])

    scaler.apply(IC, PER_COPY)

    stubs.assert_done()
    assert all(name.startswith("Describe") for name in stubs.calls)


def test_target_tracking_to_zero_warns_it_cannot_come_back(
    scaler: AutoScaler, stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    idle = PER_COPY.model_copy(update={"min_capacity": 0})
    _reads(stubs, target=_target(0, 3), policies=[_tt_policy(INVOCATIONS_IC, 20.0)])
    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.scaling.autoscaler"):
        scaler.apply(IC, idle)
    stubs.assert_done()
    assert "use ScaleToZero" in caplog.text


def test_scheduled_actions_may_go_to_zero_on_a_component(scaler: AutoScaler, stubs: Stubs) -> None:
    nights_off = Scheduled(
        actions=(
            ScheduledAction(
                name="night", schedule="cron(0 20 * * ? *)", min_capacity=0, max_capacity=1
            ),
        )
    )
    _reads(stubs, **SCALED_TO_ZERO)
    stubs.aas.add_response(
        "put_scheduled_action",
        {},
        {
            **KEY,
            "ScheduledActionName": "llm-twin-twin-night",
            "Schedule": "cron(0 20 * * ? *)",
            "Timezone": "UTC",
            "ScalableTargetAction": {"MinCapacity": 0, "MaxCapacity": 1},
        },
    )
    _reads(stubs, **SCALED_TO_ZERO)

    scaler.apply(IC, [TO_ZERO, nights_off])

    stubs.assert_done()


# -- scale to zero -----------------------------------------------------------------------------


def test_scale_to_zero_wires_the_alarm_to_the_step_policy(scaler: AutoScaler, stubs: Stubs) -> None:
    _reads(stubs)
    _register(stubs, 0, 2)  # MinCapacity 0
    _put_tt(stubs, CONCURRENCY_IC, 4.0)
    _put_step(stubs)  # returns STEP_ARN ...
    _put_alarm(stubs)  # ... which becomes the alarm's only action
    _reads(stubs, **SCALED_TO_ZERO)

    state = scaler.apply(IC, TO_ZERO)

    stubs.assert_done()
    assert stubs.calls[4:8] == [
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "PutScalingPolicy",
        "PutMetricAlarm",
    ]
    assert state.target is not None
    assert state.target.min_capacity == 0
    assert [(p.name, p.type) for p in state.policies] == [
        (TT_NAME, "TargetTrackingScaling"),
        (STEP_NAME, "StepScaling"),
    ]
    (alarm,) = state.alarms
    assert alarm.name == ALARM
    assert alarm.metric_name == "NoCapacityInvocationFailures"
    assert alarm.namespace == "AWS/SageMaker"
    assert alarm.dimensions == {"InferenceComponentName": "twin-ic"}
    assert alarm.actions == (STEP_ARN,)
    assert alarm.state == "INSUFFICIENT_DATA"
    assert "alarm llm-twin-twin-twin-ic-scale-from-zero" in str(state)


def test_scale_to_zero_reapply_is_a_no_op(scaler: AutoScaler, stubs: Stubs) -> None:
    _reads(stubs, **SCALED_TO_ZERO)
    scaler.apply(IC, TO_ZERO)
    stubs.assert_done()
    assert len(stubs.calls) == 4


def test_plan_reads_only_and_lists_what_apply_and_remove_would_write(
    scaler: AutoScaler, stubs: Stubs
) -> None:
    _reads(stubs, **SCALED_TO_ZERO)
    assert scaler.plan(IC, TO_ZERO).is_noop
    _reads(stubs, **SCALED_TO_ZERO)
    slower = TO_ZERO.model_copy(update={"scale_out_cooldown_s": 120})
    changed = scaler.plan(IC, slower)
    _reads(stubs, **SCALED_TO_ZERO)
    removal = scaler.plan(IC, None)

    stubs.assert_done()
    assert all(call.startswith("Describe") for call in stubs.calls)
    # the step policy changes; its alarm is listed too (it names the policy's ARN)
    assert [(c.action, c.item, c.name) for c in changed.changes] == [
        ("update", "scaling-policy", STEP_NAME),
        ("update", "alarm", ALARM),
    ]
    assert [(c.action, c.item) for c in removal.changes] == [
        ("delete", "alarm"),
        ("delete", "scaling-policy"),
        ("delete", "scaling-policy"),
        ("delete", "scalable-target"),
    ]
    assert removal.policy == "none"
    assert changed.policy == "ScaleToZero(concurrency -> 4, 0..2)"
    assert "4 change(s) to apply" in str(removal)


def test_alarm_settings_reach_cloudwatch(scaler: AutoScaler, stubs: Stubs) -> None:
    slower = TO_ZERO.model_copy(
        update={"alarm_period_s": 60, "evaluation_periods": 3, "datapoints_to_alarm": 2}
    )
    _reads(stubs, **SCALED_TO_ZERO)
    stubs.cw.add_response(
        "put_metric_alarm",
        {},
        {
            **ALARM_PARAMS,
            "Period": 60,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "Tags": MANAGED_TAGS,
        },
    )
    _reads(stubs, **SCALED_TO_ZERO)
    scaler.apply(IC, slower)
    stubs.assert_done()


def test_a_changed_step_policy_arn_is_rewired_into_the_alarm(
    scaler: AutoScaler, stubs: Stubs
) -> None:
    new_arn = STEP_ARN.replace("bbbb", "cccc")
    _reads(stubs, **SCALED_TO_ZERO)
    _put_step(stubs, cooldown=120, arn=new_arn)
    _put_alarm(stubs, arn=new_arn)
    _reads(stubs, **SCALED_TO_ZERO)

    scaler.apply(IC, TO_ZERO.model_copy(update={"scale_out_cooldown_s": 120}))

    stubs.assert_done()
    assert [c for c in stubs.calls if not c.startswith("Describe")] == [
        "PutScalingPolicy",
        "PutMetricAlarm",
    ]


def test_remove_of_scale_to_zero_deletes_the_alarm_first(scaler: AutoScaler, stubs: Stubs) -> None:
    _reads(stubs, **SCALED_TO_ZERO)
    stubs.cw.add_response("delete_alarms", {}, {"AlarmNames": [ALARM]})
    stubs.aas.add_response("delete_scaling_policy", {}, {"PolicyName": TT_NAME, **KEY})
    stubs.aas.add_response("delete_scaling_policy", {}, {"PolicyName": STEP_NAME, **KEY})
    stubs.aas.add_response("deregister_scalable_target", {}, KEY)

    scaler.remove(IC)

    stubs.assert_done()
    assert stubs.calls[4:] == [
        "DeleteAlarms",
        "DeleteScalingPolicy",
        "DeleteScalingPolicy",
        "DeregisterScalableTarget",
    ]


def test_remove_tolerates_what_vanished_meanwhile(scaler: AutoScaler, stubs: Stubs) -> None:
    """Another remove won the race: AWS answers ObjectNotFound / ResourceNotFound."""
    _reads(stubs, **SCALED_TO_ZERO)
    stubs.cw.add_client_error("delete_alarms", "ResourceNotFound", http_status_code=404)
    for _ in range(2):
        stubs.aas.add_client_error("delete_scaling_policy", "ObjectNotFoundException")
    stubs.aas.add_client_error("deregister_scalable_target", "ObjectNotFoundException")

    scaler.remove(IC)

    stubs.assert_done()


def test_remove_finds_a_leftover_alarm(scaler: AutoScaler, stubs: Stubs) -> None:
    _reads(stubs, alarms=[_alarm()])
    stubs.cw.add_response("delete_alarms", {}, {"AlarmNames": [ALARM]})
    scaler.remove(IC)
    stubs.assert_done()


def test_from_scale_to_zero_back_to_target_tracking(scaler: AutoScaler, stubs: Stubs) -> None:
    keep_one = TO_ZERO.target_tracking.model_copy(update={"min_capacity": 1})
    _reads(stubs, **SCALED_TO_ZERO)
    _register(stubs, 1, 2, new=False)  # no Tags on an existing target
    stubs.cw.add_response("delete_alarms", {}, {"AlarmNames": [ALARM]})
    stubs.aas.add_response("delete_scaling_policy", {}, {"PolicyName": STEP_NAME, **KEY})
    _reads(stubs, target=_target(1, 2), policies=[_tt_policy(CONCURRENCY_IC, 4.0)])

    state = scaler.apply(IC, keep_one)

    stubs.assert_done()
    assert [p.name for p in state.policies] == [TT_NAME]
    assert state.alarms == ()


def test_scale_to_zero_on_a_model_endpoint_fails_before_any_call(
    scaler: AutoScaler, stubs: Stubs
) -> None:
    with pytest.raises(InvalidParameterError, match=r"ScaleToZero: .*inference-component"):
        scaler.apply(EndpointRef(name="twin"), TO_ZERO)
    with pytest.raises(InvalidParameterError, match=r"actions\[0\]\.min_capacity"):
        scaler.apply(
            EndpointRef(name="twin"),
            Scheduled(
                actions=(
                    ScheduledAction(
                        name="off", schedule="rate(1 day)", min_capacity=0, max_capacity=1
                    ),
                )
            ),
        )
    assert stubs.calls == []
    stubs.assert_done()


@pytest.mark.parametrize(
    "policy",
    [[], [PER_COPY, TO_ZERO], "TargetTracking", [PER_COPY, 3]],
    ids=["empty", "two-capacity", "string", "not-a-policy"],
)
def test_unusable_policy_argument_fails_before_any_call(
    scaler: AutoScaler, stubs: Stubs, policy: Any
) -> None:
    with pytest.raises(InvalidParameterError, match=r"^policy: "):
        scaler.apply(IC, policy)
    assert stubs.calls == []


def test_two_schedules_are_refused(scaler: AutoScaler, stubs: Stubs) -> None:
    one = Scheduled(
        actions=(ScheduledAction(name="a", schedule="rate(1 day)", min_capacity=1, max_capacity=1),)
    )
    with pytest.raises(InvalidParameterError, match="at most one Scheduled"):
        scaler.apply(IC, [one, one])
    assert stubs.calls == []


# -- retries and errors ------------------------------------------------------------------------


def test_throttling_then_success(scaler: AutoScaler, stubs: Stubs, sleeps: list[float]) -> None:
    stubs.aas.add_client_error("describe_scalable_targets", "ThrottlingException")
    stubs.aas.add_client_error("describe_scalable_targets", "ThrottlingException")
    _reads(stubs)
    _register(stubs, 0, 2)
    _put_tt(stubs, CONCURRENCY_IC, 4.0)
    _put_step(stubs)
    stubs.cw.add_client_error("put_metric_alarm", "Throttling")
    _put_alarm(stubs)
    _reads(stubs, **SCALED_TO_ZERO)

    state = scaler.apply(IC, TO_ZERO)

    stubs.assert_done()
    assert len(sleeps) == 3  # two on autoscaling, one on CloudWatch
    assert stubs.calls.count("PutMetricAlarm") == 2
    assert state.alarms[0].actions == (STEP_ARN,)


def test_throttled_on_every_attempt_raises_a_typed_error(
    scaler: AutoScaler, stubs: Stubs, sleeps: list[float]
) -> None:
    for _ in range(4):  # fast_retry: 4 attempts
        stubs.aas.add_client_error("describe_scalable_targets", "ThrottlingException")
    with pytest.raises(AWSThrottledError) as caught:
        scaler.describe(IC)
    stubs.assert_done()
    assert len(sleeps) == 3
    assert caught.value.operation == "describe_scalable_targets"


def test_access_denied_is_not_retried(
    scaler: AutoScaler, stubs: Stubs, sleeps: list[float]
) -> None:
    _reads(stubs)
    stubs.aas.add_client_error(
        "register_scalable_target", "AccessDeniedException", "not allowed", 400
    )
    with pytest.raises(AccessDeniedError) as caught:
        scaler.apply(IC, PER_COPY)
    stubs.assert_done()
    assert sleeps == []
    assert isinstance(caught.value, LLMTwinError)
    assert caught.value.code == "AccessDeniedException"
    assert caught.value.__cause__ is not None


def test_describe_follows_next_tokens(scaler: AutoScaler, stubs: Stubs) -> None:
    stubs.aas.add_response(
        "describe_scalable_targets",
        {"ScalableTargets": [_target(0, 2)]},
        {
            "ServiceNamespace": NS,
            "ResourceIds": [KEY["ResourceId"]],
            "ScalableDimension": KEY["ScalableDimension"],
        },
    )
    stubs.aas.add_response(
        "describe_scaling_policies",
        {"ScalingPolicies": [_tt_policy(CONCURRENCY_IC, 4.0)], "NextToken": "page-2"},
        KEY,
    )
    stubs.aas.add_response(
        "describe_scaling_policies",
        {"ScalingPolicies": [_step_policy()]},
        {**KEY, "NextToken": "page-2"},
    )
    stubs.aas.add_response("describe_scheduled_actions", {"ScheduledActions": []}, KEY)
    stubs.cw.add_response(
        "describe_alarms",
        {"MetricAlarms": [_alarm()]},
        {"AlarmNames": [ALARM], "AlarmTypes": ["MetricAlarm"]},
    )

    state = scaler.describe(IC)

    stubs.assert_done()
    assert [p.name for p in state.policies] == [TT_NAME, STEP_NAME]


# -- construction ------------------------------------------------------------------------------


def test_clients_are_injected_or_built_once(aws_credentials: None) -> None:
    from llm_twin_sdk.errors import ConfigurationError

    aws = AWSClients(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    scaler = AutoScaler(aws=aws)
    assert scaler.autoscaling_client is aws.client("application-autoscaling")
    assert scaler.cloudwatch_client is aws.client("cloudwatch")

    injected = aws.client("application-autoscaling")
    other = AutoScaler(autoscaling_client=injected, cloudwatch_client=aws.client("cloudwatch"))
    assert other.autoscaling_client is injected

    with pytest.raises(ConfigurationError, match="aws= or region="):
        AutoScaler(aws=aws, region="eu-west-1")
    assert "AutoScaler(" in repr(AutoScaler(region="us-east-1"))
