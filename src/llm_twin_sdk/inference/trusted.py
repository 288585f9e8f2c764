"""Results and chat messages built from checked values, without pydantic's second pass.

A call's :class:`~llm_twin_sdk.Generation` holds values the SDK produced (protocol text, one
finish-reason mapping, non-negative token counts, a wall time); chat messages come as
``{"role", "content"}`` dicts. These builders check the models' rules in plain Python (~1.5 µs
per model saved on every call) and fall back to the validating constructor, and its typed
error, for anything else: the same object either way. ``tests/test_fast_paths.py`` pins the
fields, constraints and validators the checks mirror.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..types import FinishReason, Generation, Message, Usage, to_messages

__all__ = ["generation", "messages"]

M = TypeVar("M", Generation, Usage, Message)

_ROLES = frozenset({"system", "user", "assistant"})
_set = object.__setattr__


def _built(cls: type[M], values: dict[str, Any]) -> M:
    """``cls`` holding ``values`` (all its fields, valid): what validation would build."""
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def generation(
    text: str,
    finish_reason: FinishReason,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    latency_s: float,
    model: str,
) -> Generation:
    """``Generation(text=..., usage=Usage(...), ...)``, validated in plain Python."""
    if (
        type(text) is str
        and type(model) is str
        and type(prompt_tokens) is int
        and type(completion_tokens) is int
        and type(latency_s) is float
        and prompt_tokens >= 0
        and completion_tokens >= 0
        and latency_s >= 0
        and finish_reason in ("stop", "length")
    ):
        usage = _built(
            Usage, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        )
        return _built(
            Generation,
            {
                "text": text,
                "finish_reason": finish_reason,
                "usage": usage,
                "latency_s": latency_s,
                "model": model,
            },
        )
    return Generation(  # anything else: pydantic decides, and raises the SDK's error
        text=text,
        finish_reason=finish_reason,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        latency_s=latency_s,
        model=model,
    )


def messages(prompt: Sequence[Message | Mapping[str, str]]) -> list[Message]:
    """:func:`~llm_twin_sdk.types.to_messages`, with ``{"role", "content"}`` dicts of a known
    role and ``str`` content built directly."""
    if type(prompt) not in (list, tuple) or not prompt:
        return to_messages(prompt)
    out: list[Message] = []
    for message in prompt:
        if type(message) is Message:
            out.append(message)
        elif (
            type(message) is dict
            and len(message) == 2
            and type(message.get("content")) is str
            and type(role := message.get("role")) is str
            and role in _ROLES
        ):
            out.append(_built(Message, {"role": role, "content": message["content"]}))
        else:
            return to_messages(prompt)  # the validating path: the SDK's error for bad input
    return out
