"""Deployer against botocore's Stubber: what moto lacks, checked against AWS's service model.

Every call is validated by botocore (parameter names and types of the real SageMaker API),
its exact parameters are asserted where they matter, and the whole sequence is asserted with
``assert_no_pending_responses``: an unexpected call fails, a missing call fails.
Covered: blue/green ``update_endpoint``, inference components (create, poll, update,
failure), ``Failed`` endpoints with their FailureReason and the clean-up, wait timeouts,
throttling, progress reporting and deleting an inference-component endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from pydantic import ValidationError

from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.deployer import Deployer, Endpoint
from llm_twin_sdk.deploy.spec import EndpointRef, EndpointSpec, InferenceComponentSpec
from llm_twin_sdk.deploy.waiting import WaitProgress
from llm_twin_sdk.errors import (
    AWSError,
    DeploymentError,
    EndpointTimeoutError,
    LLMTwinError,
)
from llm_twin_sdk.retry import RetryPolicy

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest"
TOKEN = "hf_supersecrettoken123"
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
OLD_CONFIG = "twin-0000aaaa"
OLD_MODEL = "twin-0000bbbb"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
REASON = (
    "The primary container for production variant AllTraffic did not pass the ping health check."
)


def make_spec(**overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": "twin",
        "role_arn": ROLE,
        "image_uri": IMAGE,
        "hf_token": TOKEN,
    }
    values.update(overrides)
    return EndpointSpec(**values)


def ic_spec(**overrides: Any) -> EndpointSpec:
    components = InferenceComponentSpec(
        copies=2, accelerators=1, cpu_cores=4, memory_mb=16384, min_instances=0, max_instances=2
    )
    return make_spec(components=components, **overrides)


# -- fakes ------------------------------------------------------------------------------------


@dataclass
class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeScaler:
    removed: list[EndpointRef] = field(default_factory=list)

    def remove(self, endpoint: EndpointRef) -> None:
        self.removed.append(endpoint)


# -- stubbed responses ------------------------------------------------------------------------


def endpoint(
    status: str,
    config: str,
    *,
    reason: str | None = None,
    pending: str | None = None,
    variants: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "EndpointName": "twin",
        "EndpointArn": f"{ARN}:endpoint/twin",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if reason:
        out["FailureReason"] = reason
    if pending:
        out["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    if variants is not None:
        out["ProductionVariants"] = variants
    return out


def component(
    status: str, model: str, *, reason: str | None = None, spec: EndpointSpec | None = None
) -> dict[str, Any]:
    spec = spec or ic_spec()
    out: dict[str, Any] = {
        "InferenceComponentName": "twin-ic",
        "InferenceComponentArn": f"{ARN}:inference-component/twin-ic",
        "EndpointName": "twin",
        "EndpointArn": f"{ARN}:endpoint/twin",
        "VariantName": "AllTraffic",
        "Specification": {
            "ModelName": model,
            "StartupParameters": {"ContainerStartupHealthCheckTimeoutInSeconds": 900},
            "ComputeResourceRequirements": {
                "NumberOfAcceleratorDevicesRequired": 1.0,
                "NumberOfCpuCoresRequired": 4.0,
                "MinMemoryRequiredInMb": 16384,
            },
        },
        "RuntimeConfig": {"DesiredCopyCount": 2, "CurrentCopyCount": 2},
        "InferenceComponentStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if reason:
        out["FailureReason"] = reason
    return out


def component_listing() -> dict[str, Any]:
    """``list_inference_components`` answer: the endpoint's one component, twin-ic."""
    return {
        "InferenceComponents": [
            {
                "InferenceComponentName": "twin-ic",
                "InferenceComponentArn": f"{ARN}:inference-component/twin-ic",
                "EndpointName": "twin",
                "EndpointArn": f"{ARN}:endpoint/twin",
                "VariantName": "AllTraffic",
                "CreationTime": NOW,
                "LastModifiedTime": NOW,
            }
        ]
    }


