"""ScalingPlan: what ``AutoScaler.apply`` (or ``remove``) would write, read-only, printable.

Example: ``print(AutoScaler().plan(endpoint, policy))`` shows one row per write, e.g.
``create  scalable-target  endpoint/twin/variant/AllTraffic  bounds 1..4``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, TypeAlias

from ..display import brief, changes, html_block, paragraph
from ..display import table as html_table
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

    @property
    def summary(self) -> str:
        """The plan in one line: how many changes, or that there is nothing to do."""
        if self.is_noop:
            return "nothing to do: autoscaling is already as asked"
        return f"{len(self.changes)} change(s) to apply"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "resource_id", self.resource_id
        yield "policy", brief(self.policy, 48)
        yield "changes", changes((c.action, c.item) for c in self.changes)

    def _repr_html_(self) -> str:
        """The plan in Jupyter: the autoscaling in place, then each write (escaped)."""
        parts = [paragraph("in place now: " + str(self.current))] if self.current.enabled else []
        if self.changes:
            rows = [(c.action, c.item, c.name, c.detail) for c in self.changes]
            parts.append(html_table(["action", "item", "name", "detail"], rows))
        parts.append(paragraph(self.summary))
        fields = {"policy": self.policy}
        return html_block(f"Autoscaling plan: {self.resource_id}", *parts, fields=fields)

    def __str__(self) -> str:
        lines = [f"Autoscaling plan for {self.resource_id}: {self.policy}"]
        if self.current.enabled:
            lines.append("  in place now: " + str(self.current).replace("\n", "\n  "))
        if self.is_noop:
            return "\n".join([*lines, f"  {self.summary}"])
        rows = [("ACTION", "ITEM", "NAME", "DETAIL")]
        rows += [(c.action, c.item, c.name, c.detail) for c in self.changes]
        lines += ["", *table(rows), "", f"  {self.summary}"]
        return "\n".join(lines)
