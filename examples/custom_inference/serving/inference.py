"""A tiny classifier behind the SageMaker inference toolkit's four handlers, as the LLM Twin
book's first deployment writes its ``inference.py``: CSV rows (or JSON ``instances``) of
features in, a label per row out, as JSON or CSV. Pure Python, so the tests stay fast."""

import json
import os
from typing import Any


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load the weights the archive put at its root."""
    with open(os.path.join(model_dir, "weights.json"), encoding="utf-8") as file:
        model: dict[str, Any] = json.load(file)
    return model


def input_fn(request_body: bytes | str, request_content_type: str) -> list[list[float]]:
    """Rows of floats from ``text/csv`` or ``application/json`` ({"instances": [[...]]})."""
    if isinstance(request_body, bytes):
        request_body = request_body.decode("utf-8")
    if request_content_type.startswith("text/csv"):
        lines = [line for line in request_body.splitlines() if line.strip()]
        return [[float(value) for value in line.split(",")] for line in lines]
    if request_content_type.startswith("application/json"):
        rows: list[list[float]] = json.loads(request_body)["instances"]
        return rows
    raise ValueError(f"unsupported content type {request_content_type!r}")


def predict_fn(input_data: list[list[float]], model: dict[str, Any]) -> list[str]:
    """The label of the highest linear score, per row."""
    labels: list[str] = []
    for row in input_data:
        if len(row) != len(model["weights"][0]):
            raise ValueError(f"expected {len(model['weights'][0])} features, got {len(row)}")
        scores = [
            sum(w * x for w, x in zip(weights, row, strict=True)) + bias
            for weights, bias in zip(model["weights"], model["bias"], strict=True)
        ]
        labels.append(model["labels"][scores.index(max(scores))])
    return labels


def output_fn(prediction: list[str], accept: str) -> str:
    """JSON ``{"labels": [...]}`` or one CSV line per label."""
    if accept.startswith("application/json"):
        return json.dumps({"labels": prediction})
    if accept.startswith("text/csv"):
        return "".join(f"{label}\n" for label in prediction)
    raise ValueError(f"unsupported accept {accept!r}")