def ic_config(name: str, spec: EndpointSpec) -> dict[str, Any]:
    assert spec.components is not None
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"{ARN}:endpoint-config/{name}",
        "ExecutionRoleArn": ROLE,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "InstanceType": spec.instance_type,
                "InitialInstanceCount": 1,
                "ManagedInstanceScaling": {
                    "Status": "ENABLED",
                    "MinInstanceCount": spec.components.min_instances,
                    "MaxInstanceCount": spec.components.max_instances,
                },
                "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
            }
        ],
        "CreationTime": NOW,
    }


class Script:
    """Queues the expected SageMaker calls, in order, on a Stubber."""

    def __init__(self, stub: Stubber) -> None:
        self.stub = stub

    def ok(self, operation: str, response: dict[str, Any], **params: Any) -> None:
        self.stub.add_response(operation, response, params or None)

    def missing(self, operation: str, **params: Any) -> None:
        self.stub.add_client_error(
            operation,
            service_error_code="ValidationException",
            service_message=f"Could not find resource for {operation}.",
            http_status_code=400,
            expected_params=params or None,
        )

    def throttled(self, operation: str) -> None:
        self.stub.add_client_error(
            operation,
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )

    # common sequences

    def observe(
        self,
        spec: EndpointSpec,
        *,
        model: bool = False,
        config: bool = False,
        live: dict[str, Any] | None = None,
    ) -> None:
        """The describe calls of Deployer.plan for a model-based spec."""
        if model:
            self.ok("describe_model", model_description(spec.model_name))
        else:
            self.missing("describe_model", ModelName=spec.model_name)
        if config:
            self.ok(
                "describe_endpoint_config",
                config_description(spec),
                EndpointConfigName=spec.endpoint_config_name,
            )
        else:
            self.missing("describe_endpoint_config", EndpointConfigName=spec.endpoint_config_name)
        if live is None:
            self.missing("describe_endpoint", EndpointName="twin")
        else:
            self.ok("describe_endpoint", live, EndpointName="twin")

    def create_model(self, spec: EndpointSpec) -> None:
        self.ok(
            "create_model",
            {"ModelArn": f"{ARN}:model/{spec.model_name}"},
            ModelName=spec.model_name,
            PrimaryContainer={
                "Image": IMAGE,
                "Environment": spec.container_environment(reveal_secrets=True),
            },
            ExecutionRoleArn=ROLE,
            Tags=spec.aws_tags(),
        )

    def create_config(self, spec: EndpointSpec, **params: Any) -> None:
        """create_endpoint_config; exact ``params`` when given, else the name, tags (and role)."""
        if not params:
            params = {
                "EndpointConfigName": spec.endpoint_config_name,
                "ProductionVariants": ANY,
                "Tags": spec.aws_tags(),
            }
            if spec.components is not None:
                params["ExecutionRoleArn"] = ROLE
        self.ok(
            "create_endpoint_config",
            {"EndpointConfigArn": f"{ARN}:endpoint-config/{spec.endpoint_config_name}"},
            **params,
        )


def config_description(spec: EndpointSpec) -> dict[str, Any]:
    if spec.components is not None:
        return ic_config(spec.endpoint_config_name, spec)
    return {
        "EndpointConfigName": spec.endpoint_config_name,
        "EndpointConfigArn": f"{ARN}:endpoint-config/{spec.endpoint_config_name}",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": spec.model_name,
                "InitialInstanceCount": spec.instance_count,
                "InstanceType": spec.instance_type,
            }
        ],
        "CreationTime": NOW,
    }


def model_description(name: str) -> dict[str, Any]:
    return {"ModelName": name, "ModelArn": f"{ARN}:model/{name}", "CreationTime": NOW}


@pytest.fixture
def sm(aws_credentials: None) -> Any:
    """A real SageMaker client (fake credentials); the Stubber answers instead of AWS."""
    return AWSClients(region="us-east-1").client("sagemaker")


@pytest.fixture
def ops(sm: Any) -> list[str]:
    """Every SageMaker operation the code calls, stubbed or not (an unexpected call that the
    clean-up swallows as an error still shows here)."""
    names: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        names.append(event_name.rsplit(".", 1)[-1])

    sm.meta.events.register("before-parameter-build.sagemaker.*", record)
    return names


