from __future__ import annotations

import inspect
import re
from pathlib import Path

import llm_twin_sdk
from llm_twin_sdk import errors


def _error_classes() -> list[type]:
    """Every class errors.py defines."""
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__
    ]


def test_every_error_has_the_one_root_and_is_exported() -> None:
    classes = _error_classes()
    # __all__ is derived from the classes at run time (type checkers do not see it).
    assert sorted(vars(errors)["__all__"]) == sorted(cls.__name__ for cls in classes)
    for cls in classes:  # an error, or a warning under the one warning root
        assert issubclass(cls, errors.LLMTwinError) != issubclass(cls, errors.LLMTwinWarning), cls
    assert issubclass(errors.EmptyStoreWarning, UserWarning)


def test_docs_draw_every_class_in_the_tree_and_the_table() -> None:
    text = (Path(__file__).parents[1] / "docs" / "errors.md").read_text(encoding="utf-8")
    tree = text.split("```")[1]
    for cls in _error_classes():
        name = cls.__name__
        assert re.search(rf"^[│├└─ ]*{name}\b", tree, re.M), f"{name} missing from the tree"
        if cls is not errors.LLMTwinError:  # the root heads the page, not the table
            assert f"| `{name}` |" in text, f"{name} missing from the table in errors.md"


def test_input_errors_are_value_errors() -> None:
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.PromptTooLongError, errors.InvalidInputError)


def test_prompt_too_long_carries_counts() -> None:
    exc = errors.PromptTooLongError("too long", prompt_tokens=12, budget=10)
    assert (exc.prompt_tokens, exc.budget) == (12, 10)


def test_errors_are_exported_at_top_level() -> None:
    for cls in _error_classes():
        assert getattr(llm_twin_sdk, cls.__name__) is cls
