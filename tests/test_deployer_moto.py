"""Deployer against moto in server mode: real HTTP round trips on 127.0.0.1.

moto covers model / endpoint-config / endpoint CRUD and tags (endpoints are InService at
once). It lacks update_endpoint and inference components: those are in
test_deployer_stubber.py. moto rejects ml.g5.*, so these specs use ml.g4dn.xlarge.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakes import AWSCalls as Calls
from llm_twin_sdk import scaling
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy import deployer as deployer_module
from llm_twin_sdk.deploy.deployer import Deployer, Endpoint, EndpointStatus
from llm_twin_sdk.deploy.spec import MANAGED_BY_TAG, EndpointRef, EndpointSpec
from llm_twin_sdk.errors import ConfigurationError, InvalidParameterError, ResourceNotFoundError
from llm_twin_sdk.retry import RetryPolicy

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest"
TOKEN = "hf_supersecrettoken123"


def make_spec(name: str = "twin", **overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": name,
        "role_arn": ROLE,
        "instance_type": "ml.g4dn.xlarge",
        "image_uri": IMAGE,
        "hf_token": TOKEN,
        "tags": {"team": "ml"},
    }
    values.update(overrides)
    return EndpointSpec(**values)


@dataclass
class FakeScaler:
    """Records what Deployer.delete asks the autoscaler to remove."""

    removed: list[EndpointRef] = field(default_factory=list)

    def remove(self, endpoint: EndpointRef) -> None:
        self.removed.append(endpoint)


@pytest.fixture
def sm(moto_aws: AWSClients) -> Any:
    return moto_aws.client("sagemaker")


@pytest.fixture
def calls(sm: Any) -> Calls:
    return Calls.on(sm)


@pytest.fixture
def scaler() -> FakeScaler:
    return FakeScaler()


@pytest.fixture
def deployer(moto_aws: AWSClients, fast_retry: RetryPolicy, scaler: FakeScaler) -> Deployer:
    return Deployer(aws=moto_aws, retry=fast_retry, autoscaler=scaler, poll_interval_s=0.01)


def tags_of(sm: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def test_deploy_creates_model_config_and_endpoint_with_tags(
    deployer: Deployer, sm: Any, calls: Calls
) -> None:
    spec = make_spec()
    endpoint = deployer.deploy(spec)

    assert isinstance(endpoint, Endpoint)
    assert isinstance(endpoint, EndpointRef)
    assert endpoint.name == "twin"
    assert endpoint.status == "InService"
    assert endpoint.region == "us-east-1"
    assert endpoint.endpoint_config_name == spec.endpoint_config_name
    assert endpoint.model_name == spec.model_name
    assert endpoint.config_hash == spec.config_hash
    assert endpoint.kind == "model"
    assert endpoint.arn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/twin"
    assert calls.writes == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]

    model = sm.describe_model(ModelName=spec.model_name)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["Environment"]["HUGGING_FACE_HUB_TOKEN"] == TOKEN
    assert model["PrimaryContainer"]["Environment"]["HF_MODEL_ID"] == spec.model_id
    assert model["ExecutionRoleArn"] == ROLE

    config = sm.describe_endpoint_config(EndpointConfigName=spec.endpoint_config_name)
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["ModelName"] == spec.model_name
    assert variant["InitialInstanceCount"] == 1
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 900

    live = sm.describe_endpoint(EndpointName="twin")
    assert live["EndpointConfigName"] == spec.endpoint_config_name
    expected_tags = {
        "team": "ml",
        MANAGED_BY_TAG[0]: MANAGED_BY_TAG[1],
        "llm-twin-sdk:spec-hash": spec.config_hash,
    }
    for arn in (model["ModelArn"], config["EndpointConfigArn"], live["EndpointArn"]):
        assert tags_of(sm, arn) == expected_tags


def test_redeploying_an_unchanged_spec_makes_no_write_call(
    deployer: Deployer, calls: Calls
) -> None:
    spec = make_spec()
    first = deployer.deploy(spec)
    calls.names.clear()

    again = deployer.deploy(spec)

    assert calls.writes == []
    assert calls.names == ["DescribeModel", "DescribeEndpointConfig", "DescribeEndpoint"]
    assert again == first


def test_plan_is_read_only_and_shows_create_then_keep_then_update(
    deployer: Deployer, calls: Calls
) -> None:
    spec = make_spec()
    plan = deployer.plan(spec)
    assert calls.writes == []
    assert [(r.resource, r.action) for r in plan.resources] == [
        ("model", "create"),
        ("endpoint-config", "create"),
        ("endpoint", "create"),
    ]
    assert plan.image_uri == IMAGE
    assert plan.region == "us-east-1"
    assert not plan.is_noop
    text = str(plan)
    assert "Deployment plan for endpoint 'twin'" in text
    for name in (spec.model_name, spec.endpoint_config_name, IMAGE):
        assert name in text
    assert TOKEN not in text
    assert TOKEN not in repr(plan)
    assert "HUGGING_FACE_HUB_TOKEN=**********" in text
    # the limits the docs tell users to check are shown, not masked as secrets
    for limit in ("MAX_INPUT_TOKENS=2048", "MAX_TOTAL_TOKENS=4096", "MAX_BATCH_TOTAL_TOKENS=4096"):
        assert limit in text
    assert "MAX_BATCH_PREFILL_TOKENS=2048" in text
    extra = deployer.plan(make_spec(environment={"OPENAI_API_KEY": "sk-abc", "LOG_LEVEL": "info"}))
    assert extra.environment["OPENAI_API_KEY"] == "**********"
    assert extra.environment["LOG_LEVEL"] == "info"
    assert "sk-abc" not in str(extra)

    deployer.deploy(spec)
    kept = deployer.plan(spec)
    assert kept.is_noop
    assert {r.action for r in kept.resources} == {"keep"}
    assert "nothing to do" in str(kept)

    bigger = make_spec(instance_count=2, rollout={"traffic": "canary", "step_percent": 25})
    changed = deployer.plan(bigger)
    assert changed.cost is not None  # the spec's fleet, no policy: 2 x $0.7364 x 730 h
    assert changed.cost.monthly_at_min == changed.cost.monthly_at_max == 1075.14
    assert changed.action("model") == "keep"  # same container: the model is reused
    assert changed.action("endpoint-config") == "create"
    assert changed.action("endpoint") == "update"
    endpoint_entry = changed.get("endpoint")
    assert endpoint_entry is not None
    assert spec.endpoint_config_name in endpoint_entry.detail
    assert bigger.endpoint_config_name in endpoint_entry.detail
    assert "canary 25%" in endpoint_entry.detail
    assert changed.current_config_name == spec.endpoint_config_name
    calls.names.clear()
    deployer.plan(bigger)
    assert calls.writes == []


def test_plan_of_an_instance_type_without_a_price_says_unknown(deployer: Deployer) -> None:
    """An instance type the price table lacks: the plan is whole, its cost says unknown."""
    plan = deployer.plan(make_spec(instance_type="ml.p3.2xlarge"))
    assert plan.action("endpoint") == "create"
    assert plan.cost is not None
    assert plan.cost.hourly_price is None
    assert plan.cost.monthly_at_max is None
    assert "unknown: no price for ml.p3.2xlarge in us-east-1" in str(plan)


def test_plan_looks_the_image_up_offline_when_none_is_given(deployer: Deployer) -> None:
    plan = deployer.plan(make_spec(image_uri=None))
    assert plan.image_uri.startswith("763104351884.dkr.ecr.us-east-1.amazonaws.com/")
    assert "tgi" in plan.image_uri


def test_status_and_list_show_only_endpoints_the_sdk_manages(deployer: Deployer, sm: Any) -> None:
    deployer.deploy(make_spec())
    deployer.deploy(make_spec("twin-b", instance_count=2))
    # An endpoint made by hand, without the SDK's tag.
    sm.create_model(
        ModelName="other-model", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
    )
    sm.create_endpoint_config(
        EndpointConfigName="other-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "other-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.xlarge",
            }
        ],
    )
    sm.create_endpoint(EndpointName="other", EndpointConfigName="other-config")

    status = deployer.status("twin")
    assert isinstance(status, EndpointStatus)
    assert status.name == "twin"
    assert status.status == "InService"
    assert status.endpoint_config_name == make_spec().endpoint_config_name
    assert status.kind == "model"
    assert status.variant_name == "AllTraffic"
    assert status.instance_type == "ml.g4dn.xlarge"
    assert status.current_instance_count == 1
    assert status.copies is None
    assert status.failure_reason is None
    assert status.created_at is not None
    assert status.modified_at is not None
    assert status.managed is True
    assert status.ref() == EndpointRef(name="twin")
    assert "twin: InService" in str(status)

    assert deployer.status("other").managed is False

    listed = deployer.list()
    assert [s.name for s in listed] == ["twin", "twin-b"]
    assert listed[1].desired_instance_count == 2
    assert all(s.managed for s in listed)


def test_status_of_a_missing_endpoint_is_not_found(deployer: Deployer) -> None:
    with pytest.raises(ResourceNotFoundError, match="describe_endpoint"):
        deployer.status("missing")


def test_delete_removes_everything_the_sdk_created_and_nothing_else(
    deployer: Deployer, sm: Any, scaler: FakeScaler, calls: Calls
) -> None:
    spec = make_spec()
    deployer.deploy(spec)
    neighbour = make_spec("twin-b")
    deployer.deploy(neighbour)
    # A leftover of an earlier version of "twin" (same naming, SDK-tagged)...
    old = make_spec(max_total_tokens=3000, max_batch_total_tokens=3000)
    sm.create_model(
        ModelName=old.model_name,
        PrimaryContainer={"Image": IMAGE},
        ExecutionRoleArn=ROLE,
        Tags=old.aws_tags(),
    )
    # ... and a look-alike the SDK did not create (no tag): it must stay.
    sm.create_model(
        ModelName="twin-0badc0de",
        PrimaryContainer={"Image": IMAGE},
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    calls.names.clear()

    planned = deployer.delete("twin", dry_run=True)  # read calls only: what would go
    assert calls.writes == []
    assert scaler.removed == []
    removed = deployer.delete("twin")

    assert removed == planned
    assert removed[0] == "endpoint twin"
    assert sorted(removed[1:]) == sorted(
        [
            f"endpoint-config {spec.endpoint_config_name}",
            f"model {spec.model_name}",
            f"model {old.model_name}",
        ]
    )
    assert scaler.removed == [EndpointRef(name="twin", variant_name="AllTraffic")]
    assert calls.writes[0] == "DeleteEndpoint"  # after autoscaling, before configs and models
    endpoints = {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    models = {m["ModelName"] for m in sm.list_models()["Models"]}
    assert endpoints == {"twin-b"}
    assert configs == {neighbour.endpoint_config_name}
    assert models == {neighbour.model_name, "twin-0badc0de"}
    with pytest.raises(ResourceNotFoundError):
        deployer.status("twin")


def test_deleting_twice_or_a_missing_endpoint_is_fine(
    deployer: Deployer, scaler: FakeScaler, calls: Calls
) -> None:
    deployer.deploy(make_spec())
    assert deployer.delete("twin")
    calls.names.clear()

    assert deployer.delete("twin") == []
    assert deployer.delete("never-existed") == []
    assert calls.writes == []
    assert len(scaler.removed) == 1  # only the first delete had autoscaling to remove


def test_redeploy_after_delete_creates_again(deployer: Deployer, calls: Calls) -> None:
    spec = make_spec()
    deployer.deploy(spec)
    deployer.delete("twin")
    calls.names.clear()
    assert deployer.deploy(spec).status == "InService"
    assert calls.writes == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda d: d.delete("bad_name!"), "endpoint name"),
        (lambda d: d.status("-twin"), "endpoint name"),
        (lambda d: d.delete("twin", timeout_s=0), "timeout_s"),
        (lambda d: d.deploy(make_spec(), timeout_s=-1), "timeout_s"),
        (
            lambda d: d.plan(make_spec(instance_type="ml.c5.xlarge", num_gpus=None, components={})),
            "components.accelerators",
        ),
        (
            lambda d: d.deploy(make_spec(instance_type="ml.g4dn.12xlarge", components={})),
            "num_gpus",
        ),
        (
            lambda d: d.deploy(make_spec(rollout={"traffic": "canary", "step_percent": 60})),
            "rollout.step_percent",
        ),
        (
            lambda d: d.plan(make_spec(rollout={"traffic": "linear", "step_percent": 5})),
            "rollout.step_percent",
        ),
        (lambda d: d.plan("twin"), "EndpointSpec"),
    ],
)
def test_invalid_input_fails_before_any_aws_call(
    deployer: Deployer, calls: Calls, action: Any, match: str
) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        action(deployer)
    assert calls.names == []


def test_default_autoscaler_is_built_lazily_from_the_aws_clients(
    moto_aws: AWSClients, fast_retry: RetryPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    removed: list[EndpointRef] = []

    class RecordingAutoScaler:
        def __init__(self, *, aws: AWSClients, retry: RetryPolicy) -> None:
            built.append((aws, retry))

        def remove(self, endpoint: EndpointRef) -> None:
            removed.append(endpoint)

    monkeypatch.setattr(deployer_module, "AutoScaler", RecordingAutoScaler)
    deployer = Deployer(aws=moto_aws, retry=fast_retry)
    deployer.deploy(make_spec())
    deployer.delete("twin")
    deployer.delete("twin")
    assert built == [(moto_aws, fast_retry)]  # built once, on first use, same retry policy
    assert removed == [EndpointRef(name="twin")]


def test_deploy_imports_scaling_explicitly_and_scaling_never_imports_deploy() -> None:
    """No hidden import (importlib) from deploy to scaling, and no import back up: scaling
    sits below deploy and shares the endpoint's identity through llm_twin_sdk.endpoint."""
    code = (
        "import sys\n"
        "import llm_twin_sdk.scaling\n"
        "assert not [m for m in sys.modules if m.startswith('llm_twin_sdk.deploy')], 'up'\n"
        "import llm_twin_sdk.deploy.deployer as d\n"
        "from llm_twin_sdk.scaling import AutoScaler\n"
        "assert d.AutoScaler is AutoScaler\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    source = Path(deployer_module.__file__).read_text(encoding="utf-8")
    assert "import_module" not in source


def test_a_client_only_deployer_warns_that_it_cannot_remove_autoscaling(
    moto_aws: AWSClients, fast_retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    deployer = Deployer(sagemaker_client=moto_aws.client("sagemaker"), retry=fast_retry)
    deployer.deploy(make_spec())
    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.deploy.deployer"):
        deployer.delete("twin")
    assert "autoscaling not removed" in caplog.text


def test_delete_removes_real_variant_autoscaling(
    moto_aws: AWSClients, fast_retry: RetryPolicy
) -> None:
    """End to end with the real AutoScaler (the default one), all on moto."""
    deployer = Deployer(aws=moto_aws, retry=fast_retry)
    endpoint = deployer.deploy(make_spec())
    scaler = scaling.AutoScaler(aws=moto_aws, retry=fast_retry)
    policy = scaling.TargetTracking(metric="invocations", target=50, min_capacity=1, max_capacity=4)
    scaler.apply(endpoint, policy)
    assert scaler.describe(endpoint).target is not None

    deployer.delete("twin")

    assert scaler.describe(endpoint).target is None


def test_region_profile_and_injected_clients_are_exclusive(moto_aws: AWSClients) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Deployer(aws=moto_aws, region="us-east-1")
    with pytest.raises(ConfigurationError, match="poll_interval_s"):
        Deployer(aws=moto_aws, poll_interval_s=0)