def writes(ops: list[str]) -> list[str]:
    return [op for op in ops if not op.startswith(("Describe", "List"))]


@pytest.fixture
def stub(sm: Any) -> Iterator[Stubber]:
    with Stubber(sm) as stubber:
        yield stubber


@pytest.fixture
def script(stub: Stubber) -> Script:
    return Script(stub)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def progress() -> list[WaitProgress]:
    return []


@pytest.fixture
def scaler() -> FakeScaler:
    return FakeScaler()


@pytest.fixture
def deployer(
    sm: Any,
    fast_retry: RetryPolicy,
    clock: FakeClock,
    progress: list[WaitProgress],
    scaler: FakeScaler,
) -> Deployer:
    return Deployer(
        sagemaker_client=sm,
        retry=fast_retry,
        poll_interval_s=10,
        sleep=clock.sleep,
        clock=clock,
        on_progress=progress.append,
        autoscaler=scaler,
    )


# -- blue/green updates -----------------------------------------------------------------------

ALARMS = ("twin-5xx", "twin-p99-latency")


@pytest.mark.parametrize(
    ("rollout", "deployment_config"),
    [
        (
            {
                "traffic": "canary",
                "step_percent": 20,
                "step_wait_s": 600,
                "termination_wait_s": 120,
                "rollback_alarms": ALARMS,
            },
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 600,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                    },
                    "TerminationWaitInSeconds": 120,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [{"AlarmName": "twin-5xx"}, {"AlarmName": "twin-p99-latency"}]
                },
            },
        ),
        (
            {
                "traffic": "linear",
                "step_percent": 25,
                "step_wait_s": 300,
                "rollback_alarms": ALARMS[:1],
            },
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR",
                        "WaitIntervalInSeconds": 300,
                        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                    },
                    "TerminationWaitInSeconds": 0,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "twin-5xx"}]},
            },
        ),
        (
            {"traffic": "all_at_once", "step_wait_s": 0},
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 0,
                    },
                    "TerminationWaitInSeconds": 0,
                }
            },
        ),
    ],
    ids=["canary", "linear", "all-at-once"],
)
def test_update_moves_an_existing_endpoint_blue_green(
    deployer: Deployer,
    script: Script,
    clock: FakeClock,
    rollout: dict[str, Any],
    deployment_config: dict[str, Any],
) -> None:
    spec = make_spec(rollout=rollout)
    script.observe(spec, live=endpoint("InService", OLD_CONFIG))
    script.create_model(spec)
    script.create_config(
        spec,
        EndpointConfigName=spec.endpoint_config_name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": spec.model_name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g5.2xlarge",
                "ContainerStartupHealthCheckTimeoutInSeconds": 900,
            }
        ],
        Tags=spec.aws_tags(),
    )
    script.ok(
        "update_endpoint",
        {"EndpointArn": f"{ARN}:endpoint/twin"},
        EndpointName="twin",
        EndpointConfigName=spec.endpoint_config_name,
        DeploymentConfig=deployment_config,
    )
    script.ok(
        "describe_endpoint",
        endpoint("Updating", OLD_CONFIG, pending=spec.endpoint_config_name),
        EndpointName="twin",
    )
    script.ok("describe_endpoint", endpoint("InService", spec.endpoint_config_name))

    result = deployer.deploy(spec)

    script.stub.assert_no_pending_responses()
    assert result.status == "InService"
    assert result.endpoint_config_name == spec.endpoint_config_name
    assert clock.sleeps == [10]


def test_plan_of_an_update_names_the_rollout(deployer: Deployer, script: Script) -> None:
    spec = make_spec(rollout={"traffic": "canary", "step_percent": 10, "rollback_alarms": ALARMS})
    script.observe(spec, model=True, live=endpoint("InService", OLD_CONFIG))
    plan = deployer.plan(spec)
    assert plan.action("model") == "keep"
    assert plan.action("endpoint-config") == "create"
    assert plan.action("endpoint") == "update"
    text = str(plan)
    assert f"{OLD_CONFIG} -> {spec.endpoint_config_name}" in text
    assert "canary 10%" in text
    assert "twin-p99-latency" in text
    assert TOKEN not in text


