"""Autoscaling policies for a SageMaker endpoint: what to scale on, and between which bounds.

Each is validated at construction (:class:`~llm_twin_sdk.errors.InvalidParameterError` naming
the field); whether it fits an endpoint, by ``AutoScaler.apply``. Both before any AWS call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TypeAlias

from pydantic import Field, ValidationInfo, field_validator

from ..display import listing
from ..types import _Model

__all__ = [
    "BacklogScaling",
    "CapacityPolicy",
    "Metric",
    "ScaleToZero",
    "Scheduled",
    "ScheduledAction",
    "ScalingPolicy",
    "TargetTracking",
]

Metric: TypeAlias = Literal["invocations", "concurrency"]
"""``invocations``: requests per instance / copy per minute; ``concurrency``: concurrent
requests per model / copy, a high-resolution metric (reacts within seconds)."""

VARIANT_METRICS: dict[str, str] = {
    "invocations": "SageMakerVariantInvocationsPerInstance",
    "concurrency": "SageMakerVariantConcurrentRequestsPerModelHighResolution",
}
"""Predefined Application Auto Scaling metric of each :data:`Metric`, for endpoint variants."""

COMPONENT_METRICS: dict[str, str] = {
    "invocations": "SageMakerInferenceComponentInvocationsPerCopy",
    "concurrency": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
}
"""Predefined Application Auto Scaling metric of each :data:`Metric`, for inference components."""

_DAY_S = 86_400
_CRON = re.compile(r"^cron\(([^()]+)\)$")
_RATE = re.compile(r"^rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_TIMEZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")


def _check_max_ge_min(value: int, info: ValidationInfo) -> int:
    low = info.data.get("min_capacity")
    if low is not None and value < low:
        raise ValueError(f"must be >= min_capacity ({low})")
    return value


def _check_alarm_window(value: int, info: ValidationInfo) -> int:
    period = info.data.get("alarm_period_s")
    if period is not None and period * value > _DAY_S:
        raise ValueError(f"alarm_period_s * evaluation_periods must be <= {_DAY_S} s (one day)")
    return value


def _check_datapoints(value: int, info: ValidationInfo) -> int:
    periods = info.data.get("evaluation_periods")
    if periods is not None and value > periods:
        raise ValueError(f"must be <= evaluation_periods ({periods})")
    return value


class TargetTracking(_Model):
    """Keep ``metric`` near ``target`` by adding or removing instances (or copies).

    Example: ``TargetTracking(metric="invocations", target=50, min_capacity=1, max_capacity=4)``
    """

    metric: Metric
    target: float = Field(gt=0, description="The value to hold the metric at.")
    min_capacity: int = Field(ge=0, description="Fewest instances (>= 1) or copies (>= 0).")
    max_capacity: int = Field(ge=1, description="Most instances or copies; >= min_capacity.")
    scale_in_cooldown_s: int = Field(300, ge=0, description="Seconds between two scale-ins.")
    scale_out_cooldown_s: int = Field(60, ge=0, description="Seconds between two scale-outs.")
    disable_scale_in: bool = Field(False, description="Only ever scale out (in: by schedule).")

    _max_ge_min = field_validator("max_capacity")(_check_max_ge_min)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Metric, target and bounds; the cooldowns and scale-in switch when not the defaults.
        return self._changed_args("metric", "target", "min_capacity", "max_capacity")

    def predefined_metric(self, *, inference_component: bool) -> str:
        """The Application Auto Scaling metric type for a variant or an inference component."""
        return (COMPONENT_METRICS if inference_component else VARIANT_METRICS)[self.metric]


class ScaleToZero(_Model):
    """Scale an inference component to zero copies when idle, and back to one on demand: a
    step-scaling policy (+1 copy) fired by an alarm on ``NoCapacityInvocationFailures`` (the
    first request after idle fails), ``target_tracking`` above zero. How, and what it costs:
    docs/deployment.md, "Autoscaling and scale-to-zero". Example::

        ScaleToZero(target_tracking=TargetTracking(
            metric="concurrency", target=4, min_capacity=0, max_capacity=2))
    """

    target_tracking: TargetTracking = Field(description="Scaling above zero; min_capacity=0.")
    scale_out_cooldown_s: int = Field(60, ge=0, description="Cooldown of the step policy.")
    alarm_period_s: int = Field(30, gt=0, description="Alarm period: 10, 30 or n x 60 s.")
    evaluation_periods: int = Field(1, ge=1, description="Periods the alarm looks at.")
    datapoints_to_alarm: int = Field(1, ge=1, description="Failing periods that fire it.")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return self._changed_args("target_tracking")

    @field_validator("target_tracking")
    @classmethod
    def _min_zero(cls, value: TargetTracking) -> TargetTracking:
        if value.min_capacity != 0:
            raise ValueError(
                f"min_capacity must be 0 for ScaleToZero (got {value.min_capacity}); "
                "use TargetTracking alone to keep copies running"
            )
        return value

    @field_validator("alarm_period_s")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in (10, 30) and value % 60:
            raise ValueError("must be 10, 30 or a multiple of 60 (CloudWatch alarm periods)")
        return value

    _window = field_validator("evaluation_periods")(_check_alarm_window)

    _datapoints = field_validator("datapoints_to_alarm")(_check_datapoints)


class BacklogScaling(_Model):
    """Scale an asynchronous-inference endpoint on its queue: hold
    ``ApproximateBacklogSizePerInstance`` near ``target`` (a customized-metric target-tracking
    policy) and, when ``min_capacity`` is 0, start the first instance again on
    ``HasBacklogWithoutCapacity`` (a step policy, +1 instance, fired by an alarm), as AWS
    documents for asynchronous endpoints. Only for endpoints deployed with
    ``EndpointSpec.async_inference`` (docs/deployment.md, "Asynchronous inference"). Example::

        BacklogScaling(target=5, min_capacity=0, max_capacity=4)
    """

    target: float = Field(gt=0, description="Queued requests per instance to hold.")
    min_capacity: int = Field(0, ge=0, description="Fewest instances (0: scale to zero).")
    max_capacity: int = Field(ge=1, description="Most instances; >= min_capacity.")
    scale_in_cooldown_s: int = Field(600, ge=0, description="Seconds between two scale-ins.")
    scale_out_cooldown_s: int = Field(300, ge=0, description="Seconds between two scale-outs.")
    alarm_period_s: int = Field(60, gt=0, description="Scale-from-zero alarm period: n x 60 s.")
    evaluation_periods: int = Field(2, ge=1, description="Periods the alarm looks at.")
    datapoints_to_alarm: int = Field(2, ge=1, description="Periods with backlog that fire it.")

    _max_ge_min = field_validator("max_capacity")(_check_max_ge_min)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return self._changed_args("target", "min_capacity", "max_capacity")

    @field_validator("alarm_period_s")
    @classmethod
    def _period(cls, value: int) -> int:
        if value % 60:  # HasBacklogWithoutCapacity is a standard one-minute metric
            raise ValueError("must be a multiple of 60 (the metric is published each minute)")
        return value

    _datapoints = field_validator("datapoints_to_alarm")(_check_datapoints)

    _window = field_validator("evaluation_periods")(_check_alarm_window)


class ScheduledAction(_Model):
    """Set the capacity bounds at a time or on a recurring schedule.

    ``schedule``: ``cron(Minutes Hours Day-of-month Month Day-of-week Year)``,
    ``rate(<n> minutes|hours|days)`` or ``at(yyyy-mm-ddThh:mm:ss)``. Example::

        ScheduledAction(name="night", schedule="cron(0 20 * * ? *)",
                        min_capacity=1, max_capacity=1)
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    schedule: str
    min_capacity: int = Field(ge=0, description="Lower bound from then on (0: components).")
    max_capacity: int = Field(ge=1, description="Upper bound from then on; >= min_capacity.")
    timezone: str = Field("UTC", description="IANA time zone, e.g. 'Europe/Berlin'.")

    _max_ge_min = field_validator("max_capacity")(_check_max_ge_min)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        value = value.strip()
        if cron := _CRON.match(value):
            fields = cron.group(1).split()
            if len(fields) != 6:
                raise ValueError(
                    "cron() takes 6 fields: Minutes Hours Day-of-month Month Day-of-week Year, "
                    f"got {len(fields)}; e.g. cron(0 8 ? * MON-FRI *)"
                )
            return value
        if _RATE.match(value):
            return value
        if at := _AT.match(value):
            try:
                datetime.fromisoformat(at.group(1))
            except ValueError:
                raise ValueError(f"at() holds no valid date and time: {at.group(1)!r}") from None
            return value
        raise ValueError(
            "must be cron(Minutes Hours Day-of-month Month Day-of-week Year), "
            "rate(<n> minutes|hours|days) or at(yyyy-mm-ddThh:mm:ss)"
        )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        import zoneinfo

        if not _TIMEZONE.match(value):
            raise ValueError("must be an IANA time zone name such as 'UTC' or 'Europe/Berlin'")
        known = zoneinfo.available_timezones()
        if known and value not in known and value != "UTC":
            raise ValueError("unknown time zone; use an IANA name such as 'Europe/Berlin'")
        return value


