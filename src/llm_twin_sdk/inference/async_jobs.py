"""Bulk and long generation on a SageMaker asynchronous-inference endpoint.

:class:`AsyncJobs` uploads each request body to S3, sends ``InvokeEndpointAsync`` for it
(a bounded number at a time), and :meth:`AsyncJob.collect` polls the output and failure
locations SageMaker answered with (backing off) until every item is done, failed, or the
timeout passes. Results come back in input order, one :class:`JobResult` per request: a
failed, missing or malformed output is that item's typed error and loses no other result.
A manifest (a local JSON file or an S3 object) records the job after every step, so
:meth:`AsyncJobs.resume` continues a job another process started, without resending any item
SageMaker accepted. Every AWS call goes through the one retry policy. Example::

    jobs = AsyncJobs("twin-async", input_path="s3://twin-jobs/in", region="eu-central-1")
    job = jobs.submit_prompts(prompts, manifest="job.json")   # thousands of prompts
    for result in job.collect(timeout_s=3600):
        print(result.index, result.text if result.ok else result.error)
    # later, or in another process: jobs.resume("job.json").collect()

The endpoint: ``EndpointSpec(async_inference=AsyncInferenceSpec(...))`` (docs/deployment.md,
"Asynchronous inference").
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..aws import S3_URI, AWSClients, call_aws, check_client_options, split_s3_uri
from ..display import brief
from ..endpoint import RESOURCE_NAME
from ..errors import (
    AsyncInferenceFailedError,
    AsyncJobError,
    AsyncOutputMalformedError,
    AsyncOutputMissingError,
    AWSError,
    InferenceError,
    InvalidParameterError,
    JobManifestError,
)
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ..types import GenerationParams
from .async_manifest import (
    MISSING_CODES,
    AnswerKind,
    JobItem,
    JobManifest,
    load_manifest,
    save_manifest,
)
from .invocation import encode_body
from .protocols.base import Answer
from .protocols.tgi import TGIGenerate

__all__ = ["AsyncJob", "AsyncJobs", "JobResult"]

logger = logging.getLogger(__name__)

Body = bytes | str | Mapping[str, Any] | Sequence[Any]
"""A request body: bytes as they are, text as UTF-8, a mapping or list as JSON."""

MAX_IN_FLIGHT = 256
MAX_INVOCATION_TIMEOUT_S = 3600  # InvokeEndpointAsync's limits
REQUEST_TTL_S = (60, 21600)
_ERROR_TEXT = 500  # characters of a failure object kept in the item's error


@dataclass(frozen=True)
class JobResult:
    """The result of one request of a job: its output, or its typed error.

    ``body`` is the output object's bytes; ``value`` its JSON when the job accepts JSON;
    ``text`` the generated text of a :meth:`AsyncJobs.submit_prompts` job.
    """

    index: int
    body: bytes | None = None
    value: Any = None
    text: str | None = None
    error: AsyncJobError | None = None
    output_location: str | None = None

    @property
    def ok(self) -> bool:
        """True when the request has an output (``error`` is None)."""
        return self.error is None

    def __repr__(self) -> str:
        # One short line: the text (or the value, or the size), else the error.
        if self.error is not None:
            shown = f"error={type(self.error).__name__}({brief(str(self.error), 120)!r})"
        elif self.text is not None:
            shown = f"text={brief(self.text, 120)!r}"
        elif self.value is not None:
            shown = f"value={brief(self.value, 120)}"
        else:
            shown = f"body={len(self.body or b'')} bytes"
        return f"JobResult(index={self.index}, {shown})"


class AsyncJob:
    """A submitted job: its manifest and the outputs read so far. Built by
    :meth:`AsyncJobs.submit` or :meth:`AsyncJobs.resume`; :meth:`collect` reads the rest."""

    def __init__(self, runner: AsyncJobs, manifest: JobManifest, where: str | Path) -> None:
        self._runner, self.manifest, self.where = runner, manifest, where
        self._items = {item.index: item for item in manifest.items}
        self._bodies: dict[int, bytes] = {}
        self._missing: dict[int, str] = {}  # done items whose output object is gone

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(self.manifest.counts().items()))
        return f"AsyncJob({self.manifest.job_id!r}, {self.manifest.endpoint_name!r}, {counts})"

    @property
    def job_id(self) -> str:
        return self.manifest.job_id

    def _save(self) -> None:
        items = tuple(self._items[index] for index in sorted(self._items))
        self.manifest = self.manifest.model_copy(update={"items": items})
        self._runner._save(self.manifest, self.where)

    def _set(self, item: JobItem, **changes: Any) -> None:
        self._items[item.index] = item.model_copy(update=changes)

    def poll(self) -> int:
        """Look once at every unfinished item's output and failure objects; record what
        arrived (manifest saved); return how many items are still waiting. An object S3
        would not give (after retries) counts as not there yet; its error is kept for the
        item's result."""
        waiting = [i for i in self._items.values() if i.state == "submitted"]
        wanted = [
            i for i in self._items.values() if i.state == "done" and i.index not in self._bodies
        ]
        runner = self._runner
        with ThreadPoolExecutor(max_workers=runner.max_in_flight) as pool:
            looked = pool.map(runner._look, [*waiting, *wanted])
            for item, (output, failure, problem) in zip([*waiting, *wanted], looked, strict=True):
                if problem is not None:
                    self._missing[item.index] = problem
                elif output is not None:
                    self._bodies[item.index] = output
                    self._missing.pop(item.index, None)
                    if item.state != "done":
                        self._set(item, state="done")
                elif item.state == "done":  # read before, gone now
                    self._missing[item.index] = f"its output {item.output_location} is gone"
                elif failure is not None:
                    text = failure.decode("utf-8", errors="replace").strip()[:_ERROR_TEXT]
                    self._set(item, state="failed", error=text or "(empty failure object)")
        if waiting and any(self._items[i.index].state != "submitted" for i in waiting):
            self._save()
        return sum(1 for item in self._items.values() if item.state == "submitted")

    def collect(
        self,
        *,
        timeout_s: float = MAX_INVOCATION_TIMEOUT_S,
        poll_initial_s: float = 1.0,
        poll_max_s: float = 30.0,
    ) -> list[JobResult]:
        """Poll until every item is done or failed, or ``timeout_s`` passes; every result
        in input order.

        Waits start at ``poll_initial_s`` and double (up to ``poll_max_s``) while nothing
        arrives. Items still waiting at the timeout get :class:`AsyncOutputMissingError`
        (the job can be resumed later); items never sent (a failed :meth:`AsyncJobs.submit`)
        get :class:`AsyncJobError`. Example: ``[r.text for r in job.collect() if r.ok]``.
        """
        if timeout_s < 0 or poll_initial_s <= 0 or poll_max_s < poll_initial_s:
            raise InvalidParameterError(
                "collect: timeout_s must be >= 0 and 0 < poll_initial_s <= poll_max_s"
            )
        deadline = time.monotonic() + timeout_s
        wait = poll_initial_s
        waiting = self.poll()
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._runner.sleep(min(wait, left))
            before, waiting = waiting, self.poll()
            wait = poll_initial_s if waiting < before else min(wait * 2, poll_max_s)
        return [self._result(self._items[index]) for index in sorted(self._items)]

    def _result(self, item: JobItem) -> JobResult:
        index, where = item.index, f"item {item.index} of job {self.job_id}"
        if item.state == "failed":
            message = f"{where} failed on endpoint {self.manifest.endpoint_name!r}: {item.error}"
            return JobResult(index, error=AsyncInferenceFailedError(message, index=index))
        if item.state == "pending":
            message = f"{where} was never sent; " + (
                "resume the job to send it"
                if item.uploaded
                else "its body never reached S3: submit it again"
            )
            return JobResult(index, error=AsyncJobError(message, index=index))
        body = self._bodies.get(index)
        if body is None:
            why = self._missing.get(index) or (
                f"no output at {item.output_location} yet (nor a failure); resume the job "
                "later to look again"
            )
            return JobResult(index, error=AsyncOutputMissingError(f"{where}: {why}", index=index))
        try:
            value, text = self._runner._read_output(body, self.manifest)
        except ValueError as exc:
            message = f"{where}: malformed output at {item.output_location}: {exc}"
            error = AsyncOutputMalformedError(message, index=index)
            return JobResult(index, body=body, error=error, output_location=item.output_location)
        return JobResult(index, body, value, text, None, item.output_location)