# -- inference components ---------------------------------------------------------------------


def test_inference_component_is_created_and_polled_until_in_service(
    deployer: Deployer,
    script: Script,
    stub: Stubber,
    progress: list[WaitProgress],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = ic_spec(tags={"team": "ml"})
    script.observe(spec)
    script.missing("describe_inference_component", InferenceComponentName="twin-ic")
    script.create_model(spec)
    script.create_config(
        spec,
        EndpointConfigName=spec.endpoint_config_name,
        ExecutionRoleArn=ROLE,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "InstanceType": "ml.g5.2xlarge",
                "InitialInstanceCount": 1,
                "ManagedInstanceScaling": {
                    "Status": "ENABLED",
                    "MinInstanceCount": 0,
                    "MaxInstanceCount": 2,
                },
                "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
            }
        ],
        Tags=[
            {"Key": "llm-twin-sdk:spec-hash", "Value": spec.config_hash},
            {"Key": "managed-by", "Value": "llm-twin-sdk"},
            {"Key": "team", "Value": "ml"},
        ],
    )
    script.ok(
        "create_endpoint",
        {"EndpointArn": f"{ARN}:endpoint/twin"},
        EndpointName="twin",
        EndpointConfigName=spec.endpoint_config_name,
        Tags=spec.aws_tags(),
    )
    script.ok("describe_endpoint", endpoint("Creating", spec.endpoint_config_name))
    script.ok("describe_endpoint", endpoint("InService", spec.endpoint_config_name))
    script.ok(
        "create_inference_component",
        {"InferenceComponentArn": f"{ARN}:inference-component/twin-ic"},
        InferenceComponentName="twin-ic",
        EndpointName="twin",
        VariantName="AllTraffic",
        Specification={
            "ModelName": spec.model_name,
            "StartupParameters": {"ContainerStartupHealthCheckTimeoutInSeconds": 900},
            "ComputeResourceRequirements": {
                "MinMemoryRequiredInMb": 16384,
                "NumberOfAcceleratorDevicesRequired": 1,
                "NumberOfCpuCoresRequired": 4.0,
            },
        },
        RuntimeConfig={"CopyCount": 2},
        Tags=spec.aws_tags(),
    )
    for status in ("Creating", "Creating", "InService"):
        script.ok(
            "describe_inference_component",
            component(status, spec.model_name),
            InferenceComponentName="twin-ic",
        )

    with caplog.at_level(logging.INFO, logger="llm_twin_sdk.deploy"):
        result = deployer.deploy(spec)

    stub.assert_no_pending_responses()
    assert result.kind == "inference-component"
    assert result.inference_component_name == "twin-ic"
    assert result.status == "InService"
    assert [(p.resource, p.status, p.elapsed_s) for p in progress] == [
        ("endpoint", "Creating", 0),
        ("endpoint", "InService", 10),
        ("inference-component", "Creating", 0),
        ("inference-component", "Creating", 10),
        ("inference-component", "InService", 20),
    ]
    assert all(p.name in {"twin", "twin-ic"} and p.timeout_s > 0 for p in progress)
    assert "endpoint twin: Creating (0 s)" in caplog.text
    assert "inference-component twin-ic: InService (20 s)" in caplog.text


