"""The package's metadata, as `pip show` and PyPI read it (issue 12, point 6)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import llm_twin_sdk

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_metadata_says_what_the_sdk_does() -> None:
    metadata = importlib.metadata.metadata("llm-twin-sdk")
    summary = metadata["Summary"]
    assert len(summary) <= 200
    for word in ("LLM Twin", "SageMaker", "RAG", "Qdrant"):
        assert word in summary
    assert metadata["Version"] == llm_twin_sdk.__version__
    assert {"llm", "rag", "sagemaker", "qdrant"} <= set(metadata["Keywords"].split(","))


def test_classifiers_match_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    classifiers = importlib.metadata.metadata("llm-twin-sdk").get_all("Classifier") or []
    assert classifiers == project["classifiers"]  # the installed copy is current (make test)
    assert "Typing :: Typed" in classifiers
    assert (ROOT / "src" / "llm_twin_sdk" / "py.typed").is_file()
    assert "License :: OSI Approved :: Apache Software License" in classifiers
    assert project["license"]["text"] == "Apache-2.0"
    minimum = tuple(map(int, re.findall(r"\d+", project["requires-python"])))
    versions = [
        tuple(map(int, c.rsplit(":: ", 1)[1].split(".")))
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions
    assert all(v >= minimum for v in versions)
