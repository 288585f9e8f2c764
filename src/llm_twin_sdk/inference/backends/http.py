"""HttpBackend: a self-hosted model server over HTTP (OpenAI-compatible or TGI native).

Two dialects, chosen with ``api=``:

- ``"openai"`` (default): ``POST {base_url}/v1/chat/completions`` for chat messages and
  ``POST {base_url}/v1/completions`` for raw text, plain or streamed (SSE ending with
  ``data: [DONE]``). Works with vLLM, TGI's Messages API and ``python -m llama_cpp.server``.
  Streams ask for usage with ``stream_options.include_usage`` (servers that ignore it get
  their usage counted instead; turn it off with ``stream_usage=False``).
- ``"tgi"``: Hugging Face TGI's native ``POST /generate`` and ``POST /generate_stream``
  (``{"inputs", "parameters"}``). Chat messages need a text rendering: pass
  ``prompt_format="alpaca"`` (the instruction template the twin was fine-tuned with, see
  :mod:`llm_twin_sdk.inference.prompt_format`), ``"raw"``, or a callable (messages -> str).

With ``prompt_format=`` given, chat messages are rendered by it and sent as *text* in both
dialects (``/v1/completions`` or ``/generate``), so serving matches training.

Structured output: ``GenerationParams(json_schema=...)`` constrains decoding to JSON matching
the schema. TGI native sends it as ``parameters.grammar = {"type": "json", "value": schema}``;
the OpenAI dialect as ``response_format``, in the shape chosen with ``json_schema_format=``
(:data:`JsonSchemaFormat`). The default, ``{"type": "json_object", "schema": schema, "value":
schema}``, is read by llama-cpp-python's server (which rejects OpenAI's ``json_schema`` type),
llama.cpp's ``llama-server`` and TGI's Messages API; for vLLM pass
``json_schema_format="json_schema"``. llama-cpp-python's ``/v1/completions`` ignores
``response_format``: use chat prompts there. Without ``json_schema`` neither field is sent.

Example::

    from llm_twin_sdk import GenerationParams, InferenceClient
    from llm_twin_sdk.inference.backends.http import HttpBackend

    backend = HttpBackend("http://127.0.0.1:8000", model="twin", api_key="s3cr3t")
    client = InferenceClient(backend)
    print(client.generate([{"role": "user", "content": "Hi!"}]).text)
    with client.stream("Once upon a time", GenerationParams(max_new_tokens=32)) as stream:
        for piece in stream:
            print(piece, end="")

    tgi = HttpBackend("https://tgi.internal:8443", api="tgi", prompt_format="alpaca",
                      verify="/etc/ssl/private-ca.pem", cert=("client.pem", "client.key"))

    async with HttpBackend("http://127.0.0.1:8000") as backend:      # native asyncio
        generation = await backend.agenerate("Hello", GenerationParams())
        async with await backend.astream("Hello", GenerationParams()) as stream:
            async for piece in stream:
                print(piece, end="")

Behaviour:

- One ``httpx.Client`` per backend (built in the constructor) and one ``httpx.AsyncClient``
  (built on first async use, rebuilt if used from another event loop), so connections are
  pooled. Every stream runs inside ``client.stream(...)`` and releases its connection when it
  ends, fails or is closed early.
- One attempt per call: :class:`~llm_twin_sdk.InferenceClient` owns retries. Errors are SDK
  errors, never raw httpx exceptions: HTTP 429 -> :class:`ThrottledError`; 502/503/504,
  refused or failed connections, connect timeouts -> :class:`ModelUnavailableError` (all
  retried by the client); 404 -> :class:`EndpointNotFoundError`; 413 ->
  :class:`PayloadTooLargeError`; any other status -> :class:`ModelError` with ``status`` (408
  is retried, other 4xx never); read timeout -> :class:`InferenceTimeoutError` (also a
  ``TimeoutError``); an ``error`` event, a malformed event or a dropped connection after the
  stream started -> :class:`StreamBrokenError` with ``partial_text``; a failed TLS handshake
  -> :class:`ConfigurationError`.
- Stop sequences are never returned, whether or not the server trims them (TGI does not):
  a streamed piece that could be the start of a stop sequence is held back until it is not.
- The API key is a ``SecretStr``: it appears in no ``repr``, log line or error message.

Token counting: :meth:`HttpBackend.count_tokens` uses ``tokenizer=`` when given (a callable
``str -> int``, exact if it is the served model's tokenizer), ``tokenizer="server"`` to ask the
server (llama.cpp server ``/extras/tokenize/count``, TGI ``/tokenize``; one request per count),
or else :func:`estimate_tokens`, a deliberately high estimate (~15-30 % over for English with
common BPE tokenizers). Chat messages without ``prompt_format`` are counted as their contents
plus a per-message allowance for the server's chat template. Budget-exact prompt assembly
needs a tokenizer. Usage the server does not report (TGI native prompt tokens, stream usage
of servers without ``include_usage``) is filled in with the callable tokenizer or the
estimate (prompt) and the number of streamed token events (completion) — never with extra
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import httpx
from pydantic import SecretStr

from ..._version import __version__
from ...errors import (
    ConfigurationError,
    ConnectTimeoutError,
    EndpointNotFoundError,
    InferenceError,
    InferenceTimeoutError,
    LLMTwinError,
    ModelError,
    ModelUnavailableError,
    PayloadTooLargeError,
    StreamBrokenError,
    ThrottledError,
)
from ...types import FinishReason, Generation, GenerationParams, Message, Timeouts, Usage
from ..async_stream import AsyncTextStream
from ..backend import NormalizedPrompt
from ..stream import TextStream
from ..streaming import SSEDecoder, parse_event

__all__ = [
    "CHAT_TOKENS_PER_MESSAGE",
    "CHAT_TOKENS_PER_REPLY",
    "Api",
    "HttpBackend",
    "JsonSchemaFormat",
    "MessageRenderer",
    "TextFormat",
    "estimate_tokens",
]

Api: TypeAlias = Literal["openai", "tgi"]
"""The wire dialect: OpenAI-compatible (``/v1/...``) or TGI native (``/generate``)."""

MessageRenderer: TypeAlias = Callable[[Sequence[Message]], str]
"""Renders chat messages as the single text prompt the model was trained on."""

JsonSchemaFormat: TypeAlias = Literal["compatible", "json_object", "json_schema", "tgi"]
"""How ``GenerationParams.json_schema`` is sent as ``response_format`` with ``api="openai"``:

- ``"compatible"`` (default): ``{"type": "json_object", "schema": ..., "value": ...}``, the
  schema under both keys: llama.cpp servers read ``schema``, TGI's Messages API reads
  ``value``, each ignores the other key. vLLM accepts it but then only guarantees *some*
  JSON object (use ``"json_schema"`` there); servers that reject unknown keys (OpenAI) need
  ``"json_schema"``.
- ``"json_object"``: ``{"type": "json_object", "schema": ...}`` -- llama-cpp-python's server
  (``python -m llama_cpp.server``, whose request model has no other type that takes a
  schema) and llama.cpp's ``llama-server``.
- ``"json_schema"``: OpenAI's ``{"type": "json_schema", "json_schema": {"name": "output",
  "schema": ...}}`` -- vLLM, SGLang, llama.cpp's ``llama-server``, OpenAI; rejected by
  llama-cpp-python's server and by TGI.
- ``"tgi"``: ``{"type": "json_object", "value": ...}`` -- TGI's Messages API (its
  ``response_format`` is the ``/generate`` grammar type, ``{"type", "value"}``).
"""

TextFormat: TypeAlias = Literal["raw", "alpaca"]
"""A named text format of :mod:`llm_twin_sdk.inference.prompt_format`."""

PathLike: TypeAlias = "str | Path"
CertTypes: TypeAlias = "PathLike | tuple[PathLike, PathLike] | tuple[PathLike, PathLike, str]"
"""A client certificate: ``cert.pem`` (key included), ``(cert, key)`` or
``(cert, key, password)``."""

CHAT_TOKENS_PER_MESSAGE = 5
"""Tokens allowed per chat message for the server's template (role markers, separators)."""
CHAT_TOKENS_PER_REPLY = 3
"""Tokens allowed for the assistant turn the template opens after the messages."""

_ROUTE_SUFFIXES = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/generate",
    "/generate_stream",
)
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate for ``text``, with no tokenizer.

    ASCII counts ~3.2 characters per token (common BPE tokenizers average ~3.7-4.2 on
    English prose) and any other character 2 tokens (CJK, emoji and accents take one to
    three byte-level tokens). Over-estimating keeps prompts inside the context window at
    the cost of some unused room; pass ``tokenizer=`` to :class:`HttpBackend` for exact counts.

    >>> estimate_tokens("Hello, world!")
    5
    >>> estimate_tokens("")
    0
    """
    if not text:
        return 0
    ascii_chars = sum(1 for char in text if ord(char) < 128)
    return math.ceil(ascii_chars / 3.2 + 2 * (len(text) - ascii_chars))


# -- configuration checks -----------------------------------------------------------------


def _validate_base_url(base_url: str, api: Api) -> str:
    """``scheme://host[:port][/prefix]`` without a trailing slash (nor ``/v1`` for openai)."""
    if not isinstance(base_url, str) or not base_url:
        raise ConfigurationError("base_url must be a non-empty string like 'http://host:8080'")
    if any(char.isspace() or ord(char) < 32 for char in base_url):
        raise ConfigurationError("base_url must not contain spaces or control characters")
    if "?" in base_url or "#" in base_url:
        raise ConfigurationError(
            "base_url must not have a query ('?...') or fragment ('#...'): pass the server's "
            "root address, like 'http://host:8080'"
        )
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ConfigurationError(f"base_url is not a valid URL: {exc}") from None
    if url.userinfo:
        raise ConfigurationError(
            "base_url must not contain credentials ('user:password@'); pass api_key= instead"
        )
    if url.scheme not in {"http", "https"}:
        raise ConfigurationError(f"base_url must start with http:// or https://, got {base_url!r}")
    if not url.host:
        raise ConfigurationError(f"base_url has no host: {base_url!r}")
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigurationError(f"base_url has an invalid port: {base_url!r}")
    path = url.raw_path.decode("ascii").rstrip("/")
    for suffix in _ROUTE_SUFFIXES:
        if path.endswith(suffix):
            raise ConfigurationError(
                f"base_url ends with the route {suffix!r}: pass the server's root address "
                f"(without {suffix!r}); the backend adds the route itself"
            )
    if api == "openai" and path.endswith("/v1"):
        path = path[: -len("/v1")]  # as given to the openai client: accepted, the route adds it
    return f"{url.scheme}://{url.netloc.decode('ascii')}{path}"