def test_inference_component_moves_to_a_new_model_without_a_new_fleet(
    deployer: Deployer, script: Script, stub: Stubber
) -> None:
    spec = ic_spec()
    previous = ic_spec(model_id="org/previous-twin")
    # The fleet is the same, so the endpoint config is too: only the component changes.
    assert previous.endpoint_config_name == spec.endpoint_config_name
    assert previous.model_name != spec.model_name

    def observe() -> None:
        script.missing("describe_model", ModelName=spec.model_name)
        script.ok(
            "describe_endpoint_config",
            ic_config(spec.endpoint_config_name, spec),
            EndpointConfigName=spec.endpoint_config_name,
        )
        script.ok(
            "describe_endpoint",
            endpoint("InService", spec.endpoint_config_name),
            EndpointName="twin",
        )
        script.ok(
            "describe_inference_component",
            component("InService", previous.model_name),
            InferenceComponentName="twin-ic",
        )

    observe()
    plan = deployer.plan(spec)
    assert [(r.resource, r.name, r.action) for r in plan.resources] == [
        ("model", spec.model_name, "create"),
        ("endpoint-config", spec.endpoint_config_name, "keep"),
        ("endpoint", "twin", "keep"),
        ("inference-component", "twin-ic", "update"),
    ]
    assert f"model {previous.model_name} -> {spec.model_name}" in str(plan)

    observe()
    script.create_model(spec)
    script.ok(
        "update_inference_component",
        {"InferenceComponentArn": f"{ARN}:inference-component/twin-ic"},
        InferenceComponentName="twin-ic",
        Specification={
            "ModelName": spec.model_name,
            "StartupParameters": {"ContainerStartupHealthCheckTimeoutInSeconds": 900},
            "ComputeResourceRequirements": {
                "MinMemoryRequiredInMb": 16384,
                "NumberOfAcceleratorDevicesRequired": 1,
                "NumberOfCpuCoresRequired": 4.0,
            },
        },
    )
    script.ok("describe_inference_component", component("Updating", previous.model_name))
    script.ok("describe_inference_component", component("InService", spec.model_name))

    result = deployer.deploy(spec)

    stub.assert_no_pending_responses()
    assert result.endpoint_config_name == spec.endpoint_config_name
    assert result.model_name == spec.model_name


def test_unchanged_inference_component_deployment_writes_nothing(
    deployer: Deployer, script: Script, stub: Stubber
) -> None:
    spec = ic_spec()
    script.observe(
        spec, model=True, config=True, live=endpoint("InService", spec.endpoint_config_name)
    )
    script.ok("describe_inference_component", component("InService", spec.model_name))
    result = deployer.deploy(spec)
    stub.assert_no_pending_responses()
    assert result.status == "InService"


def test_failed_inference_component_removes_what_this_call_created(
    deployer: Deployer, script: Script, stub: Stubber, ops: list[str]
) -> None:
    spec = ic_spec()
    reason = "CUDA out of memory while loading the model."
    script.observe(spec)
    script.missing("describe_inference_component", InferenceComponentName="twin-ic")
    script.create_model(spec)
    script.create_config(spec)
    script.ok("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/twin"})
    script.ok("describe_endpoint", endpoint("InService", spec.endpoint_config_name))
    script.ok(
        "create_inference_component",
        {"InferenceComponentArn": f"{ARN}:inference-component/twin-ic"},
    )
    script.ok("describe_inference_component", component("Creating", spec.model_name))
    script.ok("describe_inference_component", component("Failed", spec.model_name, reason=reason))
    # Clean-up, newest first: the component (and wait until it is gone), then the rest.
    script.ok("delete_inference_component", {}, InferenceComponentName="twin-ic")
    script.ok("describe_inference_component", component("Deleting", spec.model_name))
    script.missing("describe_inference_component", InferenceComponentName="twin-ic")
    script.ok("delete_endpoint", {}, EndpointName="twin")
    script.ok("delete_endpoint_config", {}, EndpointConfigName=spec.endpoint_config_name)
    script.ok("delete_model", {}, ModelName=spec.model_name)

    with pytest.raises(DeploymentError) as info:
        deployer.deploy(spec)

    stub.assert_no_pending_responses()
    assert writes(ops)[-4:] == [
        "DeleteInferenceComponent",
        "DeleteEndpoint",
        "DeleteEndpointConfig",
        "DeleteModel",
    ]
    assert info.value.failure_reason == reason
    assert info.value.endpoint_name == "twin"
    assert "inference component of 'twin' is Failed" in str(info.value)
    assert "inference-component twin-ic" in str(info.value)


# -- failures ---------------------------------------------------------------------------------


