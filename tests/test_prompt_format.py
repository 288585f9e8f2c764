"""Prompt formats: chat (template), raw (plain text) and the Alpaca template of the fine-tune."""

from __future__ import annotations

import doctest
from collections.abc import Mapping, Sequence

import pytest

from llm_twin_sdk import (
    ConfigurationError,
    Generation,
    GenerationParams,
    InferenceClient,
    InvalidParameterError,
    LocalBackend,
    Message,
)
from llm_twin_sdk.inference import prompt_format
from llm_twin_sdk.inference.prompt_format import (
    ALPACA_STOP,
    ALPACA_TEMPLATE,
    PROMPT_FORMATS,
    PromptFormat,
    format_prompt,
    parse_prompt_format,
    suggested_stop,
)
from llm_twin_sdk.types import Prompt

PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
SYSTEM = {"role": "system", "content": "You are Maya."}
USER = {"role": "user", "content": "Write a post about GPUs."}


def test_the_alpaca_template_is_the_one_of_the_fine_tune() -> None:
    assert ALPACA_TEMPLATE == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
    )
    assert ALPACA_STOP == "### Instruction:"
    assert PROMPT_FORMATS == ("chat", "raw", "alpaca")


def test_module_examples_run() -> None:
    result = doctest.testmod(prompt_format)
    assert result.attempted >= 5
    assert result.failed == 0


# -- chat -------------------------------------------------------------------------------------


def test_chat_wraps_text_in_one_user_message() -> None:
    assert format_prompt("Hi!", "chat") == [Message(role="user", content="Hi!")]
    assert format_prompt("Hi!") == format_prompt("Hi!", "chat")  # the default


def test_chat_keeps_messages() -> None:
    messages = [SYSTEM, USER, {"role": "assistant", "content": "Sure."}]
    assert format_prompt(messages, "chat") == [Message(**m) for m in messages]


# -- raw --------------------------------------------------------------------------------------


def test_raw_keeps_text_verbatim() -> None:
    text = "  The three primary colours are\n"
    assert format_prompt(text, "raw") == text


def test_raw_joins_message_contents_with_a_blank_line() -> None:
    messages = [SYSTEM, USER, {"role": "assistant", "content": "Sure."}]
    assert format_prompt(messages, "raw") == "You are Maya.\n\nWrite a post about GPUs.\n\nSure."
    assert format_prompt([USER], "raw") == USER["content"]


def test_raw_rejects_messages_without_text() -> None:
    with pytest.raises(InvalidParameterError, match="empty"):
        format_prompt([{"role": "user", "content": " "}], "raw")


# -- alpaca -----------------------------------------------------------------------------------


def test_alpaca_text_is_the_instruction() -> None:
    assert format_prompt("Write a post about GPUs.", "alpaca") == (
        PREAMBLE + "### Instruction:\nWrite a post about GPUs.\n\n### Response:\n"
    )


def test_alpaca_single_user_message_equals_the_text_form() -> None:
    assert format_prompt([USER], "alpaca") == format_prompt(USER["content"], "alpaca")


def test_alpaca_system_is_prepended_to_the_instruction() -> None:
    assert format_prompt([SYSTEM, USER], "alpaca") == ALPACA_TEMPLATE.format(
        instruction="You are Maya.\n\nWrite a post about GPUs."
    )


def test_alpaca_system_messages_anywhere_are_joined_first() -> None:
    late = {"role": "system", "content": "Be brief."}
    assert format_prompt([SYSTEM, USER, late], "alpaca") == ALPACA_TEMPLATE.format(
        instruction="You are Maya.\n\nBe brief.\n\nWrite a post about GPUs."
    )


