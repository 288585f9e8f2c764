"""InferenceClient owns retries: transient errors retried; a stream only before its first piece."""

from __future__ import annotations

import pytest

from fakes import ScriptedBackend
from llm_twin_sdk import (
    GenerationParams,
    InferenceClient,
    LocalBackend,
    ModelError,
    ModelUnavailableError,
    StreamBrokenError,
    ThrottledError,
    Timeouts,
)
from llm_twin_sdk.retry import RetryPolicy

PARAMS = GenerationParams(max_new_tokens=8, temperature=0.0)
CHAT = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(max_attempts=3, initial_wait_s=0.5, sleep=sleeps.append)


@pytest.mark.parametrize(
    "failure",
    [ThrottledError("slow down"), ModelUnavailableError("503"), ModelError("busy", status=429)],
)
def test_transient_errors_are_retried(
    local_backend: LocalBackend, policy: RetryPolicy, sleeps: list[float], failure: Exception
) -> None:
    backend = ScriptedBackend(local_backend, [failure])
    client = InferenceClient(backend, retry=policy)
    assert client.generate(CHAT, PARAMS).text
    assert backend.calls == 2
    assert len(sleeps) == 1


def test_attempts_are_bounded(local_backend: LocalBackend, policy: RetryPolicy) -> None:
    backend = ScriptedBackend(local_backend, [ThrottledError("x")] * 5)
    with pytest.raises(ThrottledError):
        InferenceClient(backend, retry=policy).generate(CHAT, PARAMS)
    assert backend.calls == 3


@pytest.mark.parametrize(
    "failure", [ModelError("bad input", status=422), ModelError("boom", status=500)]
)
def test_other_model_errors_are_not_retried(
    local_backend: LocalBackend, policy: RetryPolicy, failure: Exception
) -> None:
    backend = ScriptedBackend(local_backend, [failure])
    with pytest.raises(ModelError):
        InferenceClient(backend, retry=policy).generate(CHAT, PARAMS)
    assert backend.calls == 1


def test_stream_is_retried_before_its_first_piece(
    local_backend: LocalBackend, policy: RetryPolicy
) -> None:
    backend = ScriptedBackend(local_backend, [ModelUnavailableError("starting")])
    with InferenceClient(backend, retry=policy).stream(CHAT, PARAMS) as stream:
        text = "".join(stream)
    assert backend.calls == 2
    assert stream.generation is not None
    assert (
        text == stream.generation.text == InferenceClient(local_backend).generate(CHAT, PARAMS).text
    )


def test_stream_is_never_retried_after_its_first_piece(
    local_backend: LocalBackend, policy: RetryPolicy
) -> None:
    backend = ScriptedBackend(local_backend)
    backend.fail_at_piece = (1, ModelUnavailableError("connection lost"))
    client = InferenceClient(backend, retry=policy)
    pieces: list[str] = []
    with pytest.raises(ModelUnavailableError), client.stream(CHAT, PARAMS) as stream:
        pieces.extend(stream)
    assert backend.calls == 1
    assert len(pieces) == 1  # the piece delivered is not delivered again
    assert client.generate(CHAT, PARAMS).text  # the model was released


def test_timeouts_reach_the_backend(local_backend: LocalBackend) -> None:
    backend = ScriptedBackend(local_backend)
    client = InferenceClient(backend, timeout=Timeouts(read_s=5))
    client.generate(CHAT, PARAMS)
    client.generate(CHAT, PARAMS, timeout=Timeouts(connect_s=1, read_s=2))
    with client.with_options(max_new_tokens=2).stream(CHAT) as stream:
        list(stream)
    assert backend.timeouts == [
        Timeouts(read_s=5),
        Timeouts(connect_s=1, read_s=2),
        Timeouts(read_s=5),
    ]


def test_broken_stream_error_keeps_partial_text() -> None:
    err = StreamBrokenError("lost", partial_text="Hel")
    assert err.partial_text == "Hel"
