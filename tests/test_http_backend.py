"""HttpBackend against a TGI-like server on 127.0.0.1 (tests/fakes/tgi.py): every protocol,
sync and async, typed errors, retries counted on the wire, secrets, TLS, connection release."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from fakes import DEFAULT_TOKENS, Fault, TGIServer, sse_cuts
from llm_twin_sdk import (
    Backend,
    ConfigurationError,
    EndpointNotFoundError,
    Generation,
    GenerationParams,
    InferenceClient,
    InferenceError,
    InferenceTimeoutError,
    LocalBackend,
    Message,
    ModelError,
    ModelUnavailableError,
    PayloadTooLargeError,
    StreamBrokenError,
    TextStream,
    ThrottledError,
    Timeouts,
)
from llm_twin_sdk.inference.async_stream import AsyncTextStream
from llm_twin_sdk.inference.backends.http import HttpBackend
from llm_twin_sdk.inference.tokens import (
    CHAT_TOKENS_PER_MESSAGE,
    CHAT_TOKENS_PER_REPLY,
    estimate_tokens,
)
from llm_twin_sdk.retry import RetryPolicy

SCRIPT_TEXT = "".join(DEFAULT_TOKENS)
GREEDY = GenerationParams(max_new_tokens=64, temperature=0.0)
CHAT = [Message(role="user", content="How do I cut GPU cost?")]
TOKEN = "sk-test-7f3a9c2e"


@pytest.fixture
def server() -> Iterator[TGIServer]:
    with TGIServer() as srv:
        yield srv
    assert srv.handler_errors == []


@pytest.fixture
def tgi(server: TGIServer) -> Iterator[HttpBackend]:
    backend = HttpBackend(server.url, api="tgi", model="twin")
    yield backend
    backend.close()


@pytest.fixture
def openai(server: TGIServer) -> Iterator[HttpBackend]:
    backend = HttpBackend(server.url, api="openai", model="twin")
    yield backend
    backend.close()


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(max_attempts=3, initial_wait_s=0.5, sleep=sleeps.append)


# -- the harness itself --------------------------------------------------------------------


def test_sse_cuts_split_lines_and_utf8_characters() -> None:
    payload = 'data:{"token":{"text":" café 🚀"}}\n\n'.encode()
    parts = sse_cuts(payload)
    assert b"".join(parts) == payload
    assert len(parts) > 3
    undecodable = 0
    for part in parts:
        try:
            part.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= 2  # characters really are cut in two


# -- TGI native ----------------------------------------------------------------------------


def test_backend_satisfies_the_protocol(tgi: HttpBackend) -> None:
    assert isinstance(tgi, Backend)
    assert tgi.model_name == "twin"
    assert tgi.context_window == 4096


def test_tgi_generate(tgi: HttpBackend, server: TGIServer) -> None:
    generation = tgi.generate("How do I cut GPU cost?", GREEDY)
    assert generation.text == SCRIPT_TEXT
    assert generation.finish_reason == "stop"
    assert generation.usage.completion_tokens == len(DEFAULT_TOKENS)  # from details
    assert generation.usage.prompt_tokens == tgi.count_tokens("How do I cut GPU cost?")
    assert generation.model == "twin"
    [request] = server.requests
    assert request.path == "/generate"
    assert request.body["inputs"] == "How do I cut GPU cost?"
    parameters = request.body["parameters"]
    # Greedy on TGI: no temperature 0 (TGI rejects it) and no top_p, do_sample off.
    assert parameters["do_sample"] is False
    assert "temperature" not in parameters
    assert "top_p" not in parameters
    assert parameters["details"] is True
    assert parameters["max_new_tokens"] == 64


def test_tgi_sampling_parameters(tgi: HttpBackend, server: TGIServer) -> None:
    params = GenerationParams(max_new_tokens=5, temperature=0.7, top_p=1.0, seed=3)
    generation = tgi.generate("Hi", params)
    assert generation.finish_reason == "length"
    assert generation.usage.completion_tokens == 5
    parameters = server.requests[-1].body["parameters"]
    assert parameters["do_sample"] is True
    assert parameters["temperature"] == 0.7
    assert "top_p" not in parameters  # TGI wants 0 < top_p < 1
    assert parameters["seed"] == 3
    tgi.generate("Hi", params.model_copy(update={"top_p": 0.9}))
    assert server.requests[-1].body["parameters"]["top_p"] == 0.9


def test_tgi_stream_pieces_join_to_the_text(tgi: HttpBackend, server: TGIServer) -> None:
    with tgi.stream("How do I cut GPU cost?", GREEDY) as stream:
        pieces = list(stream)
    assert pieces == list(DEFAULT_TOKENS)  # each token whole, though bytes were cut anywhere
    assert stream.generation is not None
    assert stream.generation.text == "".join(pieces) == SCRIPT_TEXT
    assert stream.generation.finish_reason == "stop"
    assert stream.generation.usage.completion_tokens == len(DEFAULT_TOKENS)
    assert stream.closed
    assert server.requests[-1].path == "/generate_stream"
    assert server.wait_for(lambda: server.completed_streams == 1)


def test_tgi_length_limit_in_a_stream(tgi: HttpBackend) -> None:
    with tgi.stream("Hi", GenerationParams(max_new_tokens=3, temperature=0.0)) as stream:
        pieces = list(stream)
    assert pieces == list(DEFAULT_TOKENS[:3])
    assert stream.generation is not None
    assert stream.generation.finish_reason == "length"
    assert stream.generation.usage.completion_tokens == 3


def test_stop_sequences_are_never_returned(tgi: HttpBackend, openai: HttpBackend) -> None:
    """TGI returns the stop sequence in its text; the backend removes it, streamed or not."""
    params = GenerationParams(max_new_tokens=64, temperature=0.0, stop=(" costs",))
    expected = SCRIPT_TEXT[: SCRIPT_TEXT.index(" costs")]
    for backend in (tgi, openai):
        assert backend.generate("Hi", params).text == expected
        with backend.stream("Hi", params) as stream:
            pieces = list(stream)
        assert "".join(pieces) == expected
        assert stream.generation is not None
        assert stream.generation.text == expected
        assert stream.generation.finish_reason == "stop"


def test_a_stop_sequence_split_across_tokens_is_held_back(server: TGIServer) -> None:
    server.tokens = ["Answer", ":", " yes", "\n", "###", " Instruction", ":", " more"]
    backend = HttpBackend(server.url, api="tgi")
    params = GenerationParams(max_new_tokens=64, temperature=0.0, stop=("### Instruction:",))
    with backend.stream("Hi", params) as stream:
        pieces = list(stream)
    assert "".join(pieces) == "Answer: yes\n"
    assert all("#" not in piece for piece in pieces)
    backend.close()


def test_tgi_chat_needs_a_prompt_format(server: TGIServer) -> None:
    backend = HttpBackend(server.url, api="tgi")
    with pytest.raises(ConfigurationError, match="prompt_format"):
        backend.generate(CHAT, GREEDY)
    with pytest.raises(ConfigurationError, match="prompt_format"):
        backend.stream(CHAT, GREEDY)
    assert server.requests == []  # nothing was sent
    backend.close()


def test_tgi_chat_rendered_with_the_alpaca_template(server: TGIServer) -> None:
    backend = HttpBackend(server.url, api="tgi", prompt_format="alpaca")
    assert backend.generate(CHAT, GREEDY).text == SCRIPT_TEXT
    inputs = server.requests[-1].body["inputs"]
    assert "### Instruction:\nHow do I cut GPU cost?" in inputs
    assert inputs.endswith("### Response:\n")
    assert backend.count_tokens(CHAT) == estimate_tokens(inputs)
    backend.close()

    custom = HttpBackend(
        server.url, api="tgi", prompt_format=lambda msgs: " | ".join(m.content for m in msgs)
    )
    custom.generate([*CHAT, Message(role="user", content="Briefly.")], GREEDY)
    assert server.requests[-1].body["inputs"] == "How do I cut GPU cost? | Briefly."
    custom.close()


def test_tgi_against_the_real_local_model(local_backend: LocalBackend) -> None:
    """The test server answering with SmolLM2: real text through TGI's wire format."""
    params = GenerationParams(max_new_tokens=12, temperature=0.0, seed=1)
    with TGIServer(backend=local_backend) as srv:
        backend = HttpBackend(srv.url, api="tgi")
        generation = backend.generate("The capital of France is", params)
        with backend.stream("The capital of France is", params) as stream:
            pieces = list(stream)
        backend.close()
    assert generation.text.strip()
    assert "".join(pieces) == generation.text  # greedy: the same text both ways
    assert stream.generation is not None
    assert stream.generation.usage.completion_tokens == generation.usage.completion_tokens


