"""Asynchronous-inference jobs: submit + collect throughput at 1, 4 and 16 requests in flight.

A moto server (S3, SageMaker) and the SageMaker-runtime wire server (its InvokeEndpointAsync
route writes each answer to moto's S3) on 127.0.0.1, both in this process. Each request is
one S3 upload, one InvokeEndpointAsync and one or two S3 reads, so the figure is the SDK's
overhead per request over loopback servers written in Python, not SageMaker's speed (a real
endpoint takes seconds per generation; this measures what the client adds around it).

    .venv/bin/python benchmarks/async_jobs.py [--items 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from moto.server import ThreadedMotoServer

from fakes.sagemaker import Json, WireServer
from llm_twin_sdk import AsyncInferenceSpec, AsyncJobs, Deployer, EndpointSpec
from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.retry import RetryPolicy


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    port = _port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        aws = AWSClients(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")
        aws.client("s3").create_bucket(Bucket="twin-jobs")
        spec = EndpointSpec(
            name="twin-async",
            role_arn="arn:aws:iam::123456789012:role/twin",
            instance_type="ml.g4dn.xlarge",
            image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:latest",
            async_inference=AsyncInferenceSpec(output_path="s3://twin-jobs/out"),
        )
        Deployer(aws=aws, poll_interval_s=0.01).deploy(spec)
        with WireServer(default=Json([{"generated_text": "ok"}]), aws=aws) as wire:
            runtime = AWSClients(region="us-east-1", endpoint_url=wire.url)
            prompts = [f"prompt {n}" for n in range(args.items)]
            print(f"{args.items} prompts, submit + collect, moto + wire server on 127.0.0.1")
            for in_flight in (1, 4, 16):
                jobs = AsyncJobs(
                    "twin-async",
                    input_path="s3://twin-jobs/in",
                    runtime_client=runtime.client("sagemaker-runtime"),
                    s3_client=aws.client("s3"),
                    retry=RetryPolicy(max_attempts=1),
                    max_in_flight=in_flight,
                )
                with tempfile.TemporaryDirectory() as folder:
                    start = time.perf_counter()
                    job = jobs.submit_prompts(prompts, manifest=Path(folder) / "job.json")
                    sent = time.perf_counter()
                    results = job.collect(timeout_s=60, poll_initial_s=0.05)
                    done = time.perf_counter()
                assert all(r.text == "ok" for r in results)
                print(
                    f"  {in_flight:>2} in flight: submit {sent - start:5.2f} s, collect "
                    f"{done - sent:5.2f} s, {args.items / (done - start):6.1f} requests/s"
                )
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
