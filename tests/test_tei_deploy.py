"""A Text Embeddings Inference endpoint (``EndpointSpec(engine="tei")``): its image resolved
offline (GPU or CPU by instance type), its environment, deployed by the same Deployer on moto
(real HTTP on 127.0.0.1) and scaled by the same AutoScaler."""

from __future__ import annotations

from typing import Any

import pytest

from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.deployer import Deployer
from llm_twin_sdk.deploy.images import available_versions, resolve_image_uri
from llm_twin_sdk.deploy.spec import EndpointSpec
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.scaling import AutoScaler, TargetTracking

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def tei_spec(**overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": "twin-embeddings",
        "role_arn": ROLE,
        "engine": "tei",
        "model_id": MODEL,
        "instance_type": "ml.c6i.xlarge",
    }
    values.update(overrides)
    return EndpointSpec(**values)


def test_tei_image_is_the_cpu_one_on_cpu_instances_and_the_gpu_one_else() -> None:
    cpu = resolve_image_uri(tei_spec(), "eu-central-1")
    gpu = resolve_image_uri(tei_spec(instance_type="ml.g5.xlarge"), "eu-central-1")
    assert ".dkr.ecr.eu-central-1.amazonaws.com/tei-cpu:" in cpu
    assert "-cpu-" in cpu
    assert ".dkr.ecr.eu-central-1.amazonaws.com/tei:" in gpu
    assert "-gpu-" in gpu
    assert "1.8" in available_versions("tei")
    pinned = resolve_image_uri(tei_spec(image_version="1.7.0"), "us-east-1")
    assert "tei1.7.0" in pinned


def test_tei_environment_names_the_model_and_no_llm_limits() -> None:
    spec = tei_spec(hf_token="hf_secret123", environment={"MAX_CLIENT_BATCH_SIZE": "64"})
    env = spec.container_environment(reveal_secrets=True)
    assert env == {"HF_MODEL_ID": MODEL, "HF_TOKEN": "hf_secret123", "MAX_CLIENT_BATCH_SIZE": "64"}
    assert "hf_secret123" not in str(spec.container_environment())
    assert "hf_secret123" not in repr(spec)
    tgi = EndpointSpec(name="twin", role_arn=ROLE).container_environment()
    assert "MAX_TOTAL_TOKENS" in tgi  # the LLM engines keep theirs
    assert tei_spec().model_hash != tei_spec(engine="tgi").model_hash


@pytest.fixture
def deployer(moto_aws: AWSClients, fast_retry: RetryPolicy) -> Deployer:
    return Deployer(aws=moto_aws, retry=fast_retry, poll_interval_s=0.01)


def test_the_same_deployer_and_autoscaler_serve_a_tei_endpoint(
    deployer: Deployer, moto_aws: AWSClients, fast_retry: RetryPolicy
) -> None:
    spec = tei_spec(instance_type="ml.m5.xlarge")  # moto knows m5 and rejects g5
    endpoint = deployer.deploy(spec)
    assert endpoint.status == "InService"

    sm = moto_aws.client("sagemaker")
    model = sm.describe_model(ModelName=spec.model_name)
    container = model["PrimaryContainer"]
    assert "/tei-cpu:" in container["Image"]
    assert container["Environment"] == {"HF_MODEL_ID": MODEL}
    config = sm.describe_endpoint_config(EndpointConfigName=spec.endpoint_config_name)
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"

    scaler = AutoScaler(aws=moto_aws, retry=fast_retry)
    policy = TargetTracking(metric="invocations", target=200, min_capacity=1, max_capacity=3)
    state = scaler.apply(spec.ref(), policy)
    assert state.resource_id == "endpoint/twin-embeddings/variant/AllTraffic"
    assert state.target is not None
    assert (state.target.min_capacity, state.target.max_capacity) == (1, 3)
    scaler.remove(spec.ref())
    deployer.delete(spec.name)
    assert deployer.list() == []