# -- OpenAI-compatible dialect (TGI's Messages API) ----------------------------------------


def test_openai_chat_generate(openai: HttpBackend, server: TGIServer) -> None:
    generation = openai.generate(CHAT, GREEDY)
    assert generation.text == SCRIPT_TEXT
    assert generation.usage.prompt_tokens == 6 + 2  # the server's own count
    assert generation.usage.completion_tokens == len(DEFAULT_TOKENS)
    request = server.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.body["messages"] == [{"role": "user", "content": "How do I cut GPU cost?"}]
    assert request.body["model"] == "twin"
    assert request.body["temperature"] == 0.0
    assert request.body["max_tokens"] == 64
    assert request.body["stream"] is False


def test_openai_text_prompt_uses_completions(openai: HttpBackend, server: TGIServer) -> None:
    assert openai.generate("Once upon a time", GREEDY).text == SCRIPT_TEXT
    assert server.requests[-1].path == "/v1/completions"
    assert server.requests[-1].body["prompt"] == "Once upon a time"


def test_openai_stream_with_usage(openai: HttpBackend, server: TGIServer) -> None:
    with openai.stream(CHAT, GREEDY) as stream:
        pieces = list(stream)
    assert "".join(pieces) == SCRIPT_TEXT
    assert stream.generation is not None
    assert stream.generation.text == SCRIPT_TEXT
    assert stream.generation.usage.prompt_tokens == 8  # from the usage chunk
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}


