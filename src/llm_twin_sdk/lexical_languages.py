"""The languages of lexical search (Qdrant's BM25): their names, and the check of a setting.

Light on purpose (no Qdrant import): :class:`~llm_twin_sdk.config.TwinSettings` checks
``LLM_TWIN_LANGUAGE`` with it before anything is built::

    check_language("german")    # -> "german"
    check_language("klingon")   # ConfigurationError listing LANGUAGES
"""

from __future__ import annotations

from .errors import ConfigurationError

__all__ = ["LANGUAGES", "check_language"]

LANGUAGES: tuple[str, ...] = (
    "arabic",
    "azerbaijani",
    "basque",
    "bengali",
    "catalan",
    "chinese",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hebrew",
    "hinglish",
    "hungarian",
    "indonesian",
    "italian",
    "japanese",
    "kazakh",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "slovene",
    "spanish",
    "swedish",
    "tajik",
    "turkish",
    "none",
)
"""Accepted ``language`` values: Qdrant's BM25 languages (stopwords, and the Snowball stemmer
where Snowball has one), and ``"none"``: no stemming, no stopwords."""


def check_language(language: object) -> str:
    """``language`` if it is one of :data:`LANGUAGES`, else :class:`ConfigurationError`
    listing them."""
    if not isinstance(language, str) or language not in LANGUAGES:
        raise ConfigurationError(
            f"unknown lexical language {language!r}; accepted: {', '.join(LANGUAGES)}"
        )
    return language
