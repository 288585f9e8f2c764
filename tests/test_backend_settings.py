"""The backend is chosen by configuration alone: LLM_TWIN_BACKEND=local|http|sagemaker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import TGIServer, WireServer
from llm_twin_sdk import (
    ConfigurationError,
    Document,
    InferenceClient,
    LLMTwin,
    LocalBackend,
    SageMakerBackend,
    TwinSettings,
)


@pytest.fixture(scope="module")
def llama_wire(local_backend: LocalBackend) -> Iterator[WireServer]:
    """A SageMaker-runtime server answering with the real local model."""
    with WireServer(local_backend) as server:
        yield server


def test_backend_needs_its_connection_settings() -> None:
    with pytest.raises(ConfigurationError, match="LLM_TWIN_HTTP_URL"):
        TwinSettings(backend="http")
    with pytest.raises(ConfigurationError, match="LLM_TWIN_SAGEMAKER_ENDPOINT"):
        TwinSettings(backend="sagemaker")
    with pytest.raises(ConfigurationError, match="backend"):
        TwinSettings(backend="bedrock")


def test_http_api_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_BACKEND", "http")
    monkeypatch.setenv("LLM_TWIN_HTTP_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LLM_TWIN_HTTP_API_KEY", "sk-very-secret")
    settings = TwinSettings()
    client = InferenceClient.from_settings(settings)
    assert "sk-very-secret" not in repr(settings) + repr(client) + repr(client.backend)


def test_twin_on_sagemaker_by_configuration_alone(
    llama_wire: WireServer,
    aws_credentials: None,
    corpus: list[Document],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", llama_wire.url)  # boto3 reads it
    monkeypatch.setenv("LLM_TWIN_BACKEND", "sagemaker")
    monkeypatch.setenv("LLM_TWIN_SAGEMAKER_ENDPOINT", "twin")
    monkeypatch.setenv("LLM_TWIN_AWS_REGION", "us-east-1")
    monkeypatch.setenv("LLM_TWIN_CONTEXT_WINDOW", "2048")
    monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "16")
    monkeypatch.setenv("LLM_TWIN_QDRANT_PATH", str(tmp_path / "q"))
    llama_wire.reset()
    with LLMTwin.from_settings() as twin:
        assert isinstance(twin.client.backend, SageMakerBackend)
        twin.ingest(corpus[:6])
        answer = twin.ask("What does this author write about?")
        assert answer.text.strip()
        assert answer.sources
        assert 0 < answer.usage.completion_tokens <= 16
        with twin.stream("And in one word?") as stream:
            assert stream.sources
            pieces = list(stream)
        assert "".join(pieces) == stream.text
    assert len(llama_wire.requests) == 2
    assert [r.streaming for r in llama_wire.requests] == [False, True]
    assert all(r.endpoint == "twin" for r in llama_wire.requests)


def test_twin_on_a_tgi_server_by_configuration_alone(
    local_backend: LocalBackend,
    corpus: list[Document],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from llm_twin_sdk import HttpBackend

    with TGIServer(backend=local_backend) as server:
        monkeypatch.setenv("LLM_TWIN_BACKEND", "http")
        monkeypatch.setenv("LLM_TWIN_HTTP_URL", server.url)
        monkeypatch.setenv("LLM_TWIN_HTTP_API", "tgi")
        monkeypatch.setenv("LLM_TWIN_PROMPT_FORMAT", "alpaca")  # TGI /generate takes text
        monkeypatch.setenv("LLM_TWIN_CONTEXT_WINDOW", "2048")
        monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "12")
        monkeypatch.setenv("LLM_TWIN_QDRANT_PATH", str(tmp_path / "q"))
        with LLMTwin.from_settings() as twin:
            assert isinstance(twin.client.backend, HttpBackend)
            assert twin.client.prompt_format == "alpaca"
            twin.ingest(corpus[:6])
            answer = twin.ask("What does this author write about?")
            assert answer.text.strip()
            assert 0 < answer.usage.completion_tokens <= 12
        sent = server.requests[-1]
        assert sent.path == "/generate"
        assert "### Instruction:" in sent.body["inputs"]
