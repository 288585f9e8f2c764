"""Deploy the LLM Twin to SageMaker, autoscale it, ask it, and tear everything down.

One :class:`~llm_twin_sdk.TwinDeployment` does it all: ``plan`` (endpoint and autoscaling
changes), ``up`` (deploy, wait, scale, return a twin answering from the endpoint) and
``down``. The twin retrieves as ``LLM_TWIN_*`` settings say (default: the embedded store).

This bills real money on real AWS (an ml.g5.2xlarge is about 1.5 USD per hour); read
docs/deployment.md first. ``--dry-run`` makes read-only calls only and prints the plan::

    python examples/deploy_sagemaker.py --region eu-central-1 --dry-run
    HF_TOKEN=hf_... python examples/deploy_sagemaker.py --region eu-central-1 --scale-to-zero

Without ``--role-arn`` the execution role ``llm-twin-sagemaker`` is created (or reused) with a
least-privilege policy; in a dry run its ARN is only computed. Teardown runs even when a
step fails, unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llm_twin_sdk import LLMTwinError, TwinDeployment
from llm_twin_sdk.aws import AWSClients, call_aws
from llm_twin_sdk.deploy.iam import ensure_execution_role, execution_role_arn
from llm_twin_sdk.deploy.spec import EndpointSpec, InferenceComponentSpec
from llm_twin_sdk.deploy.waiting import WaitProgress
from llm_twin_sdk.rag.sources import load_documents
from llm_twin_sdk.scaling import ScaleToZero, TargetTracking

ROLE_NAME = "llm-twin-sagemaker"
CORPUS = Path(__file__).parent / "data" / "corpus.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="llm-twin", help="endpoint name")
    parser.add_argument("--region", default=None, help="AWS region (default: your profile's)")
    parser.add_argument("--profile", default=None, help="AWS profile")
    parser.add_argument("--role-arn", default=None, help="existing SageMaker execution role")
    parser.add_argument("--instance-type", default="ml.g5.2xlarge")
    parser.add_argument("--model-id", default="mlabonne/TwinLlama-3.1-8B-DPO")
    parser.add_argument(
        "--scale-to-zero",
        action="store_true",
        help="deploy as an inference component that scales to zero copies when idle",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    parser.add_argument("--keep", action="store_true", help="do not tear down at the end")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for InService")
    return parser.parse_args(argv)


def role_arn(args: argparse.Namespace, aws: AWSClients) -> str:
    if args.role_arn:
        return str(args.role_arn)
    if args.dry_run:  # read-only: compute the ARN the role would have
        account = call_aws(aws.client("sts"), "get_caller_identity")["Account"]
        return execution_role_arn(account, ROLE_NAME)
    return ensure_execution_role(ROLE_NAME, aws=aws)


def show_progress(progress: WaitProgress) -> None:
    print(f"  ... {progress}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    aws = AWSClients(region=args.region, profile=args.profile)
    spec = EndpointSpec(
        name=args.name,
        role_arn=role_arn(args, aws),
        model_id=args.model_id,
        instance_type=args.instance_type,
        hf_token=os.environ.get("HF_TOKEN") or None,
        components=InferenceComponentSpec(min_instances=0, max_instances=1)
        if args.scale_to_zero
        else None,
    )
    tracking = TargetTracking(
        metric="invocations",
        target=10,
        min_capacity=0 if args.scale_to_zero else 1,
        max_capacity=2,
    )
    policy = ScaleToZero(target_tracking=tracking) if args.scale_to_zero else tracking
    deployment = TwinDeployment(spec, policy, aws=aws)  # retrieval: TwinSettings() (LLM_TWIN_*)
    print(deployment.plan())  # endpoint and autoscaling changes, describe calls only
    if args.dry_run:
        return 0

    try:
        with deployment.up(progress=show_progress, timeout_s=args.timeout) as twin:
            print(f"deployed: {spec.name}")
            print("the same twin from settings, in any process:")
            for name, value in deployment.environment().items():
                print(f"  export {name}={value}")
            try:
                twin.ingest(load_documents(CORPUS))  # the sample corpus; skipped when stored
                answer = twin.ask("How should I size MAX_TOTAL_TOKENS?")
                print(f"answer: {answer.text} ({len(answer.sources)} sources)")
            except LLMTwinError as exc:  # report, then tear down all the same
                print(f"ask failed: {exc}")
    finally:
        if not args.keep:
            print(f"tearing down {spec.name} ...")
            deployment.down()
            print("done: no endpoint, config, model, component or scaling rule is left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
