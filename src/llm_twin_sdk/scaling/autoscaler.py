"""AutoScaler: apply, describe and remove Application Auto Scaling on a SageMaker endpoint.

``apply`` is declarative and idempotent: it writes only what differs from what is in place,
so a repeated or interrupted apply converges. IAM actions it needs: docs/deployment.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..aws import AWSClients, call_aws, check_client_options, delete_if_exists, pages
from ..endpoint import MANAGED_BY_TAG, EndpointRef
from ..errors import InvalidParameterError, ScalingError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .plan import ScalingChange, ScalingItem, ScalingPlan
from .policies import (
    BacklogScaling,
    CapacityPolicy,
    ScaleToZero,
    ScalingPolicy,
    Scheduled,
    ScheduledAction,
    TargetTracking,
)
from .requests import SERVICE_NAMESPACE, Desired, ScalingTarget, bounds_ok, desired, same
from .state import Current, Items, ScalingState

__all__ = ["AutoScaler", "check_policy", "describe_policy"]

logger = logging.getLogger(__name__)

_AAS = "application-autoscaling"
_ITEMS = {  # item -> its describe operation, the answer's list key, the name key
    "scaling_policy": ("describe_scaling_policies", "ScalingPolicies", "PolicyName"),
    "scheduled_action": ("describe_scheduled_actions", "ScheduledActions", "ScheduledActionName"),
}
_TAGS = [{"Key": MANAGED_BY_TAG[0], "Value": MANAGED_BY_TAG[1]}]


_KINDS = (TargetTracking, ScaleToZero, BacklogScaling, Scheduled)
_NAMES = "TargetTracking, ScaleToZero, BacklogScaling or Scheduled"


def _split(
    policy: ScalingPolicy | Sequence[ScalingPolicy],
) -> tuple[CapacityPolicy | None, Scheduled | None]:
    """The one capacity policy and the one schedule in ``policy`` (either may be None)."""
    kinds = _KINDS
    if isinstance(policy, kinds):
        items: list[object] = [policy]
    elif isinstance(policy, Sequence) and not isinstance(policy, str | bytes):
        items = list(policy)
    else:
        raise InvalidParameterError(
            f"policy: expected {_NAMES} or a list of them, got {type(policy).__name__}"
        )
    if wrong := [type(item).__name__ for item in items if not isinstance(item, kinds)]:
        raise InvalidParameterError(f"policy: expected {_NAMES} items, got " + ", ".join(wrong))
    if not items:
        raise InvalidParameterError("policy: the list is empty; give at least one policy")
    capacity = [p for p in items if isinstance(p, TargetTracking | ScaleToZero | BacklogScaling)]
    scheduled = [p for p in items if isinstance(p, Scheduled)]
    if len(capacity) > 1:
        raise InvalidParameterError(
            "policy: at most one TargetTracking, ScaleToZero or BacklogScaling per endpoint "
            "(ScaleToZero already holds its own target tracking)"
        )
    if len(scheduled) > 1:
        raise InvalidParameterError(
            "policy: at most one Scheduled per endpoint; put all actions in one Scheduled"
        )
    return (capacity[0] if capacity else None), (scheduled[0] if scheduled else None)


def _check_fits(
    endpoint: EndpointRef, capacity: CapacityPolicy | None, scheduled: Scheduled | None
) -> None:
    """Raise InvalidParameterError when a policy cannot apply to this kind of endpoint."""
    if isinstance(capacity, BacklogScaling) and not endpoint.asynchronous:
        raise InvalidParameterError(
            f"BacklogScaling: endpoint {endpoint.name!r} is not asynchronous; backlog scaling "
            "needs an endpoint deployed with EndpointSpec.async_inference (pass spec.ref(), "
            "or EndpointRef(..., asynchronous=True)). Use TargetTracking for real-time endpoints."
        )
    tracking = capacity if isinstance(capacity, TargetTracking) else None
    if endpoint.asynchronous and tracking is not None and tracking.min_capacity == 0:
        logger.warning(  # a variant that may rest at zero instances, but not come back
            "TargetTracking with min_capacity=0 on asynchronous endpoint %s: it can scale "
            "in to zero but never back out; use BacklogScaling to restart on a backlog",
            endpoint.name,
        )
    if endpoint.kind == "inference-component":
        if isinstance(capacity, TargetTracking) and capacity.min_capacity == 0:
            logger.warning(
                "TargetTracking with min_capacity=0 on %s: target tracking can scale in to "
                "zero copies but never back out; use ScaleToZero to restart on demand",
                endpoint.inference_component_name,
            )
        return
    where = f"endpoint {endpoint.name!r} is model-based (variant {endpoint.variant_name!r})"
    if isinstance(capacity, ScaleToZero):
        raise InvalidParameterError(
            f"ScaleToZero: scale-to-zero needs an inference-component endpoint, but {where}. "
            "Use TargetTracking with min_capacity >= 1, or deploy with inference components "
            "(EndpointSpec.components) and pass an EndpointRef with inference_component_name "
            "(asynchronous endpoints: BacklogScaling)."
        )
    if endpoint.asynchronous:
        return
    floors: list[tuple[str, TargetTracking | ScheduledAction]] = []
    if isinstance(capacity, TargetTracking):
        floors.append(("TargetTracking.min_capacity", capacity))
    for index, action in enumerate(scheduled.actions if scheduled is not None else ()):
        floors.append((f"Scheduled.actions[{index}].min_capacity ({action.name!r})", action))
    for field, item in floors:
        if item.min_capacity < 1:
            raise InvalidParameterError(
                f"{field}: 0 is allowed only for inference components and asynchronous "
                f"endpoints, but {where}; use min_capacity >= 1"
            )


def check_policy(
    endpoint: EndpointRef, policy: ScalingPolicy | Sequence[ScalingPolicy]
) -> tuple[CapacityPolicy | None, Scheduled | None]:
    """Check that ``policy`` is usable and fits ``endpoint`` (no AWS call); its capacity
    policy and its schedule. Raises InvalidParameterError, as :meth:`AutoScaler.apply` does."""
    if not isinstance(endpoint, EndpointRef):
        ScalingTarget.of(endpoint)  # raises the typed error
    capacity, scheduled = _split(policy)
    _check_fits(endpoint, capacity, scheduled)
    return capacity, scheduled


def describe_policy(policy: ScalingPolicy | Sequence[ScalingPolicy] | None) -> str:
    """One line naming a policy argument, e.g. ``"TargetTracking(invocations -> 50, 1..4)"``."""
    if policy is None:
        return "none"
    items = [policy] if isinstance(policy, _KINDS) else policy
    words = []
    for item in items:
        tracking = item.target_tracking if isinstance(item, ScaleToZero) else item
        if isinstance(tracking, TargetTracking | BacklogScaling):
            metric = tracking.metric if isinstance(tracking, TargetTracking) else "backlog"
            what = f"{metric} -> {tracking.target:g}, "
            what += f"{tracking.min_capacity}..{tracking.max_capacity}"
        else:
            what = ", ".join(a.name for a in item.actions) if isinstance(item, Scheduled) else ""
        words.append(f"{type(item).__name__}({what})")
    return " + ".join(words)


def _wanted(
    endpoint: EndpointRef, policy: ScalingPolicy | Sequence[ScalingPolicy]
) -> tuple[ScalingTarget, Desired]:
    capacity, scheduled = check_policy(endpoint, policy)
    target = ScalingTarget.of(endpoint)
    return target, desired(target, capacity, scheduled)


class AutoScaler:
    """Applies, describes and removes autoscaling on SageMaker endpoints.

    The ``application-autoscaling`` and ``cloudwatch`` (scale-to-zero alarms) clients are
    injected or built on first use from ``aws`` (or ``region`` / ``profile``). Clients built
    here never retry by themselves; injected clients keep their botocore retries, which
    multiply with ``retry`` (see :func:`~llm_twin_sdk.aws.botocore_config`).

    Example (more: docs/deployment.md, "Autoscaling and scale-to-zero")::

        scaler = AutoScaler(region="eu-central-1")
        print(scaler.apply(EndpointRef(name="twin"), TargetTracking(
            metric="invocations", target=50, min_capacity=1, max_capacity=4)))
    """

    def __init__(
        self,
        *,
        autoscaling_client: Any = None,
        cloudwatch_client: Any = None,
        aws: AWSClients | None = None,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        check_client_options("AutoScaler", region, profile, retry, aws=aws)
        self._clients = {
            _AAS: autoscaling_client,
            "cloudwatch": cloudwatch_client,
        }
        if aws is None and None in self._clients.values():
            aws = AWSClients(region=region, profile=profile)
        self._aws = aws
        self.retry = retry

    def __repr__(self) -> str:
        return f"AutoScaler(aws={self._aws!r}, retry={self.retry!r})"

    def _client(self, service: str) -> Any:
        if self._clients[service] is None:
            assert self._aws is not None
            self._clients[service] = self._aws.client(service)
        return self._clients[service]

    @property
    def autoscaling_client(self) -> Any:
        """The ``application-autoscaling`` client (built on first use)."""
        return self._client(_AAS)

    @property
    def cloudwatch_client(self) -> Any:
        """The ``cloudwatch`` client (built on first use)."""
        return self._client("cloudwatch")

    def apply(
        self, endpoint: EndpointRef, policy: ScalingPolicy | Sequence[ScalingPolicy]
    ) -> ScalingState:
        """Make the endpoint's autoscaling exactly ``policy``; return the resulting state.

        ``policy`` is one policy, or a list of at most one :class:`TargetTracking` /
        :class:`ScaleToZero` and at most one :class:`Scheduled`. Policies and scheduled
        actions on the target that ``policy`` does not contain are deleted. When everything
        already matches, nothing is written. With a :class:`Scheduled`, the target's bounds
        are kept when they equal one of its actions' bounds: that action has run, and
        re-applying must not undo it. Example: ``scaler.apply(endpoint, [tracking, scheduled])``.

        Raises:
            InvalidParameterError: the policy does not fit the endpoint (``min_capacity=0``
                or ``ScaleToZero`` on a model-based endpoint...); raised before any AWS call.
            AWSError: an AWS call failed (after retries for throttling).
        """
        target, want = _wanted(endpoint, policy)
        current = self._read(target)
        writes = len(self._converge(target, want, current))
        if writes == 0:
            logger.info("autoscaling of %s is already as asked: nothing to do", target.resource_id)
            return current.state(target)
        logger.info("autoscaling of %s applied (%d changes)", target.resource_id, writes)
        return self.describe(endpoint)

    def plan(
        self, endpoint: EndpointRef, policy: ScalingPolicy | Sequence[ScalingPolicy] | None
    ) -> ScalingPlan:
        """What ``apply(endpoint, policy)`` would write (``policy=None``: what ``remove`` would
        delete) — describe calls only. When the scale-from-zero policy is to be written, its
        alarm is listed too (the alarm names the policy's ARN, known only once written).

        Example: ``print(plan := scaler.plan(endpoint, policy)); plan.is_noop``.

        Raises:
            InvalidParameterError: as :meth:`apply`, before any AWS call.
        """
        target, want = _wanted(endpoint, policy) if policy is not None else (None, None)
        target = target or ScalingTarget.of(endpoint)
        current = self._read(target)
        return ScalingPlan(
            endpoint_name=endpoint.name,
            resource_id=target.resource_id,
            policy=describe_policy(policy),
            changes=tuple(self._converge(target, want, current, dry=True)),
            current=current.state(target),
        )

    def describe(self, endpoint: EndpointRef) -> ScalingState:
        """The endpoint's autoscaling as AWS reports it (``target is None`` when there is none).

        Example: ``print(scaler.describe(endpoint))``.
        """
        target = ScalingTarget.of(endpoint)
        return self._read(target).state(target)

    def remove(self, endpoint: EndpointRef) -> None:
        """Delete the alarm, policies, scheduled actions and scalable target of the endpoint.

        Safe to call when there is no autoscaling (or none any more): it then does nothing.
        Example: ``scaler.remove(endpoint); assert not scaler.describe(endpoint).enabled``.
        """
        target = ScalingTarget.of(endpoint)
        writes = len(self._converge(target, None, self._read(target)))
        logger.info("autoscaling of %s removed (%d deletions)", target.resource_id, writes)

    def _call(self, service: str, operation: str, **params: Any) -> Any:
        return call_aws(self._client(service), operation, policy=self.retry, **params)

    def _read(self, target: ScalingTarget) -> Current:
        def mine(operation: str, key: str, name_key: str, **params: Any) -> Items:
            found = pages(self.autoscaling_client, operation, key, policy=self.retry, **params)
            return {
                item[name_key]: item
                for item in list(found)
                if item.get("ResourceId") == target.resource_id
                and item.get("ScalableDimension") == target.dimension
            }

        targets = mine(
            "describe_scalable_targets",
            "ScalableTargets",
            "ResourceId",
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceIds=[target.resource_id],
            ScalableDimension=target.dimension,
        )
        policies, scheduled = (mine(*_ITEMS[item], **target.key) for item in _ITEMS)
        alarms: Items = {}
        if target.alarm_name is not None:
            names = {"AlarmNames": [target.alarm_name], "AlarmTypes": ["MetricAlarm"]}
            out = self._call("cloudwatch", "describe_alarms", **names)
            alarms = {a["AlarmName"]: a for a in out.get("MetricAlarms") or ()}
        target_item = next(iter(targets.values()), None)
        return Current(target_item, policies, scheduled, alarms)

    def _converge(
        self, target: ScalingTarget, want: Desired | None, current: Current, *, dry: bool = False
    ) -> list[ScalingChange]:
        """Write what differs between ``current`` and ``want`` (None: remove everything);
        ``dry``: write nothing, only list the writes.

        The order keeps every intermediate state valid: the target exists before its
        policies, an alarm goes before the policy it triggers, the target goes last.
        Returns the writes, in order.
        """
        run = _Writes(self, dry)
        if want is not None and not bounds_ok(want, current.target):
            bounds = {"MinCapacity": want.min_capacity, "MaxCapacity": want.max_capacity}
            tags = {} if current.target is not None else {"Tags": dict([MANAGED_BY_TAG])}
            detail = f"bounds {want.min_capacity}..{want.max_capacity}"
            change = _change(current.target, "scalable-target", target.resource_id, detail)
            run.put(change, _AAS, "register_scalable_target", **target.key, **bounds, **tags)
        alarm = want.alarm if want is not None else None
        for name in current.alarms:
            if alarm is None or alarm["AlarmName"] != name:
                run.delete("alarm", name, "cloudwatch", "delete_alarms", AlarmNames=[name])
        policies = self._converge_items(
            run, target, "scaling_policy", want.policies if want is not None else {}, current
        )
        if want is not None and alarm is not None and want.alarm_policy:
            # The scale-from-zero alarm triggers this policy: put it unless it already does.
            arn = policies[want.alarm_policy].get("PolicyARN")
            if not arn and not dry:
                raise ScalingError(
                    f"put_scaling_policy returned no PolicyARN for {want.alarm_policy!r} on "
                    f"{target.resource_id}; run apply again, or remove() to clean up"
                )
            params = {**alarm, "AlarmActions": [arn or "<the new policy's ARN>"]}
            old = current.alarms.get(alarm["AlarmName"])
            if old is None or not arn or not same(params, old):
                detail = f"{alarm['MetricName']} -> policy {want.alarm_policy}"
                change = _change(old, "alarm", alarm["AlarmName"], detail)
                run.put(change, "cloudwatch", "put_metric_alarm", **params, Tags=_TAGS)
        self._converge_items(
            run, target, "scheduled_action", want.scheduled if want is not None else {}, current
        )
        if want is None and current.target is not None:
            run.delete(
                "scalable-target",
                target.resource_id,
                _AAS,
                "deregister_scalable_target",
                **target.key,
            )
        return run.changes

    def _converge_items(
        self, run: _Writes, target: ScalingTarget, item: str, wanted: Items, now: Current
    ) -> Items:
        """``delete_<item>`` what is not wanted (or a policy of another type: no put changes a
        type), ``put_<item>`` what differs; return every wanted item's answer (the put's, else
        AWS's; ``{}`` in a dry run)."""
        name_key = _ITEMS[item][2]
        kind: ScalingItem = "scaling-policy" if item == "scaling_policy" else "scheduled-action"
        current = now.policies if item == "scaling_policy" else now.scheduled
        for name, old in current.items():
            new = wanted.get(name)
            if new is None or new.get("PolicyType") != old.get("PolicyType"):
                params = {name_key: name, **target.key}
                run.delete(kind, name, _AAS, f"delete_{item}", **params)
        answers: Items = {}
        for name, new in wanted.items():
            have = current.get(name)
            if have is not None and same(new, have):
                answers[name] = have
                continue
            if have is not None and new.get("PolicyType") != have.get("PolicyType"):
                have = None  # deleted above: created anew
            detail = str(new.get("PolicyType") or new.get("Schedule") or "")
            change = _change(have, kind, name, detail)
            params = {name_key: name, **target.key, **new}
            answers[name] = run.put(change, _AAS, f"put_{item}", **params) or {}
        return answers


def _change(
    old: Mapping[str, Any] | None, item: ScalingItem, name: str, detail: str
) -> ScalingChange:
    """A create (nothing there yet) or an update of ``item``."""
    return ScalingChange(
        action="create" if old is None else "update", item=item, name=name, detail=detail
    )


class _Writes:
    """The writes of one converge: made (and listed), or only listed in a dry run."""

    def __init__(self, scaler: AutoScaler, dry: bool) -> None:
        self.scaler, self.dry = scaler, dry
        self.changes: list[ScalingChange] = []

    def put(self, change: ScalingChange, service: str, operation: str, **params: Any) -> Any:
        """A create or update call; its answer (``None`` in a dry run)."""
        self.changes.append(change)
        if self.dry:
            return None
        logger.info("%s %s %s: %s", change.action, change.item, change.name, change.detail)
        return self.scaler._call(service, operation, **params)

    def delete(
        self, item: ScalingItem, name: str, service: str, operation: str, **params: Any
    ) -> None:
        """A delete call (something already gone counts as done)."""
        self.changes.append(ScalingChange(action="delete", item=item, name=name))
        if not self.dry:
            logger.info("deleting %s %s", item, name)
            client = self.scaler._client(service)
            delete_if_exists(client, operation, policy=self.scaler.retry, **params)