def test_failed_new_endpoint_raises_the_reason_and_removes_what_it_created(
    deployer: Deployer, script: Script, stub: Stubber, ops: list[str]
) -> None:
    spec = make_spec()
    script.observe(spec)
    script.create_model(spec)
    script.create_config(spec)
    script.ok("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/twin"})
    script.ok("describe_endpoint", endpoint("Creating", spec.endpoint_config_name))
    script.ok(
        "describe_endpoint",
        endpoint("Failed", spec.endpoint_config_name, reason=REASON),
    )
    script.ok("delete_endpoint", {}, EndpointName="twin")
    script.ok("delete_endpoint_config", {}, EndpointConfigName=spec.endpoint_config_name)
    script.ok("delete_model", {}, ModelName=spec.model_name)

    with pytest.raises(DeploymentError) as info:
        deployer.deploy(spec)

    stub.assert_no_pending_responses()
    assert writes(ops) == [
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "DeleteEndpoint",
        "DeleteEndpointConfig",
        "DeleteModel",
    ]
    err = info.value
    assert not isinstance(err, EndpointTimeoutError)
    assert err.failure_reason == REASON
    assert err.endpoint_name == "twin"
    assert REASON in str(err)
    assert f"endpoint-config {spec.endpoint_config_name}" in str(err)
    assert TOKEN not in str(err)


@pytest.mark.parametrize(
    ("final", "cleanup"),
    [
        (endpoint("InService", OLD_CONFIG, reason=REASON), True),  # rolled back
        (endpoint("Failed", OLD_CONFIG, reason=REASON), True),
        (endpoint("UpdateRollbackFailed", OLD_CONFIG, reason=REASON), False),
    ],
    ids=["rolled-back", "failed", "rollback-failed"],
)
def test_failed_update_keeps_the_previous_config_in_service(
    deployer: Deployer,
    script: Script,
    ops: list[str],
    final: dict[str, Any],
    cleanup: bool,
) -> None:
    spec = make_spec(instance_count=2)
    script.observe(spec, model=True, live=endpoint("InService", OLD_CONFIG))
    script.create_config(spec)
    script.ok("update_endpoint", {"EndpointArn": f"{ARN}:endpoint/twin"})
    script.ok(
        "describe_endpoint",
        endpoint("Updating", OLD_CONFIG, pending=spec.endpoint_config_name),
    )
    script.ok("describe_endpoint", final)
    if cleanup:  # only the new config: the model existed before, the old config stays
        script.ok("delete_endpoint_config", {}, EndpointConfigName=spec.endpoint_config_name)

    with pytest.raises(DeploymentError) as info:
        deployer.deploy(spec)

    script.stub.assert_no_pending_responses()
    # Only the new config goes: not the endpoint, not the old config, not the reused model.
    assert writes(ops) == ["CreateEndpointConfig", "UpdateEndpoint"] + (
        ["DeleteEndpointConfig"] if cleanup else []
    )
    assert info.value.failure_reason == REASON
    if not cleanup:
        assert f"Left in place: endpoint-config {spec.endpoint_config_name}" in str(info.value)


def test_an_aws_error_while_creating_removes_what_was_created(
    deployer: Deployer, script: Script, stub: Stubber, ops: list[str]
) -> None:
    spec = make_spec()
    script.observe(spec)
    script.create_model(spec)
    script.create_config(spec)
    script.stub.add_client_error(
        "create_endpoint",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'ml.g5.2xlarge for endpoint usage' is 0",
        http_status_code=400,
    )
    script.ok("delete_endpoint_config", {}, EndpointConfigName=spec.endpoint_config_name)
    script.ok("delete_model", {}, ModelName=spec.model_name)

    with pytest.raises(AWSError) as info:
        deployer.deploy(spec)

    stub.assert_no_pending_responses()
    assert writes(ops)[-2:] == ["DeleteEndpointConfig", "DeleteModel"]
    assert info.value.code == "ResourceLimitExceeded"
    assert any("Removed what this deployment created" in n for n in info.value.__notes__)


def test_a_failed_endpoint_is_not_updated(
    deployer: Deployer, script: Script, stub: Stubber
) -> None:
    spec = make_spec()
    script.observe(spec, live=endpoint("Failed", OLD_CONFIG, reason=REASON))
    with pytest.raises(DeploymentError, match=r"delete it with Deployer\.delete\('twin'\)") as info:
        deployer.deploy(spec)
    stub.assert_no_pending_responses()  # describes only: nothing written
    assert info.value.failure_reason == REASON


