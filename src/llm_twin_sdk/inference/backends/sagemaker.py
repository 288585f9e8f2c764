"""SageMakerBackend: a model on an AWS SageMaker real-time endpoint (TGI by default, or LMI).

``InvokeEndpoint`` (``...WithResponseStream`` for streams) with the payloads of the protocol
``api=`` names; one attempt per call, failures converted through one table per kind
(docs/architecture.md, "Model calls"). Example::

    client = InferenceClient(SageMakerBackend("twin-endpoint", region="eu-central-1"))
    SageMakerBackend("shared", inference_component_name="twin-ic", api="lmi")
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeAlias

from ...aws import AWSClients, AWSErrorKind, botocore_config, client_error_fields, error_kind
from ...errors import (
    AWSError,
    ConfigurationError,
    ConnectTimeoutError,
    EndpointAccessDeniedError,
    EndpointNotFoundError,
    EndpointThrottledError,
    InferenceError,
    InferenceTimeoutError,
    InvalidParameterError,
    InvokeOnlyEndpointError,
    LLMTwinError,
    ModelError,
    ModelUnavailableError,
    PayloadTooLargeError,
)
from ...types import Generation, GenerationParams, Timeouts
from ..backend import NormalizedPrompt
from ..invocation import Invocation
from ..protocols.base import ErrorBody, WireProtocol, parse_json
from ..protocols.lmi import LMI
from ..protocols.openai import OpenAICompatible
from ..protocols.tgi import TGIGenerate
from ..stream import TextStream
from .remote import Call, MessageRenderer, RemoteBackend, TextFormat

__all__ = ["MAX_PAYLOAD_BYTES", "SageMakerApi", "SageMakerBackend"]

SageMakerApi: TypeAlias = Literal["messages", "generate", "lmi", "invoke"]

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""SageMaker real-time endpoints reject request bodies over 6 MB (6,291,456 bytes)."""

_SERVICE = "sagemaker-runtime"
_STREAM = "invoke_endpoint_with_response_stream"
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_COMPONENT = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?")
_NOT_FOUND = re.compile(r"not found|could not find|does not exist", re.IGNORECASE)
_UNAVAILABLE = (ModelUnavailableError, "{where} is unavailable ({code}: {message})")
_CODE_ERRORS: dict[AWSErrorKind | str, tuple[type[LLMTwinError], str]] = {
    "throttled": (EndpointThrottledError, "{where}: SageMaker throttled the call ({code}: "
                  "{message}); slow down, or give the endpoint more capacity"),
    "access-denied": (EndpointAccessDeniedError, "{where}: {operation} was refused ({code}: "
                      "{message}); the caller needs sagemaker:InvokeEndpoint on the endpoint"),
    "not-found": (EndpointNotFoundError, "{where}: {message} Check the name, the region and the "
                  "account, and that the endpoint is InService."),
    "unavailable": _UNAVAILABLE,
    "retry-later": _UNAVAILABLE,
    "ModelStreamError": (ModelUnavailableError, "{where}: the model's stream failed ({code}: "
                         "{message})"),
    "": (InferenceError, "{where}: {operation} failed: {code}: {message}"),
}  # fmt: skip
"""AWS error kinds (:func:`~llm_twin_sdk.aws.error_kind`) and codes -> SDK errors (``ModelError``
is read apart: the container's status; unknown 5xx codes are unavailable)."""


@functools.cache
def _exception_errors() -> tuple[
    tuple[tuple[type[BaseException], ...], type[LLMTwinError], str], ...
]:
    """botocore and urllib3 exceptions -> SDK errors, first match wins (loaded on first use)."""
    from botocore import exceptions as boto
    from botocore.eventstream import ParserError
    from urllib3 import exceptions as urllib3

    return (
        ((boto.ReadTimeoutError, urllib3.ReadTimeoutError, TimeoutError), InferenceTimeoutError,
         "{where}: no answer within the read timeout ({read:g} s). Raise Timeouts(read_s=...) "
         "for long generations (SageMaker allows 60 s per call), or stream."),
        ((boto.ConnectTimeoutError,), ConnectTimeoutError,
         "{where}: could not connect within the connect timeout ({connect:g} s)"),
        ((boto.ConnectionError, boto.HTTPClientError), ModelUnavailableError,
         "{where} is unreachable: {reason}"),
        ((boto.ParamValidationError,), InvalidParameterError, "{where}: invalid request: {reason}"),
        ((boto.NoCredentialsError,), EndpointAccessDeniedError,
         "{where}: no AWS credentials found. Configure a profile (aws configure) or set "
         "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."),
        ((boto.BotoCoreError,), InferenceError, "{where}: {operation} failed: {reason}"),
        ((urllib3.HTTPError, ParserError, OSError), ModelUnavailableError,  # a broken body
         "{where}: {operation} failed: {kind}: {reason}"),
    )  # fmt: skip


