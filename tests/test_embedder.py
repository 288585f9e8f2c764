from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llm_twin_sdk import ConfigurationError, Embedder, ModelLoadError
from llm_twin_sdk.offline_models import default_embedding_model_path, names_a_folder


def test_default_model_ships_in_a_wheel() -> None:
    path = default_embedding_model_path()
    assert path.is_dir()
    assert (path / "config.json").is_file() or (path / "modules.json").is_file()


def test_encode_gives_unit_vectors_of_the_model_size(embedder: Embedder) -> None:
    vectors = embedder.encode(["GPU autoscaling", "a recipe for bread"])
    assert vectors.shape == (2, 384)
    assert embedder.dimension == 384
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batch_equals_one_by_one(embedder: Embedder) -> None:
    texts = ["Qdrant payload filters", "LoRA adapters on a 4-bit base", "hi"]
    batch = embedder.encode(texts)
    single = np.stack([embedder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_similar_texts_are_closer(embedder: Embedder) -> None:
    a, b, c = embedder.encode(
        [
            "How do I scale an endpoint down to zero?",
            "Scaling endpoints to zero instances",
            "My cat likes sardines",
        ]
    )
    assert float(a @ b) > float(a @ c)


def test_empty_input(embedder: Embedder) -> None:
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.token_offsets([]) == []


def test_token_offsets_map_back_to_text(embedder: Embedder) -> None:
    text = "Tokenizers split unbelievably long words."
    (offsets,) = embedder.token_offsets([text])
    assert len(offsets) > len(text.split())  # word pieces
    assert all(text[s:e].strip() == text[s:e] and e > s for s, e in offsets)
    assert text[offsets[0][0] : offsets[0][1]].lower() == "token"


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Embedder(tmp_path / "nope")


def test_file_instead_of_a_model_folder(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not weights")
    with pytest.raises(ModelLoadError, match="is a file, not a model folder"):
        Embedder(weights)


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="could not load"):
        Embedder(tmp_path / "junk")


def test_bad_batch_size() -> None:
    with pytest.raises(ConfigurationError):
        Embedder(batch_size=0)


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", False),
        ("all-MiniLM-L6-v2", False),
        ("./models/minilm", True),
        ("~/models/minilm", True),
        ("/srv/models/minilm", True),
        ("models/minilm/v2", True),
        (Path("minilm"), True),
    ],
)
def test_names_a_folder(name: str | Path, folder: bool) -> None:
    assert names_a_folder(name) is folder


def test_hub_id_is_not_taken_for_a_missing_folder() -> None:
    # offline (conftest sets HF_HUB_OFFLINE=1), an uncached hub id fails to load; it used to
    # be reported as a missing local folder because of its "/"
    with pytest.raises(ModelLoadError, match=r"(?s)could not load.*network access"):
        Embedder("llm-twin-sdk-tests/no-such-model")


@pytest.mark.parametrize("bars_on", [True, False])
def test_loading_shows_no_progress_bar_and_keeps_the_switches(
    bars_on: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    """transformers' "Loading weights" bar would be a widget in a notebook cell: the SDK loads
    without it, and leaves transformers' and huggingface_hub's switches as they were."""
    from huggingface_hub.utils import are_progress_bars_disabled  # type: ignore[attr-defined]
    from transformers.utils import logging as transformers_logging

    switch = "enable_progress_bar" if bars_on else "disable_progress_bar"
    getattr(transformers_logging, switch)()
    try:
        Embedder()
        assert "Loading weights" not in capfd.readouterr().err
        assert transformers_logging.is_progress_bar_enabled() is bars_on
        assert are_progress_bars_disabled() is not bars_on
    finally:
        transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated
