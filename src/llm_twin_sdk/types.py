"""Pydantic models that cross module borders: frozen, without unknown fields, and whose
invalid values raise a typed SDK error (never a raw pydantic ``ValidationError``)::

    >>> from llm_twin_sdk import GenerationParams
    >>> GenerationParams(top_p=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    llm_twin_sdk.errors.InvalidParameterError: invalid GenerationParams: top_p: ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core.core_schema import ValidationInfo

from .display import TEXT_LIMIT, Shown, brief, elide, html_block, paragraph, short, table
from .errors import (
    ConfigurationError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidParameterError,
)
from .redaction import is_secret_name, mask_secrets

__all__ = [
    "Answer",
    "Chunk",
    "Document",
    "DocumentKind",
    "DocumentMetadata",
    "FinishReason",
    "Generation",
    "GenerationParams",
    "IngestReport",
    "Message",
    "Prompt",
    "Role",
    "StageTimings",
    "Timeouts",
    "Usage",
    "changed_fields",
    "describe_validation_error",
    "not_blank",
    "to_messages",
    "unicode_problem",
    "validation_problems",
]

Role: TypeAlias = Literal["system", "user", "assistant"]
FinishReason: TypeAlias = Literal["stop", "length"]
DocumentKind: TypeAlias = Literal["post", "article", "repository"]


_SURROGATE = re.compile("[\ud800-\udfff]")


def unicode_problem(text: str) -> str | None:
    """What makes ``text`` unusable as text (a lone surrogate, which no encoder, tokenizer or
    store accepts), or ``None``."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"holds a lone surrogate {found.group()!r} at position {found.start()}: not valid Unicode"
    )


def describe_validation_error(what: str, exc: ValidationError) -> str:
    """One readable line per problem in a pydantic ``ValidationError``.

    A problem inside a nested SDK model is named by its full path (``generation.top_p``),
    once. Values are shown for simple field errors only: never for whole-model errors (the
    input is every field) or under secret-like names
    (:func:`~llm_twin_sdk.redaction.is_secret_name`); a mapping is shown with its secret-like
    keys' values masked.
    """
    problems = [f"{'.'.join(path) or 'value'}: {text}" for path, text in validation_problems(exc)]
    return f"invalid {what}: " + "; ".join(problems)


def validation_problems(
    exc: ValidationError, prefix: Sequence[str] = ()
) -> list[tuple[tuple[str, ...], str]]:
    """Each problem of a ``ValidationError`` as ``(path, text)``: the field's path
    (``("components", "max_instances")``; empty for a whole-model error) and what is wrong,
    with the value as :func:`describe_validation_error` shows it. Used where a path must be
    located, e.g. on a line of a YAML file."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for err in exc.errors():
        parts = (*prefix, *(str(part) for part in err["loc"]))
        nested = err.get("ctx", {}).get("error")
        if isinstance(nested, InvalidInputError | ConfigurationError) and isinstance(
            nested.__cause__, ValidationError
        ):  # a nested SDK model described itself: take its problems, not its message
            problems += validation_problems(nested.__cause__, parts)
            continue
        text = err["msg"].removeprefix("Value error, ")
        hidden = (
            not parts
            or err["type"] in {"missing", "extra_forbidden"}
            or any(is_secret_name(part) for part in parts)
        )
        if not hidden:
            value = err.get("input")
            shown = repr(mask_secrets(value) if isinstance(value, Mapping) else value)
            text += f" (got {shown[:80] + '...' if len(shown) > 80 else shown})"
        problems.append((parts, text))
    return problems


def not_blank(message: str) -> AfterValidator:
    """A field check: a string of only whitespace fails with ``message``.

    Example: ``text: Annotated[str, not_blank("document has no text")]``.
    """

    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(message)
        return value

    return AfterValidator(check)


def changed_fields(
    model: BaseModel, *always: str, skip: tuple[str, ...] = ()
) -> Iterator[tuple[str, Any]]:
    """Repr arguments of a model with many settings: the ``always`` fields, then every other
    field whose value is not its default; each value cut short
    (:func:`~llm_twin_sdk.display.brief`), an SDK model shown by its own changed fields;
    ``skip``: fields left out."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if name in skip or (
            name not in always and value == field.get_default(call_default_factory=True)
        ):
            continue
        if isinstance(value, _Model):
            yield name, value._short_repr()
        elif isinstance(value, int | float | bool):
            yield name, value
        else:
            # A path or a secret as text (a secret's text is its mask: '**********').
            yield name, brief(str(value) if isinstance(value, Path | SecretStr) else value)


