"""HttpBackend: a model server of your own over HTTP (OpenAI-compatible, TGI or LMI).

Pooled connections (one ``httpx.Client``, one ``httpx.AsyncClient`` per event loop); one attempt
per call, failures converted by :data:`_STATUS_ERRORS` and :data:`_TRANSPORT_ERRORS`
(docs/architecture.md, "Model calls"). The API key never shows. Example::

    client = InferenceClient(HttpBackend("http://127.0.0.1:8000", model="twin", api_key="s3cr3t"))
    tgi = HttpBackend("https://tgi.internal:8443", api="tgi", verify="/etc/ssl/private-ca.pem")
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, Literal, TypeAlias

import httpx
from pydantic import SecretStr

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
from ..invocation import Invocation
from ..protocols.base import ErrorBody, WireProtocol, error_of
from ..protocols.lmi import LMI
from ..protocols.openai import JSON_SCHEMA_FORMATS, JsonSchemaFormat, OpenAICompatible
from ..protocols.tgi import TGIGenerate
from ..stream import TextStream
from .http_config import (
    CertTypes,
    PathLike,
    check_base_url,
    client_options,
    httpx_timeout,
    is_tls_setup_error,
)
from .remote import Call, MessageRenderer, RemoteBackend, TextFormat

__all__ = ["Api", "HttpBackend", "JsonSchemaFormat", "MessageRenderer", "TextFormat"]

Api: TypeAlias = Literal["openai", "tgi", "lmi"]
"""The wire protocol: OpenAI-compatible (``/v1/...``), TGI generate or LMI."""

_TOKENIZE_ROUTES = {"openai": "/extras/tokenize/count", "tgi": "/tokenize"}
_REFUSED = "the model server at {where} refused the request ({what}); check api_key"
_UNAVAILABLE = "the model server at {where} is unavailable ({what})"
_STATUS_ERRORS: dict[int, tuple[type[LLMTwinError], str]] = {
    429: (ModelThrottledError, "the model server at {where} is throttling requests ({what})"),
    502: (ModelUnavailableError, _UNAVAILABLE),
    503: (ModelUnavailableError, _UNAVAILABLE),
    504: (ModelUnavailableError, _UNAVAILABLE),
    404: (
        EndpointNotFoundError,
        "the model server has no route {where} ({what}); check base_url and api= ('openai' "
        "serves /v1/..., 'tgi' /generate, 'lmi' /invocations)",
    ),
    413: (
        PayloadTooLargeError,
        "the model server at {where} rejected the request as too large ({what})",
    ),
    401: (ModelError, _REFUSED),
    403: (ModelError, _REFUSED),
}
"""HTTP statuses (also those an error body means) with a type or message of their own; others
are a :class:`ModelError` with the status."""

_TRANSPORT_ERRORS: tuple[tuple[type[httpx.HTTPError], type[LLMTwinError], str], ...] = (
    (
        httpx.ConnectTimeout,
        ConnectTimeoutError,
        "could not connect to the model server at {where} within the connect timeout of "
        "{connect:g} s; is it running and reachable?",
    ),
    (httpx.PoolTimeout, ModelUnavailableError, "no free connection to {where} in {connect:g} s"),
    (
        httpx.TimeoutException,
        InferenceTimeoutError,
        "the model server at {where} did not answer within the read timeout of {read:g} s; "
        "raise Timeouts(read_s=...) for long generations",
    ),
    (httpx.TransportError, ModelUnavailableError, "cannot reach the model server at {where} "
     "({reason}); is it running?"),
    (httpx.HTTPError, InferenceError, "the request to {where} failed: {reason}"),
)  # fmt: skip
"""httpx exceptions -> SDK errors, first match wins (a failed TLS handshake is checked first)."""


class HttpBackend(RemoteBackend):
    """A model served over HTTP: OpenAI-compatible (vLLM, TGI, llama.cpp), TGI or LMI.

    Args:
        base_url: the server's root, ``http(s)://host[:port][/prefix]`` (a trailing ``/v1``
            is accepted with ``api="openai"``). No query, fragment or credentials.
        api: the wire protocol (:mod:`llm_twin_sdk.inference.protocols`): ``"openai"``
            (vLLM, llama.cpp servers, TGI's Messages API), ``"tgi"`` (``/generate``) or
            ``"lmi"`` (an LMI container's ``/invocations``).
        model: the ``model`` of OpenAI-compatible requests (vLLM needs the served name).
        api_key: sent as ``Authorization: Bearer <key>``; never shown.
        tokenizer: counts a text's tokens (``str -> int``), or ``"server"``; default: the
            estimate of :mod:`llm_twin_sdk.inference.tokens`.
        prompt_format: renders chat messages as one text prompt, sent with the text protocol.
        verify: ``True`` (certifi's CAs), ``False``, a CA bundle file or folder, or an
            ``ssl.SSLContext``. cert: a client certificate for mutual TLS (:data:`CertTypes`).
        headers: extra headers for every request. extra_body: extra JSON fields for every
            OpenAI-compatible request (e.g. llama.cpp's ``repeat_penalty``).
        json_schema_format: how ``json_schema`` is sent with ``api="openai"``.
        stream_usage: ask OpenAI-compatible servers for usage at the end of streams.
        trust_env: honour ``HTTP(S)_PROXY``, ``NO_PROXY`` and ``SSL_CERT_FILE``.
        transport: an ``httpx`` transport (tests: ``httpx.MockTransport``).
        async_transport: the same for async calls.

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
        protocol: WireProtocol = TGIGenerate() if api == "tgi" else LMI()
        if api == "openai":
            protocol = OpenAICompatible(
                model=model,
                json_schema_format=json_schema_format,
                stream_usage=stream_usage,
                extra_body=extra_body,
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
        self._has_key = api_key is not None
        self._server_tokenize = tokenizer == "server"
        self._timeout = timeout or Timeouts()
        self._options, self._secrets = client_options(
            api_key=api_key,
            headers=headers,
            verify=verify,
            cert=cert,
            timeout=self._timeout,
            trust_env=trust_env,
        )
        self._async_transport = async_transport
        self._client: httpx.Client | None = httpx.Client(transport=transport, **self._options)
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
        auth = ", api_key='**********'" if self._has_key else ""
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
        """Stream a completion (one request, sent here: its HTTP and connection errors are
        raised by this call).

        Example: ``with backend.stream("Once upon a time", params) as stream: ...``.
        """
        call, limits = self._prepare(prompt, params, stream=True), timeout or self._timeout
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(
                self._sync_client().stream("POST", **self._send(call, limits))
            )
            if not response.is_success:
                response.read()
                raise self._http_error(self._where(call), response, call.protocol)
        except BaseException as exc:
            stack.close()
            if isinstance(exc, httpx.HTTPError):
                raise self._transport_error(exc, self._where(call), limits) from exc
            raise
        return TextStream(self._http_pieces(call, response, limits), on_close=stack.close)

    def invoke(
        self,
        route: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: Timeouts | None = None,
    ) -> bytes:
        """One request to ``route`` of the server with ``body`` as it is (``None``: a GET);
        the answer's bytes. For routes that are not text generation (a TEI server's
        ``invoke("/embed", b'{"inputs": ["a text"]}')``, ``invoke("/info")``); no retry
        here, errors as :meth:`generate`'s."""
        return self._request(route, body, content_type, None, timeout).body

    def invoke_raw(
        self,
        body: bytes,
        *,
        content_type: str,
        accept: str | None = None,
        timeout: Timeouts | None = None,
    ) -> Invocation:
        """``POST /invocations`` with ``body`` as it is (the SageMaker container contract: a
        framework container run locally, ``docker run -p 8080:8080 ... serve``); the answer's
        bytes and content type. What :meth:`~llm_twin_sdk.InferenceClient.invoke` calls."""
        return self._request("/invocations", body, content_type, accept, timeout)

    def _request(
        self,
        route: str,
        body: bytes | None,
        content_type: str,
        accept: str | None,
        timeout: Timeouts | None,
    ) -> Invocation:
        limits = timeout or self._timeout
        where = self._base + route
        request: dict[str, Any] = {"url": where, "timeout": httpx_timeout(limits)}
        headers = {"Accept": accept} if accept is not None else {}
        if body is not None:
            request["content"] = body
            headers["Content-Type"] = content_type
        if headers:
            request["headers"] = headers
        try:
            response = self._sync_client().request("GET" if body is None else "POST", **request)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, where, limits) from exc
        if not response.is_success:
            raise self._http_error(where, response, self._text)
        return Invocation(response.content, response.headers.get("content-type"))

    def close(self) -> None:
        """Close the sync client's connections (:meth:`aclose` also closes the async one)."""
        client, self._client = self._client, None
        self._aclient = None
        if client is not None:
            client.close()

    # -- native asyncio -------------------------------------------------------------------

    async def agenerate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Async :meth:`generate` on the backend's ``httpx.AsyncClient``."""
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

        Example: ``async with await backend.astream("Hi", params) as stream: ...``.
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
                    raise self._http_error(self._where(call), response, call.protocol)
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
            self._aclient = httpx.AsyncClient(transport=self._async_transport, **self._options)
            self._aclient_loop = weakref.ref(loop)
        return self._aclient

    def _send(self, call: Call, limits: Timeouts) -> dict[str, Any]:
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
            raise self._http_error(self._where(call), response, call.protocol)
        try:
            data = response.json()
        except ValueError as exc:
            raise InferenceError(
                f"the model server at {self._where(call)} sent a body that is not JSON: "
                f"{self._scrub(response.text[:200])!r}"
            ) from exc
        return self._generation(call, data)

    def _http_pieces(
        self, call: Call, response: httpx.Response, limits: Timeouts
    ) -> Generator[str, None, Generation]:
        if not _is_stream(response):  # a server that ignored stream=true: one JSON body
            response.read()
            generation = self._read(call, response)
            if generation.text:
                yield generation.text
            return generation
        where = self._where(call)
        return (
            yield from self._pieces(
                call,
                response.iter_bytes(),
                (httpx.HTTPError,),
                lambda exc: self._transport_error(exc, where, limits),
            )
        )

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

    def _http_error(
        self, where: str, response: httpx.Response, protocol: WireProtocol
    ) -> LLMTwinError:
        detail = error_of(response.content, protocol).message
        return self._status_error(where, response.status_code, detail, response)

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
            raise self._http_error(where, response, self._text)
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
