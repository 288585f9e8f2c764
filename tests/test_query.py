"""Self-query and query expansion (llm_twin_sdk.rag.query): the lenient parsers on messy model
output, then the whole path over real HTTP against the TGI-like test server (both dialects,
faults, logs), and once with the real local SmolLM2 model (invariants only)."""

from __future__ import annotations

import doctest
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import Fault, TGIServer
from llm_twin_sdk import (
    ConfigurationError,
    EmptyQueryError,
    GenerationParams,
    InferenceClient,
    InvalidParameterError,
    Message,
    Timeouts,
)
from llm_twin_sdk.inference.backends.http import HttpBackend
from llm_twin_sdk.rag import query as query_module
from llm_twin_sdk.rag.filters import FILTER_FIELDS, check_filters
from llm_twin_sdk.rag.query import (
    EXPANSION_SEPARATOR,
    QueryExpander,
    QueryMetadata,
    SelfQuery,
    expansion,
    metadata,
    parse_metadata,
    parse_phrasings,
)
from llm_twin_sdk.retry import NO_RETRY, RetryPolicy

LOGGER = "llm_twin_sdk.rag.query"
AUTHORS = ["Maya Okafor", "Liam Chen"]
QUESTION = "How do I cut GPU cost?"
API_KEY = "sk-test-5e1d0c9b"

Respond = Callable[[str], str]


def replying(text: str) -> Respond:
    return lambda _prompt: text


def test_module_examples_run() -> None:
    results = [doctest.testmod(module) for module in (query_module, metadata, expansion)]
    assert sum(result.attempted for result in results) >= 3
    assert sum(result.failed for result in results) == 0


# -- QueryMetadata and parse_metadata ---------------------------------------------------------


def test_query_metadata_cleans_values_and_ignores_extra_keys() -> None:
    meta = QueryMetadata.model_validate(
        {"author": "  Maya   Okafor ", "platform": "null", "kind": "Articles", "url": "x"}
    )
    assert meta == QueryMetadata(author="Maya Okafor", platform=None, kind="article")
    assert QueryMetadata(kind="repo").kind == "repository"
    assert QueryMetadata(kind=' "Posts" ').kind == "post"
    assert QueryMetadata(author=' "null" ', platform="`medium`").platform == "medium"
    assert QueryMetadata(author="N/A", platform=" Unknown ", kind="none") == QueryMetadata()
    assert meta.as_filters() == {"author": ("Maya Okafor",), "kind": ("article",)}
    with pytest.raises(InvalidParameterError, match="author"):
        QueryMetadata(author=3)
    with pytest.raises(InvalidParameterError, match="kind"):
        QueryMetadata(kind="tweet")
    with pytest.raises(Exception, match="frozen"):
        meta.author = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"author": "Maya Okafor", "platform": null, "kind": "post"}',
            ("Maya Okafor", None, "post"),
        ),
        (
            'Sure! Here it is:\n```json\n{"author": "Liam Chen", "platform": "medium", '
            '"kind": null}\n```\nLet me know if you need more.',
            ("Liam Chen", "medium", None),
        ),
        ("{'author': 'Maya Okafor', 'kind': None}", ("Maya Okafor", None, None)),  # Python-style
        ("{'author': 'Maya', 'kind': null,}", ("Maya", None, None)),  # trailing comma, null
        ('{"author": "a {curly} name", "platform": "x}y"}', ("a {curly} name", "x}y", None)),
        ('{"author": "say \\"hi\\" {", "kind": "posts"}', ('say "hi" {', None, "post")),
        ('The set {a, b} is not JSON; {"author": "Liam Chen"}', ("Liam Chen", None, None)),
        (
            '{"metadata": {"author": "Liam Chen", "kind": "repo"}}',
            ("Liam Chen", None, "repository"),
        ),
        ('{"Author": "Liam Chen", "KIND": "Articles"}', ("Liam Chen", None, "article")),
        ('{"author": "null", "platform": "None", "kind": "unknown"}', (None, None, None)),
        ('{"author": "", "platform": "  ", "kind": "N/A"}', (None, None, None)),
        ('{"author": 3, "platform": "linkedin", "kind": "tweet"}', (None, "linkedin", None)),
        ('{"author": ["Maya"], "platform": {"a": 1}, "kind": true}', (None, None, None)),
        ('{"question": "What did Maya write?"}', (None, None, None)),
        ('{"a": ' * 300 + "1" + "}" * 300, (None, None, None)),  # deep, but an object
        ('{"author": "Liam Chen"} and then {"author": "Maya Okafor"}', ("Liam Chen", None, None)),
    ],
)
def test_parse_metadata_accepts_messy_output(
    text: str, expected: tuple[str | None, str | None, str | None]
) -> None:
    meta = parse_metadata(text)
    assert meta is not None
    assert (meta.author, meta.platform, meta.kind) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I could not find any author.",
        '["Maya Okafor", "post"]',  # an array, not an object
        '"Maya Okafor"',
        "null",
        '{"author": "Maya Okafor", "platform": nul',  # cut by the token limit
        "{author: Maya Okafor}",  # neither JSON nor a Python literal
        "{" * 5000,
        '{"a": ' * 2500 + "1" + "}" * 2500,  # too deep for json: no RecursionError
    ],
)
def test_parse_metadata_gives_none_without_an_object(text: str) -> None:
    assert parse_metadata(text) is None


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("{}[]\"':,\\ nulaxtrkid\n")), max_size=300) | st.text()
)
def test_parse_metadata_never_raises(text: str) -> None:
    meta = parse_metadata(text)
    assert meta is None or isinstance(meta, QueryMetadata)
    if meta is not None:
        check_filters(meta.as_filters())


