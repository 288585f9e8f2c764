"""The data plane: llm-twin-sdk's public API against raw boto3 doing the same work.

    .venv/bin/python benchmarks/dataplane.py              # full run (~1-2 min), markdown report
    .venv/bin/python benchmarks/dataplane.py --quick      # smoke run (a few seconds)
    .venv/bin/python benchmarks/dataplane.py --profile    # cProfile of the SDK side
    .venv/bin/python benchmarks/dataplane.py --in-process # the server in this process

One SageMaker-runtime wire server on 127.0.0.1 (``tests/fakes/sagemaker.py``, in a child
process: boto3's real serializer, signer, parsers and event-stream decoder run on both sides;
every answer leaves in one write on a TCP_NODELAY socket, checked before timing). Both sides
send the same payload bytes (checked) and receive the same answer. What the raw side does:

- blocking: ``json.dumps`` the request (the dict the SDK sent, parsed back), ``invoke_endpoint``,
  read the body, ``json.loads`` it and pick the text;
- streams: ``invoke_endpoint_with_response_stream``, iterate the EventStream, join the
  ``PayloadPart`` bytes, split complete SSE lines, ``json.loads`` each ``data:`` line and
  collect the token text (TGI: ``token.text`` unless special; chat: ``choices[0].delta.content``
  until ``[DONE]``), then join the text;
- concurrency: 16 threads calling ``invoke_endpoint`` (a client with 16 pooled connections).

Its client has the SDK's settings: botocore's retries off, the same timeouts. The SDK side uses
the public API only: ``InferenceClient(SageMakerBackend(...)).generate`` / ``.stream`` (the
whole stream read; ``generation`` with usage and finish reason), and
``AsyncInferenceClient(backend).generate_many(prompts, concurrency=16)`` with default settings.
Rounds of ~20 ms alternate between the sides (the side that goes first alternates); a ratio is
the median over rounds of the two sides' round medians.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")

import boto3
from botocore.config import Config

from fakes import Json, Stream, WireServer, chat_events, tgi_events
from fakes.server import _Handler
from llm_twin_sdk import (
    AsyncInferenceClient,
    AWSClients,
    Generation,
    GenerationParams,
    InferenceClient,
    SageMakerBackend,
)

ENDPOINT = "twin"
SYSTEM = "You are Maya Okafor. You write short, concrete posts about running LLMs in production."
QUESTION = "Write one paragraph on why streaming answers feel faster than blocking ones."
PROMPT = f"{SYSTEM}\n\n{QUESTION}"  # the generate API's text prompt
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
PARAMS = GenerationParams(max_new_tokens=64, temperature=0.0)
WORDS = [
    "Streaming",
    "shows",
    "the",
    "first",
    "words",
    "while",
    "the",
    "rest",
    "is",
    "still",
    "being",
    "generated,",
    "so",
]
TOKENS = [f" {WORDS[i % len(WORDS)]}" for i in range(49)]  # + the end-of-sequence token: 50
ANSWER = "".join(TOKENS)
SPLITS: tuple[int | None, ...] = (1, 7, 64, None)  # None: one payload part per event
CONCURRENCY, PROMPTS, DELAY_S = 16, 64, 0.1
APIS = ("generate", "messages")
ROW_NAMES = {
    "generate": 'llm-twin-sdk generate API (`api="generate"`, text prompt)',
    "messages": 'llm-twin-sdk messages API (`api="messages"`, chat messages)',
}

REPLIES: dict[str, Any] = {
    "generate": [
        {"generated_text": ANSWER,
         "details": {"finish_reason": "eos_token", "generated_tokens": 50, "seed": None}}
    ],
    "messages": {
        "object": "chat.completion", "model": "twin",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 38, "completion_tokens": 50, "total_tokens": 88},
    },
}  # fmt: skip


def log(message: str) -> None:
    print(f"[dataplane] {message}", file=sys.stderr, flush=True)


# -- the server ---------------------------------------------------------------------------------


def command(server: WireServer, name: str, argument: Any) -> Any:
    """One command to the wire server: its answer, if any."""
    if name == "default":
        server.default = argument
    elif name == "delay":
        server.answer_delay_s = argument
    elif name == "reset":
        server.reset()
    elif name == "last":
        return server.requests[-1].raw
    elif name == "stats":
        return server.max_in_flight, list(server.handler_errors)
    return None


def serve(conn: Connection) -> None:
    """The wire server, in a process of its own, run by commands from the benchmark."""
    with WireServer() as server:
        conn.send(server.url)
        while (message := conn.recv())[0] != "stop":
            conn.send(command(server, *message))
        conn.send(None)


class Server:
    """One loopback wire server: in a child process (the default: its threads share no GIL
    with the client measured, as a real endpoint's would not), or in this process
    (``in_process``, as the tests run it: every payload part of a stream is then a GIL handoff
    between the server's thread and the client's, which dominates streams of small parts)."""

    def __init__(self, *, in_process: bool) -> None:
        self._local: WireServer | None = None
        self._process: Any = None
        if in_process:
            self._local = WireServer().start()
            self.url = self._local.url
            return
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child,), daemon=True)
        self._process.start()
        self.url = self._conn.recv()

    def _ask(self, name: str, argument: Any = None) -> Any:
        if self._local is not None:
            return command(self._local, name, argument)
        self._conn.send((name, argument))
        return self._conn.recv()

    def answer_with(self, reply: Json | Stream) -> None:
        self._ask("default", reply)

    def delay(self, seconds: float) -> None:
        self._ask("delay", seconds)

    def reset(self) -> None:
        self._ask("reset")

    def last_request(self) -> bytes:
        raw: bytes = self._ask("last")
        return raw

    def stats(self) -> tuple[int, list[str]]:
        """The most requests in flight at once since the last reset, and handler errors."""
        stats: tuple[int, list[str]] = self._ask("stats")
        return stats

    def close(self) -> None:
        if self._local is not None:
            self._local.stop()
        else:
            self._ask("stop")
            self._process.join(timeout=10)


# -- the two sides ------------------------------------------------------------------------------


def stream_parts(api: str, split: int | None) -> list[bytes]:
    """The SSE bytes of a 50-token stream, one payload part per event or cut every ``split``."""
    events = (
        tgi_events(TOKENS, input_length=38)
        if api == "generate"
        else chat_events([*TOKENS, ""], usage=(38, 50))
    )
    if split is None:
        return events
    data = b"".join(events)
    return [data[i : i + split] for i in range(0, len(data), split)]


def raw_client(url: str, pool: int = 10) -> Any:
    """A plain boto3 client with the SDK's settings: no botocore retries, same timeouts."""
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max(pool, 10),
    )
    return boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url=url, config=config
    )