class Scheduled(_Model):
    """Scheduled changes of the capacity bounds, e.g. business hours up, nights down.

    Applied alone, the scalable target is registered with the widest bounds of the actions
    until the first action runs. Combine it with :class:`TargetTracking` or
    :class:`ScaleToZero`: ``scaler.apply(endpoint, [TargetTracking(...), Scheduled(...)])``.
    """

    actions: tuple[ScheduledAction, ...] = Field(min_length=1)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "actions", listing([action.name for action in self.actions])

    @field_validator("actions")
    @classmethod
    def _unique_names(cls, value: tuple[ScheduledAction, ...]) -> tuple[ScheduledAction, ...]:
        names = [action.name for action in value]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"action names must be unique, repeated: {', '.join(duplicates)}")
        return value

    @property
    def min_capacity(self) -> int:
        """Smallest ``min_capacity`` of the actions."""
        return min(action.min_capacity for action in self.actions)

    @property
    def max_capacity(self) -> int:
        """Largest ``max_capacity`` of the actions."""
        return max(action.max_capacity for action in self.actions)


CapacityPolicy: TypeAlias = TargetTracking | ScaleToZero | BacklogScaling
"""A policy that sets the capacity (at most one per endpoint, beside a :class:`Scheduled`)."""

ScalingPolicy: TypeAlias = TargetTracking | ScaleToZero | BacklogScaling | Scheduled
"""Any policy :meth:`AutoScaler.apply <llm_twin_sdk.scaling.AutoScaler.apply>` accepts."""
