"""Prompt formats: how a prompt reaches the model, so that serving matches training.

``"chat"`` (the model's chat template), ``"raw"`` (plain text, messages flattened) or
``"alpaca"`` (the twin's instruction template, as plain text): docs/configuration.md, "Prompt
formats". ``None`` (for clients) means *as given*: text stays raw, messages use the template.

>>> format_prompt("Hi!", "chat")
[Message(role='user', content='Hi!')]
>>> format_prompt([{"role": "system", "content": "Be brief."},
...                {"role": "user", "content": "Hi!"}], "raw")
'Be brief.\\n\\nHi!'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias, get_args, overload

from ..errors import ConfigurationError, InvalidParameterError
from ..types import Message, Prompt
from . import trusted
from .backend import NormalizedPrompt

__all__ = [
    "ALPACA_STOP",
    "ALPACA_TEMPLATE",
    "PROMPT_FORMATS",
    "PromptFormat",
    "format_prompt",
    "parse_prompt_format",
    "suggested_stop",
]

PromptFormat: TypeAlias = Literal["chat", "raw", "alpaca"]
"""How a prompt reaches the model: ``"chat"``, ``"raw"`` or ``"alpaca"``."""

PROMPT_FORMATS: tuple[PromptFormat, ...] = get_args(PromptFormat)
"""Every :data:`PromptFormat`, ``"chat"`` (the default) first."""

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
ALPACA_TEMPLATE = ALPACA_PREAMBLE + "### Instruction:\n{instruction}\n\n### Response:\n"
"""The Alpaca instruction template the LLM Twin was fine-tuned with (one ``{instruction}``)."""

ALPACA_STOP = "### Instruction:"
"""Stop sequence suggested with the ``"alpaca"`` format: the start of a next instruction."""

_PARAGRAPH = "\n\n"


@overload
def format_prompt(prompt: Prompt, fmt: Literal["raw", "alpaca"]) -> str: ...


@overload
def format_prompt(prompt: Prompt, fmt: Literal["chat"] = ...) -> list[Message]: ...


@overload
def format_prompt(prompt: Prompt, fmt: PromptFormat | None) -> NormalizedPrompt: ...


def format_prompt(prompt: Prompt, fmt: PromptFormat | None = "chat") -> NormalizedPrompt:
    """``prompt`` in format ``fmt``: text for ``"raw"`` and ``"alpaca"``, messages for ``"chat"``.

    Pure: the same input always gives the same output, and nothing is called. ``fmt=None``
    keeps the prompt as given (text stays text, messages stay messages), only validated.

    Raises:
        InvalidParameterError: the prompt is empty, bytes, has an invalid message, an
            ``"alpaca"`` conversation starts with an ``assistant`` message, or ``fmt`` is
            not a :data:`PromptFormat`.

    Examples:
        >>> format_prompt([{"role": "system", "content": "You are Maya."},
        ...                {"role": "user", "content": "Hi!"}], "alpaca").splitlines()[2:6]
        ['### Instruction:', 'You are Maya.', '', 'Hi!']
    """
    given = _as_given(prompt)
    if fmt is None:
        return given
    if fmt == "chat":
        return [Message(role="user", content=given)] if isinstance(given, str) else given
    if fmt == "raw":
        text = given if isinstance(given, str) else _PARAGRAPH.join(m.content for m in given)
        if not text.strip():
            raise InvalidParameterError("prompt is empty: every message has empty content")
        return text
    if fmt == "alpaca":
        return _alpaca(given)
    raise InvalidParameterError(_unknown(fmt))


def suggested_stop(fmt: PromptFormat | None) -> tuple[str, ...]:
    """Stop sequences that suit ``fmt``: ``("### Instruction:",)`` for ``"alpaca"``, else none.

    Example: ``GenerationParams(max_new_tokens=200, stop=suggested_stop("alpaca"))``.

    >>> suggested_stop("alpaca"), suggested_stop("chat")
    (('### Instruction:',), ())
    """
    return (ALPACA_STOP,) if fmt == "alpaca" else ()


def parse_prompt_format(value: str | None) -> PromptFormat | None:
    """Check a format named in settings or a constructor argument (``None`` passes).

    Raises:
        ConfigurationError: ``value`` is not one of :data:`PROMPT_FORMATS`.

    >>> parse_prompt_format("alpaca")
    'alpaca'
    """
    if value is None or value in PROMPT_FORMATS:
        return value
    raise ConfigurationError(_unknown(value))


def _unknown(value: object) -> str:
    choices = ", ".join(repr(f) for f in PROMPT_FORMATS)
    return f"unknown prompt format {value!r}: use one of {choices} (or None: as given)"


def _as_given(prompt: Prompt) -> NormalizedPrompt:
    """Validate ``prompt`` and keep its kind: text stays text, messages become ``Message``."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidParameterError("prompt is empty: pass some text or chat messages")
        return prompt
    if isinstance(prompt, (bytes, bytearray)):
        raise InvalidParameterError("prompt must be str or chat messages, not bytes")
    return trusted.messages(prompt)


def _alpaca(given: NormalizedPrompt) -> str:
    if isinstance(given, str):
        return ALPACA_TEMPLATE.format(instruction=given)
    system = _PARAGRAPH.join(m.content for m in given if m.role == "system")
    turns = _merge_turns([m for m in given if m.role != "system"])
    if not turns:  # only system messages: they are the instruction
        return ALPACA_TEMPLATE.format(instruction=system)
    if turns[0].role != "user":
        raise InvalidParameterError(
            "an alpaca prompt must start with a user message (after any system message): "
            "the instruction comes before the response"
        )
    parts = [ALPACA_PREAMBLE]
    for index, turn in enumerate(turns):
        if turn.role == "user":
            instruction = turn.content
            if index == 0 and system:
                instruction = system + _PARAGRAPH + instruction
            parts.append(f"### Instruction:\n{instruction}\n\n### Response:\n")
        else:  # an earlier answer, or the prefix of the answer to write (last turn)
            parts.append(turn.content)
            if index + 1 < len(turns):
                parts.append(_PARAGRAPH)
    return "".join(parts)


def _merge_turns(messages: Sequence[Message]) -> list[Message]:
    turns: list[Message] = []
    for message in messages:
        if turns and turns[-1].role == message.role:
            joined = turns[-1].content + _PARAGRAPH + message.content
            turns[-1] = Message(role=message.role, content=joined)
        else:
            turns.append(message)
    return turns
