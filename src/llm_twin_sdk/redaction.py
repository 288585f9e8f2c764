"""What counts as a secret, and how it is hidden: one rule for repr, errors, logs and plans.

A name is secret-like when it holds a credential word (``SECRET``, ``PASSWORD``, ``CREDENTIAL``,
``API_KEY``, ``ACCESS_KEY``, ``PRIVATE_KEY``, a final ``KEY``, ``TOKEN``), but not ``TOKENS``
nor a token *limit* such as ``MAX_TOKEN_LENGTH``: settings a user must be able to read.

>>> [n for n in ("HF_TOKEN", "MY_API_KEY", "MAX_INPUT_TOKENS", "TOKENIZER") if is_secret_name(n)]
['HF_TOKEN', 'MY_API_KEY']
>>> mask_secrets({"OPENAI_API_KEY": "sk-1", "MAX_TOTAL_TOKENS": "4096"})
{'OPENAI_API_KEY': '**********', 'MAX_TOTAL_TOKENS': '4096'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["MASK", "is_secret_name", "mask_secrets"]

MASK = "**********"
"""What a hidden value is shown as."""

_CREDENTIAL = re.compile(
    r"SECRET|PASSW(?:OR)?D|CREDENTIAL|(?:API|ACCESS|PRIVATE)_?KEY|(?<![A-Z])KEY$", re.IGNORECASE
)
_TOKEN = re.compile(r"TOKEN(?![A-Z])", re.IGNORECASE)  # TOKEN, HF_TOKEN; not TOKENS, TOKENIZER
_LIMIT = re.compile(
    r"(?<![A-Z])(?:MAX|MIN|LIMIT|NUM|COUNT|LEN|LENGTH|SIZE)(?![A-Z])", re.IGNORECASE
)

_K = TypeVar("_K")
_V = TypeVar("_V")


def is_secret_name(name: str) -> bool:
    """True when a variable, field or header named ``name`` holds a secret."""
    return bool(_CREDENTIAL.search(name) or (_TOKEN.search(name) and not _LIMIT.search(name)))


def mask_secrets(values: Mapping[_K, _V]) -> dict[_K, _V | str]:
    """``values`` with the value of every secret-like (string) key replaced by :data:`MASK`."""
    return {
        key: MASK if isinstance(key, str) and is_secret_name(key) else value
        for key, value in values.items()
    }