def test_an_update_in_progress_is_waited_for_before_updating(
    deployer: Deployer, script: Script, stub: Stubber, clock: FakeClock
) -> None:
    spec = make_spec()
    someone_else = "twin-0000cccc"
    script.observe(
        spec, model=True, config=True, live=endpoint("Updating", OLD_CONFIG, pending=someone_else)
    )
    script.ok("describe_endpoint", endpoint("InService", someone_else))
    script.observe(spec, model=True, config=True, live=endpoint("InService", someone_else))
    script.ok(
        "update_endpoint",
        {"EndpointArn": f"{ARN}:endpoint/twin"},
        EndpointName="twin",
        EndpointConfigName=spec.endpoint_config_name,
        DeploymentConfig=ANY,
    )
    script.ok(
        "describe_endpoint", endpoint("Updating", someone_else, pending=spec.endpoint_config_name)
    )
    script.ok("describe_endpoint", endpoint("InService", spec.endpoint_config_name))
    assert deployer.deploy(spec).status == "InService"
    stub.assert_no_pending_responses()
    assert clock.sleeps == [10, 10]


def test_wait_timeout_raises_endpoint_timeout_error_and_keeps_resources(
    deployer: Deployer, script: Script, stub: Stubber, clock: FakeClock, ops: list[str]
) -> None:
    spec = make_spec()
    script.observe(spec)
    script.create_model(spec)
    script.create_config(spec)
    script.ok("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/twin"})
    for _ in range(4):  # t = 0, 10, 20, 25
        script.ok("describe_endpoint", endpoint("Creating", spec.endpoint_config_name))

    with pytest.raises(EndpointTimeoutError) as info:
        deployer.deploy(spec, timeout_s=25)

    stub.assert_no_pending_responses()
    assert writes(ops) == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]  # no delete
    err = info.value
    assert isinstance(err, TimeoutError)
    assert isinstance(err, DeploymentError)
    assert err.endpoint_name == "twin"
    assert "still Creating after 25 s" in str(err)
    assert "deploy the same spec again" in str(err)
    assert clock.sleeps == [10, 10, 5]


def test_throttling_then_success(
    deployer: Deployer, script: Script, stub: Stubber, sleeps: list[float]
) -> None:
    spec = make_spec()
    script.throttled("describe_model")
    script.observe(spec)
    script.throttled("create_model")
    script.create_model(spec)
    script.create_config(spec)
    script.ok("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/twin"})
    script.ok("describe_endpoint", endpoint("InService", spec.endpoint_config_name))

    assert deployer.deploy(spec).status == "InService"

    stub.assert_no_pending_responses()
    assert len(sleeps) == 2  # one backoff per throttled call, from the SDK's retry policy


def test_throttled_past_the_retry_policy_is_a_typed_error(
    deployer: Deployer, script: Script, stub: Stubber
) -> None:
    for _ in range(4):  # fast_retry: 4 attempts
        script.throttled("describe_endpoint")
    with pytest.raises(LLMTwinError, match="ThrottlingException"):
        deployer.status("twin")
    stub.assert_no_pending_responses()


def test_wait_false_returns_after_the_last_write(
    deployer: Deployer, script: Script, stub: Stubber
) -> None:
    spec = make_spec()
    script.observe(spec)
    script.create_model(spec)
    script.create_config(spec)
    script.ok("create_endpoint", {"EndpointArn": f"{ARN}:endpoint/twin"})
    result = deployer.deploy(spec, wait=False)
    stub.assert_no_pending_responses()
    assert result.status == "Creating"
    assert result.arn == f"{ARN}:endpoint/twin"


# -- status and delete of inference-component endpoints ---------------------------------------