def test_openai_stream_without_usage_counts(server: TGIServer) -> None:
    backend = HttpBackend(server.url, stream_usage=False)
    with backend.stream(CHAT, GREEDY) as stream:
        pieces = list(stream)
    assert "stream_options" not in server.requests[-1].body
    assert stream.generation is not None
    assert stream.generation.usage.completion_tokens == len(pieces)  # one event per token
    assert stream.generation.usage.prompt_tokens == backend.count_tokens(CHAT)
    backend.close()


def test_openai_extra_body_and_headers(server: TGIServer) -> None:
    backend = HttpBackend(
        server.url, extra_body={"repeat_penalty": 1.3}, headers={"X-Route": "blue"}
    )
    backend.generate("Hi", GREEDY)
    request = server.requests[-1]
    assert request.body["repeat_penalty"] == 1.3
    assert request.body["repetition_penalty"] == GREEDY.repetition_penalty
    assert "model" not in request.body
    assert request.headers["x-route"] == "blue"
    assert request.headers["user-agent"].startswith("llm-twin-sdk/")
    backend.close()


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (Fault.http(429), ThrottledError, None),
        (Fault.http(503), ModelUnavailableError, None),
        (Fault.http(502), ModelUnavailableError, None),
        (Fault.validation("Input validation error: `inputs` too long"), ModelError, 422),
        (Fault.http(408), ModelError, 408),
        (Fault.raw(500, {"error": "boom", "error_type": "generation"}), ModelError, 500),
        (Fault.http(413), PayloadTooLargeError, None),
    ],
    ids=lambda case: str(case[0].status),
)
@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_http_errors_become_typed_errors(
    tgi: HttpBackend,
    server: TGIServer,
    case: tuple[Fault, type[Exception], int | None],
    mode: str,
) -> None:
    fault, error, status = case
    call = tgi.generate if mode == "generate" else tgi.stream
    server.fail(fault)
    with pytest.raises(error) as caught:
        call("Hi", GREEDY)
    if status is not None:
        assert isinstance(caught.value, ModelError)
        assert caught.value.status == status
    assert str(fault.status) in str(caught.value)
    assert server.url in str(caught.value)
    assert not isinstance(caught.value, httpx.HTTPError)
    assert len(server.requests) == 1


def test_tgi_validation_message_is_kept(tgi: HttpBackend, server: TGIServer) -> None:
    server.fail(Fault.validation("Input validation error: `inputs` must have < 4096 tokens"))
    with pytest.raises(ModelError) as caught:
        tgi.generate("Hi", GREEDY)
    assert caught.value.status == 422
    assert "must have < 4096 tokens" in str(caught.value)
    assert "validation" in str(caught.value)


