"""The AWS side of ``llm-twin`` (plan, up, status, scale, down, list) against moto in server
mode on 127.0.0.1: botocore reads ``AWS_ENDPOINT_URL``, so every client the command line
builds from its settings talks to moto (real HTTP round trips, real request parsing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import EXAMPLE_SPEC, ZERO_SPEC, moto_spec, run
from fakes import AWSCalls as Calls
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.cli.specfile import load_spec

SERVICES = ("sagemaker", "application-autoscaling", "cloudwatch")


@pytest.fixture
def moto_env(moto_server: str, moto_aws: AWSClients, monkeypatch: pytest.MonkeyPatch) -> AWSClients:
    """Every AWS client of the command line goes to the (reset) moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_aws


@pytest.fixture
def spec(moto_env: AWSClients, tmp_path: Path) -> Path:
    return moto_spec(tmp_path)


def left_in_aws(aws: AWSClients) -> dict[str, int]:
    sm, scaling = aws.client("sagemaker"), aws.client("application-autoscaling")
    return {
        "endpoints": len(sm.list_endpoints()["Endpoints"]),
        "configs": len(sm.list_endpoint_configs()["EndpointConfigs"]),
        "models": len(sm.list_models()["Models"]),
        "targets": len(
            scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        ),
        "policies": len(
            scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
        ),
    }


NOTHING = {"endpoints": 0, "configs": 0, "models": 0, "targets": 0, "policies": 0}


def as_json(output: str) -> Any:
    return json.loads(output)


def test_plan_of_the_example_spec_shows_changes_and_cost(moto_env: AWSClients) -> None:
    calls = Calls.on(*(moto_env.client(s) for s in SERVICES))  # what reached moto
    result = run("plan", str(EXAMPLE_SPEC), "--json")
    assert result.exit_code == 0, result.output
    plan = as_json(result.stdout)
    assert plan["is_noop"] is False
    endpoint = plan["endpoint"]
    assert [(r["resource"], r["action"]) for r in endpoint["resources"]] == [
        ("model", "create"),
        ("endpoint-config", "create"),
        ("endpoint", "create"),
    ]
    assert [c["item"] for c in plan["scaling"]["changes"]][:2] == [
        "scalable-target",
        "scaling-policy",
    ]
    cost = endpoint["cost"]
    # the shipped table: ml.g5.2xlarge in us-east-1; the policies' bounds 1..2
    assert cost["hourly_price"] == pytest.approx(1.515)
    assert (cost["min_instances"], cost["max_instances"]) == (1, 2)
    assert cost["monthly_at_min"] == pytest.approx(1105.95)
    assert cost["monthly_at_max"] == pytest.approx(2211.9)
    assert cost["scale_to_zero_saving"] == pytest.approx(552.98, abs=0.01)
    assert cost["as_of"] == "2024-11-01"
    assert calls.writes == []

    text = run("plan", str(EXAMPLE_SPEC), "--idle-fraction", "0.8")
    assert text.exit_code == 0, text.output
    for shown in ("Plan for endpoint 'llm-twin'", "$1.515", "$1,105.95", "$2,211.90"):
        assert shown in text.stdout
    assert "scale-to-zero would save $884.76/month at 80% idle" in text.stdout
    assert "aws.amazon.com/sagemaker/pricing" in text.stdout
    assert "change(s) to apply" in text.stdout


def test_plan_with_a_price_file_and_an_unknown_region(
    moto_env: AWSClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_TWIN_AWS_REGION", "eu-north-1")
    unknown = run("plan", str(EXAMPLE_SPEC), "--json")
    assert unknown.exit_code == 0, unknown.output
    cost = as_json(unknown.stdout)["endpoint"]["cost"]
    assert cost["hourly_price"] is None
    assert "no prices for region eu-north-1" in cost["reason"]
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "as_of": "2026-01-01",
                "source": "our invoice",
                "prices": {"eu-north-1": {"ml.g5.2xlarge": 1.6}},
            }
        )
    )
    monkeypatch.setenv("LLM_TWIN_PRICE_FILE", str(prices))
    known = run("plan", str(EXAMPLE_SPEC), "--json")
    assert as_json(known.stdout)["endpoint"]["cost"]["hourly_price"] == 1.6


