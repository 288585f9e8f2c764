"""ScalingPlan: what ``AutoScaler.apply`` (or ``remove``) would write, read-only, printable.

Example: ``print(AutoScaler().plan(endpoint, policy))`` shows one row per write, e.g.
``create  scalable-target  endpoint/twin/variant/AllTraffic  bounds 1..4``.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from ..types import _Model
from .state import ScalingState

__all__ = ["ScalingAction", "ScalingChange", "ScalingItem", "ScalingPlan", "table"]

ScalingAction: TypeAlias = Literal["create", "update", "delete"]
ScalingItem: TypeAlias = Literal["scalable-target", "scaling-policy", "alarm", "scheduled-action"]


def table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Indented lines of a plan's table: three padded columns, then a free detail column."""
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return ["  ".join(["", *map(str.ljust, row[:3], widths), row[3]]).rstrip() for row in rows]


class ScalingChange(_Model):
    """One write that applying the policy would make."""

    action: ScalingAction
    item: ScalingItem
    name: str
    detail: str = ""


class ScalingPlan(_Model):
    """The writes that make an endpoint's autoscaling what was asked (none: already so), and
    the autoscaling in place now (``current``)."""

    endpoint_name: str
    resource_id: str
    policy: str = "none"
    changes: tuple[ScalingChange, ...] = ()
    current: ScalingState

    @property
    def is_noop(self) -> bool:
        """True when applying would make no write call."""
        return not self.changes

    def __str__(self) -> str:
        lines = [f"Autoscaling plan for {self.resource_id}: {self.policy}"]
        if self.current.enabled:
            lines.append("  in place now: " + str(self.current).replace("\n", "\n  "))
        if self.is_noop:
            return "\n".join([*lines, "  nothing to do: autoscaling is already as asked"])
        rows = [("ACTION", "ITEM", "NAME", "DETAIL")]
        rows += [(c.action, c.item, c.name, c.detail) for c in self.changes]
        lines += ["", *table(rows), "", f"  {len(self.changes)} change(s) to apply"]
        return "\n".join(lines)
