from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llm_twin_sdk import ConfigurationError, TwinSettings
from llm_twin_sdk.config import default_qdrant_path


def test_defaults_are_the_embedded_footing(tmp_path: Path) -> None:
    s = TwinSettings()
    assert s.backend == "local"
    assert s.model_path is None
    assert s.qdrant_url is None
    assert s.qdrant_path == tmp_path / ".llm-twin" / "qdrant"  # the working directory's
    assert s.generation.max_new_tokens == 150


def test_environment_is_read_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_TOP_K", "7")
    monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "42")
    monkeypatch.setenv("LLM_TWIN_QDRANT_URL", "http://127.0.0.1:6333")
    s = TwinSettings()
    assert (s.top_k, s.generation.max_new_tokens, s.qdrant_url) == (7, 42, "http://127.0.0.1:6333")


def test_explicit_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_TOP_K", "7")
    assert TwinSettings(top_k=2).top_k == 2


def test_dotenv_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LLM_TWIN_N_CTX=4096\n", encoding="utf-8")
    assert TwinSettings().n_ctx == 4096


def test_secrets_never_show(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLM_TWIN_QDRANT_API_KEY", "qdrant-secret-123")
    monkeypatch.setenv("LLM_TWIN_HF_TOKEN", "hf_secret_456")
    s = TwinSettings()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings: %s %r", s, s)
    for text in (repr(s), str(s), s.model_dump_json(), caplog.text):
        assert "qdrant-secret-123" not in text
        assert "hf_secret_456" not in text
    assert s.qdrant_api_key is not None
    assert s.qdrant_api_key.get_secret_value() == "qdrant-secret-123"


def test_invalid_settings_raise_configuration_error_without_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="top_k") as info:
        TwinSettings(top_k=0, qdrant_api_key="qdrant-secret-123")
    assert "qdrant-secret-123" not in str(info.value)
    for field in ("qdrant_api_key", "hf_token", "http_api_key"):  # every SecretStr field
        with pytest.raises(ConfigurationError, match=field) as info:
            TwinSettings(**{field: ["not", "a", "string", "secret-789"]})
        assert "secret-789" not in str(info.value)
    monkeypatch.setenv("LLM_TWIN_GENERATION__TOP_P", "7")
    with pytest.raises(ConfigurationError, match="top_p"):
        TwinSettings()


def test_overlap_must_be_below_chunk_size() -> None:
    with pytest.raises(ConfigurationError, match="chunk_overlap"):
        TwinSettings(chunk_tokens=32, chunk_overlap=32)


def test_settings_are_immutable() -> None:
    s = TwinSettings()
    with pytest.raises(Exception, match="frozen"):
        s.top_k = 9  # type: ignore[misc]
    assert s.model_copy(update={"top_k": 9}).top_k == 9


def test_the_default_folder_is_the_projects_and_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "project-a").mkdir()
    (tmp_path / "project-b").mkdir()
    monkeypatch.chdir(tmp_path / "project-a")
    a = TwinSettings()
    monkeypatch.chdir(tmp_path / "project-b")
    b = TwinSettings()
    assert a.qdrant_path == tmp_path / "project-a" / ".llm-twin" / "qdrant"
    assert b.qdrant_path == default_qdrant_path() == tmp_path / "project-b" / ".llm-twin" / "qdrant"
    assert a.qdrant_path != b.qdrant_path  # two projects never share their documents
    # a relative folder is fixed when the settings are built: a later chdir does not move it
    monkeypatch.setenv("LLM_TWIN_QDRANT_PATH", "data/q")
    relative = TwinSettings()
    monkeypatch.chdir(tmp_path)
    assert relative.qdrant_path == tmp_path / "project-b" / "data" / "q"
    assert TwinSettings(qdrant_path=Path("~/q")).qdrant_path == Path("~/q").expanduser()


@pytest.mark.parametrize("source", ["argument", "environment"])
def test_a_nested_setting_is_named_once_with_its_range(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "environment":
        monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "0")
        arguments = {}
    else:
        arguments = {"generation": {"max_new_tokens": 0}}
    with pytest.raises(ConfigurationError) as info:
        TwinSettings(**arguments)
    message = str(info.value)
    assert message.startswith("invalid TwinSettings: generation.max_new_tokens: ")
    assert "greater than 0" in message
    assert message.count("got") == 1
    assert message.count("invalid") == 1
