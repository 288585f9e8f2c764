"""AutoScaler: apply, describe and remove Application Auto Scaling on a SageMaker endpoint.

``apply`` is declarative and idempotent: it writes only what differs from what is in place,
so a repeated or interrupted apply converges. IAM actions it needs: docs/deployment.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..aws import AWSClients, call_aws, check_client_options, delete_if_exists, pages
from ..endpoint import MANAGED_BY_TAG, EndpointRef
from ..errors import InvalidParameterError, ScalingError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .policies import ScaleToZero, ScalingPolicy, Scheduled, ScheduledAction, TargetTracking
from .requests import SERVICE_NAMESPACE, Desired, ScalingTarget, bounds_ok, desired, same
from .state import Current, Items, ScalingState

__all__ = ["AutoScaler"]

logger = logging.getLogger(__name__)

_AAS = "application-autoscaling"
_ITEMS = {  # item -> its describe operation, the answer's list key, the name key
    "scaling_policy": ("describe_scaling_policies", "ScalingPolicies", "PolicyName"),
    "scheduled_action": ("describe_scheduled_actions", "ScheduledActions", "ScheduledActionName"),
}
_TAGS = [{"Key": MANAGED_BY_TAG[0], "Value": MANAGED_BY_TAG[1]}]


def _split(
    policy: ScalingPolicy | Sequence[ScalingPolicy],
) -> tuple[TargetTracking | ScaleToZero | None, Scheduled | None]:
    """The one capacity policy and the one schedule in ``policy`` (either may be None)."""
    kinds = (TargetTracking, ScaleToZero, Scheduled)
    if isinstance(policy, kinds):
        items: list[object] = [policy]
    elif isinstance(policy, Sequence) and not isinstance(policy, str | bytes):
        items = list(policy)
    else:
        raise InvalidParameterError(
            "policy: expected TargetTracking, ScaleToZero, Scheduled or a list of them, "
            f"got {type(policy).__name__}"
        )
    if wrong := [type(item).__name__ for item in items if not isinstance(item, kinds)]:
        raise InvalidParameterError(
            "policy: expected TargetTracking, ScaleToZero or Scheduled items, got "
            + ", ".join(wrong)
        )
    if not items:
        raise InvalidParameterError("policy: the list is empty; give at least one policy")
    capacity = [p for p in items if isinstance(p, TargetTracking | ScaleToZero)]
    scheduled = [p for p in items if isinstance(p, Scheduled)]
    if len(capacity) > 1:
        raise InvalidParameterError(
            "policy: at most one TargetTracking or ScaleToZero per endpoint "
            "(ScaleToZero already holds its own target tracking)"
        )
    if len(scheduled) > 1:
        raise InvalidParameterError(
            "policy: at most one Scheduled per endpoint; put all actions in one Scheduled"
        )
    return (capacity[0] if capacity else None), (scheduled[0] if scheduled else None)


def _check_fits(
    endpoint: EndpointRef,
    capacity: TargetTracking | ScaleToZero | None,
    scheduled: Scheduled | None,
) -> None:
    """Raise InvalidParameterError when a policy cannot apply to this kind of endpoint."""
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
            "(EndpointSpec.components) and pass an EndpointRef with inference_component_name."
        )
    floors: list[tuple[str, TargetTracking | ScheduledAction]] = []
    if isinstance(capacity, TargetTracking):
        floors.append(("TargetTracking.min_capacity", capacity))
    for index, action in enumerate(scheduled.actions if scheduled is not None else ()):
        floors.append((f"Scheduled.actions[{index}].min_capacity ({action.name!r})", action))
    for field, item in floors:
        if item.min_capacity < 1:
            raise InvalidParameterError(
                f"{field}: 0 is allowed only for inference components, but {where}; "
                "use min_capacity >= 1"
            )


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
        capacity, scheduled = _split(policy)
        _check_fits(endpoint, capacity, scheduled)
        target = ScalingTarget.of(endpoint)
        current = self._read(target)
        writes = self._converge(target, desired(target, capacity, scheduled), current)
        if writes == 0:
            logger.info("autoscaling of %s is already as asked: nothing to do", target.resource_id)
            return current.state(target)
        logger.info("autoscaling of %s applied (%d changes)", target.resource_id, writes)
        return self.describe(endpoint)

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
        writes = self._converge(target, None, self._read(target))
        logger.info("autoscaling of %s removed (%d deletions)", target.resource_id, writes)

    def _call(self, service: str, operation: str, **params: Any) -> Any:
        return call_aws(self._client(service), operation, policy=self.retry, **params)

    def _delete(self, service: str, operation: str, **params: Any) -> int:
        """A delete call (something already gone counts as done); one write."""
        delete_if_exists(self._client(service), operation, policy=self.retry, **params)
        return 1

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

    def _converge(self, target: ScalingTarget, want: Desired | None, current: Current) -> int:
        """Write what differs between ``current`` and ``want`` (None: remove everything).

        The order keeps every intermediate state valid: the target exists before its
        policies, an alarm goes before the policy it triggers, the target goes last.
        Returns the number of write calls made.
        """
        writes = 0
        if want is not None and not bounds_ok(want, current.target):
            bounds = {"MinCapacity": want.min_capacity, "MaxCapacity": want.max_capacity}
            logger.info("registering %s: %s", target.resource_id, bounds)
            tags = {} if current.target is not None else {"Tags": dict([MANAGED_BY_TAG])}
            self._call(_AAS, "register_scalable_target", **target.key, **bounds, **tags)
            writes += 1
        alarm = want.alarm if want is not None else None
        for name in current.alarms:
            if alarm is None or alarm["AlarmName"] != name:
                logger.info("deleting alarm %s", name)
                writes += self._delete("cloudwatch", "delete_alarms", AlarmNames=[name])
        policies, changed = self._converge_items(
            target,
            "scaling_policy",
            want.policies if want is not None else {},
            current.policies,
        )
        writes += changed
        if want is not None and alarm is not None and want.alarm_policy:
            # The scale-from-zero alarm triggers this policy: put it unless it already does.
            arn = policies[want.alarm_policy].get("PolicyARN")
            if not arn:
                raise ScalingError(
                    f"put_scaling_policy returned no PolicyARN for {want.alarm_policy!r} on "
                    f"{target.resource_id}; run apply again, or remove() to clean up"
                )
            params = {**alarm, "AlarmActions": [arn]}
            old = current.alarms.get(alarm["AlarmName"])
            if old is None or not same(params, old):
                logger.info("putting alarm %s -> %s", alarm["AlarmName"], arn)
                self._call("cloudwatch", "put_metric_alarm", **params, Tags=_TAGS)
                writes += 1
        writes += self._converge_items(
            target,
            "scheduled_action",
            want.scheduled if want is not None else {},
            current.scheduled,
        )[1]
        if want is None and current.target is not None:
            logger.info("deregistering %s", target.resource_id)
            writes += self._delete(_AAS, "deregister_scalable_target", **target.key)
        return writes

    def _converge_items(
        self,
        target: ScalingTarget,
        item: str,
        wanted: Items,
        current: Items,
    ) -> tuple[Items, int]:
        """``delete_<item>`` what is not wanted (or a policy of another type: no put changes a
        type), ``put_<item>`` what differs; return every wanted item's answer (the put's, else
        AWS's) and the writes."""
        name_key, writes = _ITEMS[item][2], 0
        for name, old in current.items():
            new = wanted.get(name)
            if new is None or new.get("PolicyType") != old.get("PolicyType"):
                logger.info("deleting %s %s", item.replace("_", " "), name)
                writes += self._delete(_AAS, f"delete_{item}", **{name_key: name}, **target.key)
        answers: Items = {}
        for name, new in wanted.items():
            have = current.get(name)
            if have is not None and same(new, have):
                answers[name] = have
                continue
            logger.info("putting %s %s", item.replace("_", " "), name)
            answers[name] = self._call(_AAS, f"put_{item}", **{name_key: name}, **target.key, **new)
            writes += 1
        return answers, writes
