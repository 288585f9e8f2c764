"""Plain invoke: any body, any content type, to a model that is not text generation (your own
``inference.py`` on a PyTorch container, a SageMaker container run locally).

:meth:`InferenceClient.invoke <llm_twin_sdk.InferenceClient.invoke>` encodes the body
(:func:`encode_body`), sends it through a backend that offers :class:`PlainInvoker` (with the
client's one retry policy) and returns an :class:`Invocation`. Example::

    answer = client.invoke("1.0,2.0\\n3.0,4.0\\n", content_type="text/csv")
    answer.content_type, answer.json()          # ("application/json", [[...], [...]])
    client.invoke({"inputs": [1, 2]}).json()    # a JSON-able value is sent as JSON
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import InvalidParameterError, InvokeResponseError
from ..types import Timeouts

__all__ = ["Invocation", "PlainInvoker", "encode_body", "plain_invoker"]

_CHARSET = re.compile(r";\s*charset=([\w.-]+)", re.IGNORECASE)
_JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json\b", re.IGNORECASE)
_TOKEN = re.compile(r"^[\w.+-]+/[\w.+*-]+(?:\s*;.*)?$")  # type/subtype[; parameters]


@dataclass(frozen=True, slots=True)
class Invocation:
    """A plain invoke's answer: the ``body`` bytes and their ``content_type`` (``None`` when
    the server named none); :meth:`json` and :attr:`text` read it."""

    body: bytes
    content_type: str | None = None

    def __repr__(self) -> str:
        return f"Invocation(content_type={self.content_type!r}, {len(self.body):,} bytes)"

    @property
    def text(self) -> str:
        """The body as text, in the charset the content type names (default UTF-8).

        Raises:
            InvokeResponseError: the body is not text in that charset.
        """
        match = _CHARSET.search(self.content_type or "")
        charset = match.group(1) if match else "utf-8"
        try:
            return self.body.decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvokeResponseError(
                f"the answer ({self.content_type or 'no content type'}, {len(self.body):,} "
                f"bytes) is not {charset} text: {exc}"
            ) from exc

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            InvokeResponseError: the body is not JSON (the message shows its start).
        """
        try:
            return json.loads(self.body)
        except ValueError as exc:
            start = self.body[:80].decode("utf-8", "replace")
            raise InvokeResponseError(
                f"the answer ({self.content_type or 'no content type'}) is not JSON: {start!r}"
            ) from exc


@runtime_checkable
class PlainInvoker(Protocol):
    """A backend that sends a body as it is (one attempt: the client retries)."""

    def invoke_raw(
        self,
        body: bytes,
        *,
        content_type: str,
        accept: str | None = None,
        timeout: Timeouts | None = None,
    ) -> Invocation:
        """Send ``body`` with ``content_type``; the answer's bytes and content type."""
        ...


def plain_invoker(backend: object) -> PlainInvoker:
    """``backend`` if it offers plain invoke, else InvalidParameterError naming what does."""
    if not isinstance(backend, PlainInvoker):
        raise InvalidParameterError(
            f"{type(backend).__name__} has no plain invoke: it runs a text-generation model "
            "(use generate / stream); invoke needs a SageMakerBackend or an HttpBackend"
        )
    return backend


def encode_body(body: object, content_type: str | None) -> tuple[bytes, str]:
    """``(bytes, content type)`` to send: ``bytes`` as they are (default
    ``application/octet-stream``), ``str`` as UTF-8 (default ``text/plain; charset=utf-8``),
    any other JSON-able value as JSON (``application/json`` or a ``+json`` type).

    Raises:
        InvalidParameterError: ``body`` is none of these, a value that is not JSON-able, text
            that is not valid Unicode, a value sent with a content type that is not JSON, or a
            malformed content type.
    """
    if content_type is not None and (
        not isinstance(content_type, str) or not _TOKEN.match(content_type.strip())
    ):
        raise InvalidParameterError(
            f"content_type must be a media type such as 'text/csv', got {content_type!r}"
        )
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), content_type or "application/octet-stream"
    if isinstance(body, str):
        try:
            return body.encode("utf-8"), content_type or "text/plain; charset=utf-8"
        except UnicodeEncodeError as exc:  # a lone surrogate
            raise InvalidParameterError(f"not valid Unicode ({exc.reason})") from exc
    kind = type(body).__name__
    if content_type is not None and not _JSON_TYPES.match(content_type):
        raise InvalidParameterError(
            f"a {kind!r} body is sent as JSON, not as {content_type!r}; encode it yourself "
            "(bytes or str) for that content type"
        )
    try:
        raw = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"not JSON-serializable ({exc}): the body must be bytes, str or a JSON-able "
            f"value, and {kind!r} is not"
        ) from exc
    return raw.encode("utf-8"), content_type or "application/json"
