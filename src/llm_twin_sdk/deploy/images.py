"""Container images for the serving engines, from the SageMaker Python SDK's image table
(``sagemaker.core.image_uris``: offline, but about a second to import, so imported lazily
when an image must be looked up; an explicit ``EndpointSpec.image_uri`` skips the lookup).
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ConfigurationError
from .spec import NEURON_FAMILIES, EndpointSpec, Engine, gpus_of

__all__ = ["ENGINE_FRAMEWORKS", "TEI_CPU_FRAMEWORK", "available_versions", "resolve_image_uri"]

ENGINE_FRAMEWORKS: dict[str, str] = {
    "tgi": "huggingface-llm",
    "vllm": "huggingface-vllm",
    "lmi": "djl-lmi",
    "tei": "huggingface-tei",
}
"""Serving engine -> framework name in the SageMaker image table (TEI on a CPU instance:
:data:`TEI_CPU_FRAMEWORK`)."""
TEI_CPU_FRAMEWORK = "huggingface-tei-cpu"


def _image_uris() -> Any:
    try:
        from sagemaker.core import image_uris
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ConfigurationError(
            "sagemaker-core is needed to look up container images: `pip install sagemaker-core`,"
            " or set EndpointSpec.image_uri"
        ) from exc
    return image_uris


@functools.cache
def available_versions(engine: Engine) -> tuple[str, ...]:
    """Container versions known for ``engine``, as the image table lists them, then aliases."""
    config = _image_uris().config_for_framework(ENGINE_FRAMEWORKS[engine])
    scope = config.get("inference", config)
    versions = list(scope.get("versions", {})) + list(scope.get("version_aliases", {}))
    return tuple(dict.fromkeys(versions))


def resolve_image_uri(spec: EndpointSpec, region: str) -> str:
    """The ECR image URI that serves ``spec`` in ``region``.

    Raises:
        ConfigurationError: unknown engine, version or region; the message lists valid ones.
    """
    if spec.image_uri:
        return spec.image_uri
    if spec.instance_type.split(".")[1] in NEURON_FAMILIES:
        raise ConfigurationError(
            f"{spec.instance_type} runs AWS Neuron chips, which need a Neuron image "
            "(e.g. the djl-neuronx or optimum-neuron containers); set EndpointSpec.image_uri"
        )
    framework = ENGINE_FRAMEWORKS.get(spec.engine)
    if spec.engine == "tei" and gpus_of(spec.instance_type) == 0:
        framework = TEI_CPU_FRAMEWORK
    if framework is None:
        raise ConfigurationError(
            f"unknown engine {spec.engine!r}; available: {', '.join(ENGINE_FRAMEWORKS)}"
        )
    if spec.image_version is not None and spec.image_version not in available_versions(spec.engine):
        raise ConfigurationError(
            f"unknown {spec.engine} image version {spec.image_version!r}; available: "
            + ", ".join(available_versions(spec.engine))
        )
    try:
        return str(
            _image_uris().retrieve(
                framework,
                region=region,
                version=spec.image_version,
                image_scope="inference",
                instance_type=spec.instance_type,
            )
        )
    except ValueError as exc:
        raise ConfigurationError(f"no {spec.engine} image for this spec: {exc}") from exc
