"""TwinDeployment: plan, up, ask, down — on moto (the control plane and autoscaling, real HTTP
on 127.0.0.1) and the SageMaker-runtime wire server (the endpoint's answers).

botocore reads per-service endpoint URLs from the environment: ``AWS_ENDPOINT_URL`` sends every
service to moto, ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` sends invocations to the wire server.
moto has no inference components: the inference-component plan with ScaleToZero is checked
against botocore's Stubber (the SageMaker service model) with CloudWatch on moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from fakes import AWSCalls as Calls
from fakes import Json, WireServer
from llm_twin_sdk import (
    AccessDeniedError,
    AWSClients,
    ConfigurationError,
    EndpointSpec,
    InferenceClient,
    InferenceComponentSpec,
    InferenceError,
    InvalidParameterError,
    LLMTwin,
    ScaleToZero,
    TargetTracking,
    TwinDeployment,
    TwinSettings,
    WaitProgress,
)
from llm_twin_sdk.retry import RetryPolicy

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest"
TOKEN = "hf_supersecrettoken123"
SERVICES = ("sagemaker", "application-autoscaling", "cloudwatch")
TRACKING = TargetTracking(metric="invocations", target=10, min_capacity=1, max_capacity=2)
REPLY = {
    "choices": [{"message": {"content": "A model that writes like you."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 7},
}


def make_spec(**overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": "twin",
        "role_arn": ROLE,
        "instance_type": "ml.g4dn.xlarge",  # moto rejects ml.g5.*
        "image_uri": IMAGE,
        "hf_token": TOKEN,
    }
    return EndpointSpec(**{**values, **overrides})


@pytest.fixture
def endpoints(
    moto_server: str, moto_aws: AWSClients, wire: WireServer, monkeypatch: pytest.MonkeyPatch
) -> WireServer:
    """Every AWS service on moto but SageMaker runtime, which is the wire server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", wire.url)
    return wire


@pytest.fixture
def aws(endpoints: WireServer) -> AWSClients:
    """The deployment's clients: no endpoint URL of their own (the environment's)."""
    return AWSClients(region="us-east-1")


@pytest.fixture
def calls(aws: AWSClients) -> Calls:
    """Every control-plane request that reached the wire (moto), by operation name."""
    return Calls.on(*(aws.client(service) for service in SERVICES))


@pytest.fixture
def deployment(aws: AWSClients, fast_retry: RetryPolicy, tmp_path: Path) -> TwinDeployment:
    settings = TwinSettings(qdrant_path=tmp_path / "qdrant", search="dense", top_k=2)
    return TwinDeployment(
        make_spec(), TRACKING, settings=settings, aws=aws, retry=fast_retry, poll_interval_s=0.01
    )


def left_in_aws(moto_aws: AWSClients) -> dict[str, list[Any]]:
    """What moto still holds, read without the SDK."""
    sm = moto_aws.client("sagemaker")
    scaling = moto_aws.client("application-autoscaling")
    return {
        "endpoints": sm.list_endpoints()["Endpoints"],
        "configs": sm.list_endpoint_configs()["EndpointConfigs"],
        "models": sm.list_models()["Models"],
        "targets": scaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"
        ],
        "policies": scaling.describe_scaling_policies(ServiceNamespace="sagemaker")[
            "ScalingPolicies"
        ],
        "alarms": moto_aws.client("cloudwatch").describe_alarms()["MetricAlarms"],
    }


def wrong(value: object) -> Any:
    """A value of the wrong type, passed as a user without a type checker would."""
    return value


NOTHING: dict[str, list[Any]] = {
    key: [] for key in ("endpoints", "configs", "models", "targets", "policies", "alarms")
}


