"""The SageMaker inference toolkit's serving loop, in-process: a framework container running
the user's ``inference.py`` from a ``model.tar.gz``, for the wire server and a local
``/invocations`` server.

It unpacks the archive as SageMaker does (into ``/opt/ml/model``, here a temporary folder),
imports ``code/<SAGEMAKER_PROGRAM>`` and answers each request as the toolkit does:
``model_fn(model_dir)`` once, then ``input_fn(body, content_type)`` ->
``predict_fn(data, model)`` -> ``output_fn(prediction, accept)``; ``Accept`` absent or
``*/*`` is ``application/json``. A handler's exception is the container's 500 (SageMaker
relays it as a 424 ``ModelError``). Example::

    container = Toolkit(archive_bytes, program="inference.py")
    body, content_type = container(b"1,2\\n", "text/csv", None)
"""

from __future__ import annotations

import importlib.util
import io
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from .server import Exchange, FakeServer, Request

__all__ = ["ContainerServer", "HandlerFailedError", "Toolkit", "deployed_toolkit"]


class HandlerFailedError(Exception):
    """A handler of the user's code raised: the container answers 500 with this message."""


class Toolkit:
    """A framework container loaded from ``archive`` (the bytes of a ``model.tar.gz``)."""

    def __init__(self, archive: bytes, *, program: str) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="fake-opt-ml-model-")
        self.model_dir = Path(self._folder.name)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(self.model_dir, filter="data")
        files = (p for p in self.model_dir.rglob("*") if p.is_file())
        self.members = sorted(p.relative_to(self.model_dir).as_posix() for p in files)
        self.module = self._load(self.model_dir / "code" / program)
        self.model = self.module.model_fn(str(self.model_dir))
        self.calls = 0

    @staticmethod
    def _load(path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"user_inference_{id(path)}", path)
        assert spec is not None, path
        assert spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def __call__(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str]:
        """The container's answer to one ``/invocations`` request: ``(body, content type)``."""
        self.calls += 1
        kind = "application/json" if accept in (None, "", "*/*") else str(accept)
        try:
            data: Any = self.module.input_fn(body, content_type or "application/json")
            prediction = self.module.predict_fn(data, self.model)
            answer = self.module.output_fn(prediction, kind)
        except Exception as exc:
            raise HandlerFailedError(f"{type(exc).__name__}: {exc}") from exc
        return (answer.encode() if isinstance(answer, str) else bytes(answer)), kind

    def close(self) -> None:
        self._folder.cleanup()


def deployed_toolkit(aws: Any, endpoint: str, cache: dict[str, Toolkit]) -> Toolkit | None:
    """The framework container that endpoint ``endpoint`` runs on moto (``aws``: its clients):
    its model's ``ModelDataUrl`` archive from moto's S3 with ``SAGEMAKER_PROGRAM``; ``None``
    when the endpoint is not there or runs no user code. Loaded once per archive (``cache``)."""
    sm = aws.client("sagemaker")
    try:
        live = sm.describe_endpoint(EndpointName=endpoint)
        config = sm.describe_endpoint_config(EndpointConfigName=live["EndpointConfigName"])
        model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    except (sm.exceptions.ClientError, KeyError):
        return None
    container = model.get("PrimaryContainer") or {}
    program = (container.get("Environment") or {}).get("SAGEMAKER_PROGRAM")
    url = container.get("ModelDataUrl")
    if program is None or url is None:
        return None
    if url not in cache:
        bucket, key = url.removeprefix("s3://").split("/", 1)
        archive = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        cache[url] = Toolkit(archive, program=program)
    return cache[url]


class ContainerServer(FakeServer[Request]):
    """A framework container's own HTTP contract on 127.0.0.1 (``GET /ping``,
    ``POST /invocations``), as ``docker run <image> serve`` exposes it: what ``HttpBackend``'s
    plain invoke talks to. A handler's failure is a 500 with its message."""

    route_table = (("GET", r"/ping", "ping"), ("POST", r"/invocations", "invoke"))

    def __init__(self, toolkit: Toolkit) -> None:
        super().__init__()
        self.toolkit = toolkit

    def answer(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.route == "ping":
            exchange.send(200, b"")
            return
        if request.route != "invoke":
            exchange.json(404, {"message": f"no route {request.path}"})
            return
        headers = request.headers
        try:
            raw, kind = self.toolkit(
                request.raw, headers.get("content-type"), headers.get("accept")
            )
        except HandlerFailedError as exc:
            exchange.json(500, {"message": str(exc)})
            return
        exchange.send(200, raw, kind)
