"""The documentation site (mkdocs.yml): the guides and an API reference generated from the
docstrings build with every warning an error (issue 12, point 5); ``make docs`` builds it."""

from __future__ import annotations

import html
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_twin_sdk import LLMTwin, errors

ROOT = Path(__file__).resolve().parent.parent

# mkdocs' own API with the project's config, as `mkdocs build --strict` runs it, but with the
# site in a temp folder
BUILD = """
import logging, sys
from mkdocs.commands.build import build
from mkdocs.config import load_config

logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
build(load_config(sys.argv[1], docs_dir=sys.argv[2], site_dir=sys.argv[3], strict=True))
"""


def _build(docs: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BUILD, str(ROOT / "mkdocs.yml"), str(docs), str(site)],
        capture_output=True,
        text=True,
        cwd=site.parent,  # the config's paths hold from anywhere
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("docs-site")
    done = _build(ROOT / "docs", tmp / "site")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return tmp / "site"


def _text(page: Path) -> str:
    """The text of a built page without tags or spaces (a tag may stand for a space or not)."""
    body = re.sub(r"<script.*?</script>", "", page.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", body)))


def _first_line(doc: str | None) -> str:
    """A docstring's first line as :func:`_text` shows it (roles and backticks dropped)."""
    assert doc
    return re.sub(r"\s+|`|:[a-z]+:", "", doc.splitlines()[0])


def test_the_site_builds_strict_with_every_page_in_the_nav(site: Path) -> None:
    for page in ("index.html", "architecture/index.html", "errors/index.html", "cli/index.html"):
        assert (site / page).is_file(), page
    for guide in ("embedded", "server", "sagemaker"):
        assert (site / "guides" / guide / "index.html").is_file(), guide
    assert (site / "troubleshooting" / "index.html").is_file()
    for area in ("twin", "inference", "rag", "deployment", "scaling", "settings", "types"):
        assert (site / "reference" / area / "index.html").is_file(), area


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path: Path) -> None:
    docs = shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (docs / "guides" / "later.md").write_text("# Later\n\nNo nav entry names this page.\n")
    done = _build(docs, tmp_path / "site")
    assert done.returncode != 0
    assert "guides/later.md" in done.stderr, done.stderr


def test_the_twin_reference_documents_its_methods(site: Path) -> None:
    page = site / "reference" / "twin" / "index.html"
    source, text = page.read_text(encoding="utf-8"), _text(page)
    for method in ("ask", "stream", "ingest", "from_settings", "close"):
        assert f'id="llm_twin_sdk.LLMTwin.{method}"' in source, method
        assert _first_line(inspect.getdoc(getattr(LLMTwin, method))) in text, method
    for name in ("AsyncLLMTwin", "AnswerStream", "AsyncAnswerStream", "Answer"):
        assert f'id="llm_twin_sdk.{name}"' in source, name


def test_the_errors_reference_lists_the_error_tree(site: Path) -> None:
    page = site / "reference" / "errors" / "index.html"
    source, text = page.read_text(encoding="utf-8"), _text(page)
    names = vars(errors)["__all__"]
    assert len(names) > 30
    for name in names:
        assert f'id="llm_twin_sdk.errors.{name}"' in source, name
    assert "Bases:InferenceError" in text
    assert _first_line(errors.LLMTwinError.__doc__) in text


def test_docstring_roles_become_links_not_markup(site: Path) -> None:
    pages = list((site / "reference").rglob("index.html"))
    for page in pages:
        text = _text(page)
        assert not re.search(r":(class|meth|func|attr|data|mod):", text), page
    twin = (site / "reference" / "twin" / "index.html").read_text(encoding="utf-8")
    # ":meth:`RAGPipeline.ingest`" in LLMTwin.ingest links to the RAG page
    assert 'href="../rag/#llm_twin_sdk.RAGPipeline.ingest"' in twin
