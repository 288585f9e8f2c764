"""Inference backends against the raw libraries, on a SageMaker-runtime wire server (127.0.0.1).

    .venv/bin/python benchmarks/backends.py           # full run (~1 min)
    .venv/bin/python benchmarks/backends.py --quick   # smoke run

1. ``SageMakerBackend.generate`` per-request time vs raw ``boto3 invoke_endpoint`` with the same
   payload and response (goal: ratio <= 1.05).
2. Time to first piece of ``InferenceClient.stream`` vs raw iteration of boto3's event stream
   (goal: ratio <= 1.05).
3. ``AsyncInferenceClient.generate_many`` with 32 concurrent requests against a server that
   answers in 100 ms (goal: >= 80% of the ideal 320 requests/s).

The server is the test suite's wire server (tests/fakes/sagemaker.py): boto3's real serializer,
parsers and event-stream decoder run on both sides. Runs are interleaved; figures are medians.
Prints a markdown report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")

from fakes import Json, Stream, WireServer, chat_events
from llm_twin_sdk import (
    AsyncInferenceClient,
    AWSClients,
    GenerationParams,
    InferenceClient,
    Message,
    SageMakerBackend,
)
from llm_twin_sdk.aws import botocore_config

ENDPOINT = "twin"
MESSAGES = [Message(role="user", content="Write one sentence about GPUs.")]
PARAMS = GenerationParams(max_new_tokens=64, temperature=0.0)
REPLY = {
    "choices": [
        {"message": {"content": "GPUs turn matrix math into throughput. " * 4},
         "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 36},
}  # fmt: skip
TOKENS = ["GPUs", " turn", " matrix", " math", " into", " throughput", "."] * 6


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def interleave(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            out[name].append(runs[name]())
    return out


def sdk_client(server: WireServer) -> InferenceClient:
    return InferenceClient(
        SageMakerBackend(ENDPOINT, aws=AWSClients(region="us-east-1", endpoint_url=server.url))
    )


def ratio_row(name: str, samples: dict[str, list[float]], raw: str) -> tuple[str, bool]:
    """A report row comparing median SDK and raw times against the 1.05 goal."""
    ratio = statistics.median(samples["sdk"]) / statistics.median(samples["raw"])
    met = ratio <= 1.05
    row = (
        f"| {name} | {median_ms(samples['sdk']):.2f} ms | {median_ms(samples['raw']):.2f} ms "
        f"({raw}) | {ratio:.3f} | <= 1.05 | {'yes' if met else '**no**'} |"
    )
    return row, met


def raw_runtime(url: str) -> Any:
    import boto3

    return boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url=url, config=botocore_config()
    )


def bench_generate(server: WireServer, rounds: int, batch: int) -> tuple[str, bool]:
    server.default = Json(REPLY)
    client = sdk_client(server)
    client.generate(MESSAGES, PARAMS)  # warm up, and capture the exact payload the SDK sends
    payload = server.requests[-1].body  # raw builds the same JSON on every call
    raw = raw_runtime(server.url)

    def sdk() -> float:
        started = time.perf_counter()
        for _ in range(batch):
            client.generate(MESSAGES, PARAMS)
        return (time.perf_counter() - started) / batch

    def boto() -> float:
        started = time.perf_counter()
        for _ in range(batch):
            response = raw.invoke_endpoint(
                EndpointName=ENDPOINT,
                Body=json.dumps(payload),
                ContentType="application/json",
                Accept="application/json",
            )
            json.loads(response["Body"].read())["choices"][0]["message"]["content"]
        return (time.perf_counter() - started) / batch

    boto()
    samples = interleave({"sdk": sdk, "raw": boto}, rounds)
    return ratio_row(
        "`SageMakerBackend.generate` per request",
        samples,
        "`json.dumps` + `invoke_endpoint` + `json.loads`",
    )


def bench_first_piece(server: WireServer, rounds: int) -> tuple[str, bool]:
    parts = chat_events(TOKENS, usage=(20, len(TOKENS)))
    server.default = Stream(parts=parts)
    client = sdk_client(server)
    with client.stream(MESSAGES, PARAMS) as warm:
        list(warm)
    payload = server.requests[-1].body
    raw = raw_runtime(server.url)

    def sdk() -> float:
        started = time.perf_counter()
        with client.stream(MESSAGES, PARAMS) as stream:
            next(stream)
            first = time.perf_counter() - started
            list(stream)
        return first

    def boto() -> float:
        started = time.perf_counter()
        response = raw.invoke_endpoint_with_response_stream(
            EndpointName=ENDPOINT,
            Body=json.dumps(payload),
            ContentType="application/json",
            Accept="text/event-stream",
        )
        first = None
        buffer = b""
        for event in response["Body"]:  # what a hand-written client must do to get text
            buffer += event["PayloadPart"]["Bytes"]
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if first is None and line.startswith(b"data:") and b"[DONE]" not in line:
                    delta = json.loads(line[5:])["choices"][0]["delta"]
                    if delta.get("content"):
                        first = time.perf_counter() - started
        response["Body"].close()
        assert first is not None
        return first

    boto()
    samples = interleave({"sdk": sdk, "raw": boto}, rounds)
    return ratio_row(
        "time to first piece, `InferenceClient.stream`",
        samples,
        "boto3 event stream + SSE JSON parsing",
    )


def bench_generate_many(server: WireServer, requests: int) -> tuple[str, bool]:
    server.default = Json(REPLY)
    server.answer_delay_s = 0.1
    backend = SageMakerBackend(
        ENDPOINT, aws=AWSClients(region="us-east-1", endpoint_url=server.url)
    )

    async def run() -> float:
        async with AsyncInferenceClient(backend, max_workers=32) as client:
            await client.generate_many([MESSAGES] * 32, PARAMS, concurrency=32)  # warm up
            started = time.perf_counter()
            results = await client.generate_many([MESSAGES] * requests, PARAMS, concurrency=32)
            elapsed = time.perf_counter() - started
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            raise RuntimeError(f"{len(failures)} requests failed: {failures[0]!r}")
        return requests / elapsed

    rate = asyncio.run(run())
    share = rate / 320
    met = share >= 0.8
    row = (
        f"| `AsyncInferenceClient.generate_many`, 32 concurrent, 100 ms server "
        f"({requests} requests) | {rate:.0f} req/s | ideal 320 req/s | {share:.1%} | "
        f">= 80% | {'yes' if met else '**no**'} |"
    )
    return row, met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    rounds, batch, many = (4, 20, 128) if args.quick else (12, 50, 640)
    started = time.perf_counter()
    with WireServer() as server:
        rows = [
            bench_generate(server, rounds, batch),
            bench_first_piece(server, rounds * 10),
            bench_generate_many(server, many),
        ]
    print("## Inference backends (SageMaker-runtime wire server on 127.0.0.1)\n")
    mode = "quick" if args.quick else "full"
    print(f"Mode: {mode}; wall time {time.perf_counter() - started:.0f} s.\n")
    print("| benchmark | SDK | raw library | ratio | goal | met |")
    print("|---|---|---|---|---|---|")
    for row, _ in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
