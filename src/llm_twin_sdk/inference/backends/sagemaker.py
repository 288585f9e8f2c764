"""SageMakerBackend: a model served on an AWS SageMaker real-time endpoint (TGI by default).

Calls ``InvokeEndpoint`` for whole completions and ``InvokeEndpointWithResponseStream`` for
streams, with the payloads of Hugging Face TGI (the default LLM container on SageMaker):

- chat messages use the **Messages API** (OpenAI-style ``{"messages": [...], "max_tokens"}``),
  so the container applies the model's own chat template;
- text prompts (and every prompt when ``api="generate"``) use **TGI generate**
  (``{"inputs": str, "parameters": {...}}``).

``GenerationParams(json_schema=...)`` is sent as TGI grammar: ``response_format = {"type":
"json_object", "value": schema}`` in Messages API payloads, ``parameters.grammar = {"type":
"json", "value": schema}`` in generate payloads (TGI >= 1.4.3; TGI compiles each new schema
once, which can take seconds on the first request).

Responses of either shape are parsed whatever was asked (``choices`` or ``generated_text``).
One attempt per call: :class:`~llm_twin_sdk.InferenceClient` retries, and every failure is
converted here into an SDK error that its retry predicate understands (throttling, a
container 429/503, an unavailable model: retried; the rest: not).

Example::

    from llm_twin_sdk import InferenceClient, Timeouts
    from llm_twin_sdk.inference.backends.sagemaker import SageMakerBackend

    backend = SageMakerBackend("twin-endpoint", region="eu-central-1")
    client = InferenceClient(backend)
    print(client.generate([{"role": "user", "content": "Write a post about RAG."}]).text)
    with client.stream("### Instruction:\\nSummarise RAG.\\n### Response:\\n") as stream:
        for piece in stream:
            print(piece, end="", flush=True)

    # an inference-component endpoint, a short read timeout, request tracing:
    SageMakerBackend("shared-endpoint", inference_component_name="twin-ic",
                     timeout=Timeouts(read_s=30), custom_attributes="trace_id=42")
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ...aws import AWSClients, aws_error, botocore_config
from ...errors import (
    AccessDeniedError,
    AWSThrottledError,
    ConfigurationError,
    ConnectTimeoutError,
    EndpointNotFoundError,
    InferenceError,
    InferenceTimeoutError,
    InvalidParameterError,
    LLMTwinError,
    ModelError,
    ModelUnavailableError,
    PayloadTooLargeError,
    StreamBrokenError,
)
from ...types import FinishReason, Generation, GenerationParams, Message, Timeouts, Usage
from ..backend import NormalizedPrompt
from ..stream import TextStream
from ..streaming import SSEDecoder, parse_event

__all__ = [
    "BYTES_PER_TOKEN_ESTIMATE",
    "MAX_PAYLOAD_BYTES",
    "SageMakerApi",
    "SageMakerBackend",
]

SageMakerApi: TypeAlias = Literal["messages", "generate"]

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""SageMaker real-time endpoints reject request bodies over 6 MB (6,291,456 bytes)."""

BYTES_PER_TOKEN_ESTIMATE = 3.0
"""Token estimate without a tokenizer: one token per 3 bytes of UTF-8, rounded up.

English prose runs at ~3.7 bytes per token with small vocabularies (SmolLM2) and 4+ with
large ones (Llama 3), so the estimate errs high there — deliberately: an overestimate only
leaves some context unused, an underestimate makes the container reject the request.
Digits, code and non-Latin scripts can take more tokens than estimated.
"""

MESSAGE_OVERHEAD_TOKENS = 8
"""Estimated chat-template tokens around each message (role markers, separators)."""

REPLY_OVERHEAD_TOKENS = 4
"""Estimated tokens of the template's assistant header that opens the reply."""

_SERVICE = "sagemaker-runtime"
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_COMPONENT = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?")
_NOT_FOUND = re.compile(r"not found|could not find|does not exist", re.IGNORECASE)
_THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalDependencyException",
        "InternalStreamFailure",
        "ModelNotReadyException",
    }
)
# TGI's error_type -> the HTTP status TGI answers it with.
_TGI_STATUS = {
    "overloaded": 429,
    "validation": 422,
    "template_error": 422,
    "tool_error": 422,
    "tokenizer": 422,
    "generation": 424,
    "incomplete_generation": 500,
}


