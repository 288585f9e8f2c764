"""Container images: looked up offline in sagemaker-core's table, lazily; explicit URIs win."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from llm_twin_sdk.deploy import images
from llm_twin_sdk.deploy.images import ENGINE_FRAMEWORKS, available_versions, resolve_image_uri
from llm_twin_sdk.deploy.spec import EndpointSpec, Engine
from llm_twin_sdk.errors import ConfigurationError, InvalidParameterError

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
CUSTOM = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/my-tgi:custom"


def spec(**overrides: Any) -> EndpointSpec:
    fields: dict[str, Any] = {"name": "twin", "role_arn": ROLE}
    fields.update(overrides)
    return EndpointSpec(**fields)


def ecr_uri(region: str, repository: str) -> re.Pattern[str]:
    return re.compile(
        rf"^\d{{12}}\.dkr\.ecr\.{re.escape(region)}\.amazonaws\.com/{repository}:[\w.-]+$"
    )


@pytest.mark.parametrize(
    ("engine", "repository"),
    [
        ("tgi", "huggingface-pytorch-tgi-inference"),
        ("vllm", "huggingface-vllm"),
        ("lmi", "djl-inference"),
    ],
)
@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "ap-northeast-1"])
def test_resolves_an_ecr_image_in_the_region(engine: str, repository: str, region: str) -> None:
    uri = resolve_image_uri(spec(engine=engine), region)
    assert ecr_uri(region, repository).match(uri), uri


def test_tgi_image_is_a_gpu_image() -> None:
    assert "-gpu-" in resolve_image_uri(spec(), "us-east-1")


def test_pinned_version_is_used() -> None:
    uri = resolve_image_uri(spec(image_version="2.4.0"), "us-east-1")
    assert ecr_uri("us-east-1", "huggingface-pytorch-tgi-inference").match(uri)
    assert "tgi2.4.0" in uri
    assert resolve_image_uri(spec(image_version="2.4.0"), "us-east-1") == uri  # deterministic


def test_version_alias_resolves() -> None:
    alias = next(v for v in available_versions("tgi") if v.count(".") == 1)
    uri = resolve_image_uri(spec(image_version=alias), "us-west-2")
    assert f"tgi{alias}" in uri


def test_explicit_image_uri_skips_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup() -> Any:
        raise AssertionError("the image table must not be consulted")

    monkeypatch.setattr(images, "_image_uris", no_lookup)
    for engine in ENGINE_FRAMEWORKS:
        s = spec(engine=engine, image_uri=CUSTOM, image_version="0.0.0-never-checked")
        assert resolve_image_uri(s, "mars-north-1") == CUSTOM


def test_explicit_image_uri_works_without_sagemaker_core(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import sagemaker.core` raise ImportError
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    monkeypatch.setitem(sys.modules, "sagemaker.core", None)
    assert resolve_image_uri(spec(image_uri=CUSTOM), "us-east-1") == CUSTOM
    with pytest.raises(ConfigurationError, match=r"sagemaker-core.*image_uri"):
        resolve_image_uri(spec(), "us-east-1")


def test_images_module_imports_sagemaker_lazily() -> None:
    code = (
        "import sys, llm_twin_sdk.deploy.images, llm_twin_sdk.deploy.spec;"
        "assert not any(m == 'sagemaker' or m.startswith('sagemaker.') for m in sys.modules),"
        " sorted(m for m in sys.modules if m.startswith('sagemaker'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_version_lists_the_available_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_image_uri(spec(image_version="99.1"), "us-east-1")
    message = str(info.value)
    assert "'99.1'" in message
    assert "tgi" in message
    assert "available: " in message
    for version in available_versions("tgi"):
        assert version in message


@pytest.mark.parametrize("engine", ["vllm", "lmi"])
def test_unknown_version_of_other_engines(engine: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"unknown {engine} image version.*available: "):
        resolve_image_uri(spec(engine=engine, image_version="0.0.1"), "us-east-1")


def test_unknown_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"mars-east-1") as info:
        resolve_image_uri(spec(), "mars-east-1")
    assert "us-east-1" in str(info.value)  # the supported regions are listed
    assert info.value.__cause__ is not None


def test_unknown_engine_lists_the_engines() -> None:
    # the spec refuses unknown engines, copies included; one built without validation
    # (model_construct) still gets a clear error from the lookup
    with pytest.raises(InvalidParameterError, match="engine"):
        spec().model_copy(update={"engine": "triton"})
    bad = EndpointSpec.model_construct(**{**dict(spec()), "engine": "triton"})
    with pytest.raises(
        ConfigurationError, match=r"unknown engine 'triton'; available: tgi, vllm, lmi"
    ):
        resolve_image_uri(bad, "us-east-1")


def test_cpu_instance_has_no_tgi_image() -> None:
    with pytest.raises(ConfigurationError, match="no tgi image"):
        resolve_image_uri(spec(instance_type="ml.c5.xlarge"), "us-east-1")


@pytest.mark.parametrize("engine", ["tgi", "vllm", "lmi"])
def test_available_versions(engine: Engine) -> None:
    versions = available_versions(engine)
    assert isinstance(versions, tuple)
    assert len(versions) > 3
    assert len(set(versions)) == len(versions)  # aliases do not repeat versions
    assert all(isinstance(v, str) and v for v in versions)
    assert available_versions(engine) is versions  # cached: the table is read once


def test_available_versions_include_known_releases() -> None:
    assert {"2.4.0", "3.0"} <= set(available_versions("tgi"))
    assert "latest" in available_versions("lmi")


@pytest.mark.parametrize("instance_type", ["ml.inf2.xlarge", "ml.trn1.2xlarge"])
def test_neuron_instances_need_an_explicit_image(instance_type: str) -> None:
    with pytest.raises(ConfigurationError, match="Neuron"):
        resolve_image_uri(spec(instance_type=instance_type, engine="lmi"), "us-east-1")
    assert (
        resolve_image_uri(spec(instance_type=instance_type, image_uri="my/neuron:1"), "us-east-1")
        == "my/neuron:1"
    )