def test_up_dry_run_makes_read_calls_only(moto_env: AWSClients, spec: Path) -> None:
    calls = Calls.on(*(moto_env.client(s) for s in SERVICES))
    result = run("up", str(spec), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Plan for endpoint 'llm-twin'" in result.stdout
    assert calls.writes == []
    assert left_in_aws(moto_env) == NOTHING


def test_up_status_scale_list_down(moto_env: AWSClients, spec: Path) -> None:
    """The operator's day: up (twice), status, list, scale, down refused, dry run, down."""
    up = run("up", str(spec))
    assert up.exit_code == 0, up.output
    assert "deployed: llm-twin (InService, us-east-1)" in up.stdout
    assert "LLM_TWIN_SAGEMAKER_ENDPOINT=llm-twin" in up.stdout
    assert "endpoint llm-twin: InService" in up.output  # the progress, on stderr
    assert left_in_aws(moto_env) == {**NOTHING, "endpoints": 1, "configs": 1, "models": 1,
                                     "targets": 1, "policies": 1}  # fmt: skip

    again = run("plan", str(spec), "--json")
    assert as_json(again.stdout)["is_noop"] is True  # a second up would write nothing

    status = run("status", "llm-twin", "--json")
    assert status.exit_code == 0, status.output
    state = as_json(status.stdout)
    assert state["endpoint"]["status"] == "InService"
    assert state["endpoint"]["managed"] is True
    [scaling] = state["autoscaling"]
    assert (scaling["target"]["min_capacity"], scaling["target"]["max_capacity"]) == (1, 2)
    by_spec = run("status", str(spec))
    assert by_spec.exit_code == 0
    assert "InService" in by_spec.stdout
    assert "endpoint/llm-twin/variant/AllTraffic" in by_spec.stdout

    listed = run("list", "--json")
    assert [e["name"] for e in as_json(listed.stdout)] == ["llm-twin"]
    assert "llm-twin" in run("list").stdout

    # With a schedule, its actions set the bounds; without, --min/--max do (for this run).
    tracking = moto_spec(spec.parent, schedule=False)
    dry = run("scale", str(tracking), "--max", "3", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    changes = [(c["action"], c["item"]) for c in as_json(dry.stdout)["changes"]]
    assert changes == [
        ("update", "scalable-target"),
        ("delete", "scheduled-action"),  # this spec has none: the applied ones go
        ("delete", "scheduled-action"),
    ]
    scaled = run("scale", str(tracking), "--max", "3", "--json")
    assert scaled.exit_code == 0, scaled.output
    assert as_json(scaled.stdout)["target"]["max_capacity"] == 3
    back = run("scale", str(spec))  # the spec's own policies again
    assert back.exit_code == 0, back.output
    assert "1..2" in back.stdout
    assert "schedule llm-twin-llm-twin-business-hours" in back.stdout

    refused = run("down", "llm-twin")  # no terminal to ask, no --yes
    assert refused.exit_code == 2
    assert "refusing to remove endpoint 'llm-twin' without confirmation" in refused.output
    assert "--yes" in refused.output
    assert left_in_aws(moto_env)["endpoints"] == 1

    listing = run("down", "llm-twin", "--dry-run", "--json")
    assert listing.exit_code == 0, listing.output
    would = as_json(listing.stdout)["would_remove"]
    assert "endpoint llm-twin" in would
    assert any(item.startswith("endpoint-config llm-twin-") for item in would)
    assert any(item.startswith("model llm-twin-") for item in would)
    assert any(item.startswith("scalable-target") for item in would)
    assert left_in_aws(moto_env)["endpoints"] == 1

    down = run("down", str(spec), "--yes")
    assert down.exit_code == 0, down.output
    assert "Removed" in down.stdout
    assert left_in_aws(moto_env) == NOTHING
    assert run("down", "llm-twin", "--yes").stdout.strip() == "nothing to remove"  # idempotent


def test_scale_off_removes_autoscaling(moto_env: AWSClients, spec: Path) -> None:
    assert run("up", str(spec)).exit_code == 0
    off = run("scale", str(spec), "--off")
    assert off.exit_code == 0, off.output
    assert "no autoscaling" in off.stdout
    assert left_in_aws(moto_env)["targets"] == 0
    assert run("down", "llm-twin", "--yes").exit_code == 0


def test_status_of_an_unknown_endpoint(moto_env: AWSClients) -> None:
    result = run("status", "nope")
    assert result.exit_code == 1
    assert "ResourceNotFoundError" in result.output
    assert "Traceback" not in result.output


def test_scale_before_up_says_so(moto_env: AWSClients, spec: Path) -> None:
    result = run("scale", str(spec))
    assert result.exit_code == 1
    assert "endpoint 'llm-twin' is not deployed in us-east-1" in result.output
    assert f"llm-twin up {spec}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "0"], "min_capacity"),
        (["--off", "--max", "3"], "--off removes the autoscaling"),
    ],
)
def test_scale_refuses_bad_bounds_before_any_call(
    moto_env: AWSClients, spec: Path, args: list[str], message: str
) -> None:
    calls = Calls.on(*(moto_env.client(s) for s in SERVICES))
    result = run("scale", str(spec), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert calls.writes == []


def test_list_when_nothing_is_deployed(moto_env: AWSClients) -> None:
    result = run("list")
    assert result.exit_code == 0
    assert "no endpoints managed by llm-twin-sdk in us-east-1" in result.stdout
    assert as_json(run("list", "--json").stdout) == []


def test_scale_to_zero_example_costs(moto_env: AWSClients) -> None:
    """The inference-component example: its saving is the policy's own (moto lacks
    inference components, so its plan is estimated from the spec file alone)."""
    from llm_twin_sdk import estimate_cost

    example = load_spec(ZERO_SPEC)
    cost = estimate_cost(example.spec, example.scaling, region="us-east-1", idle_fraction=0.7)
    assert cost.scales_to_zero
    assert (cost.min_instances, cost.max_instances) == (0, 1)
