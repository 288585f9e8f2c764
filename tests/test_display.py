"""Display: short one-line reprs (long texts elided, no chunk ids or nested results), HTML for
Jupyter with every value escaped, and flat records that make a DataFrame in one call. A real
pipeline and store over the HashingEmbedder fake, a scripted backend: no model."""

from __future__ import annotations

import asyncio
import doctest
import json
from collections.abc import Iterator

import pandas as pd
import pytest

from fakes import PIECES, HashingEmbedder, ScriptedBackend
from llm_twin_sdk import (
    Answer,
    AsyncInferenceClient,
    AsyncLLMTwin,
    Chunk,
    Document,
    InferenceClient,
    IngestReport,
    InvalidParameterError,
    LLMTwin,
    QdrantStore,
    RAGPipeline,
    StageTimings,
    Usage,
    display,
)
from llm_twin_sdk.display import elide, escape, short, table
from llm_twin_sdk.rag.evaluation import LabelledQuery, evaluate

QUERY = "How should I size MAX_TOTAL_TOKENS for a quantized model on one GPU?"
LONG = " ".join(f"Sentence {i}: quantization cuts the gpu cost of serving." for i in range(50))
SCRIPT = "<script>alert('x')</script>"
METADATA = {
    "author": "Maya Okafor",
    "platform": "linkedin",
    "kind": "post",
    "title": f"{SCRIPT} quantization notes",
    "url": "https://example.com/posts/" + "q" * 80,
}


def _documents() -> list[Document]:
    return [
        Document(id="long-post", text=LONG, metadata=METADATA),
        Document(id=SCRIPT, text=f"{SCRIPT} gpu quantization cost", metadata={"kind": "post"}),
        Document(id="note", text="Travel and food, nothing about models.", metadata={}),
    ]


@pytest.fixture(scope="module")
def rag() -> Iterator[RAGPipeline]:
    store = QdrantStore.memory()
    pipeline = RAGPipeline(HashingEmbedder(), store, chunk_tokens=256)
    pipeline.ingest(_documents(), progress=False)
    yield pipeline
    store.close()


@pytest.fixture(scope="module")
def answer(rag: RAGPipeline) -> Answer:
    long_reply = "The answer, at length. " * 100
    with LLMTwin(rag, InferenceClient(ScriptedBackend(respond=lambda _: long_reply))) as twin:
        return twin.ask(QUERY, k=3)


# -- the helpers ---------------------------------------------------------------------------------


def test_the_display_module_examples_run() -> None:
    result = doctest.testmod(display)
    assert result.attempted >= 2
    assert result.failed == 0


def test_helpers_elide_and_escape() -> None:
    assert elide("short") == "'short'"
    assert repr(elide("x" * 100, 10)) == "'xxxxxxxxxx…' (100 chars)"
    assert short("a  b\n c") == "a b c"
    assert escape(None) == ""
    assert escape(0.123456) == "0.123"
    assert escape(SCRIPT) == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    html = table(["a&b"], [[SCRIPT]])
    assert "<script>" not in html
    assert "<th>a&amp;b</th>" in html


# -- reprs ---------------------------------------------------------------------------------------


def test_answer_repr_is_one_short_line(answer: Answer) -> None:
    text = repr(answer)
    assert len(answer.text) > 2000
    assert len(text) <= 200
    assert "\n" not in text
    assert text.startswith("Answer(query='How should I size")
    assert f"({len(answer.text)} chars)" in text
    assert "sources=[3: 'long-post'," in text
    assert "total_s=" in text
    assert "Sentence 3" not in text
    assert len(str(answer)) <= 200
    assert f"({len(answer.text)} chars)" in str(answer)
    # pydantic's own behaviour is unchanged.
    dumped = answer.model_dump()
    assert dumped["text"] == answer.text
    assert dumped["sources"][0]["text"] == answer.sources[0].text
    assert json.loads(answer.model_dump_json())["query"] == QUERY
    assert answer.model_copy() == answer
    # A dump validates back (its computed totals included), from Python and from JSON.
    assert Answer.model_validate(dumped) == answer
    assert Answer.model_validate_json(answer.model_dump_json()) == answer


def test_a_dumped_total_that_is_not_the_sum_is_refused() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4}
    assert Usage.model_validate({**usage, "total_tokens": 7}) == Usage(**usage)
    with pytest.raises(InvalidParameterError, match="total_tokens must be the sum"):
        Usage.model_validate({**usage, "total_tokens": 9})
    timings = {"retrieve_s": 0.1, "prompt_s": 0.2, "generate_s": 0.3}
    with pytest.raises(InvalidParameterError, match="total_s must be the sum"):
        StageTimings.model_validate({**timings, "total_s": 5.0})
    assert StageTimings.model_validate({**timings, "total_s": "n/a"}) == StageTimings(**timings)


def test_chunk_and_document_reprs_are_short(answer: Answer) -> None:
    chunk = next(s for s in answer.sources if s.document_id == "long-post")
    text = repr(chunk)
    assert len(chunk.text) > 800
    assert len(text) <= 200
    assert text.startswith(f"Chunk(document_id='long-post', position={chunk.position}, score=")
    assert f"text={elide(chunk.text)})" in text
    assert f"({len(chunk.text)} chars)" in text
    assert chunk.id not in text  # the uuid stays out, and so do metadata and vectors
    assert "[" not in text
    assert "author" not in text
    document = Document(id="long-post", text=LONG, metadata=METADATA)
    text = repr(document)
    assert len(text) < 240
    assert f"({len(LONG)} chars)" in text
    assert "author='Maya Okafor'" in text
    assert "url='https://example.…'" in text
    assert (
        repr(Document(id="d", text="hi"))
        == "Document(id='d', text='hi', metadata=DocumentMetadata())"
    )
    assert Chunk.model_validate(chunk.model_dump()) == chunk


