"""Tables of the SDK's results for a terminal (rich), one function per result; ``--json``
prints the models themselves instead (:func:`~.output.print_json`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .output import stdout, table

if TYPE_CHECKING:
    from ..deploy.costs import CostEstimate
    from ..deploy.status import EndpointStatus
    from ..deployment import TwinDeploymentPlan
    from ..rag.evaluation import EvaluationReport
    from ..scaling.plan import ScalingPlan
    from ..scaling.state import ScalingState
    from ..types import Chunk

__all__ = [
    "show_cost",
    "show_endpoints",
    "show_evaluation",
    "show_plan",
    "show_removal",
    "show_scaling_plan",
    "show_sources",
    "show_status",
]


def _money(amount: float | None) -> str:
    return "unknown" if amount is None else f"${amount:,.2f}"


def show_plan(plan: TwinDeploymentPlan) -> None:
    """The changes ``up`` would make (endpoint resources, then autoscaling) and the cost."""
    endpoint = plan.endpoint
    kind = "model-based" if endpoint.kind == "model" else "inference components"
    console = stdout()
    console.print(
        f"[bold]Plan for endpoint {endpoint.endpoint_name!r}[/] ({endpoint.region}, {kind})\n"
        f"  image: {endpoint.image_uri}\n"
        f"  instances: {endpoint.instance_count} x {endpoint.instance_type}"
    )
    for name, value in endpoint.security.describe().items():  # VPC, isolation, KMS keys
        console.print(f"  {name}: {value}", markup=False)
    if endpoint.current_config_name is not None:
        console.print(
            f"  in service now: {endpoint.current_config_name} ({endpoint.current_status})"
        )
    changes = table("action", "resource", "name", "detail", title="Changes")
    for r in endpoint.resources:
        changes.add_row(r.action, r.resource, r.name, r.detail)
    for c in plan.scaling.changes:
        changes.add_row(c.action, c.item, c.name, c.detail)
    console.print(changes)
    console.print(f"  autoscaling: {plan.scaling.policy}")
    if plan.cost is not None:
        show_cost(plan.cost)
    count = len(endpoint.changes) + len(plan.scaling.changes)
    console.print(
        "nothing to do: the endpoint and its autoscaling already are as asked"
        if plan.is_noop
        else f"{count} change(s) to apply: run `llm-twin up` with this spec"
    )


def show_cost(cost: CostEstimate) -> None:
    """Price per instance-hour, monthly at the scaling bounds, the scale-to-zero saving."""
    console = stdout()
    title = f"Cost (on-demand, {cost.currency}, prices as of {cost.as_of})"
    if cost.hourly_price is None:
        console.print(f"[bold]{title}[/]: unknown: {cost.reason}")
        return
    grid = table(
        "instance", "region", "per hour", "monthly at min", "monthly at max", title=title, numbers=3
    )
    grid.add_row(
        cost.instance_type,
        cost.region,
        f"${cost.hourly_price:,.3f}",
        f"{_money(cost.monthly_at_min)} ({cost.min_instances} inst.)",
        f"{_money(cost.monthly_at_max)} ({cost.max_instances} inst.)",
    )
    console.print(grid)
    saving = f"{_money(cost.scale_to_zero_saving)}/month at {cost.idle_fraction:.0%} idle"
    console.print(
        f"  scale-to-zero saves {saving}"
        if cost.scales_to_zero
        else f"  scale-to-zero would save {saving} (kind: scale-to-zero, on inference components)"
    )
    console.print(f"  source: {cost.source}")


def show_status(status: EndpointStatus, scaling: Sequence[ScalingState]) -> None:
    """One endpoint: SageMaker's status, its fleet and components, its autoscaling."""
    console = stdout()
    grid = table("field", "value", title=f"Endpoint {status.name}")
    rows = {
        "status": status.status,
        "kind": status.kind,
        "endpoint config": status.endpoint_config_name,
        "moving to config": status.pending_config_name,
        "instances": f"{status.current_instance_count} x {status.instance_type}"
        if status.current_instance_count is not None
        else None,
        "desired instances": status.desired_instance_count,
        "copies": status.copies,
        "failure": status.failure_reason,
        "managed by llm-twin-sdk": "yes" if status.managed else "no",
        "created": status.created_at,
    }
    for name, value in rows.items():
        if value is not None:
            grid.add_row(name, str(value))
    console.print(grid)
    for component in status.inference_components:
        console.print(
            f"  component {component.name}: {component.status}, "
            f"{component.current_copies}/{component.desired_copies} copies"
        )
    for state in scaling:
        console.print(f"  autoscaling: {state}")