def raw_text(api: str, data: Any) -> str:
    if api == "generate":
        return str(data[0]["generated_text"])
    return str(data["choices"][0]["message"]["content"])


def raw_generate(runtime: Any, api: str, body: dict[str, Any]) -> str:
    response = runtime.invoke_endpoint(
        EndpointName=ENDPOINT,
        Body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        ContentType="application/json",
        Accept="application/json",
    )
    return raw_text(api, json.loads(response["Body"].read()))


def raw_stream(runtime: Any, api: str, body: dict[str, Any]) -> str:
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT,
        Body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        ContentType="application/json",
        Accept="text/event-stream",
    )
    pieces: list[str] = []
    buffer = b""
    chat = api == "messages"
    for event in response["Body"]:
        part = event.get("PayloadPart")
        if part is None:
            continue
        chunk = part["Bytes"]
        buffer += chunk
        if 10 not in chunk:  # no "\n" (an int: bytes' fastest membership test)
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if chat:
                if data == b"[DONE]":
                    break
                choices = json.loads(data)["choices"]
                if choices and choices[0]["delta"].get("content"):
                    pieces.append(choices[0]["delta"]["content"])
            else:
                token = json.loads(data)["token"]
                if not token["special"]:
                    pieces.append(token["text"])
    return "".join(pieces)


def sdk_client(server: Server, api: str) -> InferenceClient:
    aws = AWSClients(region="us-east-1", endpoint_url=server.url)
    return InferenceClient(SageMakerBackend(ENDPOINT, aws=aws, api=api))  # type: ignore[arg-type]