def test_alpaca_conversation_repeats_the_blocks_after_one_preamble() -> None:
    messages = [
        SYSTEM,
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    assert format_prompt(messages, "alpaca") == (
        PREAMBLE + "### Instruction:\nYou are Maya.\n\nu1\n\n### Response:\na1\n\n"
        "### Instruction:\nu2\n\n### Response:\n"
    )


def test_alpaca_trailing_assistant_message_prefixes_the_response() -> None:
    messages = [USER, {"role": "assistant", "content": "GPUs are"}]
    formatted = format_prompt(messages, "alpaca")
    assert isinstance(formatted, str)
    assert formatted.endswith("### Response:\nGPUs are")


def test_alpaca_consecutive_messages_of_one_role_are_joined() -> None:
    messages = [{"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}]
    assert format_prompt(messages, "alpaca") == ALPACA_TEMPLATE.format(instruction="u1\n\nu2")


def test_alpaca_only_system_is_the_instruction() -> None:
    assert format_prompt([SYSTEM], "alpaca") == ALPACA_TEMPLATE.format(instruction="You are Maya.")


def test_alpaca_must_start_with_a_user_message() -> None:
    with pytest.raises(InvalidParameterError, match="start with a user message"):
        format_prompt([SYSTEM, {"role": "assistant", "content": "Hi"}, USER], "alpaca")


def test_suggested_stop() -> None:
    assert suggested_stop("alpaca") == (ALPACA_STOP,)
    assert suggested_stop("chat") == suggested_stop("raw") == suggested_stop(None) == ()
    params = GenerationParams(stop=suggested_stop("alpaca"))
    assert params.stop == ("### Instruction:",)


# -- as given, validation, purity ----------------------------------------------------------------


def test_none_keeps_the_prompt_as_given() -> None:
    assert format_prompt("Hi!", None) == "Hi!"
    assert format_prompt([USER], None) == [Message(**USER)]


@pytest.mark.parametrize("fmt", [*PROMPT_FORMATS, None])
@pytest.mark.parametrize("bad", ["", "   ", b"bytes", []])
def test_invalid_prompts_are_rejected(fmt: PromptFormat | None, bad: object) -> None:
    with pytest.raises(InvalidParameterError):
        format_prompt(bad, fmt)  # type: ignore[call-overload]


def test_invalid_messages_are_rejected() -> None:
    with pytest.raises(InvalidParameterError):
        format_prompt([{"role": "robot", "content": "beep"}], "alpaca")


def test_unknown_format() -> None:
    with pytest.raises(InvalidParameterError, match="unknown prompt format 'llama'"):
        format_prompt("Hi", "llama")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="use one of 'chat', 'raw', 'alpaca'"):
        parse_prompt_format("Alpaca")
    assert [parse_prompt_format(f) for f in PROMPT_FORMATS] == list(PROMPT_FORMATS)
    assert parse_prompt_format(None) is None


@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_format_prompt_is_pure(fmt: PromptFormat) -> None:
    messages: list[Mapping[str, str]] = [dict(SYSTEM), dict(USER)]
    before = [dict(m) for m in messages]
    first = format_prompt(messages, fmt)
    assert format_prompt(messages, fmt) == first
    assert messages == before


# -- through a client -----------------------------------------------------------------------------

SHORT = GenerationParams(max_new_tokens=6, temperature=0.0)


class FormattedClient:
    """A tiny wrapper: the prompt formatted before it reaches an InferenceClient."""

    def __init__(self, client: InferenceClient, fmt: PromptFormat) -> None:
        self.client = client
        self.fmt = fmt

    def generate(self, prompt: Prompt, params: GenerationParams | None = None) -> Generation:
        return self.client.generate(format_prompt(prompt, self.fmt), params)


def _tokens(client: InferenceClient, prompt: str | Sequence[Message]) -> int:
    return client.count_tokens(prompt)


def test_alpaca_reaches_the_model_as_plain_text(client: InferenceClient) -> None:
    twin = FormattedClient(client, "alpaca")
    params = SHORT.model_copy(update={"stop": suggested_stop("alpaca")})
    g = twin.generate([SYSTEM, USER], params)
    assert g.text
    assert ALPACA_STOP not in g.text
    expected = ALPACA_TEMPLATE.format(instruction="You are Maya.\n\nWrite a post about GPUs.")
    assert g.usage.prompt_tokens == _tokens(client, expected)


def test_chat_sends_text_through_the_chat_template(client: InferenceClient) -> None:
    g = FormattedClient(client, "chat").generate("Say hello.", SHORT)
    as_message = [Message(role="user", content="Say hello.")]
    assert g.usage.prompt_tokens == _tokens(client, as_message)
    assert g.usage.prompt_tokens > _tokens(client, "Say hello.")  # template tokens added
    assert g.text == client.generate(as_message, SHORT).text


def test_raw_sends_messages_without_the_template(client: InferenceClient) -> None:
    g = FormattedClient(client, "raw").generate([SYSTEM, USER], SHORT)
    assert g.usage.prompt_tokens == _tokens(client, "You are Maya.\n\nWrite a post about GPUs.")


def test_return_types_follow_the_format() -> None:
    text: str = format_prompt([USER], "alpaca")  # typed str: usable as a text renderer
    raw: str = format_prompt([USER], "raw")
    chat: list[Message] = format_prompt("Hi!")
    assert isinstance(text, str)
    assert isinstance(raw, str)
    assert isinstance(chat, list)


def test_inference_client_applies_its_prompt_format(local_backend: LocalBackend) -> None:
    twin = InferenceClient(
        local_backend,
        prompt_format="alpaca",
        params=SHORT.model_copy(update={"stop": suggested_stop("alpaca")}),
    )
    assert twin.prompt_format == "alpaca"
    assert twin.with_options(max_new_tokens=2).prompt_format == "alpaca"
    expected = ALPACA_TEMPLATE.format(instruction="You are Maya.\n\nWrite a post about GPUs.")
    g = twin.generate([SYSTEM, USER])
    assert g.usage.prompt_tokens == local_backend.count_tokens(expected)
    assert twin.count_tokens([SYSTEM, USER]) == g.usage.prompt_tokens
    with twin.stream([SYSTEM, USER]) as stream:
        assert "".join(stream) == g.text
    assert InferenceClient(local_backend).prompt_format is None  # as given, as before
    with pytest.raises(ConfigurationError):
        InferenceClient(local_backend, prompt_format="vicuna")  # type: ignore[arg-type]
