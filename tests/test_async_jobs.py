"""Asynchronous-inference jobs against moto in server mode (S3 and SageMaker-runtime's
InvokeEndpointAsync, which writes each request's output or failure object to moto's S3),
plus botocore's Stubber where a test needs a call to fail (checked against the service model).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from fakes.sagemaker import Llama, WireServer
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.async_inference import AsyncInferenceSpec
from llm_twin_sdk.deploy.deployer import Deployer
from llm_twin_sdk.deploy.spec import EndpointSpec
from llm_twin_sdk.errors import (
    AsyncInferenceFailedError,
    AsyncJobError,
    AsyncOutputMalformedError,
    AsyncOutputMissingError,
    AWSError,
    InvalidParameterError,
    JobManifestError,
)
from llm_twin_sdk.inference.async_jobs import AsyncJob, AsyncJobs
from llm_twin_sdk.inference.async_manifest import load_manifest
from llm_twin_sdk.retry import RetryPolicy

BUCKET = "twin-jobs"
ENDPOINT = "twin-async"


def queue_results(moto_server: str, *results: dict[str, Any]) -> None:
    """What moto's InvokeEndpointAsync writes for the next requests, in order."""
    request = urllib.request.Request(
        f"{moto_server}/moto-api/static/sagemaker/async-endpoint-results",
        data=json.dumps({"results": list(results)}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def ok(value: Any) -> dict[str, Any]:
    return {"data": json.dumps(value)}


def failure(message: str) -> dict[str, Any]:
    return {"is_failure": True, "data": message}


@pytest.fixture
def s3(moto_aws: AWSClients) -> Any:
    client = moto_aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def invocations(moto_aws: AWSClients) -> list[dict[str, Any]]:
    """The parameters of every InvokeEndpointAsync request sent."""
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    runtime = moto_aws.client("sagemaker-runtime")
    runtime.meta.events.register("provide-client-params.sagemaker-runtime.*", record)
    return sent


@dataclass
class Lab:
    """moto's AWS clients and server, the S3 client, the retry policy, the invocations sent."""

    aws: AWSClients
    server: str
    s3: Any
    retry: RetryPolicy
    invocations: list[dict[str, Any]]

    def queue(self, *results: dict[str, Any]) -> None:
        queue_results(self.server, *results)

    def jobs(self, **options: Any) -> AsyncJobs:
        return make_jobs(self.aws, self.retry, **options)


@pytest.fixture
def lab(
    moto_aws: AWSClients,
    moto_server: str,
    s3: Any,
    fast_retry: RetryPolicy,
    invocations: list[dict[str, Any]],
) -> Lab:
    return Lab(moto_aws, moto_server, s3, fast_retry, invocations)


def make_jobs(aws: AWSClients, retry: RetryPolicy, **options: Any) -> AsyncJobs:
    options.setdefault("sleep", lambda _s: None)
    return AsyncJobs(ENDPOINT, input_path=f"s3://{BUCKET}/in", aws=aws, retry=retry, **options)


def read(s3: Any, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_results_come_back_in_input_order_with_inputs_on_s3(lab: Lab, tmp_path: Path) -> None:
    s3, fast_retry, invocations = lab.s3, lab.retry, lab.invocations
    lab.queue(*(ok({"n": n}) for n in range(5)))
    jobs = lab.jobs(max_in_flight=1, invocation_timeout_s=1800)
    bodies = [{"inputs": f"prompt {n}"} for n in range(5)]

    job = jobs.submit(bodies, manifest=tmp_path / "job.json", job_id="run-1")
    results = job.collect(timeout_s=5)

    assert [r.value for r in results] == [{"n": n} for n in range(5)]
    assert all(r.ok for r in results)
    items = load_manifest(tmp_path / "job.json", None, fast_retry).items
    assert [i.state for i in items] == ["done"] * 5
    for n, item in enumerate(items):
        assert item.input_location == f"s3://{BUCKET}/in/run-1/{n:06d}.in"
        assert json.loads(read(s3, item.input_location)) == bodies[n]
        assert results[n].output_location == item.output_location
    assert [p["InputLocation"] for p in invocations] == [i.input_location for i in items]
    assert {p["InvocationTimeoutSeconds"] for p in invocations} == {1800}
    assert {p["RequestTTLSeconds"] for p in invocations} == {21600}


def test_many_in_flight_keep_each_result_with_its_input(
    moto_aws: AWSClients, moto_server: str, s3: Any, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    queue_results(moto_server, *(ok({"n": n}) for n in range(24)))
    jobs = make_jobs(moto_aws, fast_retry, max_in_flight=8)

    job = jobs.submit([f"body {n}" for n in range(24)], manifest=tmp_path / "job.json")
    results = job.collect(timeout_s=5)

    assert [r.index for r in results] == list(range(24))
    assert sorted(r.value["n"] for r in results) == list(range(24))  # each output once
    for result, item in zip(results, job.manifest.items, strict=True):
        assert read(s3, item.input_location) == f"body {result.index}".encode()
        assert read(s3, item.output_location or "") == result.body


def test_a_failed_or_malformed_output_is_that_items_error_and_loses_no_other(
    moto_aws: AWSClients, moto_server: str, s3: Any, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    queue_results(
        moto_server, ok({"n": 0}), failure("CUDA out of memory"), {"data": "not json"}, ok(3)
    )
    jobs = make_jobs(moto_aws, fast_retry, max_in_flight=1)

    results = jobs.submit(["a", "b", "c", "d"], manifest=tmp_path / "j.json").collect(timeout_s=5)

    assert [r.ok for r in results] == [True, False, False, True]
    assert results[0].value == {"n": 0}
    assert results[3].value == 3
    failed, malformed = results[1].error, results[2].error
    assert isinstance(failed, AsyncInferenceFailedError)
    assert failed.index == 1
    assert "CUDA out of memory" in str(failed)
    assert isinstance(malformed, AsyncOutputMalformedError)
    assert malformed.index == 2
    assert "not JSON" in str(malformed)
    assert results[2].body == b"not json"
    states = [i.state for i in load_manifest(tmp_path / "j.json", None, fast_retry).items]
    assert states == ["done", "failed", "done", "done"]


def test_a_missing_output_times_out_alone_and_a_resume_finds_it_later(
    lab: Lab, tmp_path: Path
) -> None:
    s3, invocations = lab.s3, lab.invocations
    lab.queue(ok("zero"), ok("one"), ok("two"))
    waits: list[float] = []
    jobs = lab.jobs(max_in_flight=1, sleep=waits.append)
    job = jobs.submit(["a", "b", "c"], manifest=tmp_path / "job.json")
    late = job.manifest.items[1].output_location or ""
    bucket, key = late.removeprefix("s3://").split("/", 1)
    kept = read(s3, late)
    s3.delete_object(Bucket=bucket, Key=key)  # not written yet: the request still runs

    results = job.collect(timeout_s=0.3, poll_initial_s=0.05, poll_max_s=0.1)

    assert [r.value for r in results] == ["zero", None, "two"]
    missing = results[1].error
    assert isinstance(missing, AsyncOutputMissingError)
    assert isinstance(missing, TimeoutError)
    assert missing.index == 1
    assert late in str(missing)
    assert waits
    assert waits[0] == pytest.approx(0.05)
    assert max(waits) <= 0.1 + 1e-9
    sent = len(invocations)

    s3.put_object(Bucket=bucket, Key=key, Body=kept)  # the request finished meanwhile
    again = lab.jobs().resume(tmp_path / "job.json").collect(timeout_s=1)

    assert [r.value for r in again] == ["zero", "one", "two"]
    assert len(invocations) == sent  # nothing sent again


def test_resume_sends_only_what_was_never_accepted(
    moto_aws: AWSClients, s3: Any, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    # SageMaker-runtime refuses the third request: the first two stay accepted.
    for n in range(4):
        s3.put_object(Bucket=BUCKET, Key=f"out/{n}.out", Body=json.dumps({"n": n}).encode())
    runtime = moto_aws.new_client("sagemaker-runtime", moto_aws.client("s3").meta.config)
    manifest = tmp_path / "job.json"

    def answer(n: int) -> dict[str, Any]:
        return {"InferenceId": f"id-{n}", "OutputLocation": f"s3://{BUCKET}/out/{n}.out"}

    def expected(n: int) -> dict[str, Any]:
        return {
            "EndpointName": ENDPOINT,
            "InputLocation": f"s3://{BUCKET}/in/run/{n:06d}.in",
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": f"run-{n}",
            "InvocationTimeoutSeconds": 3600,
            "RequestTTLSeconds": 21600,
        }

    jobs = AsyncJobs(
        ENDPOINT,
        input_path=f"s3://{BUCKET}/in",
        runtime_client=runtime,
        s3_client=s3,
        retry=fast_retry,
        max_in_flight=1,
    )
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint_async", answer(0), expected(0))
        stub.add_response("invoke_endpoint_async", answer(1), expected(1))
        stub.add_client_error(
            "invoke_endpoint_async", "ValidationError", "Endpoint twin-async is Updating", 400
        )
        with pytest.raises(AWSError, match="Updating"):
            jobs.submit([{"n": n} for n in range(4)], manifest=manifest, job_id="run")
        states = [i.state for i in load_manifest(manifest, None, fast_retry).items]
        assert states == ["submitted", "submitted", "pending", "pending"]
        # Only the items never accepted are sent again; their bodies are already on S3.
        stub.add_response("invoke_endpoint_async", answer(2), expected(2))
        stub.add_response("invoke_endpoint_async", answer(3), expected(3))
        job = jobs.resume(manifest)
        stub.assert_no_pending_responses()

    assert [r.value for r in job.collect(timeout_s=1)] == [{"n": n} for n in range(4)]
    assert json.loads(read(s3, f"s3://{BUCKET}/in/run/000003.in")) == {"n": 3}


def test_throttled_invocations_are_retried_by_the_one_policy(
    moto_aws: AWSClients, s3: Any, sleeps: list[float], fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="out/0.out", Body=b'{"ok": true}')
    runtime = moto_aws.new_client("sagemaker-runtime", moto_aws.client("s3").meta.config)
    jobs = AsyncJobs(
        ENDPOINT, input_path=f"s3://{BUCKET}/in", runtime_client=runtime, s3_client=s3,
        retry=fast_retry,
    )  # fmt: skip
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint_async", "ThrottlingException", "slow down", 400)
        stub.add_client_error("invoke_endpoint_async", "ServiceUnavailable", "busy", 503)
        stub.add_response("invoke_endpoint_async", {"OutputLocation": f"s3://{BUCKET}/out/0.out"})
        job = jobs.submit([b"x"], manifest=tmp_path / "job.json")
        stub.assert_no_pending_responses()

    assert len(sleeps) == 2
    assert job.collect(timeout_s=1)[0].value == {"ok": True}


def test_prompts_become_tgi_requests_and_outputs_generated_text(
    moto_aws: AWSClients, moto_server: str, s3: Any, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    queue_results(
        moto_server,
        ok([{"generated_text": "Hello there", "details": {"finish_reason": "eos_token"}}]),
        ok({"error": "Input validation error", "error_type": "validation"}),
        ok({"unexpected": 1}),
    )
    jobs = make_jobs(moto_aws, fast_retry, max_in_flight=1)

    job = jobs.submit_prompts(["Hi", "Hey", "Yo"], manifest=f"s3://{BUCKET}/jobs/run.json")
    results = job.collect(timeout_s=5)

    sent = json.loads(read(s3, job.manifest.items[0].input_location))
    assert sent["inputs"] == "Hi"
    assert sent["parameters"]["max_new_tokens"] > 0
    assert results[0].text == "Hello there"
    assert isinstance(results[1].error, AsyncOutputMalformedError)
    assert "Input validation error" in str(results[1].error)
    assert isinstance(results[2].error, AsyncOutputMalformedError)
    stored = json.loads(read(s3, f"s3://{BUCKET}/jobs/run.json"))  # the manifest, on S3
    assert stored["answers"] == "generate"
    assert len(stored["items"]) == 3
    assert next(r.text for r in jobs.resume(f"s3://{BUCKET}/jobs/run.json").collect()) == (
        "Hello there"
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"input_path": "bucket/in"}, "input_path"),
        ({"input_path": "s3://Bad_Bucket/in"}, "input_path"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"invocation_timeout_s": 3601}, "invocation_timeout_s must be 1-3600"),
        ({"request_ttl_s": 30}, "request_ttl_s"),
        ({"content_type": ""}, "content_type"),
    ],
)
def test_bad_settings_are_refused_at_construction(
    options: dict[str, Any], match: str, aws_credentials: None
) -> None:
    values: dict[str, Any] = {"input_path": f"s3://{BUCKET}/in", "region": "us-east-1"}
    with pytest.raises(InvalidParameterError, match=match):
        AsyncJobs(ENDPOINT, **(values | options))
    with pytest.raises(InvalidParameterError, match="endpoint_name"):
        AsyncJobs("not a name", **values)


@pytest.mark.parametrize(
    ("bodies", "match"),
    [
        ([], "no request bodies"),
        ([{"ok": 1}, {"bad": object()}], "body 1: not JSON-serializable"),
        ([b"x", 42], "body 1: expected bytes, str"),
        (["fine", "\ud800"], "body 1: not valid Unicode"),
        ([b""], "body 0: empty"),
    ],
)
def test_bad_bodies_are_refused_before_anything_is_uploaded(
    bodies: list[Any], match: str, lab: Lab, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        lab.jobs().submit(bodies, manifest=tmp_path / "job.json")
    assert lab.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert not (tmp_path / "job.json").exists()


def test_resume_refuses_a_missing_broken_or_foreign_manifest(
    moto_aws: AWSClients, s3: Any, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    jobs = make_jobs(moto_aws, fast_retry)
    with pytest.raises(JobManifestError, match="cannot read"):
        jobs.resume(tmp_path / "nothing.json")
    with pytest.raises(JobManifestError, match="no job manifest"):
        jobs.resume(f"s3://{BUCKET}/nothing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(JobManifestError, match="not a job manifest"):
        jobs.resume(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps({"version": 1, "items": "x"}))
    with pytest.raises(JobManifestError, match="not a job manifest"):
        jobs.resume(tmp_path / "other.json")
    job = jobs.submit(["a"], manifest=tmp_path / "job.json")
    other = AsyncJobs("other-endpoint", input_path=f"s3://{BUCKET}/in", aws=moto_aws)
    with pytest.raises(JobManifestError, match="twin-async"):
        other.resume(job.where)


def test_an_item_never_sent_is_an_error_of_its_own(
    moto_aws: AWSClients, s3: Any, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="out/0.out", Body=b"[1]")
    runtime = moto_aws.new_client("sagemaker-runtime", moto_aws.client("s3").meta.config)
    jobs = AsyncJobs(
        ENDPOINT, input_path=f"s3://{BUCKET}/in", runtime_client=runtime, s3_client=s3,
        retry=fast_retry, max_in_flight=1,
    )  # fmt: skip
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint_async", {"OutputLocation": f"s3://{BUCKET}/out/0.out"})
        stub.add_client_error("invoke_endpoint_async", "AccessDeniedException", "no", 403)
        with pytest.raises(AWSError, match="AccessDenied"):
            jobs.submit(["a", "b"], manifest=tmp_path / "job.json")

    job = AsyncJob(jobs, load_manifest(tmp_path / "job.json", None, fast_retry), "job.json")
    results = job.collect(timeout_s=0)

    assert results[0].value == [1]
    never = results[1].error
    assert type(never) is AsyncJobError
    assert never.index == 1
    assert "never sent" in str(never)


def test_bodies_that_never_reached_s3_are_errors_and_nothing_is_invoked(
    moto_aws: AWSClients, s3: Any, fast_retry: RetryPolicy, tmp_path: Path,
    invocations: list[dict[str, Any]],
) -> None:  # fmt: skip
    jobs = AsyncJobs(
        ENDPOINT, input_path="s3://no-such-bucket/in", aws=moto_aws, retry=fast_retry,
        max_in_flight=2,
    )  # fmt: skip
    with pytest.raises(AWSError, match="NoSuchBucket"):
        jobs.submit(["a", "b", "c"], manifest=tmp_path / "job.json")

    record = load_manifest(tmp_path / "job.json", None, fast_retry)
    assert [(i.state, i.uploaded) for i in record.items] == [("pending", False)] * 3
    assert invocations == []
    results = AsyncJob(jobs, record, tmp_path / "job.json").collect(timeout_s=0)
    assert all("never reached S3" in str(r.error) for r in results)


# -- a deployed async endpoint: moto's SageMaker and S3, the wire server's InvokeEndpointAsync --


@pytest.fixture
def deployed(moto_aws: AWSClients, s3: Any, fast_retry: RetryPolicy) -> Iterator[AsyncJobs]:
    """An async endpoint deployed on moto; its runtime the wire server, answering with the
    token model (``echo <prompt>``), writing outputs to moto's S3."""
    spec = EndpointSpec(
        name=ENDPOINT,
        role_arn="arn:aws:iam::123456789012:role/twin-sagemaker",
        instance_type="ml.g4dn.xlarge",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest",
        async_inference=AsyncInferenceSpec(
            output_path=f"s3://{BUCKET}/out", failure_path=f"s3://{BUCKET}/failed"
        ),
    )
    Deployer(aws=moto_aws, retry=fast_retry, poll_interval_s=0.01).deploy(spec)
    with WireServer(default=Llama(), aws=moto_aws) as wire:
        wire.model.respond = lambda prompt: f"echo {prompt}"
        runtime = AWSClients(region="us-east-1", endpoint_url=wire.url).client("sagemaker-runtime")
        yield AsyncJobs(
            ENDPOINT, input_path=f"s3://{BUCKET}/in", runtime_client=runtime, s3_client=s3,
            retry=fast_retry, max_in_flight=4,
        )  # fmt: skip
    assert wire.handler_errors == []


def test_each_prompt_gets_its_own_answer_in_input_order_with_many_in_flight(
    deployed: AsyncJobs, s3: Any, tmp_path: Path
) -> None:
    prompts = [f"prompt number {n}" for n in range(12)]

    job = deployed.submit_prompts(prompts, manifest=tmp_path / "job.json")
    results = job.collect(timeout_s=5)

    assert [r.text for r in results] == [f"echo {p}" for p in prompts]
    for item in job.manifest.items:
        assert (item.output_location or "").startswith(f"s3://{BUCKET}/out/")
        assert (item.failure_location or "").startswith(f"s3://{BUCKET}/failed/")


def test_a_request_the_container_rejects_fails_alone(
    deployed: AsyncJobs, s3: Any, tmp_path: Path
) -> None:
    bodies = [
        {"inputs": "first", "parameters": {"max_new_tokens": 8}},
        {"inputs": "second", "parameters": {"max_new_tokens": 0}},  # TGI: must be > 0
        {"inputs": "third", "parameters": {"max_new_tokens": 8}},
    ]

    results = deployed.submit(bodies, manifest=tmp_path / "job.json").collect(timeout_s=5)

    assert [r.ok for r in results] == [True, False, True]
    assert results[0].value[0]["generated_text"] == "echo first"
    assert results[2].value[0]["generated_text"] == "echo third"
    error = results[1].error
    assert isinstance(error, AsyncInferenceFailedError)
    assert "Input validation error" in str(error)
    assert error.index == 1


def test_an_output_s3_will_not_give_is_that_items_error_with_the_cause(
    aws_credentials: None, fast_retry: RetryPolicy, tmp_path: Path
) -> None:
    import io

    from botocore.response import StreamingBody

    clients = AWSClients(region="us-east-1")
    runtime, s3 = clients.client("sagemaker-runtime"), clients.client("s3")
    jobs = AsyncJobs(
        ENDPOINT, input_path=f"s3://{BUCKET}/in", runtime_client=runtime, s3_client=s3,
        retry=fast_retry, max_in_flight=1,
    )  # fmt: skip
    with Stubber(runtime) as calls, Stubber(s3) as store:
        for n in range(2):
            store.add_response("put_object", {})
            calls.add_response(
                "invoke_endpoint_async", {"OutputLocation": f"s3://{BUCKET}/out/{n}.out"}
            )
        job = jobs.submit(["a", "b"], manifest=tmp_path / "job.json")
        store.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"[0]"), 3)})
        store.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        results = job.collect(timeout_s=0)
        store.assert_no_pending_responses()

    assert results[0].value == [0]
    error = results[1].error
    assert isinstance(error, AsyncOutputMissingError)
    assert "could not be read" in str(error)
    assert "AccessDenied" in str(error)