def _check_api_key(api_key: SecretStr | str | None) -> SecretStr | None:
    if api_key is None:
        return None
    secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
    value = secret.get_secret_value()
    if not isinstance(value, str) or not value or any(not 33 <= ord(c) <= 126 for c in value):
        raise ConfigurationError(
            "api_key must be a non-empty string of printable ASCII characters without spaces "
            "(the value is not shown)"
        )
    return secret


def _ssl_setting(
    verify: bool | PathLike | ssl.SSLContext, cert: CertTypes | None
) -> bool | ssl.SSLContext:
    """What httpx's ``verify=`` takes: True/False, or an SSLContext for CA bundles and certs."""
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            raise ConfigurationError(
                "pass either an ssl.SSLContext as verify= or cert=, not both: load the client "
                "certificate into your context with load_cert_chain()"
            )
        return verify
    if isinstance(verify, bool) and cert is None:
        return verify
    context = _verifying_context(verify)
    if cert is not None:
        if isinstance(cert, tuple):
            certfile, keyfile = str(cert[0]), str(cert[1])
            password = cert[2] if len(cert) == 3 else None
        else:
            certfile, keyfile, password = str(cert), None, None
        try:
            context.load_cert_chain(certfile, keyfile, password)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigurationError(
                f"cannot load the client certificate {certfile!r}: "
                f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}"
            ) from exc
    return context


def _verifying_context(verify: bool | PathLike) -> ssl.SSLContext:
    if isinstance(verify, bool):
        if not verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    location = Path(verify).expanduser()
    if not location.exists():
        raise ConfigurationError(f"verify={str(location)!r}: no such CA bundle file or directory")
    try:
        if location.is_dir():
            return ssl.create_default_context(capath=str(location))
        return ssl.create_default_context(cafile=str(location))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"cannot load the CA bundle {str(location)!r}: {exc}") from exc


def _httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(
        connect=timeouts.connect_s,
        read=timeouts.read_s,
        write=timeouts.read_s,
        pool=timeouts.connect_s,
    )


# -- requests and responses -----------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One prepared request: route, JSON body, and what is needed to read its answer."""

    route: str
    body: dict[str, Any]
    prompt: NormalizedPrompt
    stops: tuple[str, ...]


def _finish_reason(reason: Any) -> FinishReason:
    return "length" if reason in {"length", "max_tokens", "model_length"} else "stop"


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return min(found) if found else None


def _trim_stop(text: str, stops: Sequence[str]) -> str:
    cut = _first_stop(text, stops)
    return text if cut is None else text[:cut]


