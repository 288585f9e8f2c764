"""InferenceClient owns retries: transient errors retried; a stream only before its first piece."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from llm_twin_sdk import (
    Generation,
    GenerationParams,
    InferenceClient,
    LocalBackend,
    ModelError,
    ModelUnavailableError,
    StreamBrokenError,
    TextStream,
    ThrottledError,
    Timeouts,
)
from llm_twin_sdk.inference.backend import NormalizedPrompt
from llm_twin_sdk.retry import RetryPolicy

PARAMS = GenerationParams(max_new_tokens=8, temperature=0.0)
CHAT = [{"role": "user", "content": "Say hello."}]


class FlakyBackend:
    """The real local backend behind a failure script: each call pops the next outcome."""

    def __init__(self, inner: LocalBackend, failures: list[BaseException | None]) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0
        self.timeouts: list[Timeouts | None] = []
        self.fail_after_first_piece: BaseException | None = None

    model_name = property(lambda self: self.inner.model_name)
    context_window = property(lambda self: self.inner.context_window)

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        return self.inner.count_tokens(prompt)

    def _next_failure(self, timeout: Timeouts | None) -> None:
        self.calls += 1
        self.timeouts.append(timeout)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        self._next_failure(timeout)
        return self.inner.generate(prompt, params)

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        self._next_failure(timeout)
        inner = self.inner.stream(prompt, params)
        broken = self.fail_after_first_piece

        def pieces() -> Generator[str, None, Generation]:
            for index, piece in enumerate(inner):
                if index == 1 and broken is not None:
                    raise broken
                yield piece
            assert inner.generation is not None
            return inner.generation

        return TextStream(pieces(), on_close=inner.close)

    def close(self) -> None:
        pass


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
    backend = FlakyBackend(local_backend, [failure])
    client = InferenceClient(backend, retry=policy)
    assert client.generate(CHAT, PARAMS).text
    assert backend.calls == 2
    assert len(sleeps) == 1


def test_attempts_are_bounded(local_backend: LocalBackend, policy: RetryPolicy) -> None:
    backend = FlakyBackend(local_backend, [ThrottledError("x")] * 5)
    with pytest.raises(ThrottledError):
        InferenceClient(backend, retry=policy).generate(CHAT, PARAMS)
    assert backend.calls == 3


@pytest.mark.parametrize(
    "failure", [ModelError("bad input", status=422), ModelError("boom", status=500)]
)
def test_other_model_errors_are_not_retried(
    local_backend: LocalBackend, policy: RetryPolicy, failure: Exception
) -> None:
    backend = FlakyBackend(local_backend, [failure])
    with pytest.raises(ModelError):
        InferenceClient(backend, retry=policy).generate(CHAT, PARAMS)
    assert backend.calls == 1


def test_stream_is_retried_before_its_first_piece(
    local_backend: LocalBackend, policy: RetryPolicy
) -> None:
    backend = FlakyBackend(local_backend, [ModelUnavailableError("starting")])
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
    backend = FlakyBackend(local_backend, [])
    backend.fail_after_first_piece = ModelUnavailableError("connection lost")
    client = InferenceClient(backend, retry=policy)
    pieces: list[str] = []
    with pytest.raises(ModelUnavailableError), client.stream(CHAT, PARAMS) as stream:
        pieces.extend(stream)
    assert backend.calls == 1
    assert len(pieces) == 1  # the piece delivered is not delivered again
    assert client.generate(CHAT, PARAMS).text  # the model was released


def test_timeouts_reach_the_backend(local_backend: LocalBackend) -> None:
    backend = FlakyBackend(local_backend, [])
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
