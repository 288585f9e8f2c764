"""Container images for the serving engines, from the SageMaker Python SDK's image table
(``sagemaker.core.image_uris``: offline, but about a second to import, so imported lazily
when an image must be looked up; an explicit ``EndpointSpec.image_uri`` skips the lookup).
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ConfigurationError
from .custom_code import CustomCodeSpec
from .spec import NEURON_FAMILIES, EndpointSpec, Engine, gpus_of

__all__ = [
    "ENGINE_FRAMEWORKS",
    "TEI_CPU_FRAMEWORK",
    "available_versions",
    "framework_image_uri",
    "resolve_image_uri",
]

ENGINE_FRAMEWORKS: dict[str, str] = {
    "tgi": "huggingface-llm",
    "vllm": "huggingface-vllm",
    "lmi": "djl-lmi",
    "tei": "huggingface-tei",
}
"""Serving engine -> framework name in the SageMaker image table (TEI on a CPU instance:
:data:`TEI_CPU_FRAMEWORK`); framework containers (``"pytorch"``) take their version from
``custom_code`` (:func:`framework_image_uri`)."""
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
    if spec.custom_code is not None:
        return framework_image_uri(spec.custom_code, spec.instance_type, region)
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


def check_framework_image(
    table: dict[str, Any], code: CustomCodeSpec, processor: str
) -> tuple[str, str]:
    """``(version, py_version)`` of ``code`` in a framework's inference ``table`` (the image
    table's ``"inference"`` scope), or ConfigurationError naming what the table offers: an
    unknown version, a Python the version's images lack, or an instance's processor (``cpu``
    / ``gpu``) its images do not serve."""
    what = f"{code.framework} {code.framework_version}"
    versions, aliases = table.get("versions", {}), table.get("version_aliases", {})
    full = aliases.get(code.framework_version, code.framework_version)
    if full not in versions:
        raise ConfigurationError(
            f"custom_code.framework_version: no {code.framework} inference image for "
            f"{code.framework_version!r}; available: " + ", ".join([*versions, *aliases])
        )
    entry = versions[full]
    pythons = list(entry.get("py_versions") or table.get("py_versions") or [])
    py_version = code.py_version or (pythons[-1] if pythons else None)
    if py_version is None or (pythons and py_version not in pythons):
        raise ConfigurationError(
            f"custom_code.py_version: {what} images are built for "
            + ", ".join(pythons)
            + f"; got {code.py_version!r}"
        )
    processors = list(entry.get("processors") or table.get("processors") or ["cpu", "gpu"])
    if processor not in processors:
        only = "/".join(p.upper() for p in processors)
        raise ConfigurationError(
            f"instance_type: {what} images are {only}-only, and this instance is "
            f"{processor.upper()}; choose a {only} instance type or another framework_version"
        )
    return code.framework_version, py_version


def framework_image_uri(code: CustomCodeSpec, instance_type: str, region: str) -> str:
    """The framework inference image for ``code`` on ``instance_type`` in ``region`` (CPU or
    GPU image by the instance), from the offline image table.

    Example: ``pytorch-inference:2.6-cpu-py312`` for version ``"2.6"`` on ``ml.m5.xlarge``.

    Raises:
        ConfigurationError: unknown framework version, Python version or region, or a
            version without images for the instance's processor.
    """
    config = _image_uris().config_for_framework(code.framework)
    processor = "gpu" if gpus_of(instance_type) else "cpu"
    version, py_version = check_framework_image(config.get("inference", config), code, processor)
    try:
        return str(
            _image_uris().retrieve(
                code.framework,
                region=region,
                version=version,
                py_version=py_version,
                image_scope="inference",
                instance_type=instance_type,
            )
        )
    except ValueError as exc:
        raise ConfigurationError(f"no {code.framework} image for this spec: {exc}") from exc