# -- parse_phrasings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"How can I lower GPU spend?{EXPANSION_SEPARATOR}What reduces the cost of GPUs?",
            ["How can I lower GPU spend?", "What reduces the cost of GPUs?"],
        ),
        (
            f"How can I lower GPU spend?\n{EXPANSION_SEPARATOR}\nWhat reduces the cost of GPUs?\n",
            ["How can I lower GPU spend?", "What reduces the cost of GPUs?"],
        ),
        (
            "Here are 2 alternative versions of the question:\n\n1. How can I lower GPU spend?\n"
            "2) What reduces the cost of GPUs?",
            ["How can I lower GPU spend?", "What reduces the cost of GPUs?"],
        ),
        (
            '- "How can I lower GPU spend?"\n* \u201cWhat reduces the cost of GPUs?\u201d',
            ["How can I lower GPU spend?", "What reduces the cost of GPUs?"],
        ),
        (
            "Sure! Here you go\nQuestion 1: How can I lower GPU spend?\n**2. What reduces GPU "
            "costs?**\n# next_question #\n(3) Which tricks make inference cheaper?",
            [
                "How can I lower GPU spend?",
                "What reduces GPU costs?",
                "Which tricks make inference cheaper?",
            ],
        ),
        (  # the original (any case / punctuation), duplicates and blank lines are dropped
            f"how do i cut gpu cost\n\n{QUESTION}\nOriginal question: {QUESTION}\n"
            "How can I lower GPU spend?\nHOW CAN I LOWER GPU SPEND\n   \n---\n```",
            ["How can I lower GPU spend?"],
        ),
        ("3.5 Sonnet or GPT-4 for cheap inference?", ["3.5 Sonnet or GPT-4 for cheap inference?"]),
        ("", []),
        ("\n\n#next-question#\n", []),
        ("x" * 500 + "?\nHow can I lower GPU spend?", ["How can I lower GPU spend?"]),  # too long
    ],
)
def test_parse_phrasings_cleans_messy_output(text: str, expected: list[str]) -> None:
    assert parse_phrasings(text, QUESTION, 5) == expected


def test_parse_phrasings_caps_at_limit() -> None:
    text = "\n".join(f"Phrasing number {i}?" for i in range(10))
    assert parse_phrasings(text, QUESTION, 3) == [f"Phrasing number {i}?" for i in range(3)]
    assert parse_phrasings(text, QUESTION, 0) == []


def _key(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab? .1)-*\"'#\n:")), max_size=400)
    | st.text()
    | st.lists(st.text(max_size=40), max_size=8).map(EXPANSION_SEPARATOR.join),
    question=st.text(min_size=1, max_size=60),
    limit=st.integers(min_value=0, max_value=6),
)
def test_parse_phrasings_invariants(text: str, question: str, limit: int) -> None:
    found = parse_phrasings(text, question, limit)
    assert isinstance(found, list)
    assert len(found) <= limit
    keys = [expansion._key(p) for p in found]
    assert len(set(keys)) == len(keys)  # no duplicates
    assert expansion._key(question) not in keys  # never the original
    for phrasing in found:
        assert isinstance(phrasing, str)
        assert phrasing == phrasing.strip()
        assert phrasing
        assert "\n" not in phrasing
        assert len(phrasing) <= 4 * len(question) + 200