def sdk_prompt(api: str) -> Any:
    return PROMPT if api == "generate" else MESSAGES


def sdk_call(client: InferenceClient, api: str, *, blocking: bool) -> str:
    if blocking:
        return client.generate(sdk_prompt(api), PARAMS).text
    return sdk_stream(client, api)


def sdk_stream(client: InferenceClient, api: str) -> str:
    with client.stream(sdk_prompt(api), PARAMS) as stream:
        text = "".join(stream)
    assert stream.generation is not None
    assert stream.generation.usage.completion_tokens
    return text


# -- timing -------------------------------------------------------------------------------------


@dataclass
class Timed:
    """Both sides' samples (seconds per call, or requests per second), by round. Round ``i``
    of one side ran next to round ``i`` of the other, so their ratio is free of the drift of
    a shared machine (its speed changes by tens of percent over a minute): the ratios and
    differences reported are medians over rounds of the two sides' round medians."""

    sdk: list[list[float]]
    raw: list[list[float]]

    @staticmethod
    def median(by_round: list[list[float]]) -> float:
        return statistics.median(value for samples in by_round for value in samples)

    @property
    def ratio(self) -> float:
        pairs = zip(self.by_round("sdk"), self.by_round("raw"), strict=True)
        return statistics.median(sdk / raw for sdk, raw in pairs)

    @property
    def delta_us(self) -> float:
        pairs = zip(self.by_round("sdk"), self.by_round("raw"), strict=True)
        return statistics.median(sdk - raw for sdk, raw in pairs) * 1e6

    def by_round(self, side: str) -> list[float]:
        """The median of each round."""
        return [statistics.median(samples) for samples in getattr(self, side)]


