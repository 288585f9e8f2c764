"""examples/deploy_sagemaker.py against moto (real HTTP on 127.0.0.1, no AWS account)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from llm_twin_sdk import AWSClients

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "deploy_sagemaker.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_sagemaker", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_the_plan_and_writes_nothing(moto_server: str, moto_aws: AWSClients) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_server, "HF_TOKEN": "hf_dry_run_secret"}
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--region",
            "us-east-1",
            "--dry-run",
            "--instance-type",
            "ml.g4dn.xlarge",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "create" in out
    assert "llm-twin" in out
    assert "huggingface-pytorch-tgi-inference" in out
    assert "Autoscaling plan for endpoint/llm-twin/variant/AllTraffic" in out
    assert "hf_dry_run_secret" not in out + result.stderr
    sm = moto_aws.client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_models()["Models"] == []
    assert moto_aws.client("iam").list_roles()["Roles"] == []
    scaling = moto_aws.client("application-autoscaling")
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_full_run_deploys_scales_and_tears_down(
    moto_server: str,
    moto_aws: AWSClients,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # moto answers invoke_endpoint with canned results: make it a TGI Messages API reply.
    reply = {
        "choices": [
            {"message": {"content": "A model that writes like you."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7},
    }
    canned = {
        "account_id": "123456789012",
        "region": "us-east-1",
        "results": [{"Body": json.dumps(reply), "ContentType": "application/json"}],
    }
    request = urllib.request.Request(
        f"{moto_server}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(canned).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    example = _load_example()
    assert example.main(["--region", "us-east-1", "--instance-type", "ml.g4dn.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "deployed: llm-twin" in out
    assert "answer: A model that writes like you. (3 sources)" in out  # the sample corpus
    assert "export LLM_TWIN_SAGEMAKER_ENDPOINT=llm-twin" in out
    assert "tearing down" in out
    sm = moto_aws.client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    scaling = moto_aws.client("application-autoscaling")
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    roles = [r["RoleName"] for r in moto_aws.client("iam").list_roles()["Roles"]]
    assert roles == ["llm-twin-sagemaker"]  # the role is kept for the next deployment
