"""The model call both query steps make: an instruction and the question, sent to the model;
a failure of the model (not of the configuration) is logged and gives ``None``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...errors import ConfigurationError, LLMTwinError
from ...types import Generation, GenerationParams, Message, Prompt
from ...validation import check_query

if TYPE_CHECKING:
    from ...inference.client import InferenceClient

__all__ = ["ask_model", "shown", "step_prompt"]

logger = logging.getLogger(__name__)

_SHOWN = 200  # characters of model output shown in a log line


def shown(text: str) -> str:
    """The model output as it appears in a log line: repr'd, at most ~200 characters."""
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


def step_prompt(system: str, question: str) -> Prompt:
    """The chat messages of a query step: the instruction, then the question."""
    return [
        Message(role="system", content=system),
        Message(role="user", content=check_query(question)),
    ]


def ask_model(
    client: InferenceClient, prompt: Prompt, params: GenerationParams, step: str
) -> Generation | None:
    """The model's answer to ``prompt``; ``None`` (and a warning) when the call failed.

    Raises:
        ConfigurationError: the client cannot send this prompt.
    """
    try:
        return client.generate(prompt, params)
    except ConfigurationError:
        raise
    except LLMTwinError as exc:
        logger.warning("%s skipped: the model call failed (%s: %s)", step, type(exc).__name__, exc)
        return None
