"""The LLM query steps cannot make retrieval worse with a weak model: a scripted model (the
ScriptedBackend of tests/fakes, behind a real InferenceClient) that copies the self-query
prompt's shape, invents authors, and writes expansion phrasings off the question's topic.
Self-query then filters nothing; expansion searches only phrasings close to the question,
each weighing less than the question in fusion. Fast: the hashing embedder, in-memory Qdrant.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from fakes import HashingEmbedder, ScriptedBackend
from llm_twin_sdk import ConfigurationError, Document, InferenceClient, QdrantStore, RAGPipeline
from llm_twin_sdk.errors import InvalidParameterError
from llm_twin_sdk.inference.backend import NormalizedPrompt
from llm_twin_sdk.rag.fusion import QueryVectors
from llm_twin_sdk.rag.query import (
    EXPANSION_SEPARATOR,
    EXPANSION_WEIGHT,
    Phrasing,
    QueryExpander,
    SelfQuery,
    parse_metadata,
    parse_phrasings,
)
from llm_twin_sdk.retry import NO_RETRY

LOGGER = "llm_twin_sdk.rag.query"
AUTHORS = ["Maya Okafor", "Liam Chen"]
KNOWN = {"author": AUTHORS, "platform": ["linkedin", "medium"]}
UNNAMED = [  # questions that name no author, no platform, no kind
    "How do I cut GPU cost?",
    "Why does the vector of a long text only seem to reflect its opening paragraphs?",
    "Does it matter where in the document I place the most useful passage?",
    "X-Accel-Buffering",
    "What did the author of this question mean by beta=0.1?",
]

Model = Callable[[str, str], str]
"""A scripted model: (system instruction, question) -> reply."""


def _client(model: Model) -> InferenceClient:
    def respond(prompt: NormalizedPrompt) -> str:
        assert isinstance(prompt, list)  # the steps send chat messages
        system, user = prompt
        return model(system.content, user.content)

    return InferenceClient(ScriptedBackend(respond=respond), retry=NO_RETRY)


@pytest.fixture
def model() -> Iterator[Callable[[Model], InferenceClient]]:
    clients: list[InferenceClient] = []

    def make(answer: Model) -> InferenceClient:
        clients.append(_client(answer))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


# -- self-query: nothing to copy, nothing invented kept -------------------------------------


EXAMPLES = re.findall(r"\{.*?\}", SelfQuery.SYSTEM)
"""The example answers of the self-query prompt."""

COPIERS: dict[str, Model] = {
    "the first example": lambda _s, _q: EXAMPLES[0],
    "the last example": lambda _s, _q: EXAMPLES[-1],
    "words for names": lambda _s, _q: json.dumps(
        {"author": "The author of the article", "platform": "The website", "kind": "post"}
    ),
    "the old prompt's example": lambda _s, _q: json.dumps(
        {"author": "Jane Doe", "platform": "linkedin", "kind": "post"}
    ),
    "a known author, every time": lambda _s, _q: json.dumps(
        {"author": "Maya Okafor", "platform": "medium", "kind": "article"}
    ),
    "an author built from a known one": lambda _s, _q: json.dumps(
        {"author": "Maya Chen", "platform": None, "kind": None}
    ),
}


def test_the_self_query_prompt_holds_no_value_to_copy() -> None:
    assert len(EXAMPLES) == 2
    for example in EXAMPLES:
        metadata = parse_metadata(example)
        assert metadata is not None
        for value in (metadata.author, metadata.platform):
            assert value is None or (value.startswith("<") and value.endswith(">")), value
    assert "Jane" not in SelfQuery.SYSTEM


@pytest.mark.parametrize("copier", COPIERS, ids=list(COPIERS))
@pytest.mark.parametrize("known", [KNOWN, None], ids=["known", "no-known"])
def test_a_copying_or_inventing_model_gives_no_filters(
    model: Callable[[Model], InferenceClient], copier: str, known: dict[str, list[str]] | None
) -> None:
    self_query = SelfQuery(model(COPIERS[copier]))
    for question in UNNAMED:
        assert self_query.extract(question, known=known) == {}, question
    # a question naming another author: the copied or invented one is not kept
    assert self_query.extract("What did Liam write about retries?", known=known) == {}


def test_placeholders_are_dropped_and_logged(
    model: Callable[[Model], InferenceClient], caplog: pytest.LogCaptureFixture
) -> None:
    reply = json.dumps({"author": "<Maya Okafor>", "platform": "[linkedin]", "kind": None})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        filters = SelfQuery(model(lambda _s, _q: reply)).extract(
            "What did Maya Okafor write on LinkedIn?"
        )
    assert filters == {}
    assert caplog.text.count("a placeholder, not a value") == 2


def test_a_value_the_question_names_is_kept(model: Callable[[Model], InferenceClient]) -> None:
    """The control: the same guards keep what the question does name."""
    reply = json.dumps({"author": "Okafor", "platform": "LinkedIn", "kind": "posts"})
    self_query = SelfQuery(model(lambda _s, _q: reply))
    question = "What has Okafor posted on LinkedIn about retries?"
    assert self_query.extract(question, known=KNOWN) == {
        "author": ("Maya Okafor",),
        "platform": ("linkedin",),
        "kind": ("post",),
    }
    assert self_query.extract(question) == {
        "author": ("Okafor",),
        "platform": ("LinkedIn",),
        "kind": ("post",),
    }


def test_every_distinctive_word_of_a_name_must_be_in_the_question(
    model: Callable[[Model], InferenceClient],
) -> None:
    def answer(name: str) -> SelfQuery:
        return SelfQuery(model(lambda _s, _q: json.dumps({"author": name})))

    assert answer("Maya Okafor").extract("What did Okafor write?") == {}  # "Maya": invented
    assert answer("Dr. Maya Okafor").extract("What did Dr. Maya Okafor write?", known=KNOWN) == {
        "author": ("Maya Okafor",)
    }
    assert answer("the Okafor").extract("What did Okafor write?") == {"author": ("the Okafor",)}
    assert answer("The author of the article").extract("Which article is best?") == {}


# -- expansion: weights, similarity ------------------------------------------------------------


def test_expander_weights_and_its_checks(model: Callable[[Model], InferenceClient]) -> None:
    reply = f"How can I lower GPU spend?{EXPANSION_SEPARATOR}Which GPUs cost less?"
    expander = QueryExpander(model(lambda _s, _q: reply), n=3)
    assert expander.weight == EXPANSION_WEIGHT == 0.05
    assert expander.phrasings("How do I cut GPU cost?") == [
        Phrasing("How do I cut GPU cost?", 1.0),
        Phrasing("How can I lower GPU spend?", 0.05),
        Phrasing("Which GPUs cost less?", 0.05),
    ]
    assert QueryExpander(None, n=1, weight=1).phrasings("q?") == [Phrasing("q?")]
    assert "weight=0.05, min_similarity=0.3" in repr(expander)
    bad_weights: tuple[object, ...] = (0, -0.1, 1.5, float("nan"), True, "0.5")
    for bad in bad_weights:
        with pytest.raises(ConfigurationError, match="weight"):
            QueryExpander(None, n=1, weight=bad)  # type: ignore[arg-type]  # wrong on purpose
    for bad in (-1.5, 2, float("inf"), None):
        with pytest.raises(ConfigurationError, match="min_similarity"):
            QueryExpander(None, n=1, min_similarity=bad)  # type: ignore[arg-type]  # on purpose


def test_close_to_question_keeps_the_question_and_the_phrasings_near_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    expander = QueryExpander(None, n=1, min_similarity=0.5)
    phrasings = [Phrasing(t) for t in ("q", "near", "far", "opposite", "empty", "edge")]
    vectors = np.array(
        [[2, 0], [0.9, 0.1], [0, 1], [-1, 0], [0, 0], [0.5, np.sqrt(0.75)]], dtype=np.float32
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert expander.close_to_question(phrasings, vectors) == [0, 1, 5]  # cos 0.5 kept
    assert "'far' dropped: similarity 0.00 to the question < 0.50" in caplog.text
    assert "'opposite' dropped: similarity -1.00" in caplog.text
    assert expander.close_to_question(phrasings[:1], vectors[:1]) == [0]
    assert QueryExpander(None, n=1, min_similarity=-1).close_to_question(
        phrasings, vectors
    ) == list(range(6))
    with pytest.raises(InvalidParameterError, match="6 phrasings but 2 embeddings"):
        expander.close_to_question(phrasings, vectors[:2])


def test_phrasings_far_longer_than_the_question_are_dropped() -> None:
    question = "How do I cut GPU cost?"  # 22 characters: at most 2 x 22 + 80 = 124
    answer = "To cut GPU cost, " + "you can use many techniques such as caching " * 3
    assert len(answer) > 124
    assert parse_phrasings(f"{answer}\nHow can I lower GPU spend?", question, 5) == [
        "How can I lower GPU spend?"
    ]
    assert parse_phrasings("y" * 124, question, 5) == ["y" * 124]


# -- the pipeline: a weak model never changes plain retrieval for the worse -----------------

MAYA_POST = {"author": "Maya Okafor", "platform": "linkedin", "kind": "post"}
MAYA = {"author": "Maya Okafor", "platform": "medium", "kind": "article"}
LIAM = {"author": "Liam Chen", "platform": "medium", "kind": "article"}
CORPUS = [
    Document(id="gpu", metadata=MAYA_POST, text="Scale the endpoint to zero to cut GPU cost."),
    Document(id="sse", metadata=LIAM, text="X-Accel-Buffering no: nginx streams SSE unbuffered."),
    Document(id="eval", metadata=LIAM, text="Measure retrieval recall before tuning prompts."),
    Document(id="fish", metadata=MAYA, text="The betta is a fish from Thailand's warm ponds."),
]
OFF_TOPIC = [
    "The betta is a fish that lives in warm ponds and rice paddies of Thailand.",
    "I'm ready to assist you with your request, please provide the document.",
]


@pytest.fixture
def store() -> Iterator[QdrantStore]:
    store = QdrantStore.memory()
    RAGPipeline(HashingEmbedder(256), store).ingest(CORPUS)
    yield store
    store.close()


def _searched(rag: RAGPipeline) -> list[list[QueryVectors]]:
    """Record the phrasings' vectors of every search (the real method still runs)."""
    seen: list[list[QueryVectors]] = []
    real = rag.store.search_many

    def spy(queries: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(list(queries))
        return real(queries, *args, **kwargs)

    rag.store.search_many = spy  # type: ignore[method-assign]  # a spy; the real one runs
    return seen


@pytest.mark.parametrize("search", ["hybrid", "dense", "lexical"])
def test_off_topic_phrasings_are_not_searched(
    model: Callable[[Model], InferenceClient], store: QdrantStore, search: Any
) -> None:
    question = "How do I cut GPU cost of an endpoint?"
    on_topic = "How can I cut the GPU cost of my endpoint?"
    reply = EXPANSION_SEPARATOR.join([OFF_TOPIC[0], on_topic, OFF_TOPIC[1]])
    expander = QueryExpander(model(lambda _s, _q: reply), n=4)
    plain = RAGPipeline(HashingEmbedder(256), store, search=search)
    rag = RAGPipeline(HashingEmbedder(256), store, search=search, expander=expander)
    seen = _searched(rag)
    hits = rag.retrieve(question, k=2)
    [vectors] = seen
    assert [v.weight for v in vectors] == [1.0, EXPANSION_WEIGHT]  # the fish and chat dropped
    assert (vectors[0].dense is None) == (search == "lexical")
    assert hits[0].document_id == plain.retrieve(question, k=2)[0].document_id == "gpu"


def test_a_weak_model_leaves_the_plain_ranking(
    model: Callable[[Model], InferenceClient], store: QdrantStore
) -> None:
    def weak(system: str, question: str) -> str:
        if system == SelfQuery.SYSTEM:  # a known author, every time
            return json.dumps({"author": "Maya Okafor", "platform": "linkedin", "kind": "post"})
        return EXPANSION_SEPARATOR.join(OFF_TOPIC)

    client = model(weak)
    plain = RAGPipeline(HashingEmbedder(256), store)
    rag = RAGPipeline(
        HashingEmbedder(256),
        store,
        self_query=SelfQuery(client),
        expander=QueryExpander(client, n=3),
    )
    for question in ("What does beta=0.1 do?", "How do I stop nginx buffering events?"):
        expected = [(c.id, c.score) for c in plain.retrieve(question, k=4)]
        assert [(c.id, c.score) for c in rag.retrieve(question, k=4)] == expected
    rag.close()
