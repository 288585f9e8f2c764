"""Prompt assembly within the serving model's input-token budget (whole sources are dropped,
lowest-ranked first, until the prompt fits; nothing is cut silently). Example::

    prompt = assemble_prompt(query, chunks, count_tokens=client.count_tokens, budget=1900)
    client.generate(prompt.messages)
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError, InvalidParameterError, PromptTooLongError
from ..types import Chunk, Message

__all__ = ["AssembledPrompt", "PromptTemplate", "assemble_prompt", "prompt_budget"]

DEFAULT_SYSTEM = (
    "You are an LLM twin: you write in the voice of the author of the context you are given. "
    "Answer the question using the context as your main source. If the context does not "
    "hold the answer, say so in one sentence."
)
SOURCE_FIELDS = frozenset({"number", "title", "author", "kind", "platform", "url", "text"})


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class PromptTemplate:
    """How a question and its sources become chat messages.

    Attributes:
        system: the system message.
        user: the user message; must contain ``{query}`` and ``{context}``.
        source: one source in the context; may use ``{number}``, ``{title}``, ``{author}``,
            ``{kind}``, ``{platform}``, ``{url}`` and must use ``{text}``.
        no_context: the context when no source was retrieved or none fits.
    """

    system: str = DEFAULT_SYSTEM
    user: str = "Context:\n{context}\n\nQuestion: {query}"
    source: str = "[{number}] {title} ({author}, {kind})\n{text}"
    no_context: str = "(no sources found)"

    def __post_init__(self) -> None:
        if _fields(self.user) != {"query", "context"}:
            raise ConfigurationError(
                "PromptTemplate.user must use exactly the placeholders {query} and {context}"
            )
        source_fields = _fields(self.source)
        if "text" not in source_fields or not source_fields <= SOURCE_FIELDS:
            raise ConfigurationError(
                "PromptTemplate.source must use {text} and only "
                + ", ".join("{" + f + "}" for f in sorted(SOURCE_FIELDS))
            )

    def render(self, query: str, chunks: Sequence[Chunk]) -> list[Message]:
        """The chat messages for ``query`` with ``chunks`` as numbered sources."""
        parts = [
            self.source.format(
                number=number,
                title=chunk.metadata.title or chunk.document_id,
                author=chunk.metadata.author or "unknown author",
                kind=chunk.metadata.kind or "document",
                platform=chunk.metadata.platform or "",
                url=chunk.metadata.url or "",
                text=chunk.text,
            )
            for number, chunk in enumerate(chunks, start=1)
        ]
        context = "\n\n".join(parts) if parts else self.no_context
        return [
            Message(role="system", content=self.system),
            Message(role="user", content=self.user.format(query=query, context=context)),
        ]


@dataclass(frozen=True)
class AssembledPrompt:
    """Messages ready to send, the sources they contain, and their size in tokens."""

    messages: list[Message]
    sources: tuple[Chunk, ...]
    prompt_tokens: int
    dropped: int


def prompt_budget(context_window: int, max_new_tokens: int) -> int:
    """The prompt tokens a model can take: ``context_window - max_new_tokens``.

    Raises:
        InvalidParameterError: ``max_new_tokens`` leaves no room for a prompt.
    """
    if max_new_tokens >= context_window:
        raise InvalidParameterError(
            f"max_new_tokens ({max_new_tokens}) must be below the model's context window "
            f"({context_window} tokens), which holds the prompt and the answer together"
        )
    return context_window - max_new_tokens


def assemble_prompt(
    query: str,
    chunks: Sequence[Chunk],
    *,
    count_tokens: Callable[[list[Message]], int],
    budget: int,
    template: PromptTemplate | None = None,
) -> AssembledPrompt:
    """Fit ``query`` and as many of ``chunks`` (best first) as ``budget`` tokens allow.

    Args:
        count_tokens: the serving model's token count for a list of messages.
        budget: prompt tokens allowed (:func:`prompt_budget`).
    """
    if budget < 1:
        raise InvalidParameterError(f"budget must be a positive number of tokens, got {budget}")
    template = template or PromptTemplate()
    bare = template.render(query, [])
    bare_tokens = count_tokens(bare)
    if bare_tokens > budget:
        raise PromptTooLongError(
            f"the question is too long: with no sources the prompt needs {bare_tokens} tokens, "
            f"but the model accepts {budget} input tokens (context window minus "
            "max_new_tokens). Shorten the question or lower max_new_tokens.",
            prompt_tokens=bare_tokens,
            budget=budget,
        )
    for kept in range(len(chunks), 0, -1):
        messages = template.render(query, chunks[:kept])
        tokens = count_tokens(messages)
        if tokens <= budget:
            return AssembledPrompt(messages, tuple(chunks[:kept]), tokens, len(chunks) - kept)
    return AssembledPrompt(bare, (), bare_tokens, len(chunks))
