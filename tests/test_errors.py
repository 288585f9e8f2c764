from __future__ import annotations

import inspect

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
    for cls in classes:
        assert issubclass(cls, errors.LLMTwinError), cls


def test_module_docstring_draws_every_class() -> None:
    doc = errors.__doc__ or ""
    for cls in _error_classes():
        assert cls.__name__ in doc, f"{cls.__name__} missing from the tree in errors.py"


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