def test_status_of_an_inference_component_endpoint(
    deployer: Deployer, script: Script, stub: Stubber
) -> None:
    spec = ic_spec()
    live = endpoint(
        "InService",
        spec.endpoint_config_name,
        variants=[{"VariantName": "AllTraffic", "CurrentInstanceCount": 1}],
    )
    script.ok("describe_endpoint", live, EndpointName="twin")
    script.ok("describe_endpoint_config", ic_config(spec.endpoint_config_name, spec))
    script.ok(
        "list_inference_components",
        component_listing(),
        EndpointNameEquals="twin",
    )
    script.ok("describe_inference_component", component("InService", spec.model_name))
    script.ok(
        "list_tags",
        {"Tags": [{"Key": "managed-by", "Value": "llm-twin-sdk"}]},
        ResourceArn=f"{ARN}:endpoint/twin",
    )

    status = deployer.status("twin")

    stub.assert_no_pending_responses()
    assert status.kind == "inference-component"
    assert status.copies == 2
    assert status.current_instance_count == 1
    assert status.inference_components[0].model_name == spec.model_name
    assert status.ref() == EndpointRef(name="twin", inference_component_name="twin-ic")
    assert status.managed


def test_delete_an_inference_component_endpoint(
    deployer: Deployer, script: Script, stub: Stubber, scaler: FakeScaler
) -> None:
    spec = ic_spec()
    ours = [{"Key": "managed-by", "Value": "llm-twin-sdk"}]
    script.ok("describe_endpoint", endpoint("InService", spec.endpoint_config_name))
    script.ok("describe_endpoint_config", ic_config(spec.endpoint_config_name, spec))
    script.ok(
        "list_inference_components",
        component_listing(),
    )
    script.ok("describe_inference_component", component("InService", spec.model_name))
    script.ok("delete_inference_component", {}, InferenceComponentName="twin-ic")
    script.ok("describe_inference_component", component("Deleting", spec.model_name))
    script.missing("describe_inference_component")
    script.ok("delete_endpoint", {}, EndpointName="twin")

    def summary(kind: str, name: str) -> dict[str, Any]:
        arn_kind = "endpoint-config" if kind == "EndpointConfig" else "model"
        return {f"{kind}Name": name, f"{kind}Arn": f"{ARN}:{arn_kind}/{name}", "CreationTime": NOW}

    config_arn = f"{ARN}:endpoint-config/{spec.endpoint_config_name}"
    script.ok(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                summary("EndpointConfig", spec.endpoint_config_name),
                summary("EndpointConfig", "twin-2-0000dddd"),  # another endpoint's: untouched
            ],
            "NextToken": "page-2",
        },
        NameContains="twin",
    )
    script.ok(
        "list_endpoint_configs",
        {"EndpointConfigs": [summary("EndpointConfig", "twin-0000eeee")]},
        NameContains="twin",
        NextToken="page-2",
    )
    script.ok("list_tags", {"Tags": ours}, ResourceArn=config_arn)
    script.ok("delete_endpoint_config", {}, EndpointConfigName=spec.endpoint_config_name)
    script.ok("list_tags", {"Tags": []})  # twin-0000eeee: made by hand, kept
    script.ok(
        "list_models",
        {"Models": [summary("Model", spec.model_name), summary("Model", OLD_MODEL)]},
        NameContains="twin",
    )
    script.ok("list_tags", {"Tags": ours})
    script.ok("delete_model", {}, ModelName=spec.model_name)
    script.ok("list_tags", {"Tags": ours})
    script.missing("delete_model", ModelName=OLD_MODEL)  # deleted meanwhile: fine
    script.missing("describe_endpoint", EndpointName="twin")  # gone

    removed = deployer.delete("twin")

    stub.assert_no_pending_responses()
    assert scaler.removed == [EndpointRef(name="twin", inference_component_name="twin-ic")]
    assert removed == [
        "inference-component twin-ic",
        "endpoint twin",
        f"endpoint-config {spec.endpoint_config_name}",
        f"model {spec.model_name}",
    ]


# -- Endpoint ---------------------------------------------------------------------------------


def test_endpoint_is_frozen() -> None:
    ep = Endpoint(
        name="twin",
        status="InService",
        region="us-east-1",
        endpoint_config_name="twin-0000aaaa",
        model_name="twin-0000bbbb",
        config_hash="0000aaaa",
    )
    with pytest.raises(ValidationError):  # frozen, like every SDK model
        ep.status = "Failed"  # type: ignore[misc]
