"""Every ```python block of README.md and docs/**/*.md runs here, or says why it cannot.

One test per page (see tests/doc_examples.py for the markers): its blocks run in page order in
one namespace, in a fresh working directory (with the repository's ``examples/`` linked in,
as a reader in its root sees it), against the environments the page names —
``plain`` (nothing), ``embedded`` (the real offline models), ``aws`` (moto server + the
SageMaker-runtime wire server on 127.0.0.1), ``server`` (a llama.cpp server + a Qdrant-like
server). Pages with ``embedded`` or ``server`` are slow (conftest.SLOW_TESTS).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doc_examples import (
    ENVIRONMENTS,
    Block,
    ExampleError,
    Page,
    example_pages,
    read_page,
    run_block,
)
from fakes import Llama, QdrantServer, WireServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = [read_page(path, ROOT) for path in example_pages(ROOT)]

FAKE_HF_TOKEN = "hf_doc_examples_not_a_token"


# -- the environments a page names ----------------------------------------------------------


@pytest.fixture
def plain() -> None:
    """Nothing started."""


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded footing's real models (loaded by the blocks); short answers keep it quick."""
    monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "24")


def _accept_every_sagemaker_instance_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's endpoint-config check lists no ml.g5 / ml.g6 types, which SageMaker accepts:
    leave the check of instance types to the SDK's spec (as a real account would)."""
    from moto.sagemaker import models

    monkeypatch.setattr(
        models.FakeEndpointConfig, "validate_instance_type", lambda self, instance_type: None
    )