# -- over HTTP: the TGI-like server ---------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TGIServer]:
    with TGIServer(respond=replying("")) as srv:
        yield srv
    assert srv.handler_errors == []


def _client(
    server: TGIServer,
    api: str = "tgi",
    retry: RetryPolicy = NO_RETRY,
    timeout: Timeouts | None = None,
) -> InferenceClient:
    # TGI's native routes take text: chat messages are rendered "raw" (contents joined).
    fmt = "raw" if api == "tgi" else None
    backend = HttpBackend(server.url, api=api, prompt_format=fmt, api_key=API_KEY)  # type: ignore[arg-type]
    return InferenceClient(backend, retry=retry, timeout=timeout)


@pytest.fixture(params=["tgi", "openai"])
def client_http(request: pytest.FixtureRequest, server: TGIServer) -> Iterator[InferenceClient]:
    """A client over real HTTP, in each dialect (TGI ``/generate``, OpenAI chat)."""
    client = _client(server, request.param)
    yield client
    client.close()


@pytest.fixture
def tgi_client(server: TGIServer) -> Iterator[InferenceClient]:
    client = _client(server)
    yield client
    client.close()


def _only_body(server: TGIServer) -> dict[str, Any]:
    requests = server.generation_requests()
    assert len(requests) == 1
    body = requests[0].body
    assert isinstance(body, dict)
    return body


def test_self_query_prompt_asks_for_one_json_object() -> None:
    prompt = SelfQuery(None).prompt("What did Maya write?")  # type: ignore[arg-type]
    assert isinstance(prompt, list)
    system, user = prompt
    assert system == Message(role="system", content=SelfQuery.SYSTEM)
    assert user == Message(role="user", content="What did Maya write?")
    for word in (
        "JSON",
        '"author"',
        '"platform"',
        '"kind"',
        "null",
        "post",
        "article",
        "repository",
    ):
        assert word in SelfQuery.SYSTEM


def test_self_query_end_to_end(server: TGIServer, client_http: InferenceClient) -> None:
    prompts: list[str] = []

    def respond(prompt: str) -> str:
        prompts.append(prompt)
        return (
            'Sure! ```json\n{"author": "maya okafor", "platform": null, "kind": "posts"}\n```'
            "\nAnything else?"
        )

    server.respond = respond
    question = "Which posts did Maya Okafor write about LoRA?"
    filters = SelfQuery(client_http).extract(question, known={"author": AUTHORS})
    assert filters == {"author": ("Maya Okafor",), "kind": ("post",)}  # the known spelling
    assert check_filters(filters) == filters
    # what went over the wire: the instruction and the question, greedy, 64 tokens at most
    assert len(prompts) == 1
    assert SelfQuery.SYSTEM in prompts[0]
    assert prompts[0].endswith(question)
    body = _only_body(server)
    if "parameters" in body:  # TGI native
        assert body["parameters"]["do_sample"] is False
        assert body["parameters"]["max_new_tokens"] == 64
    else:
        assert body["temperature"] == 0.0
        assert body["max_tokens"] == 64
        assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_self_query_without_known_keeps_values_as_written(
    server: TGIServer, tgi_client: InferenceClient
) -> None:
    server.respond = replying('{"author": "Ana Ruiz", "platform": "substack", "kind": "article"}')
    filters = SelfQuery(tgi_client).extract("Ana Ruiz's articles on Substack about vLLM?")
    assert filters == {"author": ("Ana Ruiz",), "platform": ("substack",), "kind": ("article",)}


def test_self_query_nothing_named_gives_no_filters(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond = replying('{"author": null, "platform": null, "kind": null}')
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert SelfQuery(tgi_client).extract(QUESTION, known={"author": AUTHORS}) == {}
    assert caplog.records == []


@pytest.mark.parametrize(
    "case",
    [
        ("What did Maya Okafor write?", "  MAYA okafor. ", AUTHORS, "Maya Okafor"),
        ("What did Okafor say about LoRA?", "Okafor", AUTHORS, "Maya Okafor"),  # last name
        ("What did Liam say about LoRA?", "Liam", AUTHORS, "Liam Chen"),  # first name
        ("What did Okafor's team write?", "Okafor's", AUTHORS, "Maya Okafor"),
        ("What did Dr. Maya Okafor write?", "Dr. Maya Okafor", AUTHORS, "Maya Okafor"),
        ("What did Maya write?", "Maya", ["Maya Okafor", "Maya Chen"], None),  # ambiguous
        ("What did Chen write?", "Chen", ["Maya Chen", "Liam Chen"], None),  # ambiguous
        ("What did Ana Ruiz write?", "Ana Ruiz", AUTHORS, None),  # not in the store
        ("What did Okafor write?", "Okafor", [], None),  # nothing in the store
        ("What did Okafor write?", "Okafor", "Maya Okafor", "Maya Okafor"),  # one str
        ("What did May write?", "May", AUTHORS, None),  # a prefix is not a word
    ],
)
def test_self_query_matches_known_authors(
    server: TGIServer,
    tgi_client: InferenceClient,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, str, Any, str | None],
) -> None:
    question, extracted, known, expected = case
    server.respond = replying(json.dumps({"author": extracted, "platform": None, "kind": None}))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        filters = SelfQuery(tgi_client).extract(question, known={"author": known})
    if expected is None:
        assert filters == {}
        assert any(
            "author" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records
        )
    else:
        assert filters == {"author": (expected,)}


