from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llm_twin_sdk import (
    Backend,
    ConfigurationError,
    GenerationParams,
    InferenceClient,
    InvalidParameterError,
    LocalBackend,
    ModelLoadError,
    PromptTooLongError,
)
from llm_twin_sdk.offline_models import default_gguf_path

GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0, seed=7)
CHAT = [{"role": "user", "content": "List three colours."}]


def test_default_model_ships_in_a_wheel() -> None:
    path = default_gguf_path()
    assert path.is_file()
    assert path.suffix == ".gguf"


def test_backend_satisfies_the_protocol(local_backend: LocalBackend) -> None:
    assert isinstance(local_backend, Backend)
    assert local_backend.context_window == 2048
    assert local_backend.model_name.endswith(".gguf")


def test_generate_text_prompt(client: InferenceClient) -> None:
    g = client.generate("The three primary colours are", GREEDY)
    assert g.text.strip()
    assert g.finish_reason in {"stop", "length"}
    assert 0 < g.usage.completion_tokens <= 24
    assert g.usage.prompt_tokens == client.count_tokens("The three primary colours are")
    assert g.latency_s > 0
    assert g.model == client.model_name


def test_greedy_generation_is_deterministic(client: InferenceClient) -> None:
    assert client.generate(CHAT, GREEDY).text == client.generate(CHAT, GREEDY).text


def test_chat_prompt_tokens_are_counted_exactly(client: InferenceClient) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *CHAT]
    g = client.generate(messages, GREEDY)
    assert g.usage.prompt_tokens == client.count_tokens(messages)
    # The chat template adds tokens around the contents.
    assert client.count_tokens(messages) > client.count_tokens("Be brief. List three colours.")


def test_length_limit_is_reported(client: InferenceClient) -> None:
    essay = [{"role": "user", "content": "Write a long essay about the history of computing."}]
    g = client.generate(essay, GenerationParams(max_new_tokens=5, temperature=0.0))
    assert g.finish_reason == "length"
    assert g.usage.completion_tokens == 5


def test_stop_sequence_ends_generation(client: InferenceClient) -> None:
    free = client.generate("Count: 1, 2, 3, 4,", GREEDY).text
    assert "6" in free  # the model counts on by itself
    stopped = client.generate("Count: 1, 2, 3, 4,", GREEDY.model_copy(update={"stop": ("6",)}))
    assert "6" not in stopped.text
    assert stopped.finish_reason == "stop"


def test_stream_pieces_join_to_the_generation(client: InferenceClient) -> None:
    with client.stream(CHAT, GREEDY) as stream:
        pieces = list(stream)
    assert len(pieces) > 1
    assert stream.generation is not None
    assert "".join(pieces) == stream.generation.text == stream.text
    assert stream.generation.text == client.generate(CHAT, GREEDY).text
    assert stream.generation.usage.prompt_tokens == client.count_tokens(CHAT)
    assert stream.generation.usage.completion_tokens > 0
    assert stream.closed


def test_early_exit_releases_the_model(client: InferenceClient) -> None:
    long = GenerationParams(max_new_tokens=200, temperature=0.0)
    story = [{"role": "user", "content": "Tell me a very long story."}]
    with client.stream(story, long) as stream:
        first = next(stream)
    assert first
    assert stream.closed
    assert stream.generation is None
    assert list(stream) == []  # a closed stream yields nothing more
    assert client.generate(CHAT, GREEDY).text  # the model is free again


def test_abandoned_stream_does_not_hold_the_model(client: InferenceClient) -> None:
    """A stream dropped unread never blocks the next call (it used to hold a lock until
    garbage collection): the model generates it ahead, then serves the next call."""
    stream = client.stream(CHAT, GREEDY)
    next(stream)
    keep = [stream]
    keep.append(keep)  # type: ignore[arg-type]  # a reference cycle: only gc could free it
    del stream, keep
    assert client.generate(CHAT, GREEDY).text


def test_second_call_while_stream_open_in_same_thread(client: InferenceClient) -> None:
    """It used to raise StreamInUseError (the lock belonged to the thread); the call now
    waits behind the stream's remaining tokens, and the stream is still whole."""
    expected = client.generate(CHAT, GREEDY).text
    with client.stream(CHAT, GREEDY) as stream:
        first = next(stream)
        assert client.generate(CHAT, GREEDY).text == expected
        assert first + "".join(stream) == expected


def test_concurrent_threads_are_serialised(client: InferenceClient) -> None:
    expected = client.generate(CHAT, GREEDY).text
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(client.generate(CHAT, GREEDY).text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert results == [expected] * 3


def test_prompt_over_the_context_window(client: InferenceClient) -> None:
    huge = "word " * 3000
    with pytest.raises(PromptTooLongError, match="context window") as info:
        client.generate(huge, GREEDY)
    assert info.value.budget == 2048 - 24
    with pytest.raises(PromptTooLongError):
        client.stream(huge, GREEDY)
    assert client.generate(CHAT, GREEDY).text  # no lock left behind


def test_max_new_tokens_counts_against_the_window(client: InferenceClient) -> None:
    prompt = "word " * 1500
    assert client.count_tokens(prompt) < 2048
    with pytest.raises(PromptTooLongError):
        client.generate(prompt, GenerationParams(max_new_tokens=1000))


def test_with_options_shares_the_backend(client: InferenceClient) -> None:
    short = client.with_options(max_new_tokens=3, temperature=0.0)
    assert short.backend is client.backend
    assert short.params.max_new_tokens == 3
    assert client.params.max_new_tokens == 150
    assert short.generate(CHAT).usage.completion_tokens <= 3
    with pytest.raises(InvalidParameterError, match="top_p"):
        client.with_options(top_p=2)


@pytest.mark.parametrize("prompt", ["", "  ", []])
def test_empty_prompt(client: InferenceClient, prompt: object) -> None:
    with pytest.raises(InvalidParameterError, match="empty"):
        client.generate(prompt)  # type: ignore[arg-type]


def test_bytes_prompt(client: InferenceClient) -> None:
    with pytest.raises(InvalidParameterError, match="bytes"):
        client.generate(b"hello")  # type: ignore[arg-type]


def test_missing_gguf(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        LocalBackend(tmp_path / "missing.gguf")


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 definitely a zip file")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        LocalBackend(path)


def test_truncated_gguf(tmp_path: Path) -> None:
    path = tmp_path / "truncated.gguf"
    with default_gguf_path().open("rb") as src:
        path.write_bytes(src.read(1_000_000))
    with pytest.raises(ModelLoadError, match="could not load"):
        LocalBackend(path)


def test_invalid_construction_arguments() -> None:
    with pytest.raises(ConfigurationError):
        LocalBackend(n_ctx=0)
    with pytest.raises(ConfigurationError):
        LocalBackend(n_threads=0)
    with pytest.raises(ConfigurationError, match="queue_timeout_s"):
        LocalBackend(queue_timeout_s=0)
    with pytest.raises(ConfigurationError, match="stream_idle_timeout_s"):
        LocalBackend(stream_idle_timeout_s=-1.0)


def test_closed_backend_says_so() -> None:
    backend = LocalBackend(n_ctx=256)
    backend.close()
    backend.close()
    with pytest.raises(Exception, match="closed"):
        backend.count_tokens("hi")
