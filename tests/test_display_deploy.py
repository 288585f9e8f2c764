"""Jupyter HTML of the deployment side: cost estimates, plans, autoscaling plans and endpoint
status; every value escaped, secrets masked. Pure: plans from ``build_plan``, no AWS call."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from llm_twin_sdk import (
    EndpointSpec,
    EndpointStatus,
    InferenceComponentSpec,
    PriceTable,
    ScaleToZero,
    ScalingState,
    TargetTracking,
    TwinDeploymentPlan,
    estimate_cost,
)
from llm_twin_sdk.deploy.plan import DeploymentPlan, build_plan
from llm_twin_sdk.deploy.status import InferenceComponentStatus
from llm_twin_sdk.scaling.plan import ScalingChange, ScalingPlan
from llm_twin_sdk.scaling.state import ScalableTargetState

SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
TOKEN = "hf_never_shown_token"
ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.4"
TRACKING = TargetTracking(metric="invocations", target=10, min_capacity=1, max_capacity=4)


def _spec(**overrides: Any) -> EndpointSpec:
    environment = {"NOTE": SCRIPT, "API_KEY": "sekrit"}
    return EndpointSpec(
        **{"name": "twin", "role_arn": ROLE, "hf_token": TOKEN, "environment": environment}
        | overrides
    )


def _plan(spec: EndpointSpec, **answers: Any) -> DeploymentPlan:
    plan = build_plan(
        spec,
        region="us-east-1",
        image_uri=IMAGE,
        model=answers.get("model"),
        config=answers.get("config"),
        endpoint=answers.get("endpoint"),
    )
    return plan.model_copy(update={"cost": estimate_cost(spec, TRACKING, region="us-east-1")})


def _scaling(changes: int = 2) -> ScalingPlan:
    state = ScalingState(
        endpoint_name="twin",
        resource_id="endpoint/twin/variant/AllTraffic",
        scalable_dimension="sagemaker:variant:DesiredInstanceCount",
        target=ScalableTargetState(min_capacity=1, max_capacity=2),
    )
    change = ScalingChange(action="update", item="scalable-target", name="t", detail=SCRIPT)
    return ScalingPlan(
        endpoint_name="twin",
        resource_id=state.resource_id,
        policy="TargetTracking(invocations -> 10, 1..4)",
        changes=(change,) * changes,
        current=state,
    )


def test_cost_estimate_html() -> None:
    cost = estimate_cost(_spec(), TRACKING, region="us-east-1")
    html = cost._repr_html_()
    assert html.startswith("<div><strong>Cost estimate</strong>")
    assert "<td>per instance-hour</td><td>1</td><td>$1.515</td>" in html
    assert "<td>a month at the minimum</td><td>1</td><td>$1,105.95</td>" in html
    assert "<td>a month at the maximum</td><td>4</td><td>$4,423.80</td>" in html
    assert "scale-to-zero would save $552.97/month at 50% idle" in html
    assert "prices as of: 2024-11-01" in html
    assert "https://aws.amazon.com/sagemaker/pricing/" in html


def test_cost_estimate_html_escapes_the_table_source_and_says_unknown() -> None:
    table = PriceTable(as_of=datetime.date(2026, 1, 1), source=SCRIPT, prices={})
    unknown = estimate_cost(_spec(), region="eu-west-3", prices=table)
    html = unknown._repr_html_()
    assert "<script>" not in html
    assert ESCAPED in html
    assert "unknown: no prices for region eu-west-3 in the table" in html
    assert repr(unknown).startswith(
        "CostEstimate(instance_type='ml.g5.2xlarge', region='eu-west-3', hourly_price=None, "
        "reason='no prices for region eu-west-3"
    )
    components = _spec(components=InferenceComponentSpec(min_instances=0, max_instances=2))
    policy = ScaleToZero(target_tracking=TRACKING.model_copy(update={"min_capacity": 0}))
    html = estimate_cost(components, policy, region="us-east-1")._repr_html_()
    assert "scale-to-zero saves $552.97/month at 50% idle" in html


def test_deployment_plan_html_lists_resources_cost_and_masked_environment() -> None:
    html = _plan(_spec())._repr_html_()
    assert html.startswith("<div><strong>Deployment plan: endpoint twin</strong>")
    assert "region: us-east-1 · kind: model-based · image: " in html
    assert "instances: 1 x ml.g5.2xlarge" in html
    assert "<td>create</td><td>model</td>" in html
    assert "<td>create</td><td>endpoint-config</td>" in html
    assert "<td>create</td><td>endpoint</td><td>twin</td>" in html
    assert "<strong>Cost estimate</strong>" in html
    assert "<td>MAX_TOTAL_TOKENS</td>" in html
    assert "<td>HUGGING_FACE_HUB_TOKEN</td><td>**********</td>" in html
    assert "<td>API_KEY</td><td>**********</td>" in html
    assert f"<td>NOTE</td><td>{ESCAPED}</td>" in html
    assert TOKEN not in html
    assert "sekrit" not in html
    assert "<script>" not in html
    assert "3 change(s) to apply" in html


def test_a_plan_with_nothing_to_do_says_so() -> None:
    spec = _spec()
    plan = _plan(
        spec,
        model={"ModelName": spec.model_name},
        config={"EndpointConfigName": spec.endpoint_config_name},
        endpoint={"EndpointStatus": "InService", "EndpointConfigName": spec.endpoint_config_name},
    )
    assert plan.is_noop
    html = plan._repr_html_()
    assert "nothing to do: the endpoint already runs this spec" in html
    assert f"in service now: {spec.endpoint_config_name} (InService)" in html
    assert "changes=[]" in repr(plan)
    assert str(plan).endswith("nothing to do: the endpoint already runs this spec")


def test_twin_deployment_plan_html_has_both_plans() -> None:
    plan = TwinDeploymentPlan(endpoint=_plan(_spec()), scaling=_scaling())
    html = plan._repr_html_()
    assert html.startswith("<div><strong>What up() would do: twin</strong>")
    assert "changes: 3 to the endpoint, 2 to its autoscaling" in html
    assert "<strong>Deployment plan: endpoint twin</strong>" in html
    assert "<strong>Autoscaling plan: endpoint/twin/variant/AllTraffic</strong>" in html
    assert "policy: TargetTracking(invocations -&gt; 10, 1..4)" in html
    assert "in place now: endpoint/twin/variant/AllTraffic" in html
    assert f"<td>update</td><td>scalable-target</td><td>t</td><td>{ESCAPED}</td>" in html
    assert "<script>" not in html
    assert TOKEN not in html
    nothing = _scaling(changes=0)._repr_html_()
    assert "nothing to do: autoscaling is already as asked" in nothing
    assert "<table>" not in nothing


@pytest.mark.parametrize("failure", [None, SCRIPT])
def test_endpoint_status_html(failure: str | None) -> None:
    component = InferenceComponentStatus(
        name="twin-ic",
        status="InService",
        model_name="twin-model",
        desired_copies=2,
        current_copies=1,
        failure_reason=failure,
    )
    status = EndpointStatus(
        name="twin",
        status="Updating",
        endpoint_config_name="twin-0badc0de",
        pending_config_name="twin-3fd4",
        kind="inference-component",
        instance_type="ml.g5.2xlarge",
        current_instance_count=1,
        desired_instance_count=2,
        inference_components=(component,),
        failure_reason=failure,
        created_at=datetime.datetime(2026, 11, 30, 12, 0),
        managed=True,
    )
    html = status._repr_html_()
    assert html.startswith("<div><strong>Endpoint twin: Updating</strong>")
    assert "kind: inference-component · config: twin-0badc0de · updating to: twin-3fd4" in html
    assert "instances: 1 (desired 2) x ml.g5.2xlarge" in html
    assert "copies: 1 · managed by the SDK: yes · created: 2026-11-30 12:00:00" in html
    assert "<td>twin-ic</td><td>InService</td><td>twin-model</td><td>1</td><td>2</td>" in html
    assert "<script>" not in html
    assert (f"failure: {ESCAPED}" in html) == (failure is not None)
    assert repr(status).startswith(
        "EndpointStatus(name='twin', status='Updating', kind='inference-component', "
        "endpoint_config_name='twin-0badc0de', pending_config_name='twin-3fd4', "
        "instances=1 (desired 2) x ml.g5.2xlarge, components=[1: twin-ic]"
    )