def test_wrong_route_is_endpoint_not_found(server: TGIServer) -> None:
    backend = HttpBackend(server.url + "/not-here", api="tgi")
    with pytest.raises(EndpointNotFoundError, match="HTTP 404"):
        backend.generate("Hi", GREEDY)
    with pytest.raises(EndpointNotFoundError):
        backend.stream("Hi", GREEDY)
    backend.close()


def test_connection_refused_is_unavailable() -> None:
    with TGIServer() as srv:
        url = srv.url
    backend = HttpBackend(url, timeout=Timeouts(connect_s=1, read_s=1))
    with pytest.raises(ModelUnavailableError, match="cannot reach"):
        backend.generate("Hi", GREEDY)
    with pytest.raises(ModelUnavailableError):
        backend.stream("Hi", GREEDY)
    backend.close()


def test_read_timeout(tgi: HttpBackend, server: TGIServer) -> None:
    server.fail(Fault.slow(1.0), Fault.slow(1.0))
    fast = Timeouts(connect_s=1, read_s=0.2)
    with pytest.raises(InferenceTimeoutError, match="read timeout") as caught:
        tgi.generate("Hi", GREEDY, timeout=fast)
    assert isinstance(caught.value, TimeoutError)
    with pytest.raises(InferenceTimeoutError):
        tgi.stream("Hi", GREEDY, timeout=fast)


@pytest.mark.parametrize("api", ["tgi", "openai"])
def test_read_timeout_inside_a_stream(server: TGIServer, api: str) -> None:
    backend = HttpBackend(server.url, api="tgi" if api == "tgi" else "openai")
    fast = Timeouts(connect_s=1, read_s=0.2)
    server.fail(Fault.stall(1.0, after=0))  # headers sent, then no token in time
    with pytest.raises(InferenceTimeoutError, match="read timeout"):
        _consume(backend.stream("Hi", GREEDY, timeout=fast), [])
    server.fail(Fault.stall(1.0, after=2))  # two tokens, then silence
    pieces: list[str] = []
    with pytest.raises(StreamBrokenError, match="read timeout") as caught:
        _consume(backend.stream("Hi", GREEDY, timeout=fast), pieces)
    assert caught.value.partial_text == "".join(pieces) == "".join(DEFAULT_TOKENS[:2])
    backend.close()


def test_per_call_timeout_replaces_the_backend_default(server: TGIServer) -> None:
    backend = HttpBackend(server.url, api="tgi", timeout=Timeouts(read_s=0.2))
    server.fail(Fault.slow(0.5))
    assert backend.generate("Hi", GREEDY, timeout=Timeouts(read_s=5)).text == SCRIPT_TEXT
    server.fail(Fault.slow(0.5))
    with pytest.raises(InferenceTimeoutError):
        backend.generate("Hi", GREEDY)
    backend.close()


@pytest.mark.parametrize("api", ["tgi", "openai"])
def test_error_event_mid_stream(server: TGIServer, api: str) -> None:
    backend = HttpBackend(server.url, api="tgi" if api == "tgi" else "openai")
    server.fail(Fault.error_event(after=3))
    stream = backend.stream("Hi", GREEDY)
    pieces: list[str] = []
    with pytest.raises(StreamBrokenError, match="CUDA out of memory") as caught:
        _consume(stream, pieces)
    assert pieces == list(DEFAULT_TOKENS[:3])
    assert caught.value.partial_text == "".join(pieces)
    assert stream.closed
    backend.close()


@pytest.mark.parametrize("api", ["tgi", "openai"])
def test_dropped_connection_mid_stream(server: TGIServer, api: str) -> None:
    backend = HttpBackend(server.url, api="tgi" if api == "tgi" else "openai")
    server.fail(Fault.drop(after=2))
    pieces: list[str] = []
    with pytest.raises(StreamBrokenError, match="after 2 piece") as caught:
        _consume(backend.stream("Hi", GREEDY), pieces)
    assert pieces == list(DEFAULT_TOKENS[:2])
    assert caught.value.partial_text == "".join(DEFAULT_TOKENS[:2])
    assert isinstance(caught.value.__cause__, httpx.HTTPError)  # the original, kept
    backend.close()


def _consume(stream: TextStream, pieces: list[str]) -> None:
    with stream:
        pieces.extend(stream)


async def _aconsume(stream: AsyncTextStream, pieces: list[str]) -> None:
    async with await stream:
        async for piece in stream:
            pieces.append(piece)