def test_plan_up_ask_down_end_to_end(
    deployment: TwinDeployment, endpoints: WireServer, moto_aws: AWSClients, calls: Calls
) -> None:
    """The issue's one test: plan, up, ask through the endpoint, up again, down, nothing left."""
    plan = deployment.plan()
    assert calls.writes == []
    assert [(r.resource, r.action) for r in plan.endpoint.resources] == [
        ("model", "create"),
        ("endpoint-config", "create"),
        ("endpoint", "create"),
    ]
    assert [(c.action, c.item) for c in plan.scaling.changes] == [
        ("create", "scalable-target"),
        ("create", "scaling-policy"),
    ]
    text = str(plan)
    assert "Deployment plan for endpoint 'twin'" in text
    assert "Autoscaling plan for endpoint/twin/variant/AllTraffic" in text
    assert "bounds 1..2" in text
    # the cost at the policy's bounds, from the shipped table: ml.g4dn.xlarge, us-east-1
    assert plan.cost is not None
    assert plan.cost.hourly_price == 0.7364
    assert (plan.cost.monthly_at_min, plan.cost.monthly_at_max) == (537.57, 1075.14)
    assert "monthly: $537.57 at 1 instance(s), $1,075.14 at 2" in text
    assert TOKEN not in text + repr(plan) + repr(deployment)
    assert left_in_aws(moto_aws) == NOTHING

    progress: list[WaitProgress] = []
    with deployment.up(progress=progress.append) as twin:
        assert isinstance(twin, LLMTwin)
        assert calls.writes == [
            "CreateModel",
            "CreateEndpointConfig",
            "CreateEndpoint",
            "RegisterScalableTarget",
            "PutScalingPolicy",
        ]
        assert progress, "no progress reported"
        assert [(p.resource, p.status) for p in progress][-1] == ("endpoint", "InService")
        assert twin.client.context_window == 4096  # the spec's max_total_tokens
        twin.ingest(
            [
                {"id": "p1", "text": "An LLM twin is a model fine-tuned to write like you."},
                {"id": "p2", "text": "Scale to zero when nobody asks, to save GPU money."},
            ]
        )
        endpoints.reply(Json(REPLY))
        answer = twin.ask("What is an LLM twin?")
        assert answer.text == "A model that writes like you."
        assert answer.usage.completion_tokens == 7
        assert answer.sources
        assert "p1" in {source.document_id for source in answer.sources}
        (invocation,) = endpoints.to("invoke")
        assert invocation.endpoint == "twin"
        assert "fine-tuned to write like you" in json.dumps(invocation.body)
    with pytest.raises(InferenceError, match="closed"):  # the twin closed what up() built
        twin.client.generate("Still there?")

    calls.names.clear()
    with deployment.up() as again:  # same inputs: converged already, a new twin
        assert calls.writes == []
        endpoints.reply(Json(REPLY))
        assert again.ask("And what is it for?").sources  # same store, same endpoint
    assert deployment.plan().is_noop
    assert calls.writes == []

    removed = deployment.down()
    assert removed[0] == "endpoint twin"
    assert {r.split()[0] for r in removed} == {"endpoint", "endpoint-config", "model"}
    assert calls.writes[:2] == ["DeleteScalingPolicy", "DeregisterScalableTarget"]
    assert left_in_aws(moto_aws) == NOTHING


def test_plan_makes_no_write_even_when_everything_changes(
    deployment: TwinDeployment, aws: AWSClients, fast_retry: RetryPolicy, calls: Calls
) -> None:
    deployment.deploy()
    bigger = TwinDeployment(
        make_spec(instance_count=2),
        TargetTracking(metric="concurrency", target=4, min_capacity=2, max_capacity=3),
        aws=aws,
        retry=fast_retry,
    )
    calls.names.clear()

    plan = bigger.plan()

    assert calls.writes == []
    assert plan.endpoint.action("endpoint") == "update"
    assert [(c.action, c.item) for c in plan.scaling.changes] == [
        ("update", "scalable-target"),
        ("update", "scaling-policy"),
    ]
    assert not plan.is_noop
    assert "in place now" in str(plan.scaling)
    removal = TwinDeployment(make_spec(), None, aws=aws, retry=fast_retry).plan()
    assert [(c.action, c.item) for c in removal.scaling.changes] == [
        ("delete", "scaling-policy"),
        ("delete", "scalable-target"),
    ]
    assert calls.writes == []