def timed_call(fn: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    return run


def rounds(sdk: Callable[[], float], raw: Callable[[], float], count: int, calls: int) -> Timed:
    """``count`` rounds per side of ``calls`` consecutive calls each, the sides' rounds
    interleaved (the side that goes first alternates, so a burst of load from another tenant
    hits both alike); every call is timed on its own."""
    timed = Timed([], [])
    order = [(sdk, timed.sdk), (raw, timed.raw)]
    for index in range(count):
        for run, by_round in order if index % 2 == 0 else reversed(order):
            by_round.append([run() for _ in range(calls)])
    return timed


def plan(fn: Callable[[], Any], s: Settings) -> tuple[int, int]:
    """Rounds, and calls per side and round: rounds of about ``s.round_s`` (at least one
    call), as many as fill ``s.side_s`` per side (``s.min_rounds`` to ``s.max_rounds``)."""
    fn()  # warm up
    started = time.perf_counter()
    fn()
    call_s = max(time.perf_counter() - started, 1e-6)
    calls = max(1, round(s.round_s / call_s))
    count = round(s.side_s / (calls * call_s))
    return min(max(count, s.min_rounds), s.max_rounds), calls


def sent_body(server: Server) -> dict[str, Any]:
    """The SDK's last request, parsed: the raw side sends the same dict, as the same bytes."""
    raw = server.last_request()
    body: dict[str, Any] = json.loads(raw)
    again = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert again == raw, "raw and SDK payload bytes differ"
    return body


@dataclass
class Settings:
    side_s: float  # measured time per side and case
    round_s: float  # time of one round
    min_rounds: int
    max_rounds: int
    many_rounds: int
    prompts: int


FULL = Settings(2.5, 0.02, min_rounds=15, max_rounds=200, many_rounds=5, prompts=PROMPTS)
QUICK = Settings(0.05, 0.01, min_rounds=2, max_rounds=5, many_rounds=1, prompts=CONCURRENCY)


def bench_blocking(server: Server, api: str, runtime: Any, s: Settings) -> Timed:
    server.answer_with(Json(REPLIES[api]))
    client = sdk_client(server, api)
    prompt = sdk_prompt(api)
    generation = client.generate(prompt, PARAMS)
    body = sent_body(server)
    assert generation.text == raw_generate(runtime, api, body) == ANSWER
    count, calls = plan(lambda: raw_generate(runtime, api, body), s)
    return rounds(
        timed_call(lambda: client.generate(prompt, PARAMS)),
        timed_call(lambda: raw_generate(runtime, api, body)),
        count,
        calls,
    )


def bench_stream(server: Server, api: str, split: int | None, runtime: Any, s: Settings) -> Timed:
    server.answer_with(Stream(stream_parts(api, split)))
    client = sdk_client(server, api)
    text = sdk_stream(client, api)
    body = sent_body(server)
    assert text == raw_stream(runtime, api, body) == ANSWER, "the sides read different text"
    count, calls = plan(lambda: raw_stream(runtime, api, body), s)
    return rounds(
        timed_call(lambda: sdk_stream(client, api)),
        timed_call(lambda: raw_stream(runtime, api, body)),
        count,
        calls,
    )


@dataclass
class Many:
    timed: Timed  # requests per second
    in_flight: dict[str, int]


def bench_many(server: Server, api: str, s: Settings) -> Many:
    server.answer_with(Json(REPLIES[api]))
    server.delay(DELAY_S)
    prompts = [sdk_prompt(api)] * s.prompts
    aws = AWSClients(region="us-east-1", endpoint_url=server.url)
    backend = SageMakerBackend(ENDPOINT, aws=aws, api=api)  # type: ignore[arg-type]
    runtime = raw_client(server.url, pool=CONCURRENCY)
    loop = asyncio.new_event_loop()
    client = AsyncInferenceClient(backend)  # the defaults: no max_workers
    pool = ThreadPoolExecutor(CONCURRENCY)
    in_flight = {"sdk": 0, "raw": 0}
    try:
        server.reset()
        loop.run_until_complete(client.generate(prompts[0], PARAMS))
        body = sent_body(server)

        def measured(side: str, run: Callable[[], Sequence[Any]]) -> Callable[[], float]:
            def timed() -> float:
                server.reset()
                started = time.perf_counter()
                results = run()
                elapsed = time.perf_counter() - started
                failed = [r for r in results if not isinstance(r, (Generation, str))]
                assert not failed, f"{len(failed)} requests failed: {failed[0]!r}"
                in_flight[side] = max(in_flight[side], server.stats()[0])
                return len(results) / elapsed

            return timed

        sdk = measured(
            "sdk",
            lambda: loop.run_until_complete(
                client.generate_many(prompts, PARAMS, concurrency=CONCURRENCY)
            ),
        )
        raw = measured(
            "raw", lambda: list(pool.map(lambda _: raw_generate(runtime, api, body), prompts))
        )
        sdk(), raw()  # warm up: threads and pooled connections
        timed = rounds(sdk, raw, s.many_rounds, 1)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        pool.shutdown()
        server.delay(0.0)
    return Many(timed, in_flight)


# -- the report ---------------------------------------------------------------------------------


def check_nodelay(server: Server, runtime: Any) -> float:
    """The server answers in one write on a TCP_NODELAY socket, so a loopback call takes
    about a millisecond (Nagle with delayed ACKs would add ~40 ms to some). Returns the median
    call, in seconds."""
    assert _Handler.disable_nagle_algorithm, "the wire server must set TCP_NODELAY"
    server.answer_with(Json(REPLIES["generate"]))
    body = {"inputs": "x", "parameters": {}}
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        raw_generate(runtime, "generate", body)
        samples.append(time.perf_counter() - started)
    median = statistics.median(samples)
    assert median < 0.02, f"a loopback call takes {median * 1e3:.1f} ms: Nagle is on?"
    return median


@dataclass
class Results:
    settings: Settings
    mode: str
    wall_s: float
    load: str
    call_s: float
    blocking: dict[str, Timed]
    streams: dict[tuple[str, int | None], Timed]
    many: dict[str, Many]


def measure(s: Settings, *, in_process: bool) -> tuple[float, dict[str, Any]]:
    server = Server(in_process=in_process)
    found: dict[str, Any] = {"blocking": {}, "streams": {}, "many": {}}
    try:
        runtime = raw_client(server.url)
        call_s = check_nodelay(server, runtime)
        for api in APIS:
            log(f"{api}: blocking")
            found["blocking"][api] = bench_blocking(server, api, runtime, s)
            for split in SPLITS:
                log(f"{api}: stream, split {split or 'per event'}")
                found["streams"][api, split] = bench_stream(server, api, split, runtime, s)
            log(f"{api}: generate_many")
            found["many"][api] = bench_many(server, api, s)
        errors = server.stats()[1]
        assert not errors, errors[0]
    finally:
        server.close()
    return call_s, found


def fmt_rounds(values: Sequence[float], scale: float, digits: int) -> str:
    return ", ".join(f"{v * scale:.{digits}f}" for v in values)


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report_table(r: Results) -> None:
    ideal = CONCURRENCY / DELAY_S
    print(
        "| per call / per stream, x raw boto3 | blocking generate | stream of 50 tokens, parts "
        f"split every 7 bytes (total time) | {r.settings.prompts} prompts at concurrency "
        f"{CONCURRENCY}, 100 ms server |"
    )
    print("|---|---|---|---|")
    for api in APIS:
        b, st, m = r.blocking[api], r.streams[api, 7], r.many[api]
        print(
            f"| {ROW_NAMES[api]} | {b.ratio:.3f} ({b.delta_us:+.0f} µs) | {st.ratio:.3f} "
            f"({st.delta_us / 50:+.1f} µs per token) | {Timed.median(m.timed.sdk):.1f} req/s "
            f"({m.in_flight['sdk']} in flight) |"
        )
    b, st = r.blocking["generate"], r.streams["generate", 7]
    raw_many = Timed.median(r.many["generate"].timed.raw + r.many["messages"].timed.raw)
    print(
        f"| raw boto3 | 1 ({Timed.median(b.raw) * 1e3:.3f} ms per call) | 1 "
        f"({Timed.median(st.raw) * 1e3:.2f} ms per stream) | {raw_many:.1f} req/s "
        f"(16 threads; ideal {ideal:.0f}) |"
    )


def report_goals(r: Results) -> None:
    ideal = CONCURRENCY / DELAY_S
    print("| goal | measured | met |")
    print("|---|---|---|")
    for api in APIS:
        ratio = r.blocking[api].ratio
        print(f"| {api} API: blocking <= 1.03 x raw | {ratio:.3f} | {verdict(ratio <= 1.03)} |")
        worst = max(r.streams[api, split].ratio for split in SPLITS)
        print(
            f"| {api} API: stream total time <= 1.05 x raw at every split | worst {worst:.3f} "
            f"| {verdict(worst <= 1.05)} |"
        )
        rate, flight = Timed.median(r.many[api].timed.sdk), r.many[api].in_flight["sdk"]
        print(
            f"| {api} API: `generate_many(concurrency=16)` runs 16 at a time, >= 80 % of ideal "
            f"| {flight} in flight, {rate / ideal:.0%} | "
            f"{verdict(flight == CONCURRENCY and rate >= 0.8 * ideal)} |"
        )


def report_streams(r: Results) -> None:
    print("| API | payload parts | SDK | raw boto3 | x raw | SDK - raw per token |")
    print("|---|---|---|---|---|---|")
    for (api, split), t in r.streams.items():
        parts = len(stream_parts(api, split))
        label = f"every {split} B ({parts})" if split else f"one per event ({parts})"
        print(
            f"| {api} | {label} | {Timed.median(t.sdk) * 1e3:.2f} ms | "
            f"{Timed.median(t.raw) * 1e3:.2f} ms | {t.ratio:.3f} | {t.delta_us / 50:+.1f} µs |"
        )


def quartiles(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    low, mid, high = statistics.quantiles(values, n=4)
    return f"{low:.3f} / {mid:.3f} / {high:.3f}"


def report_rounds(r: Results) -> None:
    cases = [(f"{api} blocking", r.blocking[api], 1e6, "µs per call") for api in APIS]
    cases += [
        (f"{api} stream, split {split or 'per event'}", r.streams[api, split], 1e3, "ms")
        for api in APIS
        for split in SPLITS
    ]
    cases += [(f"{api} generate_many", r.many[api].timed, 1, "req/s") for api in APIS]
    print("| case | rounds x calls | SDK / raw per round: quartiles | round medians |")
    print("|---|---|---|---|")
    for name, t, scale, unit in cases:
        sdk, raw = t.by_round("sdk"), t.by_round("raw")
        ratios = [a / b for a, b in zip(sdk, raw, strict=True)]
        digits = 0 if scale == 1e6 else 2 if scale == 1e3 else 1
        print(
            f"| {name} | {len(sdk)} x {len(t.sdk[0])} | {quartiles(ratios)} | {unit}: SDK "
            f"{fmt_rounds(sdk, scale, digits)}; raw {fmt_rounds(raw, scale, digits)} |"
        )


def report(r: Results) -> None:
    where = "in this process" if r.mode.endswith("in-process server") else "in a child process"
    print("## Data plane: llm-twin-sdk vs raw boto3 (SageMaker-runtime wire server, 127.0.0.1)\n")
    print(
        f"Mode: {r.mode}, the server {where}; wall time {r.wall_s:.0f} s; load average at "
        f"start {r.load}; interleaved rounds of ~{r.settings.round_s * 1e3:.0f} ms per side, "
        f"{r.settings.side_s:g} s per side and case ({r.settings.many_rounds} rounds for "
        f"concurrency); TCP_NODELAY checked (median "
        f"loopback call {r.call_s * 1e3:.2f} ms).\n"
    )
    report_table(r)
    print("\n### Goals\n")
    report_goals(r)
    print("\n### Streams at every split (total time per 50-token stream)\n")
    report_streams(r)
    print("\n### Per-round figures (each round's median; the ratio is the median of rounds')\n")
    report_rounds(r)


def profile(calls: int) -> None:
    """cProfile of the SDK side alone (blocking calls, then 50-token streams cut every 7 bytes
    and one event per part): where its time goes, grouped by library, and the SDK's own
    functions (cProfile's overhead inflates every figure alike: read the shares)."""
    import cProfile
    import pstats

    server = Server(in_process=True)
    cases: list[tuple[str, str, Json | Stream]] = []
    for api in APIS:
        cases.append((api, "blocking", Json(REPLIES[api])))
        cases += [(api, f"stream/{n}", Stream(stream_parts(api, n))) for n in (7, None)]
    try:
        for api, case, reply in cases:
            server.answer_with(reply)
            client = sdk_client(server, api)
            run = functools.partial(sdk_call, client, api, blocking=isinstance(reply, Json))
            run()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                run()
            profiler.disable()
            stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
            print_profile(f"{api} {case}", stats, calls)
    finally:
        server.close()


def print_profile(name: str, stats: dict[Any, Any], calls: int) -> None:
    groups: dict[str, float] = {}
    own: list[tuple[float, int, str]] = []
    total = sum(entry[2] for entry in stats.values())  # every function's own time
    for (path, line, function), (_, ncalls, own_s, _, _) in stats.items():
        group = next(
            (g for g in ("llm_twin_sdk", "botocore", "urllib3", "json", "http", "fakes")
             if f"/{g}/" in path or path.endswith(f"/{g}.py")),
            "C functions (sockets, struct, ...)" if path == "~" else "other Python",
        )  # fmt: skip
        groups[group] = groups.get(group, 0.0) + own_s
        if group == "llm_twin_sdk":
            where = path.split("llm_twin_sdk/")[-1]
            own.append((own_s, ncalls, f"{where}:{line}({function})"))
    print(f"\n### {name}: {total / calls * 1e6:.0f} µs per call under cProfile\n")
    shares = sorted(groups.items(), key=lambda item: -item[1])
    print("- by library: " + ", ".join(f"{g} {t / total:.0%}" for g, t in shares))
    print("- the SDK's own functions (own time per call, calls per call):")
    for own_s, ncalls, where in sorted(own, reverse=True)[:12]:
        print(f"  - {where}: {own_s / calls * 1e6:.1f} µs, {ncalls / calls:g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few, short rounds")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the wire server in this process (default: a child process)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the SDK side instead of comparing"
    )
    args = parser.parse_args()
    if args.profile:
        profile(50 if args.quick else 400)
        return 0
    s = QUICK if args.quick else FULL
    started = time.perf_counter()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    call_s, found = measure(s, in_process=args.in_process)
    mode = ("quick" if args.quick else "full") + (", in-process server" if args.in_process else "")
    wall = time.perf_counter() - started
    report(Results(s, mode, wall, load, call_s, **found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
