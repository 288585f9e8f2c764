"""The lexical language setting: ``TwinSettings.language`` (``LLM_TWIN_LANGUAGE``), checked
before anything is built, and passed by ``RAGPipeline.from_settings`` to its encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_twin_sdk import ConfigurationError, RAGPipeline, TwinSettings
from llm_twin_sdk.lexical_languages import LANGUAGES, check_language


def test_the_default_language_is_english() -> None:
    assert TwinSettings().language == "english"


def test_the_language_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_LANGUAGE", "german")
    assert TwinSettings().language == "german"
    monkeypatch.setenv("LLM_TWIN_LANGUAGE", "none")
    assert TwinSettings().language == "none"


@pytest.mark.parametrize("wrong", ["klingon", "English", "en", ""])
def test_a_wrong_language_lists_the_accepted_ones(wrong: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown lexical language") as info:
        TwinSettings(language=wrong)
    assert "accepted: arabic, azerbaijani" in str(info.value)
    assert "none" in str(info.value)


def test_check_language() -> None:
    assert check_language("spanish") == "spanish"
    assert LANGUAGES[-1] == "none"
    assert "english" in LANGUAGES
    with pytest.raises(ConfigurationError):
        check_language(None)


def test_from_settings_builds_the_encoder_of_the_language(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLM_TWIN_LANGUAGE", "french")
    rag = RAGPipeline.from_settings(TwinSettings(qdrant_path=tmp_path / "qdrant"))
    try:
        assert rag.lexical_encoder.language == "french"
        assert "language='french'" in repr(rag.lexical_encoder)
    finally:
        rag.close()


def test_a_wrong_language_fails_before_any_store_is_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("q") / "qdrant"
    monkeypatch.setenv("LLM_TWIN_LANGUAGE", "elvish")
    with pytest.raises(ConfigurationError, match="elvish"):
        RAGPipeline.from_settings(TwinSettings(qdrant_path=folder))
    assert not folder.exists()