@functools.cache
def _foreign() -> tuple[type[BaseException], ...]:
    """Every exception a call or a stream's iteration raises that is converted here."""
    from botocore.exceptions import ClientError

    return (ClientError, *(t for types, _, _ in _exception_errors() for t in types))


def _error(kind: type[LLMTwinError], message: str, **aws: Any) -> LLMTwinError:
    return kind(message, service=_SERVICE, **aws) if issubclass(kind, AWSError) else kind(message)


class SageMakerBackend(RemoteBackend):
    """A SageMaker real-time endpoint (TGI, LMI, or any container speaking their payloads).
    Thread-safe: the boto3 clients are built once and shared by every thread.

    Args:
        endpoint_name: the endpoint; inference_component_name: its component to invoke.
        runtime_client: a ``sagemaker-runtime`` boto3 client to use as it is (build it with
            :func:`~llm_twin_sdk.aws.botocore_config`, so botocore does not retry on top of the
            SDK). Exclusive with ``aws``, ``region``, ``profile`` and ``timeout``.
        aws: the :class:`~llm_twin_sdk.aws.AWSClients` to build clients from (or region=, profile=).
        api: ``"messages"`` (default: chat to TGI's Messages API, text to TGI generate),
            ``"generate"`` (everything to TGI generate), ``"lmi"`` (LMI containers) or
            ``"invoke"`` (your own inference code: plain :meth:`invoke_raw` only; generate and
            stream raise :class:`~llm_twin_sdk.errors.InvokeOnlyEndpointError`).
        context_window: tokens the served model accepts (TGI's ``MAX_TOTAL_TOKENS``).
        tokenizer: counts a text's tokens exactly; default: an estimate that errs high.
        prompt_format: renders chat as one text prompt; required for chat with ``api="generate"``.
        custom_attributes: sent verbatim as ``CustomAttributes`` (at most 1024 visible ASCII).
        timeout: connect and read timeouts (default 10 s, 60 s); a call's own replaces them.

    Raises:
        ConfigurationError: invalid names, conflicting client arguments, bad limits.

    Example: ``SageMakerBackend("twin", region="us-east-1", timeout=Timeouts(read_s=90))``.
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
        prompt_format: MessageRenderer | TextFormat | None = None,
        custom_attributes: str | None = None,
        timeout: Timeouts | None = None,
    ) -> None:
        _check_names(endpoint_name, inference_component_name, custom_attributes)
        if api not in ("messages", "generate", "lmi", "invoke"):
            raise ConfigurationError(
                f"api must be 'messages', 'generate', 'lmi' or 'invoke', got {api!r}"
            )
        text: WireProtocol = LMI() if api == "lmi" else TGIGenerate()
        super().__init__(
            text=text,
            chat=OpenAICompatible(json_schema_format="tgi") if api == "messages" else text,
            context_window=context_window,
            tokenizer=tokenizer,
            prompt_format=prompt_format,
        )
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
        self._injected = runtime_client
        self._owns_aws = aws is None and runtime_client is None
        self._aws = aws or (
            None if runtime_client is not None else AWSClients(region=region, profile=profile)
        )
        self._clients: dict[tuple[float, float], Any] = {}
        self._default: Any = None  # the client of the backend's own timeouts, once built
        self._owned: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        self._warned_timeout = False

    @property
    def model_name(self) -> str:
        """The endpoint name (``endpoint/component`` for an inference component)."""
        if self.inference_component_name:
            return f"{self.endpoint_name}/{self.inference_component_name}"
        return self.endpoint_name

    def __repr__(self) -> str:
        return (
            f"SageMakerBackend(endpoint={self.endpoint_name!r}, "
            f"component={self.inference_component_name!r}, api={self.api!r})"
        )

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """One ``InvokeEndpoint`` call (no retry here: the client owns retries).

        Raises:
            PayloadTooLargeError: the body is over 6 MB (nothing was sent).
            InferenceError: every failure of the call.
        """
        self._check_generates("generate")
        call = self._prepare(prompt, params, stream=False)
        raw = self._invoke(self._call_args(call), timeout)[0]
        try:
            data = parse_json(raw)
        except ValueError as exc:
            text = raw[:200].decode("utf-8", errors="replace")
            raise InferenceError(
                f"{self._where()} answered a body that is not JSON: {text!r}"
            ) from exc
        return self._generation(call, data)

    def invoke(
        self,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: Timeouts | None = None,
    ) -> bytes:
        """One ``InvokeEndpoint`` call with ``body`` as it is; the answer's bytes. For
        containers that are not text generation (a TEI embedding endpoint:
        ``invoke(b'{"inputs": ["a text"]}')``); no retry here, errors as :meth:`generate`'s.

        Raises:
            PayloadTooLargeError: ``body`` is over 6 MB (nothing was sent).
            InferenceError: every failure of the call.
        """
        return self.invoke_raw(body, content_type=content_type, accept=accept, timeout=timeout).body

    def invoke_raw(
        self,
        body: bytes,
        *,
        content_type: str,
        accept: str | None = None,
        timeout: Timeouts | None = None,
    ) -> Invocation:
        """One ``InvokeEndpoint`` call with ``body`` as it is, any ``content_type`` (``accept``
        ``None``: not sent, the container's default); the answer's bytes and content type.
        What :meth:`~llm_twin_sdk.InferenceClient.invoke` calls; no retry here.

        Raises:
            PayloadTooLargeError: ``body`` is over 6 MB (nothing was sent).
            InferenceError: every failure of the call.
        """
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"the request body for endpoint {self.endpoint_name!r} is {len(body):,} bytes; "
                f"SageMaker real-time endpoints accept at most {MAX_PAYLOAD_BYTES:,}. Nothing "
                "was sent."
            )
        args = self._base_args(body, content_type, accept)
        return Invocation(*self._invoke(args, timeout))

    def _check_generates(self, method: str) -> None:
        if self.api == "invoke":
            raise InvokeOnlyEndpointError(
                f"{self._where()} runs your own inference code (api='invoke'): it takes no "
                f"text-generation payload, so {method} sent nothing; call "
                "client.invoke(body, content_type=...) instead"
            )

    def _invoke(self, args: dict[str, Any], timeout: Timeouts | None) -> tuple[bytes, str | None]:
        """``InvokeEndpoint`` with ``args``: the whole body read and its content type,
        failures converted."""
        client, limits = self._client(timeout)
        body: Any = None
        try:
            answer = client.invoke_endpoint(**args)
            body = answer["Body"]
            raw: bytes = body.read()  # a full read puts the connection back in the pool
        except BaseException as exc:
            if body is not None:
                body.close()  # a failed read: the connection is not reused
            if isinstance(exc, _foreign()):
                raise self._convert(exc, "invoke_endpoint", limits) from exc
            raise
        return raw, answer.get("ContentType")

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """One ``InvokeEndpointWithResponseStream`` call, read piece by piece; the connection
        goes back to the pool at the end, and is closed when the stream is left early.

        Raises:
            StreamBrokenError: the stream failed after its first piece (``partial_text``);
                before it, the errors of :meth:`generate`.
        """
        self._check_generates("stream")
        call = self._prepare(prompt, params, stream=True)
        args = self._call_args(call)
        client, limits = self._client(timeout)
        try:
            events = client.invoke_endpoint_with_response_stream(**args)["Body"]
        except _foreign() as exc:
            raise self._convert(exc, _STREAM, limits) from exc
        pieces = self._pieces(
            call, _payloads(events), _foreign(), lambda exc: self._convert(exc, _STREAM, limits)
        )
        return TextStream(pieces, on_close=events.close)

    def close(self) -> None:
        """Close the clients this backend built (not an injected one, nor ``aws``'s)."""
        with self._lock:
            self._closed = True
            owned, self._owned = self._owned, []
            self._clients.clear()
            self._default = None
        for client in owned:
            client.close()

    # -- the connection -----------------------------------------------------------------

    def _where(self, call: Call | None = None) -> str:
        where = f"SageMaker endpoint {self.endpoint_name!r}"
        if self.inference_component_name:
            where += f" (inference component {self.inference_component_name!r})"
        return where

    def _call_args(self, call: Call) -> dict[str, Any]:
        body = call.request.encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"the request body for endpoint {self.endpoint_name!r} is {len(body):,} bytes; "
                f"SageMaker real-time endpoints accept at most {MAX_PAYLOAD_BYTES:,}. Shorten "
                "the prompt (fewer retrieved chunks). Nothing was sent."
            )
        return self._base_args(body, "application/json", call.request.accept)

    def _base_args(self, body: bytes, content_type: str, accept: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": body,
            "ContentType": content_type,
        }
        if accept is not None:
            args["Accept"] = accept
        if self.inference_component_name is not None:
            args["InferenceComponentName"] = self.inference_component_name
        if self.custom_attributes is not None:
            args["CustomAttributes"] = self.custom_attributes
        return args

    def _client(self, timeout: Timeouts | None) -> tuple[Any, Timeouts]:
        """The runtime client for these timeouts (one per distinct value, built once)."""
        if self._closed:
            raise InferenceError("this SageMakerBackend is closed; create a new one")
        if timeout is None and self._default is not None:  # the common case, one lookup
            return self._default, self.timeout
        limits = timeout or self.timeout
        if self._injected is not None:
            self._check_injected_timeouts(timeout)
            return self._injected, limits
        with self._lock:
            key = (limits.connect_s, limits.read_s)
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._build_client(limits)
            if limits is self.timeout:
                self._default = client
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
        config = botocore_config(
            connect_timeout_s=limits.connect_s,
            read_timeout_s=limits.read_s,
            validate=False,  # every request is built and checked here
        )
        client = aws.new_client(_SERVICE, config)
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

    # -- errors -------------------------------------------------------------------------

    def _body_error(self, error: ErrorBody, call: Call) -> LLMTwinError:
        status = error.status
        return ModelError(
            f"{self._where()}: the model answered an error ({status or 'no status'}): "
            f"{error.message}",
            status=status,
        )

    def _convert(self, exc: BaseException, operation: str, limits: Timeouts) -> LLMTwinError:
        """The SDK error for a botocore / urllib3 exception of one call (one table each)."""
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            return self._client_error(exc, operation)
        kind, text = next((k, t) for types, k, t in _exception_errors() if isinstance(exc, types))
        message = text.format(
            where=self._where(),
            operation=operation,
            reason=exc,
            kind=type(exc).__name__,
            connect=limits.connect_s,
            read=limits.read_s,
        )
        return _error(kind, message, operation=operation)

    def _client_error(self, exc: Any, operation: str) -> LLMTwinError:
        code, message, status, request_id = client_error_fields(exc)
        if code == "ModelError":  # the container answered an error: its status and message
            response = exc.response
            original, arn = response.get("OriginalStatusCode"), response.get("LogStreamArn")
            raw = response.get("OriginalMessage")
            try:
                data = parse_json(raw) if isinstance(raw, str) else raw
            except ValueError:
                data = None
            error = self._text.error(data) if isinstance(data, dict) else None
            text = f"{self._where()}: the model container answered {original}: "
            text += error.message if error is not None else str(raw or message)
            text += f" (container logs: {arn})" if arn else ""
            container = int(original) if original is not None else None
            return ModelError(text, status=container, log_stream_arn=arn)
        kind_name = code if code == "ModelStreamError" else error_kind(code, message)
        if kind_name is None and code == "ValidationError" and _NOT_FOUND.search(message):
            kind_name = "not-found"
        if kind_name is None and status >= 500:
            kind_name = "unavailable"
        kind, text = _CODE_ERRORS[kind_name or ""]
        full = text.format(
            where=self._where(), operation=operation, code=code or status, message=message
        )
        return _error(kind, full, operation=operation, code=code, request_id=request_id)


def _payloads(events: Any) -> Iterator[bytes]:
    """The bytes of a response stream's ``PayloadPart`` events (botocore's parsed events)."""
    for event in events:
        part = event.get("PayloadPart")
        if part is not None:
            yield part.get("Bytes", b"")


def _check_names(endpoint: str, component: str | None, attributes: str | None) -> None:
    letters = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"
    if not isinstance(endpoint, str) or not _NAME.fullmatch(endpoint):
        raise ConfigurationError(f"invalid SageMaker endpoint name {endpoint!r}: {letters}")
    if component is not None and not _COMPONENT.fullmatch(component):
        raise ConfigurationError(f"invalid inference component name {component!r}: {letters}")
    if attributes is not None and (
        len(attributes) > 1024 or not all(" " <= c <= "~" or c == "\t" for c in attributes)
    ):
        raise ConfigurationError(
            "custom_attributes must be at most 1024 visible ASCII characters "
            f"(got {len(attributes)} characters)"
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