def test_ingest_report_repr_rounds_its_seconds() -> None:
    report = IngestReport(documents=3, chunks=7, seconds=1.23456789)
    assert repr(report) == "IngestReport(documents=3, chunks=7, unchanged=0, seconds=1.235)"
    assert report.seconds == 1.23456789


def test_stream_repr_open_then_closed(rag: RAGPipeline) -> None:
    with LLMTwin(rag, InferenceClient(ScriptedBackend())) as twin:
        stream = twin.stream(QUERY, k=2)
        assert repr(stream).startswith("AnswerStream(query='How should I size MAX_TOTAL_TOKENS")
        assert repr(stream).endswith(", open, sources=2, text=0 chars)")
        first = next(stream)
        assert repr(stream).endswith(f", open, sources=2, text={len(first)} chars)")
        assert "text so far: 3 chars" in stream._repr_html_()
        rest = list(stream)
        assert repr(stream).endswith(
            f", closed, sources=2, text={len(first + ''.join(rest))} chars, answered)"
        )
        stream.close()


def test_async_stream_repr_before_and_after_entering(rag: RAGPipeline) -> None:
    async def run() -> list[str]:
        async with AsyncLLMTwin(rag, AsyncInferenceClient(ScriptedBackend())) as twin:
            stream = twin.stream(QUERY, k=2)
            shown = [repr(stream), stream._repr_html_()]
            async with stream:
                shown.append(repr(stream))
                shown.append("".join([piece async for piece in stream]))
            shown.append(repr(stream))
            return shown

    before, html, entered, text, after = asyncio.run(run())
    assert before.endswith(", open, not entered, text=0 chars)")
    assert "sources not known yet" in html
    assert entered.endswith(", open, sources=2, text=0 chars)")
    assert text == "".join(PIECES)
    assert after.endswith(f", closed, sources=2, text={len(text)} chars, answered)")


# -- HTML ----------------------------------------------------------------------------------------


def test_answer_html_has_text_sources_and_timings_escaped(answer: Answer) -> None:
    html = answer._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; quantization notes" in html  # title
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</td>" in html  # document id
    for column in ("rank", "document", "title", "author", "score"):
        assert f"<th>{column}</th>" in html
    assert "<td>Maya Okafor</td>" in html
    assert "The answer, at length." in html
    assert "generate s: " in html
    assert "total s: " in html


def test_stream_html_escapes_its_text(rag: RAGPipeline) -> None:
    backend = ScriptedBackend(respond=lambda _: SCRIPT)
    with LLMTwin(rag, InferenceClient(backend)) as twin:
        answer = twin.ask(SCRIPT, k=2)
        with twin.stream(SCRIPT, k=2) as stream:
            html = stream._repr_html_()
    assert "<script>" not in answer._repr_html_()
    assert "<script>" not in html
    assert "AnswerStream: &lt;script&gt;" in html
    assert "state: open" in html


def test_report_html() -> None:
    html = IngestReport(documents=3, chunks=7, seconds=0.5)._repr_html_()
    assert "<td>3</td><td>7</td><td>0</td><td>0.500</td>" in html


# -- records -------------------------------------------------------------------------------------


COLUMNS = ["rank", "document_id", "title", "author", "platform", "kind", "url", "score"]


def test_answer_records_make_a_dataframe(answer: Answer) -> None:
    frame = pd.DataFrame(answer.to_records())
    assert list(frame.columns) == [*COLUMNS, "position", "text"]
    assert len(frame) == len(answer.sources) == 3
    assert list(frame["rank"]) == [1, 2, 3]
    assert list(frame["document_id"]) == [s.document_id for s in answer.sources]
    assert list(frame["score"]) == [s.score for s in answer.sources]
    row = frame.set_index("document_id").loc["long-post"]
    assert row["author"] == "Maya Okafor"
    assert row["url"] == METADATA["url"]
    assert row["text"] == answer.sources[list(frame["document_id"]).index("long-post")].text


def test_evaluation_report_display_and_records(rag: RAGPipeline) -> None:
    queries = [
        LabelledQuery(query="gpu quantization cost", relevant=("long-post",), kind="lexical"),
        LabelledQuery(query="travel and food", relevant=("note",), kind="paraphrase"),
        LabelledQuery(query=f"{SCRIPT} gpu", relevant=(SCRIPT,), kind="paraphrase"),
    ]
    report = evaluate(rag.retrieve, queries, k_values=(1, 3))
    text = repr(report)
    assert text.startswith("EvaluationReport(queries=3, kinds=[paraphrase, lexical], recall@1=")
    assert "MRR@3=" in text
    assert "nDCG@3=" in text
    assert len(text) <= 200
    assert "ranked" not in text  # not every query's result

    frame = pd.DataFrame(report.to_records())
    assert list(frame.columns) == ["kind", "query", "recall@1", "recall@3", "mrr", "ndcg"]
    assert list(frame["kind"]) == ["lexical", "paraphrase", "paraphrase"]
    assert frame["recall@3"].mean() == pytest.approx(report.overall.recall[3])
    assert frame["mrr"].mean() == pytest.approx(report.overall.mrr)

    html = report._repr_html_()
    assert "<th>recall@1</th>" in html
    assert "<td>overall</td>" in html
    assert "<td>paraphrase</td><td>2</td>" in html
    assert "<script>" not in html