def test_self_query_known_platform_and_kind(server: TGIServer, tgi_client: InferenceClient) -> None:
    server.respond = replying('{"author": null, "platform": "Linkedin", "kind": "post"}')
    filters = SelfQuery(tgi_client).extract(
        "Posts on LinkedIn about quantization?",
        known={"platform": ["LinkedIn", "Medium"], "kind": ["article"]},
    )
    assert filters == {"platform": ("LinkedIn",)}  # the store holds no posts: kind dropped


def test_self_query_drops_an_author_the_question_does_not_name(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A weak model copies a known name (or the prompt's example) into an unrelated question.
    server.respond = replying('{"author": "Liam Chen", "platform": "linkedin", "kind": "post"}')
    with caplog.at_level(logging.INFO, logger=LOGGER):
        filters = SelfQuery(tgi_client).extract(
            "Which posts explain GPU cost?", known={"author": AUTHORS}
        )
    assert filters == {"kind": ("post",)}
    messages = [r.getMessage() for r in caplog.records]
    assert any("'Liam Chen' dropped: not named in the question" in m for m in messages)
    assert any("'linkedin' dropped: not named in the question" in m for m in messages)
    assert all(r.levelno == logging.INFO for r in caplog.records)


@pytest.mark.parametrize(
    "reply",
    [
        "The author is Maya Okafor.",
        '{"author": "Maya Okafor", "platform": nul',
        '["Maya Okafor"]',
        "",
    ],
)
def test_self_query_malformed_output_gives_no_filters_and_a_warning(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture, reply: str
) -> None:
    server.respond = replying(reply)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        filters = SelfQuery(tgi_client).extract("What did Maya Okafor write?")
    assert filters == {}
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "no JSON object" in record.getMessage()
    assert repr(reply[:200]) in record.getMessage()


def test_self_query_keeps_valid_fields_and_warns_about_invalid_ones(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond = replying('{"author": 3, "platform": "linkedin", "kind": "tweet"}')
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        filters = SelfQuery(tgi_client).extract("Tweets by 3 people on LinkedIn?")
    assert filters == {"platform": ("linkedin",)}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert any("author" in m for m in messages)
    assert any("kind" in m and "tweet" in m for m in messages)


def test_self_query_log_truncates_model_output(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond = replying("blah " * 60)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        SelfQuery(tgi_client, params=GenerationParams(max_new_tokens=100)).extract("Who?")
    [record] = caplog.records
    assert len(record.getMessage()) < 300


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.http(500), "ModelError"), (Fault.validation(), "")],
    ids=["500", "422"],
)
def test_self_query_server_error_gives_no_filters(
    server: TGIServer,
    tgi_client: InferenceClient,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    error: str,
) -> None:
    server.respond = replying('{"author": "Maya Okafor"}')
    server.fail(fault)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert SelfQuery(tgi_client).extract("What did Maya Okafor write?") == {}
    assert len(server.generation_requests()) == 1  # NO_RETRY: one attempt
    [record] = caplog.records
    assert "model call failed" in record.getMessage()
    assert error in record.getMessage()
    assert API_KEY not in caplog.text
    # the server answers again: the same object works on the next call
    assert SelfQuery(tgi_client).extract("What did Maya Okafor write?") == {
        "author": ("Maya Okafor",)
    }


def test_self_query_retries_through_the_client_then_gives_up(
    server: TGIServer, fast_retry: RetryPolicy, sleeps: list[float]
) -> None:
    server.respond = replying('{"author": "Maya Okafor"}')
    server.fail(*[Fault.http(503)] * 4)
    with _client(server, retry=fast_retry) as client:
        assert SelfQuery(client).extract("What did Maya Okafor write?") == {}
    assert len(server.generation_requests()) == 4  # the client's policy, not a loop of ours
    assert len(sleeps) == 3


def test_self_query_timeout_gives_no_filters(
    server: TGIServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.fail(Fault.slow(2.0))
    with (
        _client(server, timeout=Timeouts(read_s=0.2)) as client,
        caplog.at_level(logging.WARNING, logger=LOGGER),
    ):
        assert SelfQuery(client).extract("What did Maya Okafor write?") == {}
    assert "InferenceTimeoutError" in caplog.text


def test_self_query_raises_for_wrong_input_and_configuration(server: TGIServer) -> None:
    with _client(server) as client:
        self_query = SelfQuery(client)
        with pytest.raises(EmptyQueryError):
            self_query.extract("   ")
        with pytest.raises(InvalidParameterError, match="document_id"):
            self_query.extract("What did Maya write?", known={"document_id": ["a"]})
        with pytest.raises(InvalidParameterError, match="strings"):
            self_query.extract("What did Maya write?", known={"author": [3]})  # type: ignore[list-item]
        with pytest.raises(InvalidParameterError, match="strings"):  # was a raw TypeError
            self_query.extract("What did Maya write?", known={"author": 3})  # type: ignore[dict-item]
    # Chat messages to TGI's native routes need a prompt_format: a setup error, not LLM trouble.
    with (
        InferenceClient(HttpBackend(server.url, api="tgi"), retry=NO_RETRY) as bare,
        pytest.raises(ConfigurationError, match="prompt_format"),
    ):
        SelfQuery(bare).extract("What did Maya write?")
    # ... which the client's own prompt_format fixes
    with InferenceClient(HttpBackend(server.url, api="tgi"), prompt_format="raw") as raw:
        server.respond = replying('{"author": "Maya"}')
        assert SelfQuery(raw).extract("What did Maya write?") == {"author": ("Maya",)}
    assert len(server.generation_requests()) == 1


def test_self_query_custom_params_are_sent(server: TGIServer, tgi_client: InferenceClient) -> None:
    params = GenerationParams(max_new_tokens=20, temperature=0.3)
    self_query = SelfQuery(tgi_client, params=params)
    assert self_query.params == params
    self_query.extract("What did Maya write?")
    assert _only_body(server)["parameters"]["max_new_tokens"] == 20


# -- query expansion over HTTP ----------------------------------------------------------------


def test_expander_rejects_bad_configuration() -> None:
    for n in (0, -1, True, 1.5, "3"):
        with pytest.raises(ConfigurationError, match="n must be"):
            QueryExpander(None, n=n)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a client"):
        QueryExpander(None, n=2)
    assert QueryExpander(None, n=1).expand(QUESTION) == [QUESTION]


def test_expander_n1_makes_no_request(server: TGIServer, tgi_client: InferenceClient) -> None:
    expander = QueryExpander(tgi_client, n=1)
    assert expander.expand(QUESTION) == [QUESTION]
    assert server.requests == []


def test_expander_prompt_asks_for_separated_phrasings() -> None:
    prompt = QueryExpander(None, n=1).prompt(QUESTION)
    assert isinstance(prompt, list)
    system, user = prompt
    assert isinstance(system, Message)
    assert "1 different ways" in system.content
    assert EXPANSION_SEPARATOR in system.content
    assert user == Message(role="user", content=QUESTION)


def test_expand_end_to_end(server: TGIServer, client_http: InferenceClient) -> None:
    prompts: list[str] = []

    def respond(prompt: str) -> str:
        prompts.append(prompt)
        return (
            "Here are 3 alternative questions:\n1. How can I lower GPU spend?\n"
            f"{EXPANSION_SEPARATOR}\n2) What reduces the cost of GPUs?\n"
            f"{EXPANSION_SEPARATOR}\n3. Which tricks make inference cheaper?\n"
        )

    server.respond = respond
    queries = QueryExpander(client_http, n=3).expand(QUESTION)
    assert queries == [QUESTION, "How can I lower GPU spend?", "What reduces the cost of GPUs?"]
    [prompt] = prompts
    assert "2 different ways" in prompt
    assert prompt.endswith(QUESTION)
    body = _only_body(server)
    budget = 2 * (len(QUESTION) // 3 + 24) + 16
    if "parameters" in body:
        assert body["parameters"]["max_new_tokens"] == budget
        assert body["parameters"]["do_sample"] is False
    else:
        assert body["max_tokens"] == budget


def test_expand_with_fewer_phrasings_than_asked(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond = replying(f"{QUESTION}\nHow can I lower GPU spend?\nhow can i lower gpu spend")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        queries = QueryExpander(tgi_client, n=4).expand(QUESTION)
    assert queries == [QUESTION, "How can I lower GPU spend?"]
    assert "gave 1 of 3 phrasings" in caplog.text


@pytest.mark.parametrize("reply", ["", "\n\n", "1.\n2.\n---", f"{QUESTION}\n{QUESTION.upper()}"])
def test_expand_without_usable_output_gives_the_question(
    server: TGIServer, tgi_client: InferenceClient, caplog: pytest.LogCaptureFixture, reply: str
) -> None:
    server.respond = replying(reply)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert QueryExpander(tgi_client, n=3).expand(QUESTION) == [QUESTION]
    [record] = caplog.records
    assert "no usable phrasing" in record.getMessage()


@pytest.mark.parametrize("fault", [Fault.http(500), Fault.validation()], ids=["500", "422"])
def test_expand_server_error_gives_the_question(
    server: TGIServer,
    tgi_client: InferenceClient,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    server.fail(fault)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert QueryExpander(tgi_client, n=3).expand(QUESTION) == [QUESTION]
    assert len(server.generation_requests()) == 1
    assert "model call failed" in caplog.text


def test_expand_drops_the_phrasing_cut_by_the_token_limit(
    server: TGIServer, tgi_client: InferenceClient
) -> None:
    # 6 word-tokens, then a phrasing cut after 6 more by max_new_tokens=12
    server.respond = replying(
        "How can I lower GPU spend?\nWhat reduces the cost of renting many GPUs for training?"
    )
    expander = QueryExpander(tgi_client, n=3, params=GenerationParams(max_new_tokens=12))
    assert expander.expand(QUESTION) == [QUESTION, "How can I lower GPU spend?"]
    # without a cut, the same two lines are both kept
    roomy = QueryExpander(tgi_client, n=3, params=GenerationParams(max_new_tokens=100))
    assert len(roomy.expand(QUESTION)) == 3


def test_expand_raises_for_an_empty_question(
    server: TGIServer, tgi_client: InferenceClient
) -> None:
    with pytest.raises(EmptyQueryError):
        QueryExpander(tgi_client, n=3).expand("")
    with pytest.raises(EmptyQueryError):
        QueryExpander(None, n=1).expand(" \n")
    assert server.requests == []


def test_one_expander_and_self_query_shared_by_threads(
    server: TGIServer, tgi_client: InferenceClient
) -> None:
    def respond(prompt: str) -> str:
        topic = prompt.rsplit(" ", 1)[-1].rstrip("?")
        if "JSON" in prompt:
            return json.dumps({"author": None, "platform": topic, "kind": None})
        return f"First take on {topic}?\nSecond take on {topic}?"

    server.respond = respond
    expander, self_query = QueryExpander(tgi_client, n=3), SelfQuery(tgi_client)
    results: dict[str, tuple[list[str], dict[str, tuple[str, ...]]]] = {}

    def work(topic: str) -> None:
        question = f"What is new on {topic}?"
        results[topic] = (expander.expand(question), self_query.extract(question))

    threads = [threading.Thread(target=work, args=(f"site{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 6
    for topic, (queries, filters) in results.items():
        question = f"What is new on {topic}?"
        assert queries == [question, f"First take on {topic}?", f"Second take on {topic}?"]
        assert filters == {"platform": (topic,)}


# -- the real local model ---------------------------------------------------------------------


@pytest.mark.slow
def test_real_local_model_respects_the_invariants(client: InferenceClient) -> None:
    """SmolLM2-135M is too weak to assert what it extracts: only the contracts."""
    question = "What did Maya Okafor write on LinkedIn about LoRA fine-tuning?"
    filters = SelfQuery(client).extract(question, known={"author": AUTHORS})
    assert isinstance(filters, dict)
    assert check_filters(filters) == filters
    assert set(filters) <= set(FILTER_FIELDS) - {"document_id"}
    assert set(filters.get("author", ())) <= set(AUTHORS)

    queries = QueryExpander(client, n=3).expand(question)
    assert 1 <= len(queries) <= 3
    assert queries[0] == question
    assert all(isinstance(q, str) and q.strip() and "\n" not in q for q in queries)
    assert len({_key(q) for q in queries}) == len(queries)
