"""Removing what the SDK deployed: delete an endpoint, sweep its leftovers, roll back a deploy.

Each is idempotent (what is already gone counts as removed) and returns what it removed as
``"<kind> <name>"`` strings, e.g. ``['endpoint twin', 'endpoint-config twin-3fd415d4']``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import NoReturn, Protocol, TypeAlias

from ..endpoint import EndpointRef, has_sdk_tag
from ..errors import DeploymentError, LLMTwinError, ResourceNotFoundError
from .resources import KINDS, Resources, Response
from .spec import EndpointSpec
from .status import layout, variants
from .waiting import ResourceKind, Settled

__all__ = ["Created", "ScalingRemover", "delete_endpoint", "fail", "roll_back", "sweep"]

Created: TypeAlias = list[tuple[ResourceKind, str]]
"""What a deployment created, oldest first: ``[("model", "twin-12fd0641"), ...]``."""

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT_S = 1800.0
"""How long a roll back waits for an inference component to be gone."""


class ScalingRemover(Protocol):
    """What deleting an endpoint needs of an autoscaler (``AutoScaler`` satisfies it)."""

    def remove(self, endpoint: EndpointRef) -> None:
        """Remove every scaling target, policy and alarm of ``endpoint``; idempotent."""


def delete_endpoint(
    res: Resources,
    name: str,
    *,
    scaler: Callable[[], ScalingRemover | None],
    deadline: float,
    wait: bool = True,
    dry_run: bool = False,
) -> list[str]:
    """Remove endpoint ``name`` and everything the SDK created for it (see ``Deployer.delete``);
    ``scaler`` is asked for the autoscaler only when there is an endpoint to unscale.
    ``dry_run``: what would be removed (autoscaling aside), read calls only."""
    removed: list[str] = []
    endpoint = res.describe("endpoint", name)
    if endpoint is not None:
        config, _, components = layout(res, endpoint)
        if not dry_run:
            _remove_scaling(scaler(), name, components or variants(endpoint) or variants(config))
        for component in components:
            component_name = str(component["InferenceComponentName"])
            if component.get("InferenceComponentStatus") != "Deleting" and not dry_run:
                res.delete("inference-component", component_name)
            logger.info("deleting inference component %s", component_name)
            removed.append(f"inference-component {component_name}")
        for component_name in [str(c["InferenceComponentName"]) for c in components]:
            if not dry_run:
                res.wait_for_delete(
                    "inference-component", component_name, deadline=deadline, endpoint_name=name
                )
        if endpoint.get("EndpointStatus") == "Deleting" or dry_run or res.delete("endpoint", name):
            logger.info("deleting endpoint %s", name)
            removed.append(f"endpoint {name}")
    removed.extend(sweep(res, name, dry_run=dry_run))
    if wait and endpoint is not None and not dry_run:
        res.wait_for_delete("endpoint", name, deadline=deadline)
    return removed


def _remove_scaling(scaler: ScalingRemover | None, name: str, scaled: list[Response]) -> None:
    """Remove the autoscaling of each component, or else of each variant, of the endpoint."""
    for item in scaled or [{}]:
        ref = EndpointRef(
            name=name,
            variant_name=str(item.get("VariantName") or "AllTraffic"),
            inference_component_name=item.get("InferenceComponentName"),
        )
        if scaler is not None:
            what = ref.inference_component_name or f"variant {ref.variant_name}"
            logger.info("removing autoscaling of %s (%s)", name, what)
            scaler.remove(ref)


def sweep(res: Resources, name: str, *, dry_run: bool = False) -> list[str]:
    """Delete the SDK-tagged endpoint configs and models named ``<name>-<8 hex>``
    (``dry_run``: only list them)."""
    pattern = re.compile(rf"^{re.escape(name)}-[0-9a-f]{{8}}$")
    removed: list[str] = []
    kinds: tuple[ResourceKind, ...] = ("endpoint-config", "model")
    for kind in kinds:
        table = KINDS[kind]
        for summary in list(res.get_all(kind, NameContains=name)):
            resource = str(summary[table.name_key])
            if not pattern.match(resource):
                continue
            try:
                tags = res.tags(str(summary[table.arn_key]))
            except ResourceNotFoundError:
                continue
            if not has_sdk_tag(tags):
                logger.info("keeping %s %s: not created by llm-twin-sdk", kind, resource)
            elif dry_run or res.delete(kind, resource):
                logger.info("deleted %s %s", kind, resource)
                removed.append(f"{kind} {resource}")
    return removed


def roll_back(
    res: Resources, created: Created, *, endpoint_name: str, in_use: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """Delete what a deployment created, newest first, except what is ``in_use``; best effort.

    Returns ``(removed, left)``.
    """
    removed: list[str] = []
    left: list[str] = []
    deadline = res.clock() + CLEANUP_TIMEOUT_S
    for kind, name in reversed(created):
        if name in in_use:
            left.append(f"{kind} {name} (in service)")
            continue
        try:
            res.delete(kind, name)
            if KINDS[kind].blocks_endpoint:
                res.wait_for_delete(kind, name, deadline=deadline, endpoint_name=endpoint_name)
        except LLMTwinError as exc:
            logger.warning("could not remove %s %s: %s", kind, name, exc)
            left.append(f"{kind} {name}")
            continue
        logger.info("removed %s %s", kind, name)
        removed.append(f"{kind} {name}")
    return removed, left


def cleanup_note(removed: list[str], left: list[str], name: str) -> str:
    """One sentence on what a failed deployment removed and left (for its error)."""
    parts = [
        f"Removed what this deployment created: {', '.join(removed)}." if removed else "",
        f"Left in place: {', '.join(left)}; Deployer.delete({name!r}) removes all." if left else "",
    ]
    return " ".join(filter(None, parts)) or "Nothing was created by this deployment."


def fail(
    res: Resources, spec: EndpointSpec, kind: ResourceKind, settled: Settled, created: Created
) -> NoReturn:
    """A deployment failed: remove what it created (unless in use), raise DeploymentError."""
    answer = settled.response or {}
    reason = settled.failure_reason
    status = answer.get(KINDS[kind].status_key or "")
    # What the failed resource still points at stays, unless this call created it
    # (then it is removed first, and what it pointed at goes with it).
    in_use: set[str] = set()
    if answer.get("EndpointConfigName") and ("endpoint", spec.name) not in created:
        in_use.add(str(answer["EndpointConfigName"]))
    model = (answer.get("Specification") or {}).get("ModelName")
    if model and ("inference-component", answer.get("InferenceComponentName")) not in created:
        in_use.add(str(model))
    if spec.components is None and spec.endpoint_config_name in in_use:
        in_use.add(spec.model_name)  # the config in service points at this model
    if status == "UpdateRollbackFailed":
        # Neither the update nor its rollback finished: what is in use is unknown.
        removed: list[str] = []
        left = [f"{what} {name}" for what, name in created]
    else:
        removed, left = roll_back(res, created, endpoint_name=spec.name, in_use=frozenset(in_use))
    what = f"{kind.replace('-', ' ')} of {spec.name!r}"
    if settled.response is None:
        message = f"{what} disappeared while deploying"
    elif status == "InService":
        message = f"{what} rolled back to its previous configuration"
    else:
        message = f"{what} is {status}"
    message += f": {reason}. " if reason else ". "
    raise DeploymentError(
        message + cleanup_note(removed, left, spec.name),
        endpoint_name=spec.name,
        failure_reason=reason,
    )
