"""Scaling policies are validated at construction: each bad input names its field."""

from __future__ import annotations

from typing import Any

import pytest

from llm_twin_sdk.errors import InvalidInputError, InvalidParameterError, LLMTwinError
from llm_twin_sdk.scaling import ScaleToZero, Scheduled, ScheduledAction, TargetTracking
from llm_twin_sdk.scaling.policies import COMPONENT_METRICS, VARIANT_METRICS

TT: dict[str, Any] = {"metric": "invocations", "target": 50, "min_capacity": 1, "max_capacity": 4}
ACTION: dict[str, Any] = {
    "name": "day",
    "schedule": "cron(0 8 ? * MON-FRI *)",
    "min_capacity": 2,
    "max_capacity": 4,
}


def _zero_tt(**update: Any) -> TargetTracking:
    return TargetTracking(**{**TT, "min_capacity": 0, **update})


def test_target_tracking_defaults_and_metrics() -> None:
    policy = TargetTracking(**TT)
    assert (policy.scale_in_cooldown_s, policy.scale_out_cooldown_s) == (300, 60)
    assert policy.disable_scale_in is False
    assert policy.predefined_metric(inference_component=False) == (
        "SageMakerVariantInvocationsPerInstance"
    )
    concurrency = policy.model_copy(update={"metric": "concurrency"})
    assert concurrency.predefined_metric(inference_component=True) == (
        "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
    )
    assert VARIANT_METRICS["concurrency"] == (
        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    )
    assert COMPONENT_METRICS["invocations"] == "SageMakerInferenceComponentInvocationsPerCopy"


def test_policies_are_frozen() -> None:
    policy = TargetTracking(**TT)
    with pytest.raises(Exception, match="frozen"):
        policy.target = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"metric": "cpu"}, "metric"),
        ({"target": 0}, "target"),
        ({"target": -1.5}, "target"),
        ({"target": float("nan")}, "target"),
        ({"min_capacity": -1}, "min_capacity"),
        ({"max_capacity": 0}, "max_capacity"),
        ({"min_capacity": 5, "max_capacity": 4}, "max_capacity"),
        ({"scale_in_cooldown_s": -1}, "scale_in_cooldown_s"),
        ({"scale_out_cooldown_s": -60}, "scale_out_cooldown_s"),
        ({"target": "fast"}, "target"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_target_tracking(update: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameterError, match=rf"invalid TargetTracking: .*{field}"):
        TargetTracking(**{**TT, **update})


def test_missing_field_is_named() -> None:
    with pytest.raises(InvalidParameterError, match="max_capacity: Field required"):
        TargetTracking(metric="invocations", target=1, min_capacity=1)  # type: ignore[call-arg]


def test_min_greater_than_max_says_both() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        TargetTracking(**{**TT, "min_capacity": 5, "max_capacity": 4})
    assert "max_capacity: must be >= min_capacity (5)" in str(caught.value)


def test_errors_are_sdk_errors() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        TargetTracking(**{**TT, "target": 0})
    assert isinstance(caught.value, InvalidInputError)
    assert isinstance(caught.value, LLMTwinError)
    assert isinstance(caught.value, ValueError)


def test_scale_to_zero_defaults() -> None:
    policy = ScaleToZero(target_tracking=_zero_tt())
    assert policy.scale_out_cooldown_s == 60
    assert (policy.alarm_period_s, policy.evaluation_periods, policy.datapoints_to_alarm) == (
        30,
        1,
        1,
    )


def test_scale_to_zero_accepts_a_dict() -> None:
    policy = ScaleToZero(target_tracking={**TT, "min_capacity": 0})
    assert policy.target_tracking.min_capacity == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_tracking": TargetTracking(**TT)}, r"target_tracking: min_capacity must be 0"),
        (
            {"target_tracking": {**TT, "min_capacity": 0, "target": 0}},
            r"target_tracking\.target: Input should be greater than 0 \(got 0\)$",
        ),
        ({"scale_out_cooldown_s": -1}, "scale_out_cooldown_s"),
        ({"alarm_period_s": 45}, "alarm_period_s"),
        ({"alarm_period_s": 0}, "alarm_period_s"),
        ({"evaluation_periods": 0}, "evaluation_periods"),
        ({"alarm_period_s": 3600, "evaluation_periods": 25}, "evaluation_periods"),
        ({"evaluation_periods": 2, "datapoints_to_alarm": 3}, "datapoints_to_alarm"),
        ({"datapoints_to_alarm": 0}, "datapoints_to_alarm"),
    ],
)
def test_bad_scale_to_zero(kwargs: dict[str, Any], field: str) -> None:
    kwargs = {"target_tracking": _zero_tt(), **kwargs}
    with pytest.raises(InvalidParameterError, match=rf"invalid ScaleToZero: .*{field}"):
        ScaleToZero(**kwargs)


@pytest.mark.parametrize(
    "schedule",
    [
        "cron(0 8 ? * MON-FRI *)",
        "cron(30 19 * * ? *)",
        "rate(1 hour)",
        "rate(15 minutes)",
        "rate(2 days)",
        "at(2026-12-24T18:00:00)",
    ],
)
def test_good_schedules(schedule: str) -> None:
    assert ScheduledAction(**{**ACTION, "schedule": schedule}).schedule == schedule


@pytest.mark.parametrize(
    "schedule",
    [
        "cron(0 8 * * *)",  # 5 fields: Unix cron, not AWS
        "rate(0 minutes)",
        "rate(5 weeks)",
        "at(2026-13-01T00:00:00)",
        "at(2026-12-24 18:00)",
        "every day at 8",
        "",
    ],
)
def test_bad_schedules(schedule: str) -> None:
    with pytest.raises(InvalidParameterError, match="invalid ScheduledAction: schedule: "):
        ScheduledAction(**{**ACTION, "schedule": schedule})


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "night/shift"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"min_capacity": -1}, "min_capacity"),
        ({"max_capacity": 0}, "max_capacity"),
        ({"min_capacity": 3, "max_capacity": 2}, "max_capacity"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "Europe Berlin"}, "timezone"),
    ],
)
def test_bad_scheduled_action(update: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameterError, match=rf"invalid ScheduledAction: .*{field}"):
        ScheduledAction(**{**ACTION, **update})


def test_timezones() -> None:
    assert ScheduledAction(**ACTION).timezone == "UTC"
    assert ScheduledAction(**{**ACTION, "timezone": "America/New_York"}).timezone


def test_scheduled_needs_distinct_actions() -> None:
    with pytest.raises(InvalidParameterError, match=r"actions: .*at least 1"):
        Scheduled(actions=())
    with pytest.raises(InvalidParameterError, match=r"actions: action names must be unique.*day"):
        Scheduled(actions=(ScheduledAction(**ACTION), ScheduledAction(**ACTION)))


def test_scheduled_bounds_span_its_actions() -> None:
    schedule = Scheduled(
        actions=(
            ScheduledAction(**ACTION),
            ScheduledAction(**{**ACTION, "name": "night", "min_capacity": 1, "max_capacity": 1}),
        )
    )
    assert (schedule.min_capacity, schedule.max_capacity) == (1, 4)
