"""Fusion of ranked lists (rag/fusion.py), by hand: RRF with its constant, DBSF, min-max,
list weights, per-document fusion, and the settings' checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fakes import ScriptedBackend
from llm_twin_sdk import InferenceClient, RAGPipeline, TwinSettings
from llm_twin_sdk.errors import ConfigurationError, InvalidParameterError
from llm_twin_sdk.rag.fusion import Fusion, fuse, fusion_depth


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any] | None = None


def hits(*pairs: tuple[str, float]) -> list[Hit]:
    return [
        Hit(point_id, score, {"document_id": point_id.split("#")[0]}) for point_id, score in pairs
    ]


DENSE = hits(("a#0", 0.9), ("b#0", 0.8), ("c#0", 0.5))
LEXICAL = hits(("c#0", 12.0), ("d#0", 3.0))


def by_id(fused: list[tuple[Hit, float]]) -> dict[str, float]:
    return {point.id: score for point, score in fused}


def test_rrf_with_its_constant() -> None:
    fused = fuse([DENSE, LEXICAL], 10, 20, fusion=Fusion("rrf", rrf_constant=60))
    assert by_id(fused) == pytest.approx(
        {"a#0": 1 / 61, "b#0": 1 / 62, "c#0": 1 / 63 + 1 / 61, "d#0": 1 / 62}
    )
    assert [p.id for p, _ in fused] == ["c#0", "a#0", "b#0", "d#0"]  # ties keep first seen
    fused = fuse([DENSE, LEXICAL], 10, 20, fusion=Fusion("rrf", rrf_constant=1))
    assert by_id(fused)["c#0"] == pytest.approx(1 / 4 + 1 / 2)


def test_dbsf_maps_mean_plus_minus_three_deviations_onto_0_1() -> None:
    fused = by_id(fuse([DENSE, LEXICAL], 10, 20, fusion=Fusion("dbsf")))
    mean, std = (0.9 + 0.8 + 0.5) / 3, 0.16996731711975946  # population deviation
    low, span = mean - 3 * std, 6 * std
    lex_mean, lex_std = 7.5, 4.5
    lex_low, lex_span = lex_mean - 3 * lex_std, 6 * lex_std
    assert fused == pytest.approx(
        {
            "a#0": (0.9 - low) / span,
            "b#0": (0.8 - low) / span,
            "c#0": (0.5 - low) / span + (12.0 - lex_low) / lex_span,
            "d#0": (3.0 - lex_low) / lex_span,
        }
    )


def test_minmax_and_weights() -> None:
    fusion = Fusion("minmax", dense_weight=1.0, lexical_weight=1.0)
    fused = by_id(fuse([DENSE, LEXICAL], 10, 20, weights=[1.0, 0.5], fusion=fusion))
    assert fused == pytest.approx({"a#0": 1.0, "b#0": 0.75, "c#0": 0.0 + 0.5, "d#0": 0.0})


def test_a_list_of_weight_zero_is_left_out_and_one_list_keeps_its_scores() -> None:
    fused = fuse([DENSE, LEXICAL], 2, 20, weights=[1.0, 0.0], fusion=Fusion("dbsf"))
    assert [(p.id, s) for p, s in fused] == [("a#0", 0.9), ("b#0", 0.8)]


def test_per_document_a_document_counts_once_per_list() -> None:
    dense = hits(("a#0", 0.9), ("a#1", 0.85), ("b#0", 0.8))
    lexical = hits(("b#3", 9.0), ("a#2", 1.0))
    fusion = Fusion("rrf", rrf_constant=60)
    fused = fuse([dense, lexical], 10, 20, fusion=fusion, document_of=lambda p: p.id[0])
    scores = {point.id[0]: score for point, score in fused}
    assert scores == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62 + 1 / 61})
    # Each document is represented by its best chunk in the list that gave it most.
    assert {p.id for p, _ in fused} == {"a#0", "b#3"}
    assert len(fuse([dense], 10, 20, document_of=lambda p: p.id[0])) == 2  # one list too


def test_lists_are_cut_at_the_depth() -> None:
    fused = fuse([DENSE, LEXICAL], 10, 1, fusion=Fusion("rrf", rrf_constant=60))
    assert by_id(fused) == pytest.approx({"a#0": 1 / 61, "c#0": 1 / 61})


def test_fusion_depth() -> None:
    assert fusion_depth(1, 5) == 5
    assert fusion_depth(2, 3) == 20
    assert fusion_depth(2, 10) == 40
    assert fusion_depth(2, 10, per_document=True) == 120


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "borda"}, "fusion method must be one of rrf, dbsf, minmax"),
        ({"rrf_constant": -1}, "rrf_constant must be a number >= 0"),
        ({"dense_weight": float("nan")}, "dense_weight must be a number >= 0"),
        ({"lexical_weight": float("inf")}, "lexical_weight must be finite"),
        ({"lexical_weight": True}, "lexical_weight must be a number"),
        ({"dense_weight": 0, "lexical_weight": 0}, "cannot both be 0"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Fusion(**options)


def test_weights_must_match_the_lists() -> None:
    with pytest.raises(InvalidParameterError, match="2 lists but 1 weights"):
        fuse([DENSE, LEXICAL], 5, 20, weights=[1.0])


def test_the_fusion_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TwinSettings().fusion == "dbsf"
    monkeypatch.setenv("LLM_TWIN_FUSION", "rrf")
    assert TwinSettings().fusion == "rrf"
    monkeypatch.setenv("LLM_TWIN_FUSION", "borda")
    with pytest.raises(ConfigurationError, match="fusion"):
        TwinSettings()


def test_from_settings_builds_the_fusion_of_the_settings(tmp_path: Path) -> None:
    settings = TwinSettings(fusion="minmax", qdrant_path=tmp_path / "qdrant")
    with RAGPipeline.from_settings(settings) as rag:
        assert rag.fusion == Fusion("minmax")
    with RAGPipeline.from_settings(settings.model_copy(update={"fusion": "dbsf"})) as rag:
        assert rag.fusion == Fusion()
        assert rag.expander is None
    expanding = settings.model_copy(update={"query_expansion": 3, "query_expansion_weight": 0.3})
    with (
        InferenceClient(ScriptedBackend(respond=lambda _prompt: "?")) as llm,
        RAGPipeline.from_settings(expanding, llm=llm) as rag,
    ):
        assert rag.expander is not None
        assert (rag.expander.n, rag.expander.weight) == (3, 0.3)


def test_the_expansion_weight_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TwinSettings().query_expansion_weight == 0.05
    monkeypatch.setenv("LLM_TWIN_QUERY_EXPANSION_WEIGHT", "0.5")
    assert TwinSettings().query_expansion_weight == 0.5
    for bad in ("0", "1.5", "many"):
        monkeypatch.setenv("LLM_TWIN_QUERY_EXPANSION_WEIGHT", bad)
        with pytest.raises(ConfigurationError, match="query_expansion_weight"):
            TwinSettings()