@dataclass(frozen=True)
class _Request:
    """One serialized request."""

    prompt: NormalizedPrompt
    body: bytes
    stream: bool


@dataclass
class _Parsed:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class SageMakerBackend:
    """A SageMaker real-time endpoint (TGI, or any container speaking its payloads).

    Thread-safe: the boto3 clients are built once and shared by every thread.

    Args:
        endpoint_name: the SageMaker endpoint.
        inference_component_name: the inference component to invoke, on an
            inference-component endpoint (sent as ``InferenceComponentName``).
        runtime_client: a ``sagemaker-runtime`` boto3 client to use as it is: its own
            timeouts and retry settings apply (build it with
            :func:`~llm_twin_sdk.aws.botocore_config` so botocore does not retry on top of
            the SDK). Exclusive with ``aws``, ``region``, ``profile`` and ``timeout``.
        aws: the :class:`~llm_twin_sdk.aws.AWSClients` (region, profile) to build clients
            from; default ``AWSClients(region=region, profile=profile)``.
        region / profile: where the endpoint lives, when ``aws`` is not given.
        api: ``"messages"`` (default) sends chat prompts to the Messages API and text
            prompts to TGI generate; ``"generate"`` sends everything to TGI generate, chat
            prompts rendered by ``prompt_format``.
        context_window: tokens the served model accepts (TGI's ``MAX_TOTAL_TOKENS``).
        tokenizer: counts the tokens of a text exactly (e.g.
            ``lambda s: len(hf_tokenizer.encode(s))``); without it :meth:`count_tokens`
            estimates.
        prompt_format: renders chat messages as one text prompt, for ``api="generate"``
            (e.g. the Alpaca template the twin was fine-tuned with).
        custom_attributes: sent verbatim as ``CustomAttributes`` with every call
            (at most 1024 visible ASCII characters).
        timeout: connect and read timeouts of every call (default ``Timeouts()``: 10 s,
            60 s); a call's own ``timeout`` replaces it.

    Raises:
        ConfigurationError: invalid names, conflicting client arguments, bad limits.

    Example::

        backend = SageMakerBackend("twin", region="us-east-1", timeout=Timeouts(read_s=90))
        backend.generate("Hello", GenerationParams(max_new_tokens=32)).text
    """

    def __init__(
        self,
        endpoint_name: str,
        *,
        inference_component_name: str | None = None,
        runtime_client: Any = None,
        aws: AWSClients | None = None,
        region: str | None = None,
        profile: str | None = None,
        api: SageMakerApi = "messages",
        context_window: int = 4096,
        tokenizer: Callable[[str], int] | None = None,
        prompt_format: Callable[[list[Message]], str] | None = None,
        custom_attributes: str | None = None,
        timeout: Timeouts | None = None,
    ) -> None:
        _check_names(endpoint_name, inference_component_name)
        if api not in ("messages", "generate"):
            raise ConfigurationError(f"api must be 'messages' or 'generate', got {api!r}")
        if context_window <= 0:
            raise ConfigurationError(f"context_window must be > 0, got {context_window}")
        _check_custom_attributes(custom_attributes)
        if runtime_client is not None:
            if aws is not None or region is not None or profile is not None:
                raise ConfigurationError(
                    "pass either runtime_client or aws/region/profile, not both"
                )
            if timeout is not None:
                raise ConfigurationError(
                    "timeouts are part of a boto3 client's config: build runtime_client with "
                    "llm_twin_sdk.aws.botocore_config(connect_timeout_s=..., read_timeout_s=...)"
                    " or pass aws=/region= and timeout= instead"
                )
            _warn_if_client_retries(runtime_client)
        elif aws is not None and (region is not None or profile is not None):
            raise ConfigurationError("pass region/profile to AWSClients, or aws=, not both")
        self.endpoint_name = endpoint_name
        self.inference_component_name = inference_component_name
        self.api: SageMakerApi = api
        self.custom_attributes = custom_attributes
        self.timeout = timeout or Timeouts()
        self._window = context_window
        self._tokenizer = tokenizer
        self._prompt_format = prompt_format
        self._injected = runtime_client
        self._owns_aws = aws is None and runtime_client is None
        self._aws = aws or (
            None if runtime_client is not None else AWSClients(region=region, profile=profile)
        )
        self._clients: dict[tuple[float, float], Any] = {}
        self._owned: list[Any] = []
        self._session: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._warned_timeout = False

    # -- Backend protocol ---------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The endpoint name (``endpoint/component`` for an inference component)."""
        if self.inference_component_name:
            return f"{self.endpoint_name}/{self.inference_component_name}"
        return self.endpoint_name

    @property
    def context_window(self) -> int:
        return self._window

    def __repr__(self) -> str:
        return (
            f"SageMakerBackend(endpoint={self.endpoint_name!r}, "
            f"component={self.inference_component_name!r}, api={self.api!r})"
        )

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        """Tokens of ``prompt``: exact with a ``tokenizer``, else a conservative estimate.

        Without a tokenizer a text counts one token per :data:`BYTES_PER_TOKEN_ESTIMATE`
        bytes of UTF-8, rounded up. Chat messages are counted as their contents plus
        :data:`MESSAGE_OVERHEAD_TOKENS` per message and :data:`REPLY_OVERHEAD_TOKENS` for
        the reply's header, since the container applies the chat template, which this
        client does not know — unless ``api="generate"`` with a ``prompt_format``, where the
        rendered prompt is counted. For budget-exact counting (filling the context window
        to the last token) pass the served model's ``tokenizer``.

        Example: ``SageMakerBackend("twin", region="us-east-1").count_tokens("abcdef") == 2``.
        """
        if isinstance(prompt, str):
            return self._count_text(prompt)
        if self.api == "generate" and self._prompt_format is not None:
            return self._count_text(self._prompt_format(list(prompt)))
        contents = sum(self._count_text(m.content) for m in prompt)
        return contents + MESSAGE_OVERHEAD_TOKENS * len(prompt) + REPLY_OVERHEAD_TOKENS

    def _count_text(self, text: str) -> int:
        if self._tokenizer is not None:
            return int(self._tokenizer(text))
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN_ESTIMATE)

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """One ``InvokeEndpoint`` call (no retry here: the client owns retries).

        Raises:
            PayloadTooLargeError: the body is over 6 MB (nothing was sent).
            AWSThrottledError: SageMaker throttled the call.
            ModelError: the container answered an error (``status`` is its HTTP status).
            ModelUnavailableError: SageMaker or the model is unavailable or unreachable.
            EndpointNotFoundError: no such endpoint or inference component.
            InferenceTimeoutError: no answer within the connect or read timeout.
            InferenceError: any other failure, e.g. a malformed response body.
        """
        request = self._request(prompt, params, stream=False)
        client, limits = self._client(timeout)
        started = time.perf_counter()
        raw = self._invoke(client, request, limits)
        parsed = self._parse_body(raw)
        text, stopped = _cut_at_stop(parsed.text, params.stop)
        return Generation(
            text=text,
            finish_reason="stop" if stopped else _finish(parsed.finish_reason),
            usage=Usage(
                prompt_tokens=_first(parsed.prompt_tokens, lambda: self.count_tokens(prompt)),
                completion_tokens=_first(parsed.completion_tokens, lambda: self._count_text(text)),
            ),
            latency_s=time.perf_counter() - started,
            model=self.model_name,
        )

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """One ``InvokeEndpointWithResponseStream`` call, read piece by piece.

        Payload parts are reassembled into SSE events wherever they split; the final event's
        details (token counts, finish reason) are kept; ``[DONE]`` ends the stream (what
        follows it is read and ignored, so the connection can be reused). The HTTP
        connection goes back to the pool when the stream ends, and is closed when the stream
        is left early (``close()``, the end of a ``with`` block, garbage collection).
        Stop sequences are never delivered: text that could begin one is held back until
        it is known not to.

        Raises:
            StreamBrokenError: the stream failed after text arrived (``partial_text`` holds
                the text delivered so far), or ended before the model finished.
            The errors of :meth:`generate`, when the stream fails before any text.
        """
        request = self._request(prompt, params, stream=True)
        client, limits = self._client(timeout)
        started = time.perf_counter()
        try:
            response = client.invoke_endpoint_with_response_stream(**self._call_args(request))
        except _transport_errors() as exc:
            raise self._convert(
                exc, client, "invoke_endpoint_with_response_stream", limits
            ) from exc
        events = response["Body"]
        pieces = self._pieces(events, request, params, limits, started)
        return TextStream(pieces, on_close=events.close)

    def close(self) -> None:
        """Close the clients this backend built (not an injected one, nor ``aws``'s)."""
        with self._lock:
            self._closed = True
            owned, self._owned = self._owned, []
            self._clients.clear()
        for client in owned:
            client.close()

    def __enter__(self) -> SageMakerBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------

    def _request(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, stream: bool
    ) -> _Request:
        payload: dict[str, Any]
        if isinstance(prompt, str):
            payload = _generate_payload(prompt, params, stream=stream)
        elif self.api == "messages":
            payload = _messages_payload(prompt, params, stream=stream)
        elif self._prompt_format is not None:
            payload = _generate_payload(self._prompt_format(list(prompt)), params, stream=stream)
        else:
            raise InvalidParameterError(
                "this SageMakerBackend uses api='generate', which takes a text prompt: pass a "
                "string, or build the backend with prompt_format= (a function rendering chat "
                "messages as text), or with api='messages' if the container has the Messages "
                "API (TGI >= 1.4)"
            )
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"the request body for endpoint {self.endpoint_name!r} is {len(body):,} bytes; "
                f"SageMaker real-time endpoints accept at most {MAX_PAYLOAD_BYTES:,}. Shorten "
                "the prompt (fewer retrieved chunks). Nothing was sent."
            )
        return _Request(prompt=prompt, body=body, stream=stream)

    def _call_args(self, request: _Request) -> dict[str, Any]:
        args: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": request.body,
            "ContentType": "application/json",
            "Accept": "text/event-stream" if request.stream else "application/json",
        }
        if self.inference_component_name is not None:
            args["InferenceComponentName"] = self.inference_component_name
        if self.custom_attributes is not None:
            args["CustomAttributes"] = self.custom_attributes
        return args

    def _invoke(self, client: Any, request: _Request, limits: Timeouts) -> bytes:
        body: Any = None
        try:
            response = client.invoke_endpoint(**self._call_args(request))
            body = response["Body"]
            return bytes(body.read())
        except _transport_errors() as exc:
            raise self._convert(exc, client, "invoke_endpoint", limits) from exc
        finally:
            if body is not None:
                body.close()  # after a full read the connection is already back in the pool

    # -- clients ------------------------------------------------------------------------

    def _client(self, timeout: Timeouts | None) -> tuple[Any, Timeouts]:
        """The runtime client for these timeouts (one per distinct value, built once)."""
        if self._closed:
            raise InferenceError("this SageMakerBackend is closed; create a new one")
        limits = timeout or self.timeout
        if self._injected is not None:
            self._check_injected_timeouts(timeout)
            return self._injected, limits
        key = (limits.connect_s, limits.read_s)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._build_client(limits)
                    self._clients[key] = client
        return client, limits

    def _build_client(self, limits: Timeouts) -> Any:
        aws = self._aws
        assert aws is not None
        default = Timeouts()
        if (limits.connect_s, limits.read_s) == (default.connect_s, default.read_s):
            client = aws.client(_SERVICE)  # AWSClients' config has the default timeouts
            if self._owns_aws:
                self._owned.append(client)  # else shared with whoever gave us `aws`
            return client
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            if self._session is None:
                self._session = boto3.Session(region_name=aws.region, profile_name=aws.profile)
            client = self._session.client(
                _SERVICE,
                endpoint_url=aws.endpoint_url,
                config=botocore_config(
                    connect_timeout_s=limits.connect_s, read_timeout_s=limits.read_s
                ),
            )
        except BotoCoreError as exc:
            raise ConfigurationError(
                f"cannot build an AWS {_SERVICE} client: {exc}. Pass region= (or set "
                "AWS_DEFAULT_REGION) and check the profile name."
            ) from exc
        self._owned.append(client)
        return client

    def _check_injected_timeouts(self, timeout: Timeouts | None) -> None:
        if timeout is None or self._warned_timeout:
            return
        config = getattr(getattr(self._injected, "meta", None), "config", None)
        own = (getattr(config, "connect_timeout", None), getattr(config, "read_timeout", None))
        if own != (timeout.connect_s, timeout.read_s):
            self._warned_timeout = True
            warnings.warn(
                f"SageMakerBackend: per-call timeouts {timeout!r} cannot be applied to an "
                f"injected runtime_client (its own are connect={own[0]}, read={own[1]}); build "
                "the backend with aws=/region= to get per-call timeouts",
                stacklevel=4,
            )

    # -- responses ----------------------------------------------------------------------

    @property
    def _where(self) -> str:
        where = f"SageMaker endpoint {self.endpoint_name!r}"
        if self.inference_component_name:
            where += f" (inference component {self.inference_component_name!r})"
        return where

    def _parse_body(self, raw: bytes) -> _Parsed:
        try:
            data: Any = json.loads(raw)
        except ValueError as exc:
            raise InferenceError(
                f"{self._where} answered a body that is not JSON: {_snippet(raw)}"
            ) from exc
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        if isinstance(data, dict) and "error" in data:
            raise _error_body(data, self._where)
        try:
            if isinstance(data, dict) and "choices" in data:
                return _read_chat(data)
            if isinstance(data, dict) and "generated_text" in data:
                return _read_generate(data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise InferenceError(
                f"{self._where} answered an unexpected body: {_snippet(raw)} ({exc!r})"
            ) from exc
        raise InferenceError(
            f"{self._where} answered an unexpected body: {_snippet(raw)}; expected a TGI "
            "generate answer ([{'generated_text': ...}]) or a chat completion ({'choices': ...})"
        )

    def _pieces(
        self,
        events: Any,
        request: _Request,
        params: GenerationParams,
        limits: Timeouts,
        started: float,
    ) -> Generator[str, None, Generation]:
        state = _StreamState(params.stop, self._where)
        iterator = iter(events)
        try:
            while not state.done:
                part = self._next_part(iterator, state, limits)
                if part is None:
                    yield from state.end_of_stream()
                    break
                yield from state.feed(part)
            yield from state.flush()
            _drain(iterator)
        finally:
            events.close()
        return Generation(
            text=state.text,
            finish_reason="stop" if state.stops.hit else _finish(state.finish_reason),
            usage=Usage(
                prompt_tokens=_first(
                    state.prompt_tokens, lambda: self.count_tokens(request.prompt)
                ),
                completion_tokens=_first(state.completion_tokens, lambda: state.token_events),
            ),
            latency_s=time.perf_counter() - started,
            model=self.model_name,
        )

    def _next_part(
        self, iterator: Iterator[Any], state: _StreamState, limits: Timeouts
    ) -> bytes | None:
        """The next payload part's bytes; ``None`` at the end of the stream."""
        while True:
            try:
                event = next(iterator)
            except StopIteration:
                return None
            except _stream_errors() as exc:
                raise self._stream_failure(exc, state, limits) from exc
            part = event.get("PayloadPart") if isinstance(event, dict) else None
            if part is not None:
                return bytes(part.get("Bytes", b""))

    def _stream_failure(
        self, exc: BaseException, state: _StreamState, limits: Timeouts
    ) -> LLMTwinError:
        from botocore.exceptions import ClientError
        from urllib3.exceptions import ReadTimeoutError

        if isinstance(
            exc, ClientError
        ):  # EventStreamError: ModelStreamError, InternalStreamFailure
            error = exc.response.get("Error", {})
            code, message = error.get("Code") or "StreamError", error.get("Message") or ""
            if not state.delivered and code == "InternalStreamFailure":
                return ModelUnavailableError(
                    f"{self._where}: the stream failed before any text ({code}: {message}); "
                    "SageMaker advises trying again"
                )
            what = f"{code}: {message}"
        elif isinstance(exc, (ReadTimeoutError, TimeoutError)):
            if not state.delivered:
                return InferenceTimeoutError(
                    f"{self._where}: no stream data within the read timeout ({limits.read_s} s)"
                )
            what = f"no data within the read timeout ({limits.read_s} s)"
        else:
            if not state.delivered:
                return ModelUnavailableError(
                    f"{self._where}: the stream failed before any text: {exc}"
                )
            what = f"{type(exc).__name__}: {exc}"
        return StreamBrokenError(
            f"{self._where}: the stream broke after {len(state.delivered)} piece(s): {what}",
            partial_text=state.text,
        )

    # -- errors -------------------------------------------------------------------------

    def _convert(
        self, exc: BaseException, client: Any, operation: str, limits: Timeouts
    ) -> LLMTwinError:
        """The SDK error for a botocore / urllib3 exception of one call."""
        from botocore import exceptions as boto
        from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

        where = self._where
        if isinstance(exc, boto.ClientError):
            return self._client_error(exc, client, operation)
        if isinstance(exc, (boto.ReadTimeoutError, Urllib3ReadTimeout)):
            return InferenceTimeoutError(
                f"{where}: no answer within the read timeout ({limits.read_s} s). Raise "
                "Timeouts(read_s=...) for long generations (SageMaker allows 60 s per call), "
                "or stream."
            )
        if isinstance(exc, boto.ConnectTimeoutError):
            return ConnectTimeoutError(
                f"{where}: could not connect within the connect timeout ({limits.connect_s} s)"
            )
        if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError)):
            return ModelUnavailableError(f"{where} is unreachable: {exc}")
        return self._other_error(exc, client, operation)

    def _other_error(self, exc: BaseException, client: Any, operation: str) -> LLMTwinError:
        from botocore import exceptions as boto

        where = self._where
        if isinstance(exc, boto.ParamValidationError):
            return InvalidParameterError(f"{where}: invalid request: {exc}")
        if isinstance(exc, boto.NoCredentialsError):
            return aws_error(exc, client, operation)
        if isinstance(exc, boto.BotoCoreError):
            return InferenceError(f"{where}: {operation} failed: {exc}")
        # urllib3 errors from a response body: the connection broke.
        return ModelUnavailableError(f"{where}: {operation} failed: {type(exc).__name__}: {exc}")

    def _client_error(self, exc: Any, client: Any, operation: str) -> LLMTwinError:
        response = exc.response
        error = response.get("Error", {})
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or exc)
        metadata = response.get("ResponseMetadata", {})
        status = metadata.get("HTTPStatusCode") or 0
        where = self._where
        if code == "ModelError":
            return _model_error(response, message, where)
        if code in _THROTTLE_CODES:
            return AWSThrottledError(
                f"{where}: SageMaker throttled the call ({code}: {message}); slow down, or give "
                "the endpoint more capacity",
                service=_SERVICE,
                operation=operation,
                code=code,
                request_id=metadata.get("RequestId"),
            )
        if code in _UNAVAILABLE_CODES or (isinstance(status, int) and status >= 500):
            return ModelUnavailableError(f"{where} is unavailable ({code or status}: {message})")
        if code == "ValidationError" and _NOT_FOUND.search(message):
            return EndpointNotFoundError(
                f"{where}: {message} Check the name, the region and the account, and that the "
                "endpoint is InService."
            )
        converted = aws_error(exc, client, operation)
        if isinstance(converted, AccessDeniedError):
            return converted
        return InferenceError(f"{where}: {operation} failed: {code or status}: {message}")


