"""HttpBackend: a model server of your own over HTTP, in one of three wire protocols.

Chosen with ``api=`` (each protocol is a module of :mod:`llm_twin_sdk.inference.protocols`):

- ``"openai"`` (default): ``/v1/chat/completions`` for chat, ``/v1/completions`` for text,
  plain or streamed (SSE ending with ``[DONE]``): vLLM, TGI's Messages API,
  ``python -m llama_cpp.server``. Streams ask for usage (``stream_usage=False`` turns it off).
  ``GenerationParams.json_schema`` becomes ``response_format`` in the shape chosen with
  ``json_schema_format=`` (:data:`~llm_twin_sdk.inference.protocols.openai.JsonSchemaFormat`;
  the default suits llama.cpp servers and TGI, pass ``"json_schema"`` for vLLM).
- ``"tgi"``: TGI's native ``/generate`` and ``/generate_stream``; the schema becomes TGI's
  grammar.
- ``"lmi"``: an LMI container (DJL Serving) of your own: ``/invocations``, JSON-lines streams.

TGI and LMI take text: chat messages need ``prompt_format=`` (``"alpaca"``, the template the
twin was fine-tuned with, ``"raw"``, or a callable); with ``prompt_format`` chat is sent as
text with every ``api``, so serving matches training.

Example::

    from llm_twin_sdk import GenerationParams, InferenceClient
    from llm_twin_sdk.inference.backends.http import HttpBackend

    client = InferenceClient(HttpBackend("http://127.0.0.1:8000", model="twin", api_key="s3cr3t"))
    print(client.generate([{"role": "user", "content": "Hi!"}]).text)
    tgi = HttpBackend("https://tgi.internal:8443", api="tgi", prompt_format="alpaca",
                      verify="/etc/ssl/private-ca.pem", cert=("client.pem", "client.key"))

    async with HttpBackend("http://127.0.0.1:8000") as backend:      # native asyncio
        generation = await backend.agenerate("Hello", GenerationParams())
        async with await backend.astream("Hello", GenerationParams()) as stream:
            async for piece in stream:
                print(piece, end="")

Behaviour:

- One ``httpx.Client`` per backend and one ``httpx.AsyncClient`` (built on first async use,
  rebuilt for another event loop): connections are pooled. A stream releases its connection
  when it ends, fails or is closed early.
- One attempt per call (:class:`~llm_twin_sdk.InferenceClient` retries). Errors go through one
  table per kind: HTTP 429 -> :class:`ModelThrottledError`; 502/503/504, refused or failed
  connections, connect timeouts -> :class:`ModelUnavailableError` (retried); 404 ->
  :class:`EndpointNotFoundError`; 413 -> :class:`PayloadTooLargeError`; other statuses ->
  :class:`ModelError` with ``status`` (408 retried); read timeout ->
  :class:`InferenceTimeoutError`; a failed TLS handshake -> :class:`TLSHandshakeError`. An
  error in a stream is the same error before its first piece, else :class:`StreamBrokenError`.
- Stop sequences are never returned, whether or not the server trims them.
- The API key is a ``SecretStr``: it appears in no ``repr``, log line or error message.

Token counting: ``tokenizer=`` (a callable ``str -> int``), ``tokenizer="server"`` to ask the
server (llama.cpp server ``/extras/tokenize/count``, TGI ``/tokenize``), or
:func:`~llm_twin_sdk.inference.tokens.estimate_tokens`. Usage a server does not report is
filled in without requests: the callable tokenizer or the estimate (prompt), the tokenizer or
the number of token events (stream completion).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
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
    ModelThrottledError,
    ModelUnavailableError,
    PayloadTooLargeError,
    TLSHandshakeError,
)
from ...types import Generation, GenerationParams, Timeouts
from ..async_stream import AsyncTextStream
from ..backend import NormalizedPrompt
from ..protocols.base import ErrorBody, WireProtocol, error_of
from ..protocols.lmi import LMI
from ..protocols.openai import JSON_SCHEMA_FORMATS, JsonSchemaFormat, OpenAICompatible
from ..protocols.tgi import TGIGenerate
from ..stream import TextStream
from ..tokens import CHAT_TOKENS_PER_MESSAGE, CHAT_TOKENS_PER_REPLY, estimate_tokens
from .http_config import (
    CertTypes,
    PathLike,
    check_api_key,
    check_base_url,
    httpx_timeout,
    is_tls_setup_error,
    ssl_setting,
)
from .remote import Call, MessageRenderer, RemoteBackend, TextFormat

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

Api: TypeAlias = Literal["openai", "tgi", "lmi"]
"""The wire protocol: OpenAI-compatible (``/v1/...``), TGI native (``/generate``) or LMI."""

_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)
_TOKENIZE_ROUTES = {"openai": "/extras/tokenize/count", "tgi": "/tokenize"}

_STATUS_ERRORS: dict[int, tuple[type[LLMTwinError], str]] = {
    429: (ModelThrottledError, "the model server at {where} is throttling requests (HTTP 429)"),
    502: (ModelUnavailableError, "the model server at {where} is unavailable (HTTP 502)"),
    503: (ModelUnavailableError, "the model server at {where} is unavailable (HTTP 503)"),
    504: (ModelUnavailableError, "the model server at {where} is unavailable (HTTP 504)"),
    404: (
        EndpointNotFoundError,
        "the model server has no route {where} (HTTP 404); check base_url and api= ('openai' "
        "serves /v1/..., 'tgi' /generate, 'lmi' /invocations)",
    ),
    413: (
        PayloadTooLargeError,
        "the model server at {where} rejected the request as too large (HTTP 413)",
    ),
    401: (ModelError, "the model server at {where} refused the request (HTTP 401); check api_key"),
    403: (ModelError, "the model server at {where} refused the request (HTTP 403); check api_key"),
}
"""HTTP statuses with a type or message of their own (others: ModelError with the status)."""

_TRANSPORT_ERRORS: tuple[tuple[type[httpx.HTTPError], type[LLMTwinError], str], ...] = (
    (
        httpx.ConnectTimeout,
        ConnectTimeoutError,
        "could not connect to the model server at {where} within the connect timeout of "
        "{connect:g} s; is it running and reachable?",
    ),
    (
        httpx.PoolTimeout,
        ModelUnavailableError,
        "no free connection to {where} within {connect:g} s: too many requests in flight",
    ),
    (
        httpx.TimeoutException,
        InferenceTimeoutError,
        "the model server at {where} did not answer within the read timeout of {read:g} s; "
        "raise Timeouts(read_s=...) for long generations",
    ),
    (
        httpx.TransportError,  # network, protocol and proxy errors
        ModelUnavailableError,
        "cannot reach the model server at {where} ({reason}); is it running?",
    ),
    (httpx.HTTPError, InferenceError, "the request to {where} failed: {reason}"),
)
"""httpx exceptions -> SDK errors, first match wins (a failed TLS handshake is checked first)."""


class HttpBackend(RemoteBackend):
    """A model served over HTTP: OpenAI-compatible (vLLM, TGI, llama.cpp), TGI native or LMI.

    Args:
        base_url: the server's root, ``http(s)://host[:port][/prefix]`` (a trailing ``/v1``
            is accepted with ``api="openai"``). No query, fragment or credentials.
        api: ``"openai"``, ``"tgi"`` or ``"lmi"`` (see the module docstring).
        model: the ``model`` field sent to OpenAI-compatible servers (vLLM needs the served
            name) and the name reported in ``Generation.model``.
        api_key: sent as ``Authorization: Bearer <key>``; never shown.
        context_window: tokens the served model accepts (prompt + generation).
        tokenizer: counts tokens of a text exactly (``str -> int``), or ``"server"``.
        prompt_format: renders chat messages as one text prompt (required for chat with
            ``api="tgi"`` / ``"lmi"``... unless LMI's chat schema suits you): ``"alpaca"``,
            ``"raw"`` or a callable ``messages -> str``.
        timeout: default connect / read timeouts; a call's ``timeout=`` replaces them.
        verify: ``True`` (certifi's CAs), ``False``, a CA bundle file or directory, or an
            ``ssl.SSLContext``.
        cert: a client certificate for mutual TLS: ``path``, ``(cert, key)`` or
            ``(cert, key, password)``.
        headers: extra headers for every request (e.g. routing headers of a gateway).
        extra_body: extra JSON fields for every OpenAI-compatible request.
        json_schema_format: the ``response_format`` shape with ``api="openai"``.
        stream_usage: ask OpenAI-compatible servers for usage at the end of streams.
        trust_env: honour ``HTTP(S)_PROXY``, ``NO_PROXY`` and ``SSL_CERT_FILE``.
        transport / async_transport: ``httpx`` transports (tests: ``httpx.MockTransport``).

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
        if api not in ("openai", "tgi", "lmi"):
            raise ConfigurationError(f"api must be 'openai', 'tgi' or 'lmi', got {api!r}")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigurationError("model must be a non-empty string or None")
        if tokenizer is not None and not callable(tokenizer) and tokenizer != "server":
            raise ConfigurationError("tokenizer must be a callable str -> int, 'server' or None")
        if tokenizer == "server" and api not in _TOKENIZE_ROUTES:
            raise ConfigurationError("tokenizer='server' needs api='openai' (llama.cpp) or 'tgi'")
        if json_schema_format not in JSON_SCHEMA_FORMATS:
            raise ConfigurationError(
                "json_schema_format must be 'compatible' (llama.cpp and TGI), 'json_object' "
                "(llama.cpp), 'json_schema' (OpenAI, vLLM) or 'tgi' (TGI's Messages API), got "
                f"{json_schema_format!r}"
            )
        if timeout is not None and not isinstance(timeout, Timeouts):
            raise ConfigurationError("timeout must be a Timeouts(connect_s=..., read_s=...)")
        protocol: WireProtocol = (
            TGIGenerate()
            if api == "tgi"
            else LMI()
            if api == "lmi"
            else OpenAICompatible(
                model=model,
                json_schema_format=json_schema_format,
                stream_usage=stream_usage,
                extra_body=extra_body,
            )
        )
        super().__init__(
            text=protocol,
            chat=protocol,
            context_window=context_window,
            tokenizer=None if isinstance(tokenizer, str) else tokenizer,
            prompt_format=prompt_format,
        )
        self._base = check_base_url(base_url, strip_v1=api == "openai")
        self._api: Api = api
        self._model = model
        self._api_key = check_api_key(api_key)
        self._server_tokenize = tokenizer == "server"
        self._timeout = timeout or Timeouts()
        request_headers = {"User-Agent": f"llm-twin-sdk/{__version__}"}
        user_headers = dict(headers or {})
        self._secrets = [
            v for k, v in user_headers.items() if _SECRET_HEADER.search(k) and len(v) >= 4
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
            "verify": ssl_setting(verify, cert),
            "timeout": httpx_timeout(self._timeout),
            "trust_env": trust_env,
            "follow_redirects": False,
        }
        self._async_transport = async_transport
        self._client: httpx.Client | None = httpx.Client(
            transport=transport, **self._client_options
        )
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    @property
    def model_name(self) -> str:
        """``model=`` if given, else the server's base URL."""
        return self._model or self._base

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

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Generate a whole completion (one request; the client owns retries).

        Example: ``backend.generate("Say hi.", GenerationParams(max_new_tokens=16))``.
        """
        call, limits = self._prepare(prompt, params, stream=False), timeout or self._timeout
        try:
            response = self._sync_client().post(**self._send(call, limits))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self._where(call), limits) from exc
        return self._read(call, response)

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """Stream a completion piece by piece (one request; the client owns retries).

        The request is sent here: HTTP and connection errors are raised by this call.

        Example::

            with backend.stream("Once upon a time", params) as stream:
                for piece in stream:
                    print(piece, end="")
        """
        call, limits = self._prepare(prompt, params, stream=True), timeout or self._timeout
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(
                self._sync_client().stream("POST", **self._send(call, limits))
            )
            if not response.is_success:
                response.read()
                raise self._http_error(call, response)
        except BaseException as exc:
            stack.close()
            if isinstance(exc, httpx.HTTPError):
                raise self._transport_error(exc, self._where(call), limits) from exc
            raise
        return TextStream(self._pieces(call, response, limits), on_close=stack.close)

    def close(self) -> None:
        """Close the sync client's connections (:meth:`aclose` also closes the async one)."""
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
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Async :meth:`generate` on the backend's ``httpx.AsyncClient``.

        Example: ``generation = await backend.agenerate("Say hi.", GenerationParams())``.
        """
        call, limits = self._prepare(prompt, params, stream=False), timeout or self._timeout
        try:
            response = await self._async_client().post(**self._send(call, limits))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self._where(call), limits) from exc
        return self._read(call, response)

    def astream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> AsyncTextStream:
        """Async :meth:`stream`: ``await backend.astream(...)`` (or ``async with``) sends the
        request and raises its HTTP and connection errors; plain ``async for`` sends it on the
        first piece.

        Example::

            async with await backend.astream("Once upon a time", params) as stream:
                async for piece in stream:
                    print(piece, end="")
        """
        call, limits = self._prepare(prompt, params, stream=True), timeout or self._timeout
        stack = contextlib.AsyncExitStack()
        opened: list[httpx.Response] = []

        async def opener() -> None:
            call.started = time.perf_counter()
            try:
                response = await stack.enter_async_context(
                    self._async_client().stream("POST", **self._send(call, limits))
                )
                if not response.is_success:
                    await response.aread()
                    raise self._http_error(call, response)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, self._where(call), limits) from exc
            opened.append(response)

        return AsyncTextStream(
            self._apieces(call, opened, limits), opener=opener, on_close=stack.aclose
        )

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

    # -- the connection -------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            raise InferenceError("this HttpBackend is closed; create a new one")
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        self._sync_client()  # raises once closed
        loop = asyncio.get_running_loop()
        current = self._aclient_loop() if self._aclient_loop is not None else None
        if self._aclient is None or current is not loop:
            # Connections belong to the loop that opened them: a new loop gets a new client.
            self._aclient = httpx.AsyncClient(
                transport=self._async_transport, **self._client_options
            )
            self._aclient_loop = weakref.ref(loop)
        return self._aclient

    def _send(self, call: Call, limits: Timeouts) -> dict[str, Any]:
        """The arguments of one POST."""
        return {
            "url": self._base + call.request.route,
            "content": call.request.encode(),
            "headers": {"Content-Type": "application/json", "Accept": call.request.accept},
            "timeout": httpx_timeout(limits),
        }

    def _where(self, call: Call) -> str:
        return self._base + call.request.route

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _read(self, call: Call, response: httpx.Response) -> Generation:
        if not response.is_success:
            raise self._http_error(call, response)
        try:
            data = response.json()
        except ValueError as exc:
            raise InferenceError(
                f"the model server at {self._where(call)} sent a body that is not JSON: "
                f"{self._scrub(response.text[:200])!r}"
            ) from exc
        return self._generation(call, data)

    def _pieces(
        self, call: Call, response: httpx.Response, limits: Timeouts
    ) -> Generator[str, None, Generation]:
        if not _is_stream(response):  # a server that ignored stream=true: one JSON body
            response.read()
            generation = self._read(call, response)
            if generation.text:
                yield generation.text
            return generation
        state = self._state(call)
        chunks = response.iter_bytes()
        try:
            for chunk in chunks:
                yield from state.feed(chunk)
                if state.done:
                    break
            yield from state.end()
        except httpx.HTTPError as exc:
            raise state.fail(self._transport_error(exc, self._where(call), limits)) from exc
        with contextlib.suppress(httpx.HTTPError):
            for _ in chunks:  # read the end of the body so the connection can be reused
                pass
        return self._stream_result(call, state)

    async def _apieces(
        self, call: Call, opened: list[httpx.Response], limits: Timeouts
    ) -> AsyncGenerator[str | Generation, None]:
        response = opened[0]
        if not _is_stream(response):
            await response.aread()
            generation = self._read(call, response)
            if generation.text:
                yield generation.text
            yield generation
            return
        state = self._state(call)
        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                for piece in state.feed(chunk):
                    yield piece
                if state.done:
                    break
            for piece in state.end():
                yield piece
        except httpx.HTTPError as exc:
            raise state.fail(self._transport_error(exc, self._where(call), limits)) from exc
        with contextlib.suppress(httpx.HTTPError):
            async for _ in chunks:
                pass
        yield self._stream_result(call, state)

    # -- errors ---------------------------------------------------------------------------

    def _body_error(self, error: ErrorBody, call: Call) -> LLMTwinError:
        return self._status_error(self._where(call), error.status, error.message)

    def _http_error(self, call: Call, response: httpx.Response) -> LLMTwinError:
        detail = error_of(response.content, call.protocol).message
        return self._status_error(self._where(call), response.status_code, detail, response)

    def _status_error(
        self, where: str, status: int | None, detail: str, response: httpx.Response | None = None
    ) -> LLMTwinError:
        """One status -> one error: :data:`_STATUS_ERRORS`, else a ModelError with it."""
        kind, text = _STATUS_ERRORS.get(
            status or 0, (ModelError, "the model server at {where} answered {what}")
        )
        if status is not None and 300 <= status < 400 and response is not None:
            location = self._scrub(response.headers.get("location", "?"))
            text = f"the model server at {{where}} redirects (HTTP {status}) to {location}: "
            text += "set base_url to the final address (redirects are not followed)"
        what = f"HTTP {status}" if response is not None else f"an error ({status or 'no status'})"
        message = f"{text.format(where=where, what=what)}: {self._scrub(detail)}"
        return ModelError(message, status=status) if kind is ModelError else kind(message)

    def _transport_error(self, exc: httpx.HTTPError, where: str, limits: Timeouts) -> LLMTwinError:
        """One httpx exception -> one error: :data:`_TRANSPORT_ERRORS`."""
        reason = self._scrub(str(exc)) or type(exc).__name__
        if is_tls_setup_error(exc):
            return TLSHandshakeError(
                f"the TLS handshake with {where} failed ({reason}); for a private CA pass "
                "verify=<CA bundle path>, and check cert= for mutual TLS"
            )
        kind, text = next((k, t) for e, k, t in _TRANSPORT_ERRORS if isinstance(exc, e))
        return kind(
            text.format(where=where, reason=reason, connect=limits.connect_s, read=limits.read_s)
        )

    # -- token counting -------------------------------------------------------------------

    def _count_text(self, text: str) -> int:
        if not self._server_tokenize:
            return self._local_count(text)
        route = _TOKENIZE_ROUTES[self._api]
        body: dict[str, Any] = {"inputs": text} if self._api == "tgi" else {"input": text}
        if self._model is not None and self._api == "openai":
            body["model"] = self._model
        where = self._base + route
        try:
            response = self._sync_client().post(where, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, where, self._timeout) from exc
        if response.status_code == 404:
            raise EndpointNotFoundError(
                f"the model server has no tokenize route {where}: tokenizer='server' needs "
                "llama.cpp server (/extras/tokenize/count) or TGI (/tokenize); pass a "
                "tokenizer callable for other servers"
            )
        if not response.is_success:
            detail = error_of(response.content, self._text).message
            raise self._status_error(where, response.status_code, detail, response)
        try:
            data = response.json()
            return len(data) if isinstance(data, list) else int(data["count"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InferenceError(
                f"unexpected tokenize answer from {where}: {response.text[:200]!r}"
            ) from exc


def _is_stream(response: httpx.Response) -> bool:
    kind: str = response.headers.get("content-type", "")
    return kind.split(";", maxsplit=1)[0].strip() != "application/json"
