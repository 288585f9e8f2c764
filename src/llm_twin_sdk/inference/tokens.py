"""Token counts without a tokenizer: one estimate for every remote backend.

Deliberately high (an undercount makes the server reject a prompt the SDK thought fitted;
an overcount only leaves context unused): the rules and their measurements are in
docs/architecture.md, "Wire protocols". Pass the served model's ``tokenizer=`` for exact counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..types import Message

__all__ = ["CHAT_TOKENS_PER_MESSAGE", "CHAT_TOKENS_PER_REPLY", "count_prompt", "estimate_tokens"]

CHAT_TOKENS_PER_MESSAGE = 8
"""Tokens allowed per chat message for the server's template (role markers, separators)."""

CHAT_TOKENS_PER_REPLY = 4
"""Tokens allowed for the assistant turn the template opens after the messages."""


_LETTERS = bytes(b for b in range(128) if chr(b).isalpha() or b == ord(" "))
_DIGITS = b"0123456789"


def estimate_tokens(text: str) -> int:
    """A deliberately high token count for ``text``: ASCII letters and spaces count ``1 / 3.2``
    of a token, digits one each, other ASCII characters half, any other character two.

    >>> estimate_tokens("Hello, world!"), estimate_tokens("2025"), estimate_tokens("")
    (5, 4, 0)
    """
    ascii_text = text.encode("ascii", "ignore")  # each class counted by C-level deletes
    not_letters = ascii_text.translate(None, _LETTERS)
    symbols = not_letters.translate(None, _DIGITS)
    letters = len(ascii_text) - len(not_letters)
    digits = len(not_letters) - len(symbols)
    other = len(text) - len(ascii_text)
    return math.ceil(letters / 3.2 + digits + len(symbols) / 2 + 2 * other)


def count_prompt(prompt: str | Sequence[Message], count_text: Callable[[str], int]) -> int:
    """Tokens of a text, or of chat messages with the template allowances."""
    if isinstance(prompt, str):
        return count_text(prompt)
    contents = sum(count_text(m.content) for m in prompt)
    return contents + CHAT_TOKENS_PER_MESSAGE * len(prompt) + CHAT_TOKENS_PER_REPLY