# -- payloads -----------------------------------------------------------------------------------


def _generate_payload(text: str, params: GenerationParams, *, stream: bool) -> dict[str, Any]:
    """TGI generate. TGI rejects temperature <= 0 and top_p >= 1, and samples whenever a
    warper (temperature, top_p) is set: greedy decoding sends ``do_sample: false`` alone."""
    parameters: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "return_full_text": False,
        "details": True,
    }
    if params.temperature > 0:
        parameters["do_sample"] = True
        parameters["temperature"] = params.temperature
        if params.top_p < 1:
            parameters["top_p"] = params.top_p
    else:
        parameters["do_sample"] = False
    if params.repetition_penalty != 1.0:
        parameters["repetition_penalty"] = params.repetition_penalty
    if params.stop:
        parameters["stop"] = list(params.stop)
    if params.seed is not None:
        parameters["seed"] = params.seed
    if params.json_schema is not None:
        # TGI's grammar parameter (TGI >= 1.4.3): {"type": "json" | "regex", "value": ...}.
        parameters["grammar"] = {"type": "json", "value": params.json_schema}
    return {"inputs": text, "parameters": parameters, "stream": stream}


def _messages_payload(
    messages: Sequence[Message], params: GenerationParams, *, stream: bool
) -> dict[str, Any]:
    """Messages API (OpenAI-style). TGI decodes greedily when ``temperature`` is 0.

    ``repetition_penalty`` (multiplicative, 1.0 = off) has no OpenAI field: TGI reads
    ``presence_penalty`` as ``repetition_penalty - 2`` (its router sets
    ``repetition_penalty = presence_penalty + 2``), so that is what is sent, and nothing
    when the penalty is 1.0. Other containers read ``presence_penalty`` as OpenAI's additive
    penalty: with them set ``repetition_penalty=1.0``.
    """
    payload: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "stream": stream,
    }
    if params.temperature > 0 and params.top_p < 1:
        payload["top_p"] = params.top_p
    if params.repetition_penalty != 1.0:
        payload["presence_penalty"] = params.repetition_penalty - 2.0
    if params.stop:
        payload["stop"] = list(params.stop)
    if params.seed is not None:
        payload["seed"] = params.seed
    if stream:
        payload["stream_options"] = {"include_usage": True}
    if params.json_schema is not None:
        # TGI's Messages API reads `response_format` as the same grammar type as /generate's
        # `grammar` ({"type", "value"}, "json_object" an alias of "json"): see TGI's
        # router/src/lib.rs (`ChatRequest.response_format: Option<GrammarType>`) and its
        # integration test test_grammar_response_format_llama.py. OpenAI's
        # {"type": "json_schema", "json_schema": {...}} shape is not what TGI reads.
        payload["response_format"] = {"type": "json_object", "value": params.json_schema}
    return payload


