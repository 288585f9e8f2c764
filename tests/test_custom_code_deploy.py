"""Your own inference code, end to end on moto (S3 + SageMaker, real HTTP on 127.0.0.1) and the
SageMaker-runtime wire server: the same Deployer packs, uploads once per content hash, deploys,
redeploys without a write and deletes; the same AutoScaler scales; the client's plain invoke
reaches the real tiny ``inference.py`` from the uploaded archive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custom_code_support import BUCKET, code_spec, copy_example, endpoint_spec
from fakes import Json, Toolkit, WireServer
from fakes.sagemaker import throttling
from llm_twin_sdk import InferenceClient
from llm_twin_sdk.aws import AWSClients, describe_or_none
from llm_twin_sdk.deploy.deployer import Deployer
from llm_twin_sdk.deploy.spec import EndpointSpec
from llm_twin_sdk.errors import (
    ConfigurationError,
    InvokeOnlyEndpointError,
    ModelError,
)
from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend
from llm_twin_sdk.retry import RetryPolicy
from llm_twin_sdk.scaling import AutoScaler, TargetTracking


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def make_spec(project: Path, **code: Any) -> EndpointSpec:
    return endpoint_spec(project, custom_code=code_spec(project, **code))


@pytest.fixture
def s3(moto_aws: AWSClients) -> Any:
    client = moto_aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def puts(s3: Any) -> list[str]:
    """The keys of every PutObject the S3 client sends (botocore's own event)."""
    keys: list[str] = []
    s3.meta.events.register(
        "before-call.s3.PutObject", lambda params, **_: keys.append(params["url_path"])
    )
    return keys


@pytest.fixture
def deployer(moto_aws: AWSClients, fast_retry: RetryPolicy) -> Deployer:
    return Deployer(aws=moto_aws, retry=fast_retry, poll_interval_s=0.01)


def _objects(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_deploy_uploads_once_redeploys_without_a_write_and_deletes(
    project: Path,
    deployer: Deployer,
    moto_aws: AWSClients,
    s3: Any,
    puts: list[str],
) -> None:
    spec = make_spec(project)
    plan = deployer.plan(spec)
    assert plan.model_archive is not None
    assert plan.model_archive.startswith(f"upload: s3://{BUCKET}/custom/")
    assert "pytorch-inference:2.6-cpu-py312" in plan.image_uri
    assert "model archive: upload: s3://" in str(plan)
    assert puts == []  # plan writes nothing
    assert _objects(s3) == []

    endpoint = deployer.deploy(spec)
    assert endpoint.status == "InService"
    assert endpoint.engine == "pytorch"
    assert "engine='pytorch'" in repr(endpoint)
    (key,) = _objects(s3)
    assert key.startswith("custom/")
    assert key.endswith("/model.tar.gz")
    assert len(puts) == 1

    sm = moto_aws.client("sagemaker")
    container = sm.describe_model(ModelName=endpoint.model_name)["PrimaryContainer"]
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/{key}"
    assert container["Image"].endswith("/pytorch-inference:2.6-cpu-py312")
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": "us-east-1",
    }
    uploaded = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert Toolkit(uploaded, program="inference.py").members == [
        "code/inference.py",
        "weights.json",
    ]

    again = deployer.plan(spec)  # unchanged files: the same archive, names, resources
    assert again.is_noop
    assert again.model_archive is not None
    assert again.model_archive.startswith("unchanged: ")
    assert deployer.deploy(spec).model_name == endpoint.model_name
    assert len(puts) == 1  # no second upload

    scaler = AutoScaler(aws=moto_aws)
    policy = TargetTracking(metric="invocations", target=100, min_capacity=1, max_capacity=2)
    state = scaler.apply(spec.ref(), policy)
    assert state.resource_id == "endpoint/twin-classifier/variant/AllTraffic"

    (project / "serving" / "inference.py").write_text("# a new handler\n", encoding="utf-8")
    changed = deployer.plan(spec)
    assert changed.model_archive is not None
    assert changed.model_archive.startswith("upload: ")
    assert changed.action("model") == "create"
    assert changed.action("endpoint") == "update"

    removed = deployer.delete(spec.name)
    assert f"endpoint {spec.name}" in removed
    assert f"model {endpoint.model_name}" in removed
    assert deployer.list() == []
    assert describe_or_none(sm, "describe_model", ModelName=endpoint.model_name) is None
    assert _objects(s3) == [key]  # the content-addressed archive stays (docs/deployment.md)
    assert len(puts) == 1


def test_a_bad_spec_uploads_nothing_and_calls_no_aws(
    project: Path, deployer: Deployer, s3: Any, puts: list[str]
) -> None:
    spec = make_spec(project, framework_version="9.9")
    with pytest.raises(ConfigurationError, match="framework_version"):
        deployer.deploy(spec)
    assert puts == []
    assert _objects(s3) == []


def test_a_deployer_without_s3_says_what_it_needs(project: Path, moto_aws: AWSClients) -> None:
    deployer = Deployer(sagemaker_client=moto_aws.client("sagemaker"))
    with pytest.raises(ConfigurationError, match="aws="):
        deployer.plan(make_spec(project))


# -- calling it -------------------------------------------------------------------------------


@pytest.fixture
def wire(moto_aws: AWSClients, aws_credentials: None) -> Iterator[WireServer]:
    """SageMaker runtime on the wire, answering moto-deployed endpoints with their own code."""
    with WireServer(aws=moto_aws) as server:
        yield server
    assert server.handler_errors == []


@pytest.fixture
def client(
    project: Path, deployer: Deployer, s3: Any, wire: WireServer, fast_retry: RetryPolicy
) -> Iterator[InferenceClient]:
    endpoint = deployer.deploy(make_spec(project))
    runtime = AWSClients(region="us-east-1", endpoint_url=wire.url)
    with endpoint.client(aws=runtime) as built:  # what a user gets: plain invoke only
        assert isinstance(built.backend, SageMakerBackend)
        assert built.backend.api == "invoke"
    with SageMakerBackend(endpoint.name, aws=runtime, api="invoke") as backend:
        yield InferenceClient(backend, retry=fast_retry)


def test_invoke_sends_csv_to_the_users_inference_py_and_reads_json(
    client: InferenceClient, wire: WireServer
) -> None:
    answer = client.invoke("1.0,0.5\n0.2,0.9\n", content_type="text/csv")
    assert answer.json() == {"labels": ["post", "article"]}
    assert answer.content_type == "application/json"
    (call,) = wire.to("invoke")
    assert call.endpoint == "twin-classifier"
    assert call.headers["content-type"] == "text/csv"
    assert "accept" not in call.headers  # None: the container's default
    assert call.raw == b"1.0,0.5\n0.2,0.9\n"

    rows = client.invoke({"instances": [[0.0, 3.0]]}, accept="text/csv")
    assert rows.text == "article\n"
    assert rows.content_type == "text/csv"
    assert wire.to("invoke")[-1].headers["content-type"] == "application/json"


def test_generate_and_stream_name_invoke_and_send_nothing(
    client: InferenceClient, wire: WireServer
) -> None:
    with pytest.raises(InvokeOnlyEndpointError, match=r"client\.invoke\(body"):
        client.generate("What is an LLM twin?")
    with pytest.raises(InvokeOnlyEndpointError, match="stream sent nothing"):
        client.stream("What is an LLM twin?")
    assert wire.requests == []


def test_the_users_code_failing_is_a_model_error_with_its_message(
    client: InferenceClient, wire: WireServer
) -> None:
    with pytest.raises(ModelError, match="expected 2 features, got 3") as info:
        client.invoke("1,2,3\n", content_type="text/csv")
    assert info.value.status == 500
    assert len(wire.to("invoke")) == 1  # a container 500 is not retried


def test_throttling_is_retried_by_the_one_policy(client: InferenceClient, wire: WireServer) -> None:
    wire.fail(throttling(), throttling())
    assert client.invoke("1,0\n", content_type="text/csv").json() == {"labels": ["post"]}
    assert len(wire.to("invoke")) == 3


def test_any_content_type_goes_through_as_bytes(client: InferenceClient, wire: WireServer) -> None:
    npy = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
    wire.reply(Json(b"\x00\x01binary"))
    answer = client.invoke(npy, content_type="application/x-npy", accept="application/x-npy")
    assert answer.body == b"\x00\x01binary"
    call = wire.to("invoke")[-1]
    assert call.raw == npy
    assert call.headers["content-type"] == "application/x-npy"
    assert call.headers["accept"] == "application/x-npy"
