"""``help(llm_twin_sdk)`` is a short guide, not every class in full (issue 12, point 6), while
every public name still completes, imports and type-checks (tests/test_import.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import llm_twin_sdk

HEAVY = ("torch", "llama_cpp", "boto3", "botocore", "sentence_transformers", "qdrant_client")


def _run(code: str) -> str:
    """``code`` run in a fresh interpreter (nothing imported yet); its standard output."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_help_is_a_short_guide_that_imports_nothing_heavy() -> None:
    out = json.loads(
        _run(
            "import json, pydoc, sys, llm_twin_sdk\n"
            "page = pydoc.render_doc(llm_twin_sdk, renderer=pydoc.plaintext)\n"
            "print(json.dumps({'page': page, 'modules': sorted(sys.modules)}))"
        )
    )
    page: str = out["page"]
    assert len(page.splitlines()) <= 150  # was 18,242 lines with __all__
    for name in ("LLMTwin", "AsyncLLMTwin", "TwinDeployment", "TwinSettings", "InferenceClient"):
        assert name in page, name
    assert "docs/index.md" in page
    assert "make docs" in page
    assert "CLASSES" not in page  # no class documented in full
    assert [m for m in HEAVY if m in out["modules"]] == []


def test_every_public_name_completes_and_imports_in_a_fresh_interpreter() -> None:
    names = sorted(llm_twin_sdk._LAZY)
    listed = _run("import llm_twin_sdk\nprint(' '.join(dir(llm_twin_sdk)))").split()
    assert sorted(listed) == names
    _run(f"from llm_twin_sdk import {', '.join(names)}")


def test_star_import_gives_the_error_tree() -> None:
    """Without ``__all__``, ``import *`` takes the names loaded at import: the errors."""
    got = _run(
        "import sys\nfrom llm_twin_sdk import *\n"
        "print(' '.join(n for n in dir() if n[0].isupper()))\n"
    ).split()
    errors = vars(llm_twin_sdk.errors)["__all__"]
    assert set(errors) <= set(got)
    assert "LLMTwin" not in got