def test_second_deploy_writes_nothing_and_scaling_none_removes_it(
    deployment: TwinDeployment,
    aws: AWSClients,
    fast_retry: RetryPolicy,
    calls: Calls,
    moto_aws: AWSClients,
) -> None:
    first = deployment.deploy()
    calls.names.clear()
    assert deployment.deploy() == first
    assert calls.writes == []

    unscaled = TwinDeployment(make_spec(), None, aws=aws, retry=fast_retry)
    unscaled.deploy()
    assert calls.writes == ["DeleteScalingPolicy", "DeregisterScalableTarget"]
    assert left_in_aws(moto_aws)["targets"] == []
    assert len(left_in_aws(moto_aws)["endpoints"]) == 1


def test_down_twice_and_down_before_up_are_fine(
    deployment: TwinDeployment, calls: Calls, moto_aws: AWSClients
) -> None:
    assert deployment.down() == []
    deployment.deploy()
    assert deployment.down()
    calls.names.clear()

    assert deployment.down() == []

    assert calls.writes == []
    assert left_in_aws(moto_aws) == NOTHING


def test_settings_for_endpoint_run_the_same_code_from_settings(
    deployment: TwinDeployment, endpoints: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``environment()`` in another process's environment: ``from_settings`` answers from it."""
    deployment.deploy()
    env = deployment.environment()
    assert env == {
        "LLM_TWIN_BACKEND": "sagemaker",
        "LLM_TWIN_SAGEMAKER_ENDPOINT": "twin",
        "LLM_TWIN_SAGEMAKER_API": "messages",
        "LLM_TWIN_AWS_REGION": "us-east-1",
        "LLM_TWIN_CONTEXT_WINDOW": "4096",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_env = TwinSettings()
    mine = deployment.settings_for_endpoint()
    for name in ("backend", "sagemaker_endpoint", "aws_region", "context_window"):
        assert getattr(from_env, name) == getattr(mine, name)
    assert mine.qdrant_path.name == "qdrant"  # the retrieval side stays the deployment's

    endpoints.reply(Json(REPLY))
    with InferenceClient.from_settings() as client:
        assert client.generate("What is an LLM twin?").text == "A model that writes like you."
    assert endpoints.to("invoke")[0].endpoint == "twin"


def test_from_settings_takes_region_and_retrieval_from_settings(
    endpoints: WireServer, calls: Calls, tmp_path: Path
) -> None:
    settings = TwinSettings(aws_region="eu-central-1", qdrant_path=tmp_path / "q")
    deployment = TwinDeployment.from_settings(make_spec(), TRACKING, settings)
    assert deployment.region == "eu-central-1"
    assert deployment.settings_for_endpoint().qdrant_path == tmp_path / "q"
    assert "TargetTracking(invocations -> 10, 1..2)" in repr(deployment)
    assert TOKEN not in repr(deployment)
    assert calls.names == []


def test_plan_cost_uses_the_price_file_of_the_settings(
    aws: AWSClients, calls: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LLM_TWIN_PRICE_FILE extends the shipped table; prices= given to plan() wins over it."""
    file = tmp_path / "prices.json"
    prices = {"us-east-1": {"ml.g4dn.xlarge": 0.5}}
    file.write_text(json.dumps({"as_of": "2026-01-15", "source": "ours", "prices": prices}))
    monkeypatch.setenv("LLM_TWIN_PRICE_FILE", str(file))
    settings = TwinSettings(qdrant_path=tmp_path / "q")
    deployment = TwinDeployment(make_spec(), TRACKING, settings=settings, aws=aws)
    plan = deployment.plan()
    assert plan.cost is not None
    assert (plan.cost.monthly_at_min, plan.cost.monthly_at_max) == (365.0, 730.0)
    assert plan.cost.source.startswith("ours; ")
    given = deployment.plan(prices={"us-east-1": {"ml.g4dn.xlarge": 1.0}})
    assert given.cost is not None
    assert given.cost.hourly_price == 1.0
    assert calls.writes == []


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda aws: TwinDeployment(wrong("twin"), aws=aws), InvalidParameterError, "EndpointSpec"),
        (
            lambda aws: TwinDeployment(make_spec(), wrong("fast"), aws=aws),
            InvalidParameterError,
            "policy",
        ),
        (  # scale to zero needs inference components
            lambda aws: TwinDeployment(
                make_spec(),
                ScaleToZero(
                    target_tracking=TargetTracking(
                        metric="concurrency", target=4, min_capacity=0, max_capacity=2
                    )
                ),
                aws=aws,
            ),
            InvalidParameterError,
            "inference-component endpoint",
        ),
        (  # a model-based endpoint cannot go to zero instances
            lambda aws: TwinDeployment(
                make_spec(),
                TargetTracking(metric="invocations", target=5, min_capacity=0, max_capacity=2),
                aws=aws,
            ),
            InvalidParameterError,
            "min_capacity",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), settings=wrong({"top_k": 3}), aws=aws),
            ConfigurationError,
            "TwinSettings",
        ),
        (
            lambda aws: TwinDeployment(
                make_spec(),
                settings=TwinSettings(backend="sagemaker", sagemaker_endpoint="other"),
                aws=aws,
            ),
            ConfigurationError,
            "'other'",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), aws=wrong("us-east-1")),
            ConfigurationError,
            "aws",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), aws=aws, retry=wrong(3)),
            ConfigurationError,
            "RetryPolicy",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), aws=aws).up(progress=wrong("print")),
            InvalidParameterError,
            "progress",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), aws=aws).plan(idle_fraction=2),
            InvalidParameterError,
            "idle_fraction",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), aws=aws).plan(
                prices={"us-east-1": {"ml.g4dn.xlarge": -1}}
            ),
            ConfigurationError,
            r"us-east-1\.ml\.g4dn\.xlarge: price must be > 0",
        ),
        (
            lambda aws: TwinDeployment(make_spec(), aws=aws).up(timeout_s=0),
            InvalidParameterError,
            "timeout_s",
        ),
    ],
)
def test_bad_input_is_a_typed_error_before_any_aws_call(
    aws: AWSClients, calls: Calls, build: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build(aws)
    assert calls.names == []


# -- inference components and scale-to-zero: Stubber (SageMaker, autoscaling), moto (alarms) --


@dataclass
class Stubbed:
    aws: AWSClients
    sagemaker: Stubber
    autoscaling: Stubber


@pytest.fixture
def stubbed(moto_aws: AWSClients) -> Iterator[Stubbed]:
    """Clients whose SageMaker and autoscaling calls are stubbed, CloudWatch on moto."""
    aws = AWSClients(region="us-east-1")
    aws._clients["cloudwatch"] = moto_aws.client("cloudwatch")
    stubs = Stubbed(
        aws, Stubber(aws.client("sagemaker")), Stubber(aws.client("application-autoscaling"))
    )
    with stubs.sagemaker, stubs.autoscaling:
        yield stubs
        stubs.sagemaker.assert_no_pending_responses()
        stubs.autoscaling.assert_no_pending_responses()


def test_plan_of_a_scale_to_zero_component_deployment(
    stubbed: Stubbed, fast_retry: RetryPolicy
) -> None:
    spec = make_spec(components=InferenceComponentSpec(min_instances=0, max_instances=1))
    policy = ScaleToZero(
        target_tracking=TargetTracking(
            metric="concurrency", target=4, min_capacity=0, max_capacity=2
        )
    )
    missing = {"service_error_code": "ValidationException", "service_message": "Could not find"}
    for operation in (
        "describe_model",
        "describe_endpoint_config",
        "describe_endpoint",
        "describe_inference_component",
    ):
        stubbed.sagemaker.add_client_error(operation, **missing)
    key = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "inference-component/twin-ic",
        "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
    }
    targets = {
        "ServiceNamespace": "sagemaker",
        "ResourceIds": ["inference-component/twin-ic"],
        "ScalableDimension": key["ScalableDimension"],
    }
    stubbed.autoscaling.add_response("describe_scalable_targets", {"ScalableTargets": []}, targets)
    stubbed.autoscaling.add_response("describe_scaling_policies", {"ScalingPolicies": []}, key)
    stubbed.autoscaling.add_response("describe_scheduled_actions", {"ScheduledActions": []}, key)

    deployment = TwinDeployment(spec, policy, aws=stubbed.aws, retry=fast_retry)
    plan = deployment.plan(prices={"us-east-1": {"ml.g4dn.xlarge": 0.8}}, idle_fraction=0.25)

    assert plan.endpoint.action("inference-component") == "create"
    # instances 0..1 (managed instance scaling); idle 25% of 730 h x $0.80 = $146.00 saved
    assert plan.cost == plan.endpoint.cost
    assert plan.cost is not None
    assert (plan.cost.min_instances, plan.cost.max_instances) == (0, 1)
    assert (plan.cost.monthly_at_min, plan.cost.monthly_at_max) == (0, 584.0)
    assert plan.cost.scales_to_zero
    assert plan.cost.scale_to_zero_saving == 146.0
    assert "scale-to-zero saves $146.00/month at 25% idle" in str(plan)
    assert [(c.action, c.item) for c in plan.scaling.changes] == [
        ("create", "scalable-target"),
        ("create", "scaling-policy"),
        ("create", "scaling-policy"),
        ("create", "alarm"),
    ]
    text = str(plan.scaling)
    assert "bounds 0..2" in text
    assert "NoCapacityInvocationFailures -> policy llm-twin-twin-scale-from-zero" in text
    assert moto_alarms(stubbed.aws) == []  # the plan wrote no alarm


def moto_alarms(aws: AWSClients) -> list[Any]:
    return list(aws.client("cloudwatch").describe_alarms()["MetricAlarms"])


def test_a_scaling_failure_after_deploy_is_typed_and_says_what_stands(
    deployment: TwinDeployment, aws: AWSClients, moto_aws: AWSClients
) -> None:
    key = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/twin/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    with Stubber(aws.client("application-autoscaling")) as autoscaling:
        autoscaling.add_response(
            "describe_scalable_targets",
            {"ScalableTargets": []},
            {
                **{k: v for k, v in key.items() if k != "ResourceId"},
                "ResourceIds": [key["ResourceId"]],
            },
        )
        autoscaling.add_response("describe_scaling_policies", {"ScalingPolicies": []}, key)
        autoscaling.add_response("describe_scheduled_actions", {"ScheduledActions": []}, key)
        autoscaling.add_client_error(
            "register_scalable_target",
            service_error_code="AccessDeniedException",
            service_message="not authorized to perform: application-autoscaling:Register...",
        )
        with pytest.raises(AccessDeniedError, match="register_scalable_target") as caught:
            deployment.up()
        autoscaling.assert_no_pending_responses()
    assert "'twin' is deployed but its autoscaling is not as asked" in str(caught.value.__notes__)
    assert len(left_in_aws(moto_aws)["endpoints"]) == 1  # a deployed endpoint is kept...
    deployment.down()
    assert left_in_aws(moto_aws) == NOTHING  # ... until down


def test_scale_to_zero_on_a_fleet_that_cannot_shrink_warns(
    aws: AWSClients, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    spec = make_spec(components=InferenceComponentSpec(min_instances=1, max_instances=2))
    tracking = TargetTracking(metric="concurrency", target=4, min_capacity=0, max_capacity=2)
    with caplog.at_level("WARNING", logger="llm_twin_sdk.deployment"):
        deployment = TwinDeployment(spec, [ScaleToZero(target_tracking=tracking)], aws=aws)
    assert "instances keep running" in caplog.text
    assert deployment.scaling == [ScaleToZero(target_tracking=tracking)]
    assert calls.names == []
