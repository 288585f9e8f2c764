"""SecuritySpec's AWS calls: botocore's Stubber checks every parameter against SageMaker's own
service model (VpcConfig, EnableNetworkIsolation, KmsKeyId, for both endpoint shapes); moto
stores what it supports (a model's VpcConfig, a config's KmsKeyId) and IAM's policy grammar
over a real HTTP round trip on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from cli_support import run
from fakes import AWSCalls as Calls
from llm_twin_sdk import SecuritySpec, ensure_execution_role
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.deployer import Deployer
from llm_twin_sdk.deploy.iam import INLINE_POLICY_NAME
from llm_twin_sdk.deploy.requests import endpoint_config_request
from llm_twin_sdk.deploy.spec import EndpointSpec, InferenceComponentSpec
from llm_twin_sdk.errors import InvalidParameterError
from llm_twin_sdk.retry import RetryPolicy

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SUBNETS = ("subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c")
GROUPS = ("sg-0123456789abcdef0",)
ARCHIVE = "s3://twin-models/twin/model.tar.gz"
SECURED = SecuritySpec(
    subnets=SUBNETS, security_group_ids=GROUPS, network_isolation=True, volume_kms_key_id=KEY
)
CONFIG_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/twin-0000aaaa"
VPC_CONFIG = {"SecurityGroupIds": list(GROUPS), "Subnets": list(SUBNETS)}


def secured_spec(**overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": "twin",
        "role_arn": ROLE,
        "image_uri": IMAGE,
        "instance_type": "ml.m5.xlarge",  # EBS only: a volume key is allowed
        "model_data": ARCHIVE,
        "security": SECURED,
    }
    return EndpointSpec(**{**values, **overrides})


# -- Stubber: SageMaker's service model -------------------------------------------------------


@pytest.fixture
def sm(aws_credentials: None) -> Any:
    return AWSClients(region="us-east-1").client("sagemaker")


@pytest.fixture
def stub(sm: Any) -> Iterator[Stubber]:
    with Stubber(sm) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def missing(stub: Stubber, operation: str) -> None:
    stub.add_client_error(operation, "ValidationException", "Could not find it.", 400)


def test_deploy_sends_vpc_isolation_and_key_as_sagemaker_defines_them(
    sm: Any, stub: Stubber, fast_retry: RetryPolicy
) -> None:
    spec = secured_spec()
    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    for operation in ("describe_model", "describe_endpoint_config", "describe_endpoint"):
        missing(stub, operation)
    stub.add_response(
        "create_model",
        {"ModelArn": f"{arn}:model/{spec.model_name}"},
        {
            "ModelName": spec.model_name,
            "PrimaryContainer": {
                "Image": IMAGE,
                "Environment": spec.container_environment(reveal_secrets=True),
                "ModelDataUrl": ARCHIVE,
            },
            "ExecutionRoleArn": ROLE,
            "VpcConfig": VPC_CONFIG,
            "EnableNetworkIsolation": True,
            "Tags": spec.aws_tags(),
        },
    )
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"{arn}:endpoint-config/{spec.endpoint_config_name}"},
        {
            "EndpointConfigName": spec.endpoint_config_name,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "InstanceType": "ml.m5.xlarge",
                    "ModelName": spec.model_name,
                    "InitialInstanceCount": 1,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 900,
                }
            ],
            "Tags": spec.aws_tags(),
            "KmsKeyId": KEY,
        },
    )
    stub.add_response("create_endpoint", {"EndpointArn": f"{arn}:endpoint/twin"})
    deployer = Deployer(sagemaker_client=sm, retry=fast_retry, autoscaler=None)
    endpoint = deployer.deploy(spec, wait=False)
    assert endpoint.endpoint_config_name == spec.endpoint_config_name


def test_an_inference_component_config_passes_the_service_model(sm: Any, stub: Stubber) -> None:
    parts = InferenceComponentSpec(accelerators=0, cpu_cores=2, memory_mb=4096)
    request = endpoint_config_request(secured_spec(components=parts))
    assert request["VpcConfig"] == VPC_CONFIG
    assert request["EnableNetworkIsolation"] is True
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": CONFIG_ARN}, request)
    sm.create_endpoint_config(**request)  # botocore validates every name and type


def test_an_async_output_key_passes_the_service_model(sm: Any, stub: Stubber) -> None:
    security = SecuritySpec(output_kms_key_id=KEY)
    request = security.secure_config(
        {
            "EndpointConfigName": "twin-0000aaaa",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "twin-m", "InstanceType": "ml.m5.xlarge"}
            ],
            "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://twin-jobs/out"}},
        }
    )
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": CONFIG_ARN}, request)
    sm.create_endpoint_config(**request)


def test_a_key_of_another_region_fails_before_any_call(
    sm: Any, stub: Stubber, fast_retry: RetryPolicy
) -> None:
    elsewhere = KEY.replace("us-east-1", "eu-west-1")
    foreign = SECURED.model_copy(update={"volume_kms_key_id": elsewhere})
    deployer = Deployer(sagemaker_client=sm, retry=fast_retry, autoscaler=None)
    with pytest.raises(InvalidParameterError, match=r"volume_kms_key_id: the key is in eu-west-1"):
        deployer.plan(secured_spec(security=foreign))  # no response queued: no call made


# -- moto: real round trips -------------------------------------------------------------------


def test_moto_stores_the_vpc_and_key_and_a_change_is_an_update(
    moto_aws: AWSClients, fast_retry: RetryPolicy
) -> None:
    sm = moto_aws.client("sagemaker")
    deployer = Deployer(aws=moto_aws, retry=fast_retry, autoscaler=None)
    spec = secured_spec()
    deployer.deploy(spec)

    model = sm.describe_model(ModelName=spec.model_name)
    assert model["VpcConfig"] == VPC_CONFIG
    config = sm.describe_endpoint_config(EndpointConfigName=spec.endpoint_config_name)
    assert config["KmsKeyId"] == KEY

    calls = Calls.on(sm)
    assert deployer.plan(spec).is_noop
    assert calls.writes == []
    narrower = SECURED.model_copy(update={"subnets": SUBNETS[:1]})
    changed = spec.model_copy(update={"security": narrower})
    plan = deployer.plan(changed)
    assert (plan.action("model"), plan.action("endpoint")) == ("create", "update")
    assert f"vpc: subnets {SUBNETS[0]};" in str(plan)


def test_the_role_gets_the_scoped_statements_through_iam(moto_aws: AWSClients) -> None:
    name = "twin-vpc-sagemaker"
    security = SECURED.model_copy(update={"output_kms_key_id": KEY})
    ensure_execution_role(name, "twin-models", aws=moto_aws, security=security)
    iam = moto_aws.client("iam")
    answer = iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
    document = answer if isinstance(answer, dict) else json.loads(answer)
    sids = [s["Sid"] for s in document["Statement"]]
    assert sids[-6:] == [
        "VpcDescribe",
        "VpcCreateInterfaces",
        "VpcManageInterfaces",
        "VolumeKeyUse",
        "VolumeKeyGrant",
        "AsyncOutputKey",
    ]
    calls = Calls.on(iam)
    ensure_execution_role(name, "twin-models", aws=moto_aws, security=security)
    assert calls.writes == []  # the same security: nothing to rewrite
    ensure_execution_role(name, "twin-models", aws=moto_aws)
    assert calls.writes == ["PutRolePolicy"]  # security dropped: the role narrows again


def test_a_bad_security_argument_fails_before_any_iam_call(moto_aws: AWSClients) -> None:
    calls = Calls.on(moto_aws.client("iam"))
    with pytest.raises(InvalidParameterError, match="security: expected a SecuritySpec"):
        ensure_execution_role("twin", aws=moto_aws, security={"subnets": SUBNETS})  # type: ignore[arg-type]  # the wrong type is the test
    assert calls.names == []


def test_the_command_line_plans_a_spec_file_with_security(
    moto_aws: AWSClients, moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    path = tmp_path / "twin.yaml"
    path.write_text(
        f"""\
endpoint:
  name: twin
  role_arn: {ROLE}
  image_uri: {IMAGE}
  instance_type: ml.m5.xlarge
  model_data: {ARCHIVE}
  security:
    subnets: [{", ".join(SUBNETS)}]
    security_group_ids: [{GROUPS[0]}]
    network_isolation: true
    volume_kms_key_id: {KEY}
"""
    )
    result = run("plan", str(path))
    assert result.exit_code == 0, result.output
    assert f"vpc: subnets {SUBNETS[0]}, {SUBNETS[1]}; security groups {GROUPS[0]}" in result.stdout
    assert f"encryption: volume: KMS key {KEY}" in result.stdout
    as_json = json.loads(run("plan", str(path), "--json").stdout)
    assert as_json["endpoint"]["security"]["subnets"] == list(SUBNETS)