class _Model(BaseModel):
    """Frozen base model whose validation errors are SDK errors."""

    # hide_input_in_errors: the chained ValidationError (kept as __cause__) never prints values,
    # so a secret field cannot leak through a logged traceback.
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True
    )
    _error: ClassVar[type[InvalidInputError]] = InvalidParameterError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except (ValidationError, TypeError) as exc:
            raise self._invalid(exc) from exc

    # pydantic runs a model's own __init__ during validation, so the SDK error is raised
    # there; an error raised anywhere else in validation is converted here.
    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Like pydantic's, but invalid data raises this model's SDK error."""
        try:
            if isinstance(obj, Mapping) and not kwargs:
                return cls(**obj)
            return super().model_validate(obj, **kwargs)
        except (ValidationError, TypeError) as exc:
            raise cls._invalid(exc) from exc

    @classmethod
    def _invalid(cls, exc: ValidationError | TypeError) -> InvalidInputError:
        if isinstance(exc, TypeError):  # pydantic passes a (nested) mapping as **keywords
            return cls._error(
                f"invalid {cls.__name__}: field names must be strings, nested ones too"
            )
        return cls._error(describe_validation_error(cls.__name__, exc))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Like pydantic's, but invalid data raises this model's SDK error."""
        try:
            data = json.loads(json_data)
        except ValueError as exc:
            raise cls._error(f"invalid {cls.__name__}: not JSON: {exc}") from exc
        return cls.model_validate(data, **kwargs)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A long text never floods a repr: strings past TEXT_LIMIT are elided.
        for name, value in super().__repr_args__():
            long = isinstance(value, str) and len(value) > TEXT_LIMIT
            yield name, elide(value) if long else value

    def _changed_args(self, *always: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
        return changed_fields(self, *always, skip=skip)

    def _short_repr(self) -> Shown:
        """``Name(...)`` with only the fields that differ from their defaults."""
        args = ", ".join(f"{name}={value!r}" for name, value in self._changed_args())
        return Shown(f"{type(self).__name__}({args})")

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; fields in ``update`` are validated like the constructor's arguments."""
        if not update:
            return super().model_copy(deep=deep)
        return type(self).model_validate({**dict(self), **update})


class Message(_Model):
    """One chat message."""

    role: Role
    content: str


Prompt: TypeAlias = "str | Sequence[Message | Mapping[str, str]]"
"""A raw text prompt, or chat messages (``Message`` objects or ``{"role", "content"}`` dicts)."""


def to_messages(messages: Sequence[Message | Mapping[str, str]]) -> list[Message]:
    """Normalise chat messages given as ``Message`` objects or plain dicts."""
    if not messages:
        raise InvalidParameterError("messages must not be empty: pass at least one message")
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]


