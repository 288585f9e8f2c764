"""The Backend protocol: the one seam between the SDK and a model server.

A backend receives prompts already normalised (``str`` or a list of :class:`Message`) and
validated :class:`GenerationParams`; it returns SDK types and raises SDK errors only
(:mod:`llm_twin_sdk.errors`), converted at this seam. One attempt per call: the clients retry.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

from ..types import Generation, GenerationParams, Message, Timeouts
from .stream import TextStream

__all__ = ["Backend", "NormalizedPrompt"]

NormalizedPrompt: TypeAlias = "str | list[Message]"


@runtime_checkable
class Backend(Protocol):
    """What :class:`~llm_twin_sdk.InferenceClient` needs from a model server."""

    @property
    def model_name(self) -> str:
        """Name of the served model."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens the model accepts for prompt and generation together."""
        ...

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        """Prompt tokens exactly as the model will see them (chat template included)."""
        ...

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Generate a whole completion (one attempt: the client owns retries)."""
        ...

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """Generate a completion piece by piece (one attempt: the client owns retries)."""
        ...

    def close(self) -> None:
        """Release the model or connections. Safe to call more than once."""
        ...