class _StopTrimmer:
    """Holds back streamed text that could be the start of a stop sequence.

    Servers that return the stop sequence (TGI) must not leak it into the pieces; servers
    that trim it (vLLM, llama.cpp) are unaffected but for a delay of at most one piece.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._pending = ""
        self._stopped = False

    def push(self, text: str) -> str:
        if self._stopped:
            return ""
        self._pending += text
        cut = _first_stop(self._pending, self._stops)
        if cut is not None:
            out, self._pending, self._stopped = self._pending[:cut], "", True
            return out
        hold = max(
            (
                size
                for stop in self._stops
                for size in range(1, len(stop))
                if self._pending.endswith(stop[:size])
            ),
            default=0,
        )
        keep = len(self._pending) - hold
        out, self._pending = self._pending[:keep], self._pending[keep:]
        return out

    def finish(self) -> str:
        out, self._pending = self._pending, ""
        return "" if self._stopped else out


def _error_detail(content: bytes) -> str:
    """The message of an error body: TGI, OpenAI, vLLM, FastAPI shapes, or the raw text."""
    try:
        data = json.loads(content)
    except ValueError:
        text = content.decode("utf-8", errors="replace").strip()
        return text[:300] or "(empty body)"
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg")
        elif isinstance(error, str):
            kind = data.get("error_type")
            message = f"{error} ({kind})" if kind else error
        if message is None:
            message = data.get("message") or data.get("detail")
    if message is None:
        message = data
    text = message if isinstance(message, str) else json.dumps(message)[:300]
    return text[:500]


def _is_tls_setup_error(exc: httpx.HTTPError) -> bool:
    """A failed TLS handshake: certificate not trusted, or the server wants a client cert."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            # In TLS 1.3 a rejected client certificate arrives as an alert on the first read.
            return isinstance(exc, httpx.ConnectError) or "CERTIFICATE" in str(seen).upper()
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class _StreamState:
    """Parses one SSE stream, either dialect; what has been delivered and how it ended."""

    backend: HttpBackend
    call: _Call
    started: float
    decoder: SSEDecoder = field(default_factory=SSEDecoder)
    trimmer: _StopTrimmer | None = None
    delivered: list[str] = field(default_factory=list)
    token_events: int = 0
    done: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    failure: InferenceError | None = None

    def __post_init__(self) -> None:
        if self.call.stops:
            self.trimmer = _StopTrimmer(self.call.stops)

    @property
    def over(self) -> bool:
        return self.done or self.error is not None or self.failure is not None

    def feed(self, chunk: bytes) -> list[str]:
        try:
            datas = self.decoder.feed(chunk)
        except InferenceError as exc:
            self.failure = exc
            return []
        return self._events(datas)

    def end(self) -> list[str]:
        """The body ended: flush the decoder; a stream without its final event is broken."""
        try:
            datas = self.decoder.close()
        except (InferenceError, UnicodeDecodeError) as exc:
            self.failure = InferenceError(f"the stream ended inside a character or event: {exc}")
            return []
        pieces = self._events(datas)
        if not self.over:
            if self.finish_reason is not None and self.call.route.startswith("/v1/"):
                self.done = True  # an OpenAI-style stream that finished but sent no [DONE]
            else:
                self.error = "the stream ended before its final event"
        return pieces

    def _events(self, datas: list[str]) -> list[str]:
        out: list[str] = []
        for data in datas:
            if self.over:
                break
            try:
                event = parse_event(data)
            except InferenceError as exc:
                self.failure = exc
                break
            if event.error is not None:
                self.error = event.error
                break
            if event.text:
                self.token_events += 1
                out.append(self.trimmer.push(event.text) if self.trimmer else event.text)
            if event.finish_reason is not None:
                self.finish_reason = event.finish_reason
            if event.prompt_tokens is not None:
                self.prompt_tokens = event.prompt_tokens
            if event.completion_tokens is not None:
                self.completion_tokens = event.completion_tokens
            if event.done:
                self.done = True
                if self.trimmer is not None:
                    out.append(self.trimmer.finish())
        pieces = [piece for piece in out if piece]
        self.delivered.extend(pieces)
        return pieces

    def broken(self, cause: BaseException | None = None) -> InferenceError:
        """The error that ends this stream early."""
        where = self.backend._where(self.call.route)
        text = "".join(self.delivered)
        count = len(self.delivered)
        if isinstance(cause, httpx.TimeoutException) and not self.delivered:
            return InferenceTimeoutError(
                f"the model server at {where} sent no token within the read timeout"
            )
        if self.error is not None:
            reason = f"the server reported an error: {self.backend._scrub(self.error)}"
        elif self.failure is not None:
            reason = str(self.failure)
        elif isinstance(cause, httpx.TimeoutException):
            reason = "no data within the read timeout"
        elif cause is not None:
            reason = f"the connection failed ({type(cause).__name__}: {cause})"
        else:
            reason = "unknown failure"
        return StreamBrokenError(
            f"the stream from {where} broke after {count} piece(s): {reason}",
            partial_text=text,
        )

    def result(self) -> Generation:
        text = "".join(self.delivered)
        prompt_tokens = self.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = self.backend._local_count(self.call.prompt)
        completion_tokens = self.completion_tokens
        if completion_tokens is None:
            completion_tokens = self.backend._completion_count(text, self.token_events)
        return Generation(
            text=text,
            finish_reason=_finish_reason(self.finish_reason),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            latency_s=time.perf_counter() - self.started,
            model=self.backend.model_name,
        )


# -- the backend ------------------------------------------------------------------------------


