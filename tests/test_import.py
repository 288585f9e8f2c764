"""`import llm_twin_sdk` stays light; every public name resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llm_twin_sdk

HEAVY = (
    "torch",
    "sentence_transformers",
    "llama_cpp",
    "sagemaker",
    "transformers",
    "qdrant_client",
    "pydantic_settings",
    "boto3",
    "numpy",
)


def test_import_pulls_in_no_heavy_library() -> None:
    code = f"import sys, llm_twin_sdk\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


@pytest.mark.parametrize("name", llm_twin_sdk.__all__)
def test_public_name_resolves(name: str) -> None:
    assert getattr(llm_twin_sdk, name) is not None


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = llm_twin_sdk.Nope


def test_dir_lists_public_names() -> None:
    assert set(llm_twin_sdk.__all__) <= set(dir(llm_twin_sdk))
