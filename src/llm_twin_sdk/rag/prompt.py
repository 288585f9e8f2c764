"""Prompt assembly within the serving model's input-token budget: one source per document;
whole sources are dropped, lowest-ranked first, until the prompt fits (nothing is cut
silently); then, if every source fits, the chunks around each best chunk join its source
while the budget allows. Example::

    sources = rag.retrieve(query, k=3)
    prompt = assemble_prompt(query, sources, count_tokens=client.count_tokens, budget=1900,
                             neighbours=rag.neighbours(sources))
    client.generate(prompt.messages)
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..display import elide, listing
from ..errors import ConfigurationError, InvalidParameterError, PromptTooLongError
from ..types import Chunk, Message
from .grouping import best_per_document, passage

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

    def __repr__(self) -> str:
        fields = ("system", "user", "source", "no_context")
        shown = ", ".join(f"{name}={elide(getattr(self, name), 28)!r}" for name in fields)
        return f"PromptTemplate({shown})"

    def render(
        self, query: str, chunks: Sequence[Chunk], texts: Sequence[str] | None = None
    ) -> list[Message]:
        """The chat messages for ``query`` with ``chunks`` as numbered sources (one block
        each); ``texts``: the text shown for each (default: the chunk's own), e.g. a
        document's passage of several chunks (:func:`assemble_prompt`)."""
        shown = [chunk.text for chunk in chunks] if texts is None else texts
        if len(shown) != len(chunks):
            raise InvalidParameterError(f"{len(chunks)} sources but {len(shown)} texts")
        parts = [
            self.source.format(
                number=number,
                title=chunk.metadata.title or chunk.document_id,
                author=chunk.metadata.author or "unknown author",
                kind=chunk.metadata.kind or "document",
                platform=chunk.metadata.platform or "",
                url=chunk.metadata.url or "",
                text=text,
            )
            for number, (chunk, text) in enumerate(zip(chunks, shown, strict=True), start=1)
        ]
        context = "\n\n".join(parts) if parts else self.no_context
        return [
            Message(role="system", content=self.system),
            Message(role="user", content=self.user.format(query=query, context=context)),
        ]


@dataclass(frozen=True)
class AssembledPrompt:
    """Messages ready to send, the sources they contain, and their size in tokens.

    Attributes:
        sources: one chunk per document in the prompt (its best), best first.
        dropped: documents left out for want of room.
        passages: the text shown for each source: its chunk, with the ``added`` chunks of its
            document merged in document order (overlaps written once).
        added: chunks placed in the prompt besides the sources (neighbours, other chunks of
            a source's document), in the order they were added.
    """

    messages: list[Message]
    sources: tuple[Chunk, ...]
    prompt_tokens: int
    dropped: int
    passages: tuple[str, ...] = ()
    added: tuple[Chunk, ...] = ()

    def __repr__(self) -> str:
        # Sizes and source documents; the messages are in ``messages``.
        sources = listing([s.document_id for s in self.sources], shown=2)
        return (
            f"AssembledPrompt(messages={len(self.messages)}, prompt_tokens={self.prompt_tokens}, "
            f"sources={sources}, dropped={self.dropped}, added={len(self.added)})"
        )


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
    neighbours: Sequence[Chunk] = (),
) -> AssembledPrompt:
    """Fit ``query`` and as many of the documents of ``chunks`` (best first) as ``budget``
    tokens allow, one source each (its best chunk); lower-ranked documents are dropped whole.
    When every document fits, its other chunks in ``chunks`` and its ``neighbours``
    (:meth:`RAGPipeline.neighbours`) join its source while the budget still has room:
    documents in rank order, the chunks nearest the best first, each kept only if the prompt
    still fits.

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
    sources = best_per_document(chunks)
    for kept in range(len(sources), 0, -1):
        messages = template.render(query, sources[:kept])
        tokens = count_tokens(messages)
        if tokens <= budget:
            fitted = AssembledPrompt(
                messages,
                tuple(sources[:kept]),
                tokens,
                len(sources) - kept,
                tuple(c.text for c in sources[:kept]),
            )
            if kept < len(sources):
                return fitted
            return _with_extras(
                query,
                fitted,
                [*chunks, *neighbours],
                template=template,
                count_tokens=count_tokens,
                budget=budget,
            )
    return AssembledPrompt(bare, (), bare_tokens, len(sources))


def _with_extras(
    query: str,
    fitted: AssembledPrompt,
    extras: Sequence[Chunk],
    *,
    template: PromptTemplate,
    count_tokens: Callable[[list[Message]], int],
    budget: int,
) -> AssembledPrompt:
    """``fitted`` (every source in) with as many of ``extras`` as fit: all at once if they
    do, else one by one in order (documents by rank, nearest the best chunk first)."""
    sources = fitted.sources
    rank = {source.document_id: i for i, source in enumerate(sources)}
    taken = {source.id for source in sources}
    candidates: dict[str, Chunk] = {}
    for chunk in extras:
        if chunk.document_id in rank and chunk.id not in taken:
            candidates.setdefault(chunk.id, chunk)
    best = {source.document_id: source.position for source in sources}
    order = sorted(
        candidates.values(),
        key=lambda c: (rank[c.document_id], abs(c.position - best[c.document_id]), c.position),
    )

    def attempt(added: Sequence[Chunk]) -> AssembledPrompt | None:
        texts = tuple(
            passage([s, *(c for c in added if c.document_id == s.document_id)]) for s in sources
        )
        messages = template.render(query, sources, texts)
        tokens = count_tokens(messages)
        return (
            AssembledPrompt(messages, sources, tokens, 0, texts, tuple(added))
            if tokens <= budget
            else None
        )

    if not order:
        return fitted
    whole = attempt(order)
    if whole is not None:
        return whole
    for chunk in order:
        grown = attempt([*fitted.added, chunk])
        if grown is not None:
            fitted = grown
    return fitted
