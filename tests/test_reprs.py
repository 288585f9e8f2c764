"""Every public name's instances print short: one line, bounded, long texts and lists elided,
secrets never shown. Real objects (a memory store, the HashingEmbedder fake, a scripted
backend, pure plan builders): no model, no AWS call."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from typing import Any

import pytest

import llm_twin_sdk as sdk
from custom_code_support import EXAMPLE as CUSTOM_CODE
from fakes import HashingEmbedder, ScriptedBackend
from llm_twin_sdk.deploy.plan import build_plan
from llm_twin_sdk.deploy.status import InferenceComponentStatus
from llm_twin_sdk.inference.async_jobs import AsyncJob
from llm_twin_sdk.inference.async_manifest import JobItem, JobManifest
from llm_twin_sdk.rag.evaluation import LabelledQuery, evaluate
from llm_twin_sdk.rag.prompt import assemble_prompt
from llm_twin_sdk.scaling.plan import ScalingChange, ScalingPlan
from llm_twin_sdk.scaling.state import PolicyState, ScalableTargetState

LIMIT = 250
"""The longest repr allowed, whatever the instance holds."""

LONG = " ".join(f"Sentence {i}: quantization cuts the gpu cost of serving." for i in range(50))
SECRETS = ("hf_secret_token_value", "sk-secret-api-key", "sekrit-env-value")
NIGHTLY = "cron(0 20 * * ? *)"
ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.4"

NOT_INSTANCES = {
    "Backend",
    "TextEmbedder",  # a Protocol
    "PromptFormat",
    "__version__",
    "assemble_prompt",
    "ensure_execution_role",
    "estimate_cost",
    "format_prompt",
    "suggested_stop",
}
"""Public names whose instances are not objects of their own (a protocol, a type alias,
functions); each other name needs an instance below."""

BUILT_ELSEWHERE = {"LocalBackend", "Embedder", "ProcessEmbedder"}
"""Load a model (tests/test_local_backend.py, tests/test_embedder.py check their reprs) or
start a process (tests/test_embedder_process.py)."""


def _spec(**overrides: Any) -> sdk.EndpointSpec:
    return sdk.EndpointSpec(
        **{
            "name": "twin",
            "role_arn": ROLE,
            "hf_token": SECRETS[0],
            "environment": {"API_KEY": SECRETS[2], "LOG_LEVEL": "debug", "NOTE": "y" * 300},
            **overrides,
        }
    )


def _scaling_plan() -> ScalingPlan:
    state = sdk.ScalingState(
        endpoint_name="twin",
        resource_id="endpoint/twin/variant/AllTraffic",
        scalable_dimension="sagemaker:variant:DesiredInstanceCount",
        target=ScalableTargetState(min_capacity=1, max_capacity=4),
        policies=(PolicyState(name="p", type="TargetTrackingScaling", arn="arn:" + "x" * 200),),
    )
    change = ScalingChange(action="create", item="scaling-policy", name="p" * 80, detail="x" * 300)
    return ScalingPlan(
        endpoint_name="twin",
        resource_id=state.resource_id,
        policy="TargetTracking(invocations -> 10, 1..4)",
        changes=(change,) * 4,
        current=state,
    )


@pytest.fixture(scope="module")
def instances() -> Iterator[dict[str, Any]]:
    store = sdk.QdrantStore.memory()
    rag = sdk.RAGPipeline(HashingEmbedder(), store)
    metadata = {"title": "T" * 200, "author": "Maya Okafor", "url": "https://x.com/" + "q" * 200}
    rag.ingest([sdk.Document(id="long", text=LONG, metadata=metadata)], progress=False)
    client = sdk.InferenceClient(ScriptedBackend(respond=lambda _: "The answer. " * 200))
    twin = sdk.LLMTwin(rag, client)
    answer = twin.ask("What about gpu cost?")
    chunks = rag.retrieve("gpu cost", k=3)
    tracking = sdk.TargetTracking(metric="invocations", target=10, min_capacity=1, max_capacity=4)
    spec = _spec()
    cost = sdk.estimate_cost(spec, tracking, region="us-east-1")
    plan = build_plan(
        spec, region="us-east-1", image_uri=IMAGE, model=None, config=None, endpoint=None
    ).model_copy(update={"cost": cost})
    component = InferenceComponentStatus(name="twin-ic", status="InService", model_name="m")
    aws = sdk.AWSClients(region="us-east-1")
    jobs = sdk.AsyncJobs("twin-async", input_path="s3://twin-jobs/in", aws=aws)
    async_client = sdk.AsyncInferenceClient(ScriptedBackend())
    queries = [LabelledQuery(query="gpu cost " * 40, relevant=("long",), kind="lexical")]
    objects: dict[str, Any] = {
        "RemoteEmbedder": sdk.RemoteEmbedder(
            lambda body: b"[]",
            model_name="sentence-transformers/all-MiniLM-L6-v2",
            where="the TEI server at http://127.0.0.1:8080",
        ),
        "AWSClients": aws,
        "TwinSettings": sdk.TwinSettings(
            hf_token=SECRETS[0], http_api_key=SECRETS[1], qdrant_url="http://127.0.0.1:6333"
        ),
        "CostEstimate": cost,
        "PriceTable": sdk.PriceTable.shipped(),
        "Deployer": sdk.Deployer(aws=aws),
        "Endpoint": sdk.Endpoint(
            name="twin",
            status="InService",
            region="us-east-1",
            endpoint_config_name="twin-cfg",
            model_name="twin-model",
            config_hash="0badc0de",
            arn="arn:aws:sagemaker:us-east-1:123456789012:endpoint/twin",
        ),
        "EndpointStatus": sdk.EndpointStatus(
            name="twin",
            status="Failed",
            endpoint_config_name="twin-0badc0de",
            kind="inference-component",
            instance_type="ml.g5.2xlarge",
            current_instance_count=1,
            inference_components=(component,) * 5,
            failure_reason="health check failed: " + "x" * 500,
            created_at=datetime.datetime(2026, 11, 30, 12, 0),
            arn="arn:aws:sagemaker:us-east-1:123456789012:endpoint/twin",
        ),
        "DeploymentPlan": plan,
        "EndpointRef": sdk.EndpointRef(name="twin"),
        "EndpointSpec": spec,
        "InferenceComponentSpec": sdk.InferenceComponentSpec(),
        "RolloutSpec": sdk.RolloutSpec(traffic="canary", rollback_alarms=("a" * 100,)),
        "SecuritySpec": sdk.SecuritySpec(
            subnets=tuple(f"subnet-{i:017x}" for i in range(16)),
            security_group_ids=tuple(f"sg-{i:017x}" for i in range(5)),
            volume_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/"
            + "1" * 8
            + "-1111" * 3
            + "-"
            + "1" * 12,
        ),
        "WaitProgress": sdk.WaitProgress(
            resource="endpoint",
            name="twin",
            status="Failed",
            elapsed_s=3,
            timeout_s=100,
            failure_reason="x" * 500,
        ),
        "TwinDeployment": sdk.TwinDeployment(spec, tracking, aws=aws),
        "TwinDeploymentPlan": sdk.TwinDeploymentPlan(endpoint=plan, scaling=_scaling_plan()),
        "AsyncInferenceClient": async_client,
        "AsyncTextStream": async_client.stream("hi"),
        "HttpBackend": sdk.HttpBackend("http://127.0.0.1:9/v1", api_key=SECRETS[1]),
        "SageMakerBackend": sdk.SageMakerBackend("twin", aws=aws),
        "InferenceClient": client.with_options(max_new_tokens=64),
        "TextStream": client.stream("hi"),
        "DeleteReport": sdk.DeleteReport(
            documents=1, chunks=3, missing=tuple(f"doc-{i}" for i in range(200))
        ),
        "StoredDocument": next(iter(rag.documents())),
        "IngestProgress": sdk.IngestProgress(1, 2, 3, 4, 0.5),
        "RAGPipeline": rag,
        "AssembledPrompt": assemble_prompt(
            "gpu cost?", chunks, count_tokens=lambda m: sum(len(x.content) for x in m), budget=9999
        ),
        "PromptTemplate": sdk.PromptTemplate(system="Be brief. " * 100),
        "QueryExpander": sdk.QueryExpander(client),
        "SelfQuery": sdk.SelfQuery(client),
        "Reranker": sdk.Reranker("cross-encoder/ms-marco-MiniLM-L-4-v2"),
        "QdrantStore": store,
        "QdrantClusterSettings": sdk.QdrantClusterSettings(
            replication_factor=3, read_consistency="majority", quantization="scalar"
        ),
        "RetryPolicy": sdk.RetryPolicy(),
        "AutoScaler": sdk.AutoScaler(aws=aws),
        "ScaleToZero": sdk.ScaleToZero(
            target_tracking=tracking.model_copy(update={"min_capacity": 0})
        ),
        "ScalingState": _scaling_plan().current,
        "Scheduled": sdk.Scheduled(
            actions=tuple(
                sdk.ScheduledAction(
                    name=f"action-{i}",
                    schedule="cron(0 20 * * ? *)",
                    min_capacity=0,
                    max_capacity=2,
                )
                for i in range(20)
            )
        ),
        "ScheduledAction": sdk.ScheduledAction(
            name="night", schedule="cron(0 20 * * ? *)", min_capacity=0, max_capacity=1
        ),
        "TargetTracking": tracking,
        "AnswerStream": twin.stream("gpu?"),
        "LLMTwin": twin,
        "AsyncLLMTwin": sdk.AsyncLLMTwin(rag, async_client),
        "AsyncAnswerStream": sdk.AsyncLLMTwin(rag, async_client).stream("gpu?"),
        "Answer": answer,
        "Chunk": chunks[0],
        "Document": sdk.Document(id="long", text=LONG, metadata=metadata),
        "DocumentMetadata": sdk.DocumentMetadata(**metadata),
        "Generation": client.generate("hi"),
        "GenerationParams": sdk.GenerationParams(
            stop=tuple("x" * 50 for _ in range(10)),
            json_schema={"type": "object", "properties": {f"p{i}": {} for i in range(50)}},
        ),
        "IngestReport": sdk.IngestReport(documents=1, chunks=2, seconds=0.123456789),
        "Message": sdk.Message(role="user", content=LONG),
        "StageTimings": answer.timings,
        "Timeouts": sdk.Timeouts(),
        "Usage": answer.usage,
        "EvaluationReport": evaluate(rag.retrieve, queries),
        "ScalingPlan": _scaling_plan(),
        "AsyncInferenceSpec": sdk.AsyncInferenceSpec(
            output_path="s3://twin-jobs/out", max_concurrent_invocations_per_instance=4
        ),
        "BacklogScaling": sdk.BacklogScaling(target=5, max_capacity=4),
        "AsyncJobs": jobs,
        "AsyncJob": AsyncJob(jobs, _job_manifest(), "s3://twin-jobs/jobs/run-1.json"),
        "JobResult": sdk.JobResult(3, b"x" * 5000, text=LONG),
        "CustomCodeSpec": sdk.CustomCodeSpec(
            source_dir=CUSTOM_CODE / "serving",
            entry_point="inference.py",
            framework_version="2.6",
            artifact_path="s3://twin-models/custom",
        ),
        "Invocation": sdk.Invocation(b"x" * 5000, "application/json"),
    }
    yield objects
    for name in ("TextStream", "AnswerStream"):
        objects[name].close()
    store.close()


def _job_manifest() -> JobManifest:
    """A job of 500 items, most done: its repr counts them, never lists them."""
    items = tuple(
        JobItem(index=i, input_location=f"s3://twin-jobs/in/run-1/{i:06d}.in", state="done")
        for i in range(500)
    )
    return JobManifest(
        job_id="run-1", endpoint_name="twin-async", content_type="application/json",
        accept="application/json", invocation_timeout_s=3600, request_ttl_s=21600, items=items,
    )  # fmt: skip


def test_every_public_name_has_an_instance_here(instances: dict[str, Any]) -> None:
    errors = {name for name in sdk._LAZY if name in vars(sdk.errors)}
    expected = set(sdk._LAZY) - errors - NOT_INSTANCES - BUILT_ELSEWHERE
    assert expected - set(instances) == set()


def test_reprs_are_one_short_line_without_secrets(instances: dict[str, Any]) -> None:
    for name, value in instances.items():
        text = repr(value)
        assert "\n" not in text, name
        assert len(text) <= LIMIT, (name, len(text), text)
        assert " object at 0x" not in text, name
        for secret in SECRETS:
            assert secret not in text, (name, text)
        assert "x" * 80 not in text, (name, text)  # a long value is elided
        assert "Sentence 9:" not in text, (name, text)  # so is a long text
        # str() of the data models is their repr, or their own text (plans, status).
        assert all(secret not in str(value) for secret in SECRETS), name


def test_reprs_say_what_matters(instances: dict[str, Any]) -> None:
    shown = {name: repr(value) for name, value in instances.items()}
    assert shown["DeploymentPlan"] == (
        "DeploymentPlan(endpoint_name='twin', region='us-east-1', kind='model', "
        "instances=1 x ml.g5.2xlarge, changes=[create model, create endpoint-config, "
        "create endpoint], cost=$1,105.95..$4,423.80/month)"
    )
    assert shown["Invocation"] == "Invocation(content_type='application/json', 5,000 bytes)"
    assert shown["CustomCodeSpec"].endswith(
        "custom_inference/serving', entry_point='inference.py', framework_version='2.6', "
        "artifact_path='s3://twin-models/custom')"
    )
    assert shown["CostEstimate"] == (
        "CostEstimate(instance_type='ml.g5.2xlarge', region='us-east-1', hourly_price=1.515, "
        "instances=1..4, monthly_at_min=1105.95, monthly_at_max=4423.8, "
        "scale_to_zero_saving=552.97)"
    )
    assert shown["QdrantClusterSettings"] == (
        "QdrantClusterSettings(replication_factor=3, read_consistency='majority', "
        "quantization='scalar')"  # what is set: the rest is the server's default
    )
    assert shown["PriceTable"].startswith("PriceTable(as_of=2024-11-01, source='https://aws.")
    assert shown["EndpointStatus"].startswith(
        "EndpointStatus(name='twin', status='Failed', kind='inference-component', "
        "endpoint_config_name='twin-0badc0de', instances=1 x ml.g5.2xlarge, "
        "components=[5: twin-ic, twin-ic, …], failure_reason='health check failed:"
    )
    assert (
        "endpoint=[create model, create endpoint-config, create endpoint]"
        in (shown["TwinDeploymentPlan"])
    )
    assert "scaling=[create scaling-policy, create scaling-policy" in shown["TwinDeploymentPlan"]
    assert shown["TargetTracking"] == (
        "TargetTracking(metric='invocations', target=10.0, min_capacity=1, max_capacity=4)"
    )
    assert shown["Scheduled"] == "Scheduled(actions=[20: action-0, action-1, action-2, …])"
    assert shown["DeleteReport"].endswith("missing=[200: doc-0, doc-1, doc-2, …])")
    assert shown["TextStream"] == "TextStream(open, text=0 chars)"
    assert shown["InferenceClient"] == (
        "InferenceClient(model='scripted', params=GenerationParams(max_new_tokens=64))"
    )
    settings = sdk.TwinSettings(hf_token=SECRETS[0], http_api_key=SECRETS[1])
    assert repr(settings) == (
        "TwinSettings(backend='local', http_api_key='**********', hf_token='**********')"
    )
    assert "'API_KEY': '**********', 'LOG_LEVEL': 'debug'" in shown["EndpointSpec"]
    assert "role_arn" not in shown["EndpointSpec"]
    assert shown["StageTimings"].count(".") <= 4 * 2  # rounded: no 17-digit floats
    assert shown["LLMTwin"].startswith("LLMTwin(model='scripted', rag=RAGPipeline(")
    assert shown["Message"].endswith(f"({len(LONG)} chars))")


def test_a_stream_repr_says_when_it_finished(instances: dict[str, Any]) -> None:
    client: sdk.InferenceClient = instances["InferenceClient"]
    with client.stream("hi") as stream:
        text = "".join(stream)
    assert repr(stream) == f"TextStream(closed, text={len(text)} chars, finished)"

    async def run() -> str:
        async with instances["AsyncInferenceClient"].stream("hi") as astream:
            async for _ in astream:
                pass
        return repr(astream)

    assert asyncio.run(run()).startswith("AsyncTextStream(closed, text=")