class GenerationParams(_Model):
    """Sampling settings for one generation.

    Defaults follow the reference LLM Twin deployment (TGI on SageMaker).

    Example::

        params = GenerationParams(max_new_tokens=64, stop=("\\n\\n",))
        greedy = params.model_copy(update={"temperature": 0.0})
    """

    max_new_tokens: int = Field(150, gt=0, description="Maximum tokens to generate.")
    temperature: float = Field(0.01, ge=0, description="0 means greedy decoding.")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass.")
    repetition_penalty: float = Field(1.1, gt=0, description="1.0 disables the penalty.")
    stop: tuple[str, ...] = Field((), description="Sequences that end generation (not returned).")
    seed: int | None = Field(None, description="Sampling seed, for reproducible output.")
    json_schema: dict[str, Any] | None = Field(
        None,
        description=(
            "Constrain the output to JSON matching this JSON schema; backends send it as a "
            "grammar / response_format (servers that do not support it ignore or reject it)."
        ),
    )

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s for s in value):
            raise ValueError("stop sequences must be non-empty strings")
        return value

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema_is_json(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError(
                "json_schema must be a JSON schema as a mapping, e.g. "
                '{"type": "object", "properties": {...}}'
            )
        try:
            # A deep, JSON-only copy: later changes to the caller's dict do not leak in.
            return json.loads(json.dumps(dict(value), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"json_schema must be JSON-serialisable: {exc}") from None

    def __hash__(self) -> int:
        # pydantic's frozen hash would fail on the dict: hash the schema's canonical JSON.
        schema = None if self.json_schema is None else _canonical_json(self.json_schema)
        values = tuple(
            schema if name == "json_schema" else getattr(self, name)
            for name in type(self).model_fields
        )
        return hash((type(self), values))

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "json_schema" and value is not None:
                text = _canonical_json(value)
                yield name, Shown(text if len(text) <= 60 else text[:57] + "...")
            elif name == "stop":
                yield name, brief(value)
            else:
                yield name, value


def _canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys: equal schemas give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Timeouts(_Model):
    """Network timeouts of one model call (ignored by the in-process local backend).

    Example: ``client.generate(prompt, timeout=Timeouts(read_s=120))``.
    """

    connect_s: float = Field(10.0, gt=0, description="Seconds to establish a connection.")
    read_s: float = Field(60.0, gt=0, description="Seconds to wait for the (next) bytes.")


def _without_total(data: Any, total: str, parts: tuple[str, ...]) -> Any:
    """``data`` without the computed ``total`` a dump holds (so ``model_dump()`` validates
    back); a total that is not the sum of ``parts`` is refused."""
    if not isinstance(data, dict) or total not in data:
        return data
    rest = {key: value for key, value in data.items() if key != total}
    given, values = data[total], [rest.get(part) for part in parts]
    numbers = [
        v for v in [*values, given] if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if len(numbers) == len(parts) + 1 and abs(sum(numbers[:-1]) - given) > 1e-9 * max(
        1.0, abs(given)
    ):
        raise ValueError(f"{total} must be the sum of {', '.join(parts)}, got {given}")
    return rest


class Usage(_Model):
    """Token counts of one generation."""

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _dumped_total(cls, data: Any) -> Any:
        return _without_total(data, "total_tokens", ("prompt_tokens", "completion_tokens"))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Generation(_Model):
    """The result of one generation call."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    latency_s: float = Field(ge=0, description="Wall time of the call, in seconds.")
    model: str = Field(description="Name of the model that produced the text.")


class _Text(_Model):
    """A model of stored text: invalid documents raise :class:`InvalidDocumentError`, and
    every string must be valid Unicode (the error names the document)."""

    _error: ClassVar[type[InvalidInputError]] = InvalidDocumentError

    @field_validator("*")
    @classmethod
    def _valid_unicode(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and (problem := unicode_problem(value)):
            owner = info.data.get("document_id") or info.data.get("id")
            raise ValueError(problem + (f" (document {owner!r})" if owner else ""))
        return value


class DocumentMetadata(_Text):
    """What is known about a document's origin. Every field is optional."""

    author: str | None = None
    platform: str | None = Field(None, description="e.g. linkedin, medium, substack, github")
    kind: DocumentKind | None = None
    url: str | None = None
    title: str | None = None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Only what is known, each value cut short.
        for name in type(self).model_fields:
            if (value := getattr(self, name)) is not None:
                yield name, short(value, 16)


class Document(_Text):
    """A piece of content to ingest: id, text and metadata.

    Example::

        Document(id="post-1", text="Quantize before you scale out.",
                 metadata={"author": "Maya Okafor", "kind": "post"})
    """

    id: Annotated[str, not_blank("document id must not be blank")] = Field(
        min_length=1, max_length=512
    )
    text: Annotated[str, not_blank("document has no text: give it some content or leave it out")]
    metadata: DocumentMetadata = DocumentMetadata()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "id", short(self.id, 40)
        yield "text", elide(self.text, 48)
        yield "metadata", self.metadata


class Chunk(_Text):
    """A token-bounded piece of a document, as stored and retrieved.

    ``score`` is the retrieval similarity (higher is better); ``None`` outside retrieval.
    """

    _error: ClassVar[type[InvalidInputError]] = InvalidParameterError

    id: str = Field(description="Deterministic: uuid5 of document id and position.")
    document_id: str
    position: int = Field(ge=0, description="Index of the chunk inside its document.")
    text: str
    metadata: DocumentMetadata = DocumentMetadata()
    score: float | None = None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The chunk id (a uuid) and metadata stay out: the document names them.
        yield "document_id", short(self.document_id, 40)
        yield "position", self.position
        if self.score is not None:
            yield "score", round(self.score, 4)
        yield "text", elide(self.text)

    def to_record(self) -> dict[str, Any]:
        """This chunk as one flat row (no nested metadata), for a table or a DataFrame:
        ``document_id, title, author, platform, kind, url, score, position, text``."""
        m = self.metadata
        return {
            "document_id": self.document_id,
            "title": m.title,
            "author": m.author,
            "platform": m.platform,
            "kind": m.kind,
            "url": m.url,
            "score": self.score,
            "position": self.position,
            "text": self.text,
        }


class StageTimings(_Model):
    """Wall time of each stage of one ``LLMTwin.ask``, in seconds."""

    retrieve_s: float = Field(ge=0)
    prompt_s: float = Field(ge=0)
    generate_s: float = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _dumped_total(cls, data: Any) -> Any:
        return _without_total(data, "total_s", ("retrieve_s", "prompt_s", "generate_s"))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_s(self) -> float:
        return self.retrieve_s + self.prompt_s + self.generate_s

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():  # milliseconds are enough to read
            yield name, round(value, 4)


class Answer(_Model):
    """The answer of an LLM Twin: text, the sources it was given, usage and timings."""

    query: str
    text: str
    sources: tuple[Chunk, ...] = Field(
        description="One chunk per document placed in the prompt (its best), best first."
    )
    usage: Usage
    finish_reason: FinishReason
    timings: StageTimings

    def to_records(self) -> list[dict[str, Any]]:
        """The sources as flat rows, best first (``rank`` from 1, then
        :meth:`Chunk.to_record`'s columns): ``pandas.DataFrame(answer.to_records())``."""
        return [{"rank": rank, **s.to_record()} for rank, s in enumerate(self.sources, 1)]

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "query", short(self.query, 40)
        yield "text", elide(self.text, 48)
        yield "sources", Shown(_source_ids(self.sources))
        if self.finish_reason != "stop":  # cut at max_new_tokens: worth seeing
            yield "finish_reason", self.finish_reason
        yield "total_s", round(self.timings.total_s, 3)

    def _repr_html_(self) -> str:
        """The answer in Jupyter: question, text, sources table, tokens and timings."""
        t, u = self.timings, self.usage
        return html_block(
            f"Answer: {short(self.query, 200)}",
            paragraph(self.text),
            sources_table(self.sources),
            fields={
                "finish": self.finish_reason,
                "tokens": f"{u.prompt_tokens} in, {u.completion_tokens} out",
                "retrieve s": t.retrieve_s,
                "prompt s": t.prompt_s,
                "generate s": t.generate_s,
                "total s": t.total_s,
            },
        )


def _source_ids(sources: Sequence[Chunk], shown: int = 2) -> str:
    """``[3: 'post-1', 'post-2', …]``: how many sources, and the first documents."""
    ids = [repr(short(s.document_id, 20)) for s in sources[:shown]]
    more = ", …" if len(sources) > shown else ""
    return f"[{len(sources)}: {', '.join(ids)}{more}]" if sources else "[]"


def sources_table(sources: Sequence[Chunk]) -> str:
    """An HTML table of ``sources``: rank, document, title, author and score (escaped)."""
    if not sources:
        return "<p>no sources</p>"
    rows = [
        [rank, s.document_id, s.metadata.title, s.metadata.author, s.score]
        for rank, s in enumerate(sources, 1)
    ]
    return table(["rank", "document", "title", "author", "score"], rows)


class IngestReport(_Model):
    """What one ``ingest`` call wrote."""

    documents: int = Field(ge=0, description="Documents written (or replaced).")
    chunks: int = Field(ge=0, description="Chunks written.")
    unchanged: int = Field(
        0, ge=0, description="Documents skipped: already stored exactly as given (resumed runs)."
    )
    seconds: float = Field(ge=0, description="Wall time, including embedding.")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, round(value, 3) if name == "seconds" else value

    def _repr_html_(self) -> str:
        """The report in Jupyter: one table row."""
        header = ["documents", "chunks", "unchanged", "seconds"]
        return html_block("Ingest report", table(header, [[getattr(self, n) for n in header]]))