def show_endpoints(endpoints: Sequence[EndpointStatus], region: str) -> None:
    """The endpoints the SDK manages in a region."""
    console = stdout()
    if not endpoints:
        console.print(f"no endpoints managed by llm-twin-sdk in {region}")
        return
    grid = table("name", "status", "kind", "instances", "copies", "config", title=region)
    for st in endpoints:
        instances = (
            f"{st.current_instance_count} x {st.instance_type}"
            if st.current_instance_count is not None
            else "-"
        )
        copies = "-" if st.copies is None else str(st.copies)
        grid.add_row(
            st.name, st.status, st.kind or "?", instances, copies, st.endpoint_config_name or "-"
        )
    console.print(grid)


def show_scaling_plan(plan: ScalingPlan) -> None:
    """What applying (or removing) a scaling policy would write."""
    console = stdout()
    console.print(f"[bold]Autoscaling of {plan.resource_id}[/]: {plan.policy}")
    if plan.current.enabled:
        console.print("  in place now: " + str(plan.current).replace("\n", "\n  "))
    if plan.is_noop:
        console.print("nothing to do: autoscaling is already as asked")
        return
    grid = table("action", "item", "name", "detail")
    for c in plan.changes:
        grid.add_row(c.action, c.item, c.name, c.detail)
    console.print(grid)


def show_removal(items: Sequence[str], scaling: Sequence[ScalingPlan], *, done: bool) -> None:
    """What ``down`` removed (or, ``done=False``, would remove)."""
    console = stdout()
    rows: list[tuple[str, str]] = [(c.item, c.name) for plan in scaling for c in plan.changes]
    rows += [(kind, name) for kind, _, name in (item.partition(" ") for item in items)]
    if not rows:
        console.print("nothing to remove")
        return
    grid = table("resource", "name", title="Removed" if done else "Would remove (dry run)")
    for kind, name in rows:
        grid.add_row(kind, name)
    console.print(grid)


def show_sources(sources: Sequence[Chunk]) -> None:
    """The sources of an answer, best first."""
    if not sources:
        stdout().print("no sources: the store holds no matching document")
        return
    grid = table("rank", "document", "title", "author", "score", title="Sources", numbers=1)
    for rank, chunk in enumerate(sources, 1):
        meta = chunk.metadata
        score = "" if chunk.score is None else f"{chunk.score:.3f}"
        grid.add_row(str(rank), chunk.document_id, meta.title or "", meta.author or "", score)
    stdout().print(grid)


def show_evaluation(report: EvaluationReport) -> None:
    """Retrieval scores per query kind and overall."""
    top = max(report.k_values)
    names = [*(f"recall@{k}" for k in report.k_values), f"MRR@{top}", f"nDCG@{top}"]
    grid = table("queries", "n", *names, title="Retrieval evaluation", numbers=len(names) + 1)
    for scores in report.groups:
        figures = [*(scores.recall[k] for k in report.k_values), scores.mrr, scores.ndcg]
        grid.add_row(scores.group, str(scores.queries), *(f"{f:.3f}" for f in figures))
    stdout().print(grid)
    stdout().print(f"  {report.chunks_per_query} chunks asked per query")