def _mock_backend(handler: httpx.MockTransport, api: str = "openai") -> HttpBackend:
    return HttpBackend(
        "http://127.0.0.1:9", api="tgi" if api == "tgi" else "openai", transport=handler
    )


def test_malformed_answers_are_inference_errors() -> None:
    not_json = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>oops</html>"))
    with pytest.raises(InferenceError, match="not JSON"):
        _mock_backend(not_json).generate("Hi", GREEDY)
    odd = httpx.MockTransport(lambda request: httpx.Response(200, json={"unexpected": 1}))
    with pytest.raises(InferenceError, match="unexpected answer"):
        _mock_backend(odd).generate("Hi", GREEDY)


def test_a_stream_without_its_final_event_is_broken() -> None:
    body = b'data:{"token":{"text":"Hel","special":false},"generated_text":null}\n\n'
    truncated = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body, headers={"content-type": "text/event-stream"}
        )
    )
    with pytest.raises(StreamBrokenError, match="before its final event") as caught:
        _consume(_mock_backend(truncated, "tgi").stream("Hi", GREEDY), [])
    assert caught.value.partial_text == "Hel"


def test_a_stream_cut_inside_a_character_is_broken() -> None:
    body = 'data:{"token":{"text":"Hi","special":false},"generated_text":null}\n\ndata:{"t'
    cut = httpx.MockTransport(
        lambda request: httpx.Response(
            200,
            content=body.encode() + "é".encode()[:1],
            headers={"content-type": "text/event-stream"},
        )
    )
    with pytest.raises(StreamBrokenError, match="inside a character") as caught:
        _consume(_mock_backend(cut, "tgi").stream("Hi", GREEDY), [])
    assert caught.value.partial_text == "Hi"