class AsyncJobs:
    """Submits jobs to, and collects them from, one asynchronous-inference endpoint.

    Args:
        endpoint_name: the endpoint (deployed with ``EndpointSpec.async_inference``).
        input_path: ``s3://bucket/prefix`` where request bodies are uploaded
            (``<prefix>/<job id>/<index>.in``).
        runtime_client: a ``sagemaker-runtime`` boto3 client to use as it is; otherwise
            built from ``aws`` (or ``region`` / ``profile``), never retrying by itself.
        s3_client: an ``s3`` boto3 client, the same way.
        aws: the SDK's clients to build the missing ones from.
        region: AWS region of the clients built here.
        profile: named profile of the clients built here.
        retry: the retry policy of every AWS call.
        max_in_flight: uploads, invocations and polls running at once (1-256).
        content_type: of the request bodies.
        accept: of the outputs (JSON ones are parsed).
        invocation_timeout_s: how long the container may work on one request (1-3600 s).
        request_ttl_s: how long a request may wait in the endpoint's queue (60-21600 s).
        checkpoint_s: the manifest is saved at least this often while submitting.
        sleep: how collect waits between polls (tests inject a recorder).
    """

    def __init__(
        self,
        endpoint_name: str,
        *,
        input_path: str,
        runtime_client: Any = None,
        s3_client: Any = None,
        aws: AWSClients | None = None,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        max_in_flight: int = 16,
        content_type: str = "application/json",
        accept: str = "application/json",
        invocation_timeout_s: int = MAX_INVOCATION_TIMEOUT_S,
        request_ttl_s: int = REQUEST_TTL_S[1],
        checkpoint_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_client_options(
            "AsyncJobs", region, profile, retry, runtime_client=runtime_client, s3_client=s3_client
        )
        problems = []
        if not isinstance(endpoint_name, str) or not RESOURCE_NAME.match(endpoint_name):
            problems.append(f"endpoint_name {endpoint_name!r}: not a SageMaker endpoint name")
        if not isinstance(input_path, str) or not S3_URI.match(input_path):
            problems.append(f"input_path {input_path!r}: must be s3://<bucket>/<prefix>")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            problems.append(f"max_in_flight must be 1-{MAX_IN_FLIGHT}, got {max_in_flight}")
        if not 1 <= invocation_timeout_s <= MAX_INVOCATION_TIMEOUT_S:
            problems.append(
                f"invocation_timeout_s must be 1-{MAX_INVOCATION_TIMEOUT_S} (SageMaker's limit), "
                f"got {invocation_timeout_s}"
            )
        if not REQUEST_TTL_S[0] <= request_ttl_s <= REQUEST_TTL_S[1]:
            problems.append(f"request_ttl_s must be 60-21600 (SageMaker's), got {request_ttl_s}")
        for name, value in (("content_type", content_type), ("accept", accept)):
            if not value or not value.isascii() or len(value) > 1024:
                problems.append(f"{name} must be 1-1024 ASCII characters")
        if problems:
            raise InvalidParameterError("AsyncJobs: " + "; ".join(problems))
        self.endpoint_name = endpoint_name
        self.input_path = input_path.rstrip("/")
        self._runtime, self._s3 = runtime_client, s3_client
        if aws is None and (runtime_client is None or s3_client is None):
            aws = AWSClients(region=region, profile=profile)
        self._aws = aws
        self.retry, self.max_in_flight = retry, max_in_flight
        self.content_type, self.accept = content_type, accept
        self.invocation_timeout_s, self.request_ttl_s = invocation_timeout_s, request_ttl_s
        self.checkpoint_s, self.sleep = checkpoint_s, sleep

    def __repr__(self) -> str:
        return f"AsyncJobs({self.endpoint_name!r}, input_path={self.input_path!r})"

    @property
    def runtime_client(self) -> Any:
        """The ``sagemaker-runtime`` client (built on first use)."""
        self._runtime = self._runtime or self._built("sagemaker-runtime")
        return self._runtime

    @property
    def s3_client(self) -> Any:
        """The ``s3`` client (built on first use)."""
        self._s3 = self._s3 or self._built("s3")
        return self._s3

    def _built(self, service: str) -> Any:
        assert self._aws is not None  # given, or built when a client was not injected
        return self._aws.client(service)

    def submit(
        self, bodies: Iterable[Body], *, manifest: str | Path, job_id: str | None = None
    ) -> AsyncJob:
        """Upload every body and send ``InvokeEndpointAsync`` for each; the job, to
        :meth:`~AsyncJob.collect`. ``manifest``: a local path or ``s3://bucket/key``.

        Raises:
            InvalidParameterError: no bodies, or one of a type not listed in :data:`Body`
                (before anything is uploaded).
            AWSError: an upload or invocation failed after retries; the manifest records what
                was sent, and :meth:`resume` sends the rest.
        """
        return self._start(bodies, manifest, job_id, "raw")

    def submit_prompts(
        self,
        prompts: Iterable[str],
        *,
        manifest: str | Path,
        params: GenerationParams | None = None,
        job_id: str | None = None,
    ) -> AsyncJob:
        """:meth:`submit` for text generation on a TGI (or LMI) container: each prompt as TGI
        generate's request; each result's ``text`` is the generated text."""
        prompts = list(prompts)
        if not all(isinstance(p, str) and p.strip() for p in prompts):
            raise InvalidParameterError("submit_prompts: every prompt must be non-empty text")
        protocol, params = TGIGenerate(), params or GenerationParams()
        bodies = [protocol.request(p, params, stream=False).body for p in prompts]
        return self._start(bodies, manifest, job_id, "generate")

    def resume(self, manifest: str | Path) -> AsyncJob:
        """The job a manifest records: its items never sent are sent now (nothing sent
        before is sent again), then :meth:`~AsyncJob.collect` reads what is still missing.
        Example: ``jobs.resume("job.json").collect()``.

        Raises:
            JobManifestError: no manifest there, not a manifest, or another endpoint's.
        """
        record = load_manifest(manifest, self._s3_for(manifest), self.retry)
        if record.endpoint_name != self.endpoint_name:
            raise JobManifestError(
                f"{manifest} records a job of endpoint {record.endpoint_name!r}, not "
                f"{self.endpoint_name!r}"
            )
        job = AsyncJob(self, record, manifest)
        self._send(job, None)
        return job

    def _start(
        self, bodies: Iterable[Body], where: str | Path, job_id: str | None, kind: AnswerKind
    ) -> AsyncJob:
        encoded = [_encode(body, i, self.content_type) for i, body in enumerate(bodies)]
        if not encoded:
            raise InvalidParameterError("submit: no request bodies")
        if isinstance(where, str) and where.startswith("s3://") and not S3_URI.match(where):
            raise InvalidParameterError(f"manifest {where!r}: must be s3://<bucket>/<key>")
        job_id = job_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        prefix = f"{self.input_path}/{job_id}"
        record = JobManifest(
            job_id=job_id,
            endpoint_name=self.endpoint_name,
            content_type=self.content_type,
            accept=self.accept,
            invocation_timeout_s=self.invocation_timeout_s,
            request_ttl_s=self.request_ttl_s,
            answers=kind,
            items=tuple(
                JobItem(index=i, input_location=f"{prefix}/{i:06d}.in") for i in range(len(encoded))
            ),
        )
        job = AsyncJob(self, record, where)
        self._save(record, where)  # before the first upload: the job can always be found
        self._send(job, encoded)
        return job

    def _send(self, job: AsyncJob, bodies: list[bytes] | None) -> None:
        """Upload (when ``bodies`` are given) and invoke every pending item; save the
        manifest at least every ``checkpoint_s`` and at the end. After a failure no new item
        is invoked (the same cause would fail them all) but the bodies are still uploaded,
        so :meth:`resume` can send them; the first failure is raised."""
        pending = [item for item in job._items.values() if item.state == "pending"]
        if not pending:
            return
        stop = threading.Event()
        first: BaseException | None = None
        saved = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
                futures = {
                    pool.submit(self._send_one, job.manifest, item, bodies, stop): item
                    for item in pending
                }
                for future in as_completed(futures):
                    changes, error = future.result()
                    first = first or error
                    if changes:
                        job._set(futures[future], **changes)
                    if time.monotonic() - saved >= self.checkpoint_s:
                        job._save()
                        saved = time.monotonic()
        finally:
            job._save()
        sent = sum(1 for item in job._items.values() if item.state != "pending")
        logger.info("job %s: %d of %d items sent", job.job_id, sent, len(job._items))
        if first is not None:
            raise first

    def _send_one(
        self,
        manifest: JobManifest,
        item: JobItem,
        bodies: list[bytes] | None,
        stop: threading.Event,
    ) -> tuple[dict[str, Any], AWSError | AsyncJobError | None]:
        """Upload one item's body (if given and not yet there), then invoke it unless
        ``stop`` is set; the item's new fields and the failure, if any (``stop`` set)."""
        changes: dict[str, Any] = {}
        try:
            if bodies is not None and not item.uploaded:
                bucket, key = split_s3_uri(item.input_location)
                call_aws(
                    self.s3_client,
                    "put_object",
                    policy=self.retry,
                    Bucket=bucket,
                    Key=key,
                    Body=bodies[item.index],
                    ContentType=manifest.content_type,
                )
                changes["uploaded"] = True
            if stop.is_set() or not (item.uploaded or changes):
                return changes, None  # left pending: resume sends it
            changes |= self._invoke(manifest, item)
        except (AWSError, AsyncJobError) as exc:
            stop.set()
            return changes, exc
        return changes, None

    def _invoke(self, manifest: JobManifest, item: JobItem) -> dict[str, Any]:
        """Send one uploaded item; its new fields."""
        inference_id = f"{manifest.job_id}-{item.index}"[-64:]
        answer = call_aws(
            self.runtime_client,
            "invoke_endpoint_async",
            policy=self.retry,
            EndpointName=manifest.endpoint_name,
            InputLocation=item.input_location,
            ContentType=manifest.content_type,
            Accept=manifest.accept,
            InferenceId=inference_id,
            InvocationTimeoutSeconds=manifest.invocation_timeout_s,
            RequestTTLSeconds=manifest.request_ttl_s,
        )
        output = answer.get("OutputLocation")
        if not output:
            raise AsyncJobError(
                f"InvokeEndpointAsync answered no OutputLocation for item {item.index}",
                index=item.index,
            )
        return {
            "state": "submitted",
            "inference_id": answer.get("InferenceId") or inference_id,
            "output_location": output,
            "failure_location": answer.get("FailureLocation"),
        }

    def _look(self, item: JobItem) -> tuple[bytes | None, bytes | None, str | None]:
        """``(output, failure, problem)`` of an item as S3 holds them now (None: not there;
        ``problem``: why S3 would not give them, after retries)."""
        try:
            output = self._get(item.output_location)
            if output is not None or item.state == "done" or not item.failure_location:
                return output, None, None
            return None, self._get(item.failure_location), None
        except AWSError as exc:
            return None, None, f"its output could not be read: {exc}"

    def _get(self, uri: str | None) -> bytes | None:
        if not uri:
            return None
        try:
            bucket, key = split_s3_uri(uri)
        except ValueError:
            return None  # an https:// location: not readable here
        try:
            answer = call_aws(
                self.s3_client, "get_object", policy=self.retry, Bucket=bucket, Key=key
            )
        except AWSError as exc:
            if exc.code in MISSING_CODES:
                return None
            raise
        data: bytes = answer["Body"].read()
        return data

    def _save(self, manifest: JobManifest, where: str | Path) -> None:
        save_manifest(manifest, where, self._s3_for(where), self.retry)

    def _s3_for(self, where: str | Path) -> Any:
        """The S3 client when the manifest lives on S3 (a local one needs no AWS client)."""
        return self.s3_client if isinstance(where, str) and where.startswith("s3://") else None

    def _read_output(self, body: bytes, manifest: JobManifest) -> tuple[Any, str | None]:
        """``(value, text)`` of an output; ValueError when it is not what the job expects."""
        if manifest.answers == "generate":
            value = _json(body)
            try:
                answer = TGIGenerate().answer(value)
            except InferenceError as exc:  # not a generate answer
                raise ValueError(str(exc)) from exc
            if not isinstance(answer, Answer):
                raise ValueError(f"the container answered an error: {answer.message}")
            return value, answer.text
        if "json" in manifest.accept.lower():
            return _json(body), None
        return None, None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc}): {body[:80]!r}") from exc


def _encode(body: object, index: int, content_type: str) -> bytes:
    """A body's bytes (:func:`~llm_twin_sdk.inference.invocation.encode_body`, limited to the
    types of :data:`Body`); InvalidParameterError naming the item for what cannot be sent."""
    if not isinstance(body, bytes | bytearray | str | Mapping | list | tuple):
        raise InvalidParameterError(
            f"body {index}: expected bytes, str, a mapping or a list, got {type(body).__name__}"
        )
    try:
        data = encode_body(body, content_type)[0]
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"body {index}: {exc}") from exc
    if not data:
        raise InvalidParameterError(f"body {index}: empty")
    return data
