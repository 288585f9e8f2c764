"""Endpoint.client(): a working SageMaker-backed client for a deployed endpoint."""

from __future__ import annotations

import pytest

from fakes import Json, WireServer
from llm_twin_sdk import AWSClients, Endpoint, InferenceClient
from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend


def _endpoint(component: str | None = None) -> Endpoint:
    return Endpoint(
        name="twin",
        inference_component_name=component,
        status="InService",
        region="us-east-1",
        endpoint_config_name="twin-0000aaaa",
        model_name="twin-0000bbbb",
        config_hash="0000aaaa",
    )


@pytest.mark.parametrize("component", [None, "twin-ic"])
def test_client_calls_the_endpoint_and_its_component(
    wire: WireServer, component: str | None
) -> None:
    wire.reply(
        Json(
            {
                "choices": [{"message": {"content": "Hello!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2},
            }
        )
    )
    aws = AWSClients(region="us-east-1", endpoint_url=wire.url)
    client = _endpoint(component).client(aws=aws, context_window=8192)
    assert isinstance(client, InferenceClient)
    assert isinstance(client.backend, SageMakerBackend)
    assert client.context_window == 8192
    generation = client.generate([{"role": "user", "content": "Hi"}])
    assert generation.text == "Hello!"
    assert generation.usage.prompt_tokens == 7
    (request,) = wire.requests
    assert request.endpoint == "twin"
    assert not request.streaming
    assert request.inference_component == component