def test_a_server_that_ignores_stream_still_streams() -> None:
    answer = {"choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}]}
    plain = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    with _mock_backend(plain).stream(CHAT, GREEDY) as stream:
        assert list(stream) == ["Hello"]
    assert stream.generation is not None
    assert stream.generation.text == "Hello"


# -- retries through InferenceClient, counted on the wire ----------------------------------


def test_429_then_success_is_exactly_two_requests(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(Fault.http(429))
    generation = InferenceClient(tgi, retry=policy).generate("Hi", GREEDY)
    assert generation.text == SCRIPT_TEXT
    assert len(server.generation_requests()) == 2
    assert len(sleeps) == 1


def test_503_is_retried(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(Fault.http(503), Fault.http(503))
    assert InferenceClient(tgi, retry=policy).generate("Hi", GREEDY).text == SCRIPT_TEXT
    assert len(server.generation_requests()) == 3
    assert len(sleeps) == 2


def test_503_until_attempts_run_out(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(*[Fault.http(503)] * 5)
    with pytest.raises(ModelUnavailableError):
        InferenceClient(tgi, retry=policy).generate("Hi", GREEDY)
    assert len(server.generation_requests()) == 3  # max_attempts, never more


def test_422_is_not_retried(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(Fault.validation())
    with pytest.raises(ModelError) as caught:
        InferenceClient(tgi, retry=policy).generate("Hi", GREEDY)
    assert caught.value.status == 422
    assert len(server.generation_requests()) == 1
    assert sleeps == []


def test_read_timeout_is_not_retried(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(Fault.slow(1.0))
    client = InferenceClient(tgi, retry=policy, timeout=Timeouts(read_s=0.2))
    with pytest.raises(TimeoutError):
        client.generate("Hi", GREEDY)
    assert len(server.generation_requests()) == 1
    assert sleeps == []


def test_stream_is_retried_before_its_first_piece(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(Fault.http(429))
    with InferenceClient(tgi, retry=policy).stream("Hi", GREEDY) as stream:
        assert "".join(stream) == SCRIPT_TEXT
    assert len(server.generation_requests()) == 2
    assert len(sleeps) == 1


def test_stream_is_not_retried_after_its_first_piece(
    tgi: HttpBackend, server: TGIServer, policy: RetryPolicy, sleeps: list[float]
) -> None:
    server.fail(Fault.drop(after=2))
    pieces: list[str] = []
    with pytest.raises(StreamBrokenError) as caught:
        _consume(InferenceClient(tgi, retry=policy).stream("Hi", GREEDY), pieces)
    assert pieces == list(DEFAULT_TOKENS[:2])
    assert caught.value.partial_text == "".join(pieces)
    assert len(server.generation_requests()) == 1
    assert sleeps == []


# -- secrets -------------------------------------------------------------------------------


def test_bearer_token_is_sent_and_never_shown(
    server: TGIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.require_token = TOKEN
    backend = HttpBackend(server.url, api="tgi", api_key=SecretStr(TOKEN))
    assert backend.generate("Hi", GREEDY).text == SCRIPT_TEXT
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    client = InferenceClient(backend)
    assert TOKEN not in repr(backend)
    assert "api_key='**********'" in repr(backend)
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text

    wrong = HttpBackend(server.url, api="tgi", api_key="wrong-" + TOKEN)
    with pytest.raises(ModelError) as caught:
        wrong.generate("Hi", GREEDY)
    assert caught.value.status == 401
    assert "check api_key" in str(caught.value)
    rendered = "".join(traceback.format_exception(caught.value))
    assert TOKEN not in rendered
    assert TOKEN not in caplog.text
    backend.close()
    wrong.close()


def test_server_echoing_the_token_is_scrubbed() -> None:
    echo = httpx.MockTransport(
        lambda request: httpx.Response(
            400, json={"error": f"bad header {request.headers['authorization']}"}
        )
    )
    backend = HttpBackend("http://127.0.0.1:9", api_key=TOKEN, transport=echo)
    with pytest.raises(ModelError) as caught:
        backend.generate("Hi", GREEDY)
    assert TOKEN not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize("key", ["", "has space", "new\nline", "tab\tbed", "ünï"])
def test_invalid_api_key_is_rejected_without_echo(key: str) -> None:
    with pytest.raises(ConfigurationError, match="api_key") as caught:
        HttpBackend("http://127.0.0.1:9", api_key=key)
    if key:
        assert key not in str(caught.value)


def test_api_key_and_authorization_header_conflict() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        HttpBackend("http://127.0.0.1:9", api_key=TOKEN, headers={"Authorization": "Bearer x"})


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:8080",
        "ftp://127.0.0.1",
        "http://",
        "http://127.0.0.1:8080/?x=1",
        "http://127.0.0.1:8080/#frag",
        "http://user:pw@127.0.0.1:8080",
        "http://127.0.0.1:8080/v1/chat/completions",
        "http://127.0.0.1:8080/generate",
        " http://127.0.0.1:8080",
        "http://127.0.0.1:99999",
    ],
)
def test_invalid_base_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        HttpBackend(url)


def test_base_url_is_normalised() -> None:
    assert HttpBackend("http://127.0.0.1:8080/").base_url == "http://127.0.0.1:8080"
    assert HttpBackend("http://127.0.0.1:8080/v1").base_url == "http://127.0.0.1:8080"
    assert HttpBackend("https://h.example/llm/v1/").base_url == "https://h.example/llm"
    tgi = HttpBackend("http://127.0.0.1:8080/v1", api="tgi")
    assert tgi.base_url == "http://127.0.0.1:8080/v1"  # a TGI prefix is kept as given


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigurationError, match="api"):
        HttpBackend("http://127.0.0.1:9", api="grpc")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="context_window"):
        HttpBackend("http://127.0.0.1:9", context_window=0)
    with pytest.raises(ConfigurationError, match="prompt_format"):
        HttpBackend("http://127.0.0.1:9", prompt_format="jinja")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="tokenizer"):
        HttpBackend("http://127.0.0.1:9", tokenizer="tiktoken")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="CA bundle"):
        HttpBackend("https://127.0.0.1:9", verify="/no/such/ca.pem")


def test_closed_backend(server: TGIServer) -> None:
    with HttpBackend(server.url) as backend:
        backend.generate("Hi", GREEDY)
    with pytest.raises(InferenceError, match="closed"):
        backend.generate("Hi", GREEDY)
    backend.close()  # twice is fine


# -- token counting ------------------------------------------------------------------------


def test_token_counting(server: TGIServer) -> None:
    backend = HttpBackend(server.url)
    text = "Quantize before you scale out."
    assert backend.count_tokens(text) == estimate_tokens(text)
    assert estimate_tokens(text) >= len(text) / 4  # high rather than low
    assert backend.count_tokens(CHAT) == (
        estimate_tokens(CHAT[0].content) + CHAT_TOKENS_PER_MESSAGE + CHAT_TOKENS_PER_REPLY
    )
    words = HttpBackend(server.url, tokenizer=lambda t: len(t.split()))
    assert words.count_tokens(text) == 5
    remote = HttpBackend(server.url, api="tgi", tokenizer="server")
    assert remote.count_tokens(text) == 5  # the test server's /tokenize splits words
    assert server.requests[-1].path == "/tokenize"
    for item in (backend, words, remote):
        item.close()


# -- connections ---------------------------------------------------------------------------


def test_connections_are_pooled_and_reused(tgi: HttpBackend, server: TGIServer) -> None:
    tgi.generate("Hi", GREEDY)
    for _ in range(2):
        with tgi.stream("Hi", GREEDY) as stream:
            list(stream)
    tgi.generate("Hi", GREEDY)
    assert server.connections == 1


def test_early_exit_releases_the_connection(server: TGIServer) -> None:
    server.tokens = [f" t{i}" for i in range(300)]
    server.token_delay_s = 0.01
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    backend = HttpBackend(
        server.url, api="tgi", transport=transport, timeout=Timeouts(connect_s=0.5, read_s=5)
    )
    params = GenerationParams(max_new_tokens=300, temperature=0.0)
    with backend.stream("Hi", params) as stream:
        assert next(stream) == " t0"
        assert next(stream) == " t1"
    assert stream.closed
    assert server.wait_for(lambda: server.aborted_streams == 1)  # the server saw it go
    # One connection allowed: a leaked one would make this a pool timeout.
    short = GenerationParams(max_new_tokens=2, temperature=0.0)
    assert backend.generate("Hi", short).text == " t0 t1"
    with InferenceClient(backend).stream("Hi", params) as client_stream:
        next(client_stream)
    assert server.wait_for(lambda: server.aborted_streams == 2)
    assert backend.generate("Hi", short).text == " t0 t1"
    backend.close()


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-twin test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, usage: x509.ObjectIdentifier) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        paths[f"{name}-cert"] = folder / f"{name}.pem"
        paths[f"{name}-key"] = folder / f"{name}.key"
        paths[f"{name}-cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}-key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    leaf("server", ExtendedKeyUsageOID.SERVER_AUTH)
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return paths


def _server_context(pki: dict[str, Path], *, mutual: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server-cert"], pki["server-key"])
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    return context


def test_tls_with_a_private_ca(pki: dict[str, Path]) -> None:
    with TGIServer(ssl_context=_server_context(pki, mutual=False)) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        trusted = HttpBackend(srv.url, api="tgi", verify=pki["ca"])
        assert trusted.generate("Hi", GREEDY).text == SCRIPT_TEXT
        with trusted.stream("Hi", GREEDY) as stream:
            assert "".join(stream) == SCRIPT_TEXT
        unverified = HttpBackend(srv.url, api="tgi", verify=False)
        assert unverified.generate("Hi", GREEDY).text == SCRIPT_TEXT
        default = HttpBackend(srv.url, api="tgi")  # public CAs only: the handshake fails
        client = InferenceClient(default, retry=RetryPolicy(max_attempts=3, sleep=lambda s: None))
        with pytest.raises(ConfigurationError, match="TLS handshake") as caught:
            client.generate("Hi", GREEDY)
        assert "verify=" in str(caught.value)
        assert isinstance(caught.value, InferenceError)  # a failure of generate, like any
        assert len(srv.generation_requests()) == 3  # two generations, a stream: never retried
        for backend in (trusted, unverified, default):
            backend.close()


def test_mutual_tls_client_certificate(pki: dict[str, Path]) -> None:
    with TGIServer(ssl_context=_server_context(pki, mutual=True)) as srv:
        with_cert = HttpBackend(
            srv.url, api="tgi", verify=pki["ca"], cert=(pki["client-cert"], pki["client-key"])
        )
        assert with_cert.generate("Hi", GREEDY).text == SCRIPT_TEXT
        without = HttpBackend(srv.url, api="tgi", verify=pki["ca"])
        with pytest.raises(ConfigurationError, match="cert="):
            without.generate("Hi", GREEDY)
        with_cert.close()
        without.close()
    with pytest.raises(ConfigurationError, match="client certificate"):
        HttpBackend("https://127.0.0.1:9", cert=pki["ca"])  # a certificate without its key


# -- native asyncio ------------------------------------------------------------------------


@pytest_asyncio.fixture
async def atgi(server: TGIServer) -> AsyncIterator[HttpBackend]:
    backend = HttpBackend(server.url, api="tgi")
    yield backend
    await backend.aclose()


@pytest.mark.asyncio
async def test_agenerate(atgi: HttpBackend, server: TGIServer) -> None:
    generation = await atgi.agenerate("Hi", GREEDY)
    assert isinstance(generation, Generation)
    assert generation.text == SCRIPT_TEXT
    assert generation.usage.completion_tokens == len(DEFAULT_TOKENS)


@pytest.mark.asyncio
async def test_astream_spellings(atgi: HttpBackend, server: TGIServer) -> None:
    async with await atgi.astream("Hi", GREEDY) as stream:
        assert isinstance(stream, AsyncTextStream)
        pieces = [piece async for piece in stream]
    assert pieces == list(DEFAULT_TOKENS)
    assert stream.generation is not None
    assert stream.generation.text == stream.text == SCRIPT_TEXT
    assert stream.closed

    plain = atgi.astream("Hi", GREEDY)  # opened by the first piece
    assert [piece async for piece in plain] == list(DEFAULT_TOKENS)
    assert plain.generation is not None

    async with atgi.astream("Hi", GREEDY) as entered:
        assert await anext(entered) == DEFAULT_TOKENS[0]
    assert entered.closed
    assert server.connections == 1  # all on one pooled connection


@pytest.mark.asyncio
async def test_async_openai_stream(server: TGIServer) -> None:
    async with HttpBackend(server.url) as backend:
        generation = await backend.agenerate(CHAT, GREEDY)
        async with await backend.astream(CHAT, GREEDY) as stream:
            text = "".join([piece async for piece in stream])
    assert text == generation.text == SCRIPT_TEXT
    assert stream.generation is not None
    assert stream.generation.usage.prompt_tokens == 8


@pytest.mark.asyncio
async def test_async_errors(atgi: HttpBackend, server: TGIServer) -> None:
    server.fail(Fault.http(429), Fault.http(503), Fault.validation(), Fault.slow(1.0))
    with pytest.raises(ThrottledError):
        await atgi.agenerate("Hi", GREEDY)
    with pytest.raises(ModelUnavailableError):
        await atgi.astream("Hi", GREEDY)
    with pytest.raises(ModelError) as caught:
        async with atgi.astream("Hi", GREEDY):
            pass
    assert caught.value.status == 422
    with pytest.raises(InferenceTimeoutError):
        await atgi.agenerate("Hi", GREEDY, timeout=Timeouts(read_s=0.2))


@pytest.mark.asyncio
async def test_async_stream_broken_midway(atgi: HttpBackend, server: TGIServer) -> None:
    server.fail(Fault.drop(after=2), Fault.error_event(after=1))
    pieces: list[str] = []
    with pytest.raises(StreamBrokenError) as caught:
        await _aconsume(atgi.astream("Hi", GREEDY), pieces)
    assert caught.value.partial_text == "".join(pieces) == "".join(DEFAULT_TOKENS[:2])
    with pytest.raises(StreamBrokenError, match="CUDA out of memory"):
        async for _ in atgi.astream("Hi", GREEDY):
            pass


@pytest.mark.asyncio
async def test_async_early_exit_releases_the_connection(server: TGIServer) -> None:
    server.tokens = [f" t{i}" for i in range(300)]
    server.token_delay_s = 0.01
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    backend = HttpBackend(
        server.url,
        api="tgi",
        async_transport=transport,
        timeout=Timeouts(connect_s=0.5, read_s=5),
    )
    params = GenerationParams(max_new_tokens=300, temperature=0.0)
    async with await backend.astream("Hi", params) as stream:
        assert await anext(stream) == " t0"
    assert stream.closed
    assert await asyncio.to_thread(server.wait_for, lambda: server.aborted_streams == 1)
    short = GenerationParams(max_new_tokens=2, temperature=0.0)
    assert (await backend.agenerate("Hi", short)).text == " t0 t1"
    await backend.aclose()


def test_one_backend_across_event_loops(server: TGIServer) -> None:
    """asyncio.run twice: the async client is rebuilt for the new loop."""
    backend = HttpBackend(server.url, api="tgi")

    async def once() -> str:
        return (await backend.agenerate("Hi", GREEDY)).text

    assert asyncio.run(once()) == SCRIPT_TEXT
    assert asyncio.run(once()) == SCRIPT_TEXT
    backend.close()