@pytest.fixture
def aws(moto_server: str, moto_aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    """Every AWS service on a fresh moto server, SageMaker runtime on the wire server (answers
    shaped as TGI's, from a token script); fake credentials, region us-east-1, a fake HF_TOKEN."""
    _accept_every_sagemaker_instance_type(monkeypatch)
    with WireServer(default=Llama(), aws=moto_aws) as wire:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", wire.url)
        monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
        yield wire
    assert wire.handler_errors == []


@pytest.fixture
def server(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[QdrantServer]:
    """A llama.cpp server and a Qdrant-like server, in the settings' environment variables."""
    with QdrantServer() as qdrant:
        monkeypatch.setenv("LLM_TWIN_BACKEND", "http")
        monkeypatch.setenv("LLM_TWIN_HTTP_URL", llama_server)
        monkeypatch.setenv("LLM_TWIN_QDRANT_URL", qdrant.url)
        monkeypatch.setenv("LLM_TWIN_CONTEXT_WINDOW", "2048")
        monkeypatch.setenv("LLM_TWIN_GENERATION__MAX_NEW_TOKENS", "24")
        yield qdrant
    assert qdrant.handler_errors == []


def _close_what_the_page_left_open(namespace: dict[str, Any]) -> None:
    """A page may end with a twin or client open (a reader's session goes on): close the SDK's
    objects it built, so the next page starts clean (closing twice is a no-op)."""
    for value in list(namespace.values()):
        if type(value).__module__.startswith("llm_twin_sdk") and callable(
            getattr(value, "close", None)
        ):
            value.close()


def _run_page(page: Page, request: pytest.FixtureRequest) -> None:
    for name in page.environments:
        request.getfixturevalue(name)
    Path("examples").symlink_to(ROOT / "examples")  # as a reader in the repository's root
    namespace: dict[str, Any] = {"__name__": "__doc_example__"}
    try:
        for block in page.blocks:
            run_block(block, namespace)
    finally:
        _close_what_the_page_left_open(namespace)


@pytest.mark.parametrize("page", [p for p in PAGES if not p.slow], ids=lambda p: str(p.path))
def test_examples_run(page: Page, request: pytest.FixtureRequest) -> None:
    _run_page(page, request)


@pytest.mark.parametrize("page", [p for p in PAGES if p.slow], ids=lambda p: str(p.path))
def test_examples_with_models_run(page: Page, request: pytest.FixtureRequest) -> None:
    _run_page(page, request)


# -- the mechanism itself -------------------------------------------------------------------


def test_every_python_block_of_every_page_is_collected() -> None:
    """The Markdown parser misses no fence a plain scan finds (indented ones in lists too)."""
    fence = re.compile(r"^\s*```python\s*$", re.MULTILINE)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    expected = {
        str(path.relative_to(ROOT)): n
        for path in pages
        if (n := len(fence.findall(path.read_text(encoding="utf-8"))))
    }
    assert {str(page.path): len(page.blocks) for page in PAGES} == expected
    assert {"README.md", "docs/deployment.md"} <= set(expected)


def _page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


PAGE = """\
# A page
<!-- examples: plain -->

```python
x = 2
print(x * 21)
# -> 42
```

- a list item:

  <!-- not runnable: needs GPU quota in a real AWS account -->
  ```python
  await deploy(x)
  ```

```bash
echo not python
```

```python
print(x + 1)
```
"""


def test_blocks_in_page_order_with_lines_and_reasons(tmp_path: Path) -> None:
    page = read_page(_page(tmp_path, PAGE))
    assert page.environments == ("plain",)
    assert not page.slow
    assert [(b.line, b.not_runnable) for b in page.blocks] == [
        (5, None),
        (14, "needs GPU quota in a real AWS account"),
        (22, None),
    ]
    assert page.blocks[0].expected_output == ["42"]
    namespace: dict[str, Any] = {}
    assert [run_block(b, namespace) for b in page.blocks] == ["42\n", "", "3\n"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- examples: plain -->\n<!-- not runnable -->\n```python\npass\n```\n", "say why"),
        ("<!-- examples: plain -->\n<!-- not runnable: -->\n```python\npass\n```\n", "say why"),
        (
            "<!-- examples: plain -->\n<!-- not runnable: x -->\ntext\n\n```python\npass\n```\n",
            "not right before a block",
        ),
        (
            "<!-- examples: plain -->\n```python\npass\n```\n<!-- not runnable: x -->\n",
            "not right before a block",
        ),
        ("```python\npass\n```\n", "say where its python blocks run"),
        ("<!-- examples: cloud -->\n```python\npass\n```\n", "unknown environment"),
        ("<!-- examples: plain -->\n```python\n>>> 1 + 1\n2\n```\n", ">>> session"),
    ],
)
def test_mis_marked_pages_fail(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ExampleError, match=message):
        read_page(_page(tmp_path, text))


def test_a_page_without_python_blocks_is_absent(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# hi\n\n```bash\nls\n```\n", encoding="utf-8")
    (tmp_path / "docs" / "a.md").write_text("<!-- examples: plain -->\n```python\npass\n```\n")
    assert example_pages(tmp_path) == [tmp_path / "docs" / "a.md"]


def test_a_failing_block_names_its_page_line(tmp_path: Path) -> None:
    text = "<!-- examples: plain -->\n\n```python\nx = 1\nundefined_name\n```\n"
    (block,) = read_page(_page(tmp_path, text)).blocks
    with pytest.raises(ExampleError, match="raised NameError") as info:
        run_block(block, {})
    assert info.value.__cause__ is not None
    traceback = info.value.__cause__.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    assert traceback is not None
    assert traceback.tb_lineno == 5  # the page's own line of `undefined_name`


def test_output_comments_are_checked(tmp_path: Path) -> None:
    text = "<!-- examples: plain -->\n```python\nprint('a')\nprint('b')\n# -> b\n# -> a\n```\n"
    (block,) = read_page(_page(tmp_path, text)).blocks
    with pytest.raises(ExampleError, match="did not print 'a'"):
        run_block(block, {})


def test_a_not_runnable_block_must_still_parse(tmp_path: Path) -> None:
    text = "<!-- examples: plain -->\n<!-- not runnable: x -->\n```python\ndef (:\n```\n"
    (block,) = read_page(_page(tmp_path, text)).blocks
    with pytest.raises(ExampleError, match="not valid Python"):
        run_block(block, {})


def test_environments_are_fixtures_of_this_module() -> None:
    module = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    functions = {node.name for node in module.body if isinstance(node, ast.FunctionDef)}
    assert set(ENVIRONMENTS) <= functions
    assert all(isinstance(block, Block) for page in PAGES for block in page.blocks)