def _read_chat(data: dict[str, Any]) -> _Parsed:
    choice = data["choices"][0]
    message = choice.get("message") or {}
    text = message.get("content") if "message" in choice else choice.get("text")
    usage = data.get("usage") or {}
    return _Parsed(
        text=str(text or ""),
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
    )


def _read_generate(data: dict[str, Any]) -> _Parsed:
    details = data.get("details") or {}
    prefill = details.get("prefill") or []
    return _Parsed(
        text=str(data["generated_text"]),
        finish_reason=details.get("finish_reason"),
        prompt_tokens=len(prefill) if prefill else None,
        completion_tokens=_int(details.get("generated_tokens")),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _first(value: int | None, fallback: Callable[[], int]) -> int:
    return value if value is not None else fallback()


def _finish(reason: str | None) -> FinishReason:
    return "length" if reason in {"length", "max_tokens"} else "stop"


def _snippet(raw: bytes | str, limit: int = 200) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


# -- errors -------------------------------------------------------------------------------------


def _error_text(value: Any) -> str | None:
    """The message of a TGI / OpenAI error body (given as JSON text or parsed)."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    if isinstance(value, dict) and "error" in value:
        error = value["error"]
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    return None if value is None else str(value)


def _error_status(body: dict[str, Any]) -> int | None:
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        return int(error["code"])
    return _TGI_STATUS.get(str(body.get("error_type")))


def _error_body(body: dict[str, Any], where: str) -> ModelError:
    status = _error_status(body)
    return ModelError(
        f"{where}: the model answered an error ({status or 'no status'}): {_error_text(body)}",
        status=status,
    )


def _model_error(response: dict[str, Any], message: str, where: str) -> ModelError:
    status = response.get("OriginalStatusCode")
    arn = response.get("LogStreamArn")
    detail = _error_text(response.get("OriginalMessage")) or message
    text = f"{where}: the model container answered {status}: {detail}"
    if arn:
        text += f" (container logs: {arn})"
    return ModelError(text, status=int(status) if status is not None else None, log_stream_arn=arn)


@functools.cache
def _transport_errors() -> tuple[type[BaseException], ...]:
    """What one call can raise: botocore errors, and urllib3's from a streamed body."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    return (ClientError, BotoCoreError, HTTPError)


@functools.cache
def _stream_errors() -> tuple[type[BaseException], ...]:
    """What iterating a botocore EventStream can raise."""
    from botocore.eventstream import ParserError

    return (*_transport_errors(), ParserError, OSError)


def _drain(iterator: Iterator[Any]) -> None:
    """Read what is left after the last event, so the connection returns to the pool."""
    try:
        for _ in iterator:
            pass
    except Exception:  # the answer is complete: a late failure changes nothing
        pass


# -- streams ------------------------------------------------------------------------------------


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could begin a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


@dataclass
class _StopFilter:
    """Holds back text that may begin a stop sequence; drops everything from one on."""

    stops: Sequence[str]
    pending: str = ""
    hit: bool = False

    def push(self, text: str) -> str:
        if not self.stops:
            return text
        if self.hit:
            return ""
        self.pending += text
        out, self.hit = _cut_at_stop(self.pending, self.stops)
        if self.hit:
            self.pending = ""
            return out
        keep = _held_back(self.pending, self.stops)
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


@dataclass
class _StreamState:
    """SSE bytes in, text pieces out; what the events said about the generation."""

    stop_sequences: Sequence[str]
    where: str
    decoder: SSEDecoder = field(default_factory=SSEDecoder)
    stops: _StopFilter = field(init=False)
    delivered: list[str] = field(default_factory=list)
    done: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token_events: int = 0

    def __post_init__(self) -> None:
        self.stops = _StopFilter(self.stop_sequences)

    @property
    def text(self) -> str:
        return "".join(self.delivered)

    def feed(self, part: bytes) -> Iterator[str]:
        try:
            datas = self.decoder.feed(part)
        except InferenceError as exc:
            raise self._broken(str(exc)) from exc
        for data in datas:
            yield from self._event(data)

    def end_of_stream(self) -> Iterator[str]:
        for data in self.decoder.close():
            yield from self._event(data)
        if not self.done and self.finish_reason is None:
            raise self._broken("the stream ended before the model finished (no final event)")
        self.done = True

    def flush(self) -> Iterator[str]:
        yield from self._deliver(self.stops.flush())

    def _event(self, data: str) -> Iterator[str]:
        if self.done:
            return
        try:
            event = parse_event(data)
        except InferenceError as exc:
            raise self._broken(str(exc)) from exc
        if event.error is not None:
            raise self._error_event(data, event.error)
        if event.text:
            self.token_events += 1
            yield from self._deliver(self.stops.push(event.text))
        self.finish_reason = event.finish_reason or self.finish_reason
        if event.prompt_tokens is not None:
            self.prompt_tokens = event.prompt_tokens
        if event.completion_tokens is not None:
            self.completion_tokens = event.completion_tokens
        if event.generated_text is not None:  # TGI's final event: details.input_length
            self.prompt_tokens = _input_length(data) or self.prompt_tokens
        self.done = event.done

    def _deliver(self, text: str) -> Iterator[str]:
        if text:
            self.delivered.append(text)
            yield text

    def _broken(self, message: str) -> InferenceError:
        if not self.delivered:
            return InferenceError(f"{self.where}: {message}")
        return StreamBrokenError(
            f"{self.where}: the stream broke after {len(self.delivered)} piece(s): {message}",
            partial_text=self.text,
        )

    def _error_event(self, data: str, message: str) -> InferenceError:
        if self.delivered:
            return StreamBrokenError(
                f"{self.where}: the model failed mid-stream after {len(self.delivered)} "
                f"piece(s): {message}",
                partial_text=self.text,
            )
        try:
            body = json.loads(data)
        except ValueError:  # pragma: no cover - parse_event already parsed it
            body = {}
        return _error_body(body if isinstance(body, dict) else {}, self.where)


def _input_length(data: str) -> int | None:
    try:
        details = json.loads(data).get("details") or {}
    except (ValueError, AttributeError):  # pragma: no cover - parse_event already parsed it
        return None
    return _int(details.get("input_length")) if isinstance(details, dict) else None


# -- validation ---------------------------------------------------------------------------------


def _check_names(endpoint: str, component: str | None) -> None:
    if not isinstance(endpoint, str) or not _NAME.fullmatch(endpoint):
        raise ConfigurationError(
            f"invalid SageMaker endpoint name {endpoint!r}: 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    if component is not None and not _COMPONENT.fullmatch(component):
        raise ConfigurationError(
            f"invalid inference component name {component!r}: 1-63 letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )


def _check_custom_attributes(value: str | None) -> None:
    if value is None:
        return
    if len(value) > 1024 or not all(" " <= c <= "~" or c == "\t" for c in value):
        raise ConfigurationError(
            "custom_attributes must be at most 1024 visible ASCII characters "
            f"(got {len(value)} characters)"
        )


def _warn_if_client_retries(client: Any) -> None:
    retries = getattr(getattr(getattr(client, "meta", None), "config", None), "retries", None)
    off = isinstance(retries, dict) and (
        retries.get("total_max_attempts") == 1 or retries.get("max_attempts") == 0
    )
    if not off:
        warnings.warn(
            "the runtime_client given to SageMakerBackend retries by itself (botocore's "
            f"default, retries={retries!r}); with InferenceClient's retry policy on top, "
            "attempts multiply. Build it with config=llm_twin_sdk.aws.botocore_config().",
            stacklevel=3,
        )
