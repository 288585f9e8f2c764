"""Who closes a backend (src/llm_twin_sdk/ownership.py): a client borrows the backend it is
handed and leaves it open; copies from ``with_options`` borrow from the original; a
LocalBackend closes itself as a context manager. (``from_settings`` owning what it builds:
tests/test_async_client.py, test_a_client_closes_only_the_backend_it_built.)"""

from __future__ import annotations

import pytest

from fakes import NativeScriptedBackend, ScriptedBackend
from llm_twin_sdk import (
    AsyncInferenceClient,
    EmptyStoreWarning,
    GenerationParams,
    InferenceClient,
    InferenceError,
    LLMTwin,
    LocalBackend,
)

SHORT = GenerationParams(max_new_tokens=4, temperature=0.0)


def test_a_client_borrows_the_backend_it_is_given() -> None:
    backend = ScriptedBackend()
    with InferenceClient(backend) as client:
        assert client.generate("hi").text == "scripted:hi"
    client.close()
    assert backend.events == ["generated"]  # never closed
    assert InferenceClient(backend).generate("again").text == "scripted:again"


def test_a_copy_borrows_from_the_original() -> None:
    backend = ScriptedBackend()
    client = InferenceClient(backend)
    client._own(backend)  # as from_settings does
    with client.with_options(max_new_tokens=3) as copy:
        copy.generate("hi")
    assert backend.events == ["generated"]  # the copy closed nothing
    client.close()
    assert backend.events == ["generated", "closed"]
    client.close()  # once only
    assert backend.events == ["generated", "closed"]


@pytest.mark.asyncio
async def test_the_async_client_borrows_too() -> None:
    backend = NativeScriptedBackend()
    async with AsyncInferenceClient(backend) as client:
        assert (await client.generate("hi")).text == "scripted:hi"
        async with client.with_options(max_new_tokens=2) as copy:
            assert (await copy.generate("x")).text == "scripted:x"
        with pytest.raises(InferenceError, match="closed"):
            await copy.generate("x")  # the copy is closed...
        assert (await client.generate("y")).text == "scripted:y"  # ...its original is not
    assert backend.events == []  # neither aclose nor close
    with pytest.raises(InferenceError, match="closed"):
        await client.generate("hi")  # the client's own threads are closed


@pytest.mark.slow
def test_a_local_backend_is_a_context_manager() -> None:
    with LocalBackend(n_ctx=256) as backend:
        assert backend.count_tokens("hi") > 0
    with pytest.raises(InferenceError, match="closed"):
        backend.count_tokens("hi")


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_async_client_over_the_twins_backend_leaves_the_twin_working() -> None:
    """The users' report: leaving `async with AsyncInferenceClient(twin.client.backend)`
    closed the twin's model; the next `twin.ask` failed with "this LocalBackend is closed"."""
    with LLMTwin.from_settings() as twin:
        async with AsyncInferenceClient(twin.client.backend) as client:
            assert (await client.generate("Hello", SHORT)).text
        with pytest.warns(EmptyStoreWarning):  # nothing ingested: it says so
            answer = twin.ask("What is an LLM twin?", params=SHORT)
        assert answer.text
    with pytest.raises(InferenceError, match="closed"):  # the twin closed what it built
        twin.client.backend.count_tokens("hi")


@pytest.mark.slow
def test_the_local_model_waits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_QUEUE_TIMEOUT_S", "5")
    monkeypatch.setenv("LLM_TWIN_STREAM_IDLE_TIMEOUT_S", "2.5")
    monkeypatch.setenv("LLM_TWIN_N_CTX", "256")
    with InferenceClient.from_settings() as client:
        backend = client.backend
        assert isinstance(backend, LocalBackend)
        assert (backend.queue_timeout_s, backend.stream_idle_timeout_s) == (5.0, 2.5)
    with pytest.raises(InferenceError, match="closed"):
        backend.count_tokens("hi")  # built by from_settings: closed with the client