class HttpBackend:
    """A model served over HTTP: OpenAI-compatible (vLLM, TGI, llama.cpp) or TGI native.

    Args:
        base_url: the server's root, ``http(s)://host[:port][/prefix]`` (a trailing ``/v1``
            is accepted with ``api="openai"``). No query, fragment or credentials.
        api: ``"openai"`` (``/v1/chat/completions``, ``/v1/completions``) or ``"tgi"``
            (``/generate``, ``/generate_stream``).
        model: the ``model`` field sent to OpenAI-compatible servers (vLLM needs the served
            name; TGI and llama.cpp accept any) and the name reported in ``Generation.model``.
        api_key: sent as ``Authorization: Bearer <key>``; never shown.
        context_window: tokens the served model accepts (prompt + generation).
        tokenizer: counts tokens of a text exactly (``str -> int``), or ``"server"`` to ask the
            server; default: :func:`estimate_tokens`.
        prompt_format: renders chat messages as one text prompt (required for chat with
            ``api="tgi"``): ``"alpaca"`` (the twin's fine-tuning template), ``"raw"``
            (contents joined), or a callable ``messages -> str``; when given, chat is sent as
            text in both dialects.
        timeout: default connect / read timeouts; a call's ``timeout=`` replaces them.
        verify: ``True`` (system-independent certifi CAs), ``False``, a CA bundle file or
            directory, or an ``ssl.SSLContext``.
        cert: a client certificate for mutual TLS: ``path``, ``(cert, key)`` or
            ``(cert, key, password)``.
        headers: extra headers for every request (e.g. routing headers of a gateway).
        extra_body: extra JSON fields for every OpenAI-compatible request (server-specific
            options such as llama.cpp's ``repeat_penalty``).
        json_schema_format: how ``GenerationParams.json_schema`` is sent with
            ``api="openai"`` (see :data:`JsonSchemaFormat`); the default ``"compatible"``
            suits llama.cpp servers and TGI; pass ``"json_schema"`` for vLLM and OpenAI.
            With ``api="tgi"`` the schema is always sent as ``parameters.grammar``.
        stream_usage: ask OpenAI-compatible servers for usage at the end of streams.
        trust_env: honour ``HTTP(S)_PROXY``, ``NO_PROXY`` and ``SSL_CERT_FILE``.
        transport: an ``httpx`` transport for the sync client (tests: ``httpx.MockTransport``).
        async_transport: an ``httpx`` async transport for the async client.

    Raises:
        ConfigurationError: an argument is invalid (the API key is never echoed).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api: Api = "openai",
        model: str | None = None,
        api_key: SecretStr | str | None = None,
        context_window: int = 4096,
        tokenizer: Callable[[str], int] | Literal["server"] | None = None,
        prompt_format: MessageRenderer | TextFormat | None = None,
        timeout: Timeouts | None = None,
        verify: bool | PathLike | ssl.SSLContext = True,
        cert: CertTypes | None = None,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        stream_usage: bool = True,
        json_schema_format: JsonSchemaFormat = "compatible",
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if api not in ("openai", "tgi"):
            raise ConfigurationError(f"api must be 'openai' or 'tgi', got {api!r}")
        if not isinstance(context_window, int) or context_window <= 0:
            raise ConfigurationError(f"context_window must be > 0, got {context_window!r}")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigurationError("model must be a non-empty string or None")
        if tokenizer is not None and tokenizer != "server" and not callable(tokenizer):
            raise ConfigurationError("tokenizer must be a callable str -> int, 'server' or None")
        if prompt_format is not None and not (
            callable(prompt_format) or prompt_format in ("raw", "alpaca")
        ):
            raise ConfigurationError(
                "prompt_format must be 'raw', 'alpaca' or a callable (messages -> str)"
            )
        if json_schema_format not in ("compatible", "json_object", "json_schema", "tgi"):
            raise ConfigurationError(
                "json_schema_format must be 'compatible' (llama.cpp and TGI), 'json_object' "
                "(llama.cpp), 'json_schema' (OpenAI, vLLM) or 'tgi' (TGI's Messages API), got "
                f"{json_schema_format!r}"
            )
        if timeout is not None and not isinstance(timeout, Timeouts):
            raise ConfigurationError("timeout must be a Timeouts(connect_s=..., read_s=...)")
        self._base = _validate_base_url(base_url, api)
        self._api: Api = api
        self._model = model
        self._api_key = _check_api_key(api_key)
        self._context_window = context_window
        self._tokenize: Callable[[str], int] | None = (
            None if isinstance(tokenizer, str) else tokenizer
        )
        self._server_tokenize = tokenizer == "server"
        self._prompt_format = prompt_format
        self._timeout = timeout or Timeouts()
        self._extra_body = dict(extra_body or {})
        self._stream_usage = stream_usage
        self._json_schema_format: JsonSchemaFormat = json_schema_format

        request_headers = {"User-Agent": f"llm-twin-sdk/{__version__}"}
        user_headers = dict(headers or {})
        self._secrets: list[str] = [
            value
            for name, value in user_headers.items()
            if _SECRET_HEADER.search(name) and len(value) >= 4
        ]
        if self._api_key is not None:
            if any(name.lower() == "authorization" for name in user_headers):
                raise ConfigurationError(
                    "pass the token either as api_key= or as an Authorization header, not both"
                )
            self._secrets.append(self._api_key.get_secret_value())
            request_headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        request_headers.update(user_headers)
        self._client_options: dict[str, Any] = {
            "headers": request_headers,
            "verify": _ssl_setting(verify, cert),
            "timeout": _httpx_timeout(self._timeout),
            "trust_env": trust_env,
            "follow_redirects": False,
        }
        self._async_transport = async_transport
        self._client: httpx.Client | None = httpx.Client(
            transport=transport, **self._client_options
        )
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    # -- Backend protocol ---------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """``model=`` if given, else the server's base URL."""
        return self._model or self._base

    @property
    def context_window(self) -> int:
        return self._context_window

    @property
    def base_url(self) -> str:
        """The validated base URL (no trailing slash)."""
        return self._base

    @property
    def api(self) -> Api:
        return self._api

    def __repr__(self) -> str:
        auth = ", api_key='**********'" if self._api_key is not None else ""
        model = f", model={self._model!r}" if self._model else ""
        return f"HttpBackend({self._base!r}, api={self._api!r}{model}{auth})"

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        """Tokens of ``prompt``: exact with a tokenizer, else a high estimate (see module doc).

        Example: ``backend.count_tokens("Hello")`` or ``backend.count_tokens(messages)``.
        """
        return self._count(prompt, self._count_text)

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Generate a whole completion (one request; the client owns retries).

        Example: ``backend.generate("Say hi.", GenerationParams(max_new_tokens=16))``.
        """
        call = self._prepare(prompt, params, stream=False)
        limits = timeout or self._timeout
        started = time.perf_counter()
        try:
            response = self._sync_client().post(
                self._url(call.route), json=call.body, timeout=_httpx_timeout(limits)
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call.route, limits) from exc
        return self._read_generation(call, response, started)

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """Stream a completion piece by piece (one request; the client owns retries).

        The request is sent here, so HTTP and connection errors are raised by this call;
        errors after the stream started raise :class:`StreamBrokenError` while iterating.

        Example::

            with backend.stream("Once upon a time", params) as stream:
                for piece in stream:
                    print(piece, end="")
        """
        call = self._prepare(prompt, params, stream=True)
        limits = timeout or self._timeout
        started = time.perf_counter()
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(
                self._sync_client().stream(
                    "POST", self._url(call.route), json=call.body, timeout=_httpx_timeout(limits)
                )
            )
            if not response.is_success:
                response.read()
                raise self._status_error(call.route, response.status_code, response)
        except httpx.HTTPError as exc:
            stack.close()
            raise self._transport_error(exc, call.route, limits) from exc
        except BaseException:
            stack.close()
            raise
        state = _StreamState(self, call, started)
        return TextStream(self._pieces(response, state), on_close=stack.close)

    def close(self) -> None:
        """Close the connections of the sync client. Safe to call more than once.

        In async code prefer :meth:`aclose`, which also closes the async client.
        """
        client, self._client = self._client, None
        self._aclient = None
        if client is not None:
            client.close()

    def __enter__(self) -> HttpBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- native asyncio -------------------------------------------------------------------

    async def agenerate(
        self,
        prompt: NormalizedPrompt,
        params: GenerationParams,
        *,
        timeout: Timeouts | None = None,
    ) -> Generation:
        """Async :meth:`generate` on the backend's ``httpx.AsyncClient``.

        Example: ``generation = await backend.agenerate("Say hi.", GenerationParams())``.
        """
        call = self._prepare(prompt, params, stream=False)
        limits = timeout or self._timeout
        started = time.perf_counter()
        try:
            response = await self._async_client().post(
                self._url(call.route), json=call.body, timeout=_httpx_timeout(limits)
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call.route, limits) from exc
        return self._read_generation(call, response, started)

    def astream(
        self,
        prompt: NormalizedPrompt,
        params: GenerationParams,
        *,
        timeout: Timeouts | None = None,
    ) -> AsyncTextStream:
        """Async :meth:`stream`: an :class:`AsyncTextStream` over one SSE response.

        ``await backend.astream(...)`` (or ``async with``) sends the request and raises its
        HTTP and connection errors; plain ``async for`` sends it on the first piece.

        Example::

            async with await backend.astream("Once upon a time", params) as stream:
                async for piece in stream:
                    print(piece, end="")
            print(stream.generation)
        """
        call = self._prepare(prompt, params, stream=True)
        limits = timeout or self._timeout
        stack = contextlib.AsyncExitStack()
        state = _StreamState(self, call, time.perf_counter())
        opened: list[httpx.Response] = []

        async def opener() -> None:
            state.started = time.perf_counter()
            try:
                response = await stack.enter_async_context(
                    self._async_client().stream(
                        "POST",
                        self._url(call.route),
                        json=call.body,
                        timeout=_httpx_timeout(limits),
                    )
                )
                if not response.is_success:
                    await response.aread()
                    raise self._status_error(call.route, response.status_code, response)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, call.route, limits) from exc
            opened.append(response)

        return AsyncTextStream(self._apieces(opened, state), opener=opener, on_close=stack.aclose)

    async def aclose(self) -> None:
        """Close both clients (async and sync). Safe to call more than once."""
        client, self._aclient = self._aclient, None
        loop = self._aclient_loop() if self._aclient_loop is not None else None
        self.close()
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    async def __aenter__(self) -> HttpBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- clients --------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            raise InferenceError("this HttpBackend is closed; create a new one")
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise InferenceError("this HttpBackend is closed; create a new one")
        loop = asyncio.get_running_loop()
        current = self._aclient_loop() if self._aclient_loop is not None else None
        if self._aclient is None or current is not loop:
            # Connections belong to the loop that opened them: a new loop gets a new client.
            self._aclient = httpx.AsyncClient(
                transport=self._async_transport, **self._client_options
            )
            self._aclient_loop = weakref.ref(loop)
        return self._aclient

    def _url(self, route: str) -> str:
        return self._base + route

    def _where(self, route: str) -> str:
        return self._base + route

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- requests -------------------------------------------------------------------------

    def _render(self, messages: Sequence[Message]) -> str:
        if self._prompt_format is None:
            raise ConfigurationError(
                "chat messages need a text rendering with api='tgi': pass prompt_format= "
                "(messages -> str, e.g. the Alpaca template the model was fine-tuned with), "
                "send a text prompt, or use api='openai' (the server's chat template)"
            )
        if isinstance(self._prompt_format, str):
            from ..prompt_format import format_prompt

            text: object = format_prompt(list(messages), self._prompt_format)
        else:
            text = self._prompt_format(messages)
        if not isinstance(text, str):
            raise ConfigurationError("prompt_format must return a str")
        return text

    def _prepare(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, stream: bool
    ) -> _Call:
        if self._api == "tgi":
            return self._tgi_call(prompt, params, stream=stream)
        return self._openai_call(prompt, params, stream=stream)

    def _tgi_call(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, stream: bool
    ) -> _Call:
        stops = tuple(params.stop)
        text = prompt if isinstance(prompt, str) else self._render(prompt)
        parameters: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "return_full_text": False,
            "details": True,
        }
        if params.temperature > 0:
            # TGI rejects temperature 0 and top_p outside (0, 1): greedy means do_sample off.
            parameters.update(do_sample=True, temperature=params.temperature)
            if params.top_p < 1:
                parameters["top_p"] = params.top_p
        else:
            parameters["do_sample"] = False
        if stops:
            parameters["stop"] = list(stops)
        if params.seed is not None:
            parameters["seed"] = params.seed
        if params.json_schema is not None:
            parameters["grammar"] = {"type": "json", "value": params.json_schema}
        route = "/generate_stream" if stream else "/generate"
        return _Call(route, {"inputs": text, "parameters": parameters}, prompt, stops)

    def _openai_call(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, stream: bool
    ) -> _Call:
        stops = tuple(params.stop)
        body: dict[str, Any] = {}
        if self._model is not None:
            body["model"] = self._model
        if isinstance(prompt, str) or self._prompt_format is not None:
            route = "/v1/completions"
            body["prompt"] = prompt if isinstance(prompt, str) else self._render(prompt)
        else:
            route = "/v1/chat/completions"
            body["messages"] = [{"role": m.role, "content": m.content} for m in prompt]
        body.update(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stream=stream,
        )
        if stops:
            body["stop"] = list(stops)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty  # vLLM; others ignore it
        if stream and self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        if params.json_schema is not None:
            body["response_format"] = self._response_format(params.json_schema)
        body.update(self._extra_body)
        return _Call(route, body, prompt, stops)

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._json_schema_format == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
        if self._json_schema_format == "tgi":
            return {"type": "json_object", "value": schema}
        if self._json_schema_format == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object", "schema": schema, "value": schema}

    # -- responses ------------------------------------------------------------------------

    def _read_generation(self, call: _Call, response: httpx.Response, started: float) -> Generation:
        if not response.is_success:
            raise self._status_error(call.route, response.status_code, response)
        try:
            data = response.json()
        except ValueError as exc:
            raise InferenceError(
                f"the model server at {self._where(call.route)} sent a body that is not JSON: "
                f"{self._scrub(response.text[:200])!r}"
            ) from exc
        return self._generation_from(call, data, started)

    def _generation_from(self, call: _Call, data: Any, started: float) -> Generation:
        where = self._where(call.route)
        if isinstance(data, list) and data:
            data = data[0]  # TGI on SageMaker answers a one-element list
        if not isinstance(data, dict):
            raise InferenceError(f"unexpected answer from {where}: {str(data)[:200]!r}")
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        try:
            if "generated_text" in data:
                text = str(data["generated_text"])
                details = data.get("details") or {}
                finish = details.get("finish_reason")
                completion_tokens = details.get("generated_tokens")
            elif "choices" in data:
                choice = data["choices"][0]
                message = choice.get("message")
                if isinstance(message, dict):
                    text = str(message.get("content") or "")
                else:
                    text = str(choice.get("text") or "")
                finish = choice.get("finish_reason")
                usage = data.get("usage") or {}
                prompt_tokens = usage.get("prompt_tokens")
                completion_tokens = usage.get("completion_tokens")
            elif "error" in data:
                raise ModelError(
                    f"the model server at {where} answered with an error: "
                    f"{self._scrub(_error_detail(json.dumps(data).encode()))}"
                )
            else:
                raise InferenceError(f"unexpected answer from {where}: {str(data)[:200]!r}")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise InferenceError(f"unexpected answer from {where}: {str(data)[:200]!r}") from exc
        text = _trim_stop(text, call.stops)
        if not isinstance(prompt_tokens, int):
            prompt_tokens = self._local_count(call.prompt)
        if not isinstance(completion_tokens, int):
            completion_tokens = self._completion_count(text, None)
        return Generation(
            text=text,
            finish_reason=_finish_reason(finish),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            latency_s=time.perf_counter() - started,
            model=self.model_name,
        )

    def _pieces(
        self, response: httpx.Response, state: _StreamState
    ) -> Generator[str, None, Generation]:
        if not _is_event_stream(response):
            response.read()  # a server that ignored stream=true answered with one JSON body
            generation = self._read_generation(state.call, response, state.started)
            if generation.text:
                yield generation.text
            return generation
        chunks = response.iter_bytes()
        try:
            for chunk in chunks:
                yield from state.feed(chunk)
                if state.over:
                    break
            else:
                yield from state.end()
        except httpx.HTTPError as exc:
            raise state.broken(exc) from exc
        if not state.done:
            raise state.broken() from state.failure
        with contextlib.suppress(httpx.HTTPError):
            for _ in chunks:  # read the end of the body so the connection can be reused
                pass
        return state.result()

    async def _apieces(
        self, opened: list[httpx.Response], state: _StreamState
    ) -> AsyncGenerator[str | Generation, None]:
        response = opened[0]
        if not _is_event_stream(response):
            await response.aread()
            generation = self._read_generation(state.call, response, state.started)
            if generation.text:
                yield generation.text
            yield generation
            return
        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                for piece in state.feed(chunk):
                    yield piece
                if state.over:
                    break
            else:
                for piece in state.end():
                    yield piece
        except httpx.HTTPError as exc:
            raise state.broken(exc) from exc
        if not state.done:
            raise state.broken() from state.failure
        with contextlib.suppress(httpx.HTTPError):
            async for _ in chunks:
                pass
        yield state.result()

    # -- errors ---------------------------------------------------------------------------

    def _status_error(self, route: str, status: int, response: httpx.Response) -> LLMTwinError:
        where = self._where(route)
        detail = self._scrub(_error_detail(response.content))
        simple = _STATUS_ERRORS.get(status)
        if simple is not None:
            kind, text = simple
            return kind(text.format(where=where, status=status, detail=detail))
        if status in {401, 403}:
            message = (
                f"the model server at {where} refused the request (HTTP {status}): {detail}; "
                "check api_key"
            )
        elif 300 <= status < 400:
            location = self._scrub(response.headers.get("location", "?"))
            message = (
                f"the model server at {where} redirects (HTTP {status}) to {location}: set "
                "base_url to the final address (redirects are not followed)"
            )
        else:
            message = f"the model server at {where} answered HTTP {status}: {detail}"
        return ModelError(message, status=status)

    def _transport_error(self, exc: httpx.HTTPError, route: str, limits: Timeouts) -> LLMTwinError:
        where = self._where(route)
        reason = self._scrub(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return ConnectTimeoutError(
                f"could not connect to the model server at {where} within the connect timeout "
                f"of {limits.connect_s:g} s; is it running and reachable?"
            )
        if isinstance(exc, httpx.PoolTimeout):
            return ModelUnavailableError(
                f"no free connection to {where} within {limits.connect_s:g} s: too many "
                "requests in flight on this backend"
            )
        if isinstance(exc, httpx.TimeoutException):
            return InferenceTimeoutError(
                f"the model server at {where} did not answer within the read timeout of "
                f"{limits.read_s:g} s; raise Timeouts(read_s=...) for long generations"
            )
        if _is_tls_setup_error(exc):
            return ConfigurationError(
                f"the TLS handshake with {where} failed ({reason}); for a private CA pass "
                "verify=<CA bundle path>, and check cert= for mutual TLS"
            )
        if isinstance(exc, (httpx.NetworkError, httpx.ProtocolError, httpx.ProxyError)):
            return ModelUnavailableError(
                f"cannot reach the model server at {where} ({reason}); is it running?"
            )
        return InferenceError(f"the request to {where} failed: {type(exc).__name__}: {reason}")

    # -- token counting -------------------------------------------------------------------

    def _count(self, prompt: NormalizedPrompt, count_text: Callable[[str], int]) -> int:
        if isinstance(prompt, str):
            return count_text(prompt)
        if self._prompt_format is not None:
            return count_text(self._render(prompt))
        return (
            sum(count_text(m.content) + CHAT_TOKENS_PER_MESSAGE for m in prompt)
            + CHAT_TOKENS_PER_REPLY
        )

    def _count_text(self, text: str) -> int:
        if self._server_tokenize:
            return self._server_count(text)
        if self._tokenize is not None:
            return int(self._tokenize(text))
        return estimate_tokens(text)

    def _local_count(self, prompt: NormalizedPrompt) -> int:
        """Prompt tokens for usage the server did not report: never a network request."""
        tokenize = self._tokenize
        if tokenize is not None:
            return self._count(prompt, lambda text: int(tokenize(text)))
        return self._count(prompt, estimate_tokens)

    def _completion_count(self, text: str, token_events: int | None) -> int:
        if self._tokenize is not None:
            return int(self._tokenize(text))
        if token_events is not None:
            return token_events
        return estimate_tokens(text)

    def _server_count(self, text: str) -> int:
        if self._api == "openai":
            route, body = "/extras/tokenize/count", {"input": text}
            if self._model is not None:
                body["model"] = self._model
        else:
            route, body = "/tokenize", {"inputs": text}
        try:
            response = self._sync_client().post(self._url(route), json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, route, self._timeout) from exc
        if response.status_code == 404:
            raise EndpointNotFoundError(
                f"the model server has no tokenize route {self._where(route)}: "
                "tokenizer='server' needs llama.cpp server (/extras/tokenize/count) or TGI "
                "(/tokenize); pass a tokenizer callable for other servers"
            )
        if not response.is_success:
            raise self._status_error(route, response.status_code, response)
        try:
            data = response.json()
            count = len(data) if isinstance(data, list) else int(data["count"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InferenceError(
                f"unexpected tokenize answer from {self._where(route)}: {response.text[:200]!r}"
            ) from exc
        return count


_STATUS_ERRORS: dict[int, tuple[type[LLMTwinError], str]] = {
    429: (
        ThrottledError,
        "the model server at {where} is throttling requests (HTTP 429): {detail}",
    ),
    502: (ModelUnavailableError, "the model server at {where} is unavailable (HTTP 502): {detail}"),
    503: (ModelUnavailableError, "the model server at {where} is unavailable (HTTP 503): {detail}"),
    504: (ModelUnavailableError, "the model server at {where} is unavailable (HTTP 504): {detail}"),
    404: (
        EndpointNotFoundError,
        "the model server has no route {where} (HTTP 404: {detail}); check base_url and api= "
        "('openai' serves /v1/..., 'tgi' serves /generate)",
    ),
    413: (
        PayloadTooLargeError,
        "the model server at {where} rejected the request as too large (HTTP 413): {detail}",
    ),
}
"""Statuses with their own error type (others: ModelError with the status)."""


def _is_event_stream(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "")
    return not kind.startswith("application/json")
