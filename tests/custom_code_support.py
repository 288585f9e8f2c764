"""The tiny custom-code project the tests deploy (examples/custom_inference), copied where a
test may change it, and the specs that point at it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llm_twin_sdk.deploy.custom_code import CustomCodeSpec
from llm_twin_sdk.deploy.spec import EndpointSpec

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_inference"
ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
BUCKET = "twin-models"


def copy_example(folder: Path) -> Path:
    """A copy of the example (serving/inference.py, model/weights.json) under ``folder``."""
    return Path(shutil.copytree(EXAMPLE, folder / "project"))


def code_spec(project: Path, **overrides: Any) -> CustomCodeSpec:
    """The project's code and weights on PyTorch 2.6, archives under s3://twin-models/custom."""
    values: dict[str, Any] = {
        "source_dir": project / "serving",
        "entry_point": "inference.py",
        "model_dir": project / "model",
        "framework_version": "2.6",
        "artifact_path": f"s3://{BUCKET}/custom",
    }
    return CustomCodeSpec(**{**values, **overrides})


def endpoint_spec(project: Path, **overrides: Any) -> EndpointSpec:
    """Endpoint ``twin-classifier`` on one ml.m5.xlarge running the project."""
    values: dict[str, Any] = {
        "name": "twin-classifier",
        "role_arn": ROLE,
        "engine": "pytorch",
        "instance_type": "ml.m5.xlarge",
        "custom_code": code_spec(project),
    }
    return EndpointSpec(**{**values, **overrides})
