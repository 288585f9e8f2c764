"""Plain invoke beside generate / stream: bytes, text or JSON in, any content type out, with
the one retry policy and typed errors — sync and async, on SageMaker (the wire server) and
over HTTP (a framework container's own ``/invocations``, running the real tiny
``inference.py`` packed by the SDK)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custom_code_support import code_spec, copy_example
from fakes import ContainerServer, Fault, Handler, Json, ScriptedBackend, Toolkit, WireServer
from fakes.sagemaker import model_error, throttling
from llm_twin_sdk import AsyncInferenceClient, InferenceClient
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.model_archive import build_model_archive
from llm_twin_sdk.errors import (
    InvalidParameterError,
    InvokeResponseError,
    ModelError,
    ModelThrottledError,
    PayloadTooLargeError,
)
from llm_twin_sdk.inference.backends.http import HttpBackend
from llm_twin_sdk.inference.backends.sagemaker import MAX_PAYLOAD_BYTES, SageMakerBackend
from llm_twin_sdk.inference.invocation import Invocation, encode_body
from llm_twin_sdk.retry import RetryPolicy


@pytest.fixture
def toolkit(tmp_path: Path) -> Iterator[Toolkit]:
    """The real tiny inference.py, packed by the SDK and loaded as the toolkit loads it."""
    archive = build_model_archive(code_spec(copy_example(tmp_path)), tmp_path)
    container = Toolkit(archive.path.read_bytes(), program="inference.py")
    yield container
    container.close()


@pytest.fixture
def endpoint(wire: WireServer, toolkit: Toolkit) -> WireServer:
    wire.default = Handler(toolkit)
    return wire


@pytest.fixture
def client(endpoint: WireServer, fast_retry: RetryPolicy) -> Iterator[InferenceClient]:
    aws = AWSClients(region="us-east-1", endpoint_url=endpoint.url)
    with SageMakerBackend("twin-classifier", aws=aws, api="invoke") as backend:
        yield InferenceClient(backend, retry=fast_retry)


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "sent", "kind"),
    [
        (b"\x00\x01", None, b"\x00\x01", "application/octet-stream"),
        (bytearray(b"1,2"), "text/csv", b"1,2", "text/csv"),
        ("5.1,3.5\n", "text/csv", b"5.1,3.5\n", "text/csv"),
        ("héllo", None, "héllo".encode(), "text/plain; charset=utf-8"),
        ({"instances": [[1, 2]]}, None, b'{"instances":[[1,2]]}', "application/json"),
        ([1, "é"], "application/vnd.api+json", '[1,"é"]'.encode(), "application/vnd.api+json"),
    ],
)
def test_bodies_are_encoded_as_their_type_says(
    body: Any, content_type: str | None, sent: bytes, kind: str
) -> None:
    assert encode_body(body, content_type) == (sent, kind)


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        ({1, 2}, None, "'set' is not"),
        (object(), None, "'object' is not"),
        ({"x": math.nan}, None, "JSON-able"),
        ("half a pair \ud800", "text/csv", "not valid Unicode"),
        ({"rows": [[1, 2]]}, "text/csv", "is sent as JSON, not as 'text/csv'"),
        ("1,2", "csv", "content_type must be a media type"),
        ("1,2", "", "content_type must be a media type"),
    ],
)
def test_a_body_that_cannot_be_sent_is_refused_before_any_call(
    client: InferenceClient, endpoint: WireServer, body: Any, content_type: str | None, words: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        client.invoke(body, content_type=content_type)
    assert words in str(info.value)
    assert endpoint.requests == []


def test_a_body_over_six_megabytes_is_refused_unsent(
    client: InferenceClient, endpoint: WireServer
) -> None:
    with pytest.raises(PayloadTooLargeError, match="Nothing was sent"):
        client.invoke(b"x" * (MAX_PAYLOAD_BYTES + 1), content_type="application/octet-stream")
    assert endpoint.requests == []


def test_a_backend_without_plain_invoke_says_which_have_it() -> None:
    client = InferenceClient(ScriptedBackend())
    with pytest.raises(InvalidParameterError, match="invoke needs a SageMakerBackend"):
        client.invoke("1,2", content_type="text/csv")


# -- answers -----------------------------------------------------------------------------------


def test_answers_read_as_json_or_text_or_fail_typed() -> None:
    answer = Invocation('{"labels": ["é"]}'.encode(), "application/json")
    assert answer.json() == {"labels": ["é"]}
    assert answer.text == '{"labels": ["é"]}'
    assert repr(answer) == "Invocation(content_type='application/json', 18 bytes)"
    latin = Invocation("é".encode("latin-1"), "text/plain; charset=latin-1")
    assert latin.text == "é"
    with pytest.raises(InvokeResponseError, match="is not JSON: 'post"):
        Invocation(b"post\narticle\n", "text/csv").json()
    with pytest.raises(InvokeResponseError, match="is not utf-8 text"):
        _ = Invocation(b"\xff\xfe\x00", None).text


# -- on SageMaker ------------------------------------------------------------------------------


def test_csv_in_json_out_through_the_users_handlers(
    client: InferenceClient, endpoint: WireServer, toolkit: Toolkit
) -> None:
    answer = client.invoke("1.0,0.5\n0.2,0.9\n", content_type="text/csv")
    assert answer.json() == {"labels": ["post", "article"]}
    assert answer.content_type == "application/json"
    as_csv = client.invoke("0,1\n", content_type="text/csv", accept="text/csv")
    assert (as_csv.text, as_csv.content_type) == ("article\n", "text/csv")
    assert [c.headers.get("accept") for c in endpoint.to("invoke")] == [None, "text/csv"]
    assert toolkit.calls == 2


def test_transient_failures_are_retried_and_counted_on_the_wire(
    client: InferenceClient, endpoint: WireServer, sleeps: list[float]
) -> None:
    endpoint.fail(throttling(), model_error(429), Fault.http(503))
    assert client.invoke("1,0", content_type="text/csv").json() == {"labels": ["post"]}
    assert len(endpoint.to("invoke")) == 4
    assert len(sleeps) == 3

    endpoint.fail(*(throttling() for _ in range(4)))
    with pytest.raises(ModelThrottledError):
        client.invoke("1,0", content_type="text/csv")
    assert len(endpoint.to("invoke")) == 8  # the policy's 4 attempts, no botocore retries


def test_a_container_error_is_a_model_error_not_retried(
    client: InferenceClient, endpoint: WireServer
) -> None:
    with pytest.raises(ModelError, match="unsupported content type 'application/x-npy'") as info:
        client.invoke(b"NUMPY", content_type="application/x-npy")
    assert info.value.status == 500
    assert len(endpoint.to("invoke")) == 1


def test_the_tei_style_invoke_still_returns_bytes(endpoint: WireServer) -> None:
    endpoint.reply(Json({"ok": True}))
    aws = AWSClients(region="us-east-1", endpoint_url=endpoint.url)
    with SageMakerBackend("twin-embeddings", aws=aws) as backend:
        assert backend.invoke(b'{"inputs": ["a"]}') == b'{"ok": true}'
    assert endpoint.to("invoke")[0].headers["accept"] == "application/json"


def test_the_async_client_invokes_concurrently_without_blocking_the_loop(
    endpoint: WireServer, fast_retry: RetryPolicy
) -> None:
    aws = AWSClients(region="us-east-1", endpoint_url=endpoint.url)

    async def main(backend: SageMakerBackend) -> list[Any]:
        async with AsyncInferenceClient(backend, retry=fast_retry) as client:
            rows = ["1,0\n", "0,1\n", "2,1\n"]
            answers = await asyncio.gather(
                *(client.invoke(row, content_type="text/csv") for row in rows)
            )
            with pytest.raises(InvalidParameterError):
                await client.invoke({1}, content_type=None)
            return [a.json()["labels"] for a in answers]

    with SageMakerBackend("twin-classifier", aws=aws, api="invoke") as backend:
        assert asyncio.run(main(backend)) == [["post"], ["article"], ["post"]]
    assert len(endpoint.to("invoke")) == 3


# -- over HTTP: the container's own /invocations -------------------------------------------------


def test_http_backend_invokes_a_local_framework_container(toolkit: Toolkit) -> None:
    with ContainerServer(toolkit) as container, HttpBackend(container.url) as backend:
        client = InferenceClient(backend)
        answer = client.invoke({"instances": [[0.0, 2.0]]}, accept="application/json")
        assert answer.json() == {"labels": ["article"]}
        assert answer.content_type == "application/json"
        (call,) = container.to("invoke")
        assert call.headers["content-type"] == "application/json"
        assert call.headers["accept"] == "application/json"
        with pytest.raises(ModelError, match="expected 2 features") as info:
            client.invoke("1,2,3\n", content_type="text/csv")
        assert info.value.status == 500
        assert backend.invoke("/ping") == b""  # the raw route call is unchanged
    assert container.handler_errors == []
