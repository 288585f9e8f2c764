"""``python -m llm_twin_sdk`` as a subprocess, as a user runs it: the AWS side against moto
in server mode, ``ask`` with ``LLM_TWIN_BACKEND=sagemaker`` against the SageMaker-runtime
wire server, and the embedded footing with its real models (slow: conftest.SLOW_TESTS),
including Ctrl-C (SIGINT) in the middle of an ingest: exit 130 and a note of what was done."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_support import moto_spec, process_env, run_process
from fakes import Stream, WireServer, chat_events
from llm_twin_sdk.aws import AWSClients

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "data" / "corpus.jsonl"


def test_up_status_down_as_a_process(
    moto_server: str, moto_aws: AWSClients, tmp_path: Path
) -> None:
    env = {"AWS_ENDPOINT_URL": moto_server}
    spec = moto_spec(tmp_path)
    up = run_process("up", str(spec), "--json", env=env)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["endpoint"]["status"] == "InService"
    status = run_process("status", "llm-twin", env=env)
    assert status.returncode == 0, status.stderr
    assert "InService" in status.stdout
    refused = run_process("down", "llm-twin", env=env)  # stdin is no terminal: no --yes, no
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    down = run_process("down", str(spec), "--yes", env=env)
    assert down.returncode == 0, down.stderr
    assert moto_aws.client("sagemaker").list_endpoints()["Endpoints"] == []
    unknown = run_process("statsu", env=env)
    assert unknown.returncode == 2
    assert "No such command" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_ingest_and_ask_on_the_embedded_footing(tmp_path: Path) -> None:
    """The default footing, offline: real MiniLM, embedded Qdrant in ./.llm-twin, SmolLM2."""
    env = {"LLM_TWIN_QDRANT_PATH": str(tmp_path / "qdrant"), "LLM_TWIN_SEARCH": "dense"}
    ingest = run_process("ingest", str(CORPUS), env=env, timeout=240)
    assert ingest.returncode == 0, ingest.stderr
    assert "ingested 24 documents" in ingest.stdout  # (a re-run skipping them: test_cli_data)
    ask = run_process(
        "ask", "Which header stops nginx from buffering server-sent events?",
        "--max-new-tokens", "24", env=env, timeout=240,
    )  # fmt: skip
    assert ask.returncode == 0, ask.stderr
    text, _, table = ask.stdout.partition("Sources")
    assert text.strip()
    assert "lukas-post-sse-streaming" in table
    assert "Traceback" not in ask.stderr


def test_ask_an_endpoint_through_the_wire_server(wire: WireServer, tmp_path: Path) -> None:
    """backend=sagemaker: the answer streams from the endpoint (SageMaker's event-stream
    framing, boto3's own parser), retrieval runs locally."""
    wire.reply(Stream(chat_events(["A model ", "that writes ", "like you."], usage=(40, 6))))
    env = {
        "LLM_TWIN_BACKEND": "sagemaker",
        "LLM_TWIN_SAGEMAKER_ENDPOINT": "twin",
        "LLM_TWIN_AWS_REGION": "us-east-1",
        "LLM_TWIN_QDRANT_PATH": str(tmp_path / "qdrant"),
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": wire.url,
    }
    ask = run_process("ask", "What is an LLM twin?", env=env, timeout=240)
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout.startswith("A model that writes like you.\n")
    assert "6 tokens" in ask.stderr
    assert "EmptyStoreWarning" in ask.stderr  # nothing ingested in this folder
    [request] = wire.requests
    assert request.path == "/endpoints/twin/invocations-response-stream"


def test_ctrl_c_during_ingest_exits_130_with_a_note(tmp_path: Path) -> None:
    corpus = tmp_path / "big.jsonl"
    words = "Quantize the model, then measure latency and cost before you scale out. " * 12
    with corpus.open("w", encoding="utf-8") as out:
        for i in range(400):
            out.write(json.dumps({"id": f"doc-{i}", "text": f"Note {i}. {words}"}) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_twin_sdk", "ingest", str(corpus)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=process_env({"LLM_TWIN_QDRANT_PATH": str(tmp_path / "qdrant")}),
    )
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 180
    for text in process.stderr:  # the first finished batch: a line of progress
        seen.append(text)
        if text.startswith("ingest: ") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + err
    note = " ".join(err.split())
    assert "interrupted: ingest interrupted:" in note
    assert "of 400 documents are stored" in note
    assert "Run the same ingest again to resume" in note
    assert "Traceback" not in err


def test_down_asks_on_a_terminal(moto_server: str, moto_aws: AWSClients, tmp_path: Path) -> None:
    """With a terminal on stdin, `down` asks: "n" keeps everything (exit 1), "y" removes."""
    import os
    import pty

    env = {"AWS_ENDPOINT_URL": moto_server}
    assert run_process("up", str(moto_spec(tmp_path)), env=env).returncode == 0

    def down(answer: str) -> subprocess.CompletedProcess[str]:
        controller, terminal = pty.openpty()
        try:
            os.write(controller, answer.encode())
            return subprocess.run(
                [sys.executable, "-m", "llm_twin_sdk", "down", "llm-twin"],
                stdin=terminal,
                capture_output=True,
                text=True,
                env=process_env(env),
                timeout=120,
                check=False,
            )
        finally:
            os.close(controller)
            os.close(terminal)

    kept = down("n\n")
    assert kept.returncode == 1, kept.stderr
    assert "Remove endpoint 'llm-twin' in us-east-1" in kept.stdout
    assert "cancelled: nothing was removed" in kept.stderr
    assert len(moto_aws.client("sagemaker").list_endpoints()["Endpoints"]) == 1
    removed = down("y\n")
    assert removed.returncode == 0, removed.stderr
    assert moto_aws.client("sagemaker").list_endpoints()["Endpoints"] == []
