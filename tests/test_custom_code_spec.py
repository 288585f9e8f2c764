"""Your own inference code (``EndpointSpec(engine="pytorch", custom_code=...)``): the spec's
checks, the image from the offline table, the container's environment, the role's statement,
and the deterministic ``model.tar.gz`` (weights at the root, code under ``code/``)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from custom_code_support import code_spec, copy_example, endpoint_spec
from llm_twin_sdk.deploy.iam import execution_policy
from llm_twin_sdk.deploy.images import check_framework_image, resolve_image_uri
from llm_twin_sdk.deploy.model_archive import build_model_archive, content_hash
from llm_twin_sdk.deploy.spec import SecuritySpec
from llm_twin_sdk.errors import ConfigurationError, InvalidParameterError

ARTIFACTS = "s3://twin-models/custom"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


# -- the spec's checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"entry_point": "missing.py"}, "is not a file"),
        ({"entry_point": "../inference.py"}, "must be a path inside source_dir"),
        ({"entry_point": "/etc/inference.py"}, "must be a path inside source_dir"),
        ({"entry_point": "inference.sh"}, "must be a Python file"),
        ({"entry_point": ""}, "must be a path inside source_dir"),
        ({"source_dir": "no/such/folder"}, "is not a folder"),
        ({"model_dir": "no/such/weights"}, "is not a folder"),
        ({"artifact_path": "twin-models/custom"}, "must be an S3 URI"),
        ({"framework_version": "2 6"}, "must be a version"),
        ({"log_level": 99}, "log_level"),
    ],
)
def test_bad_custom_code_is_refused_naming_the_field(
    project: Path, overrides: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidParameterError, match="CustomCodeSpec") as info:
        code_spec(project, **overrides)
    assert words in str(info.value)


def test_an_entry_point_linking_out_of_source_dir_is_refused(project: Path) -> None:
    outside = project / "outside.py"
    outside.write_text("print('not in source_dir')\n")
    (project / "serving" / "link.py").symlink_to(outside)
    with pytest.raises(InvalidParameterError, match="points outside source_dir"):
        code_spec(project, entry_point="link.py")


def test_weights_holding_a_code_folder_would_clash_with_the_code(project: Path) -> None:
    (project / "model" / "code").mkdir()
    with pytest.raises(InvalidParameterError, match="'code' entry"):
        code_spec(project)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"custom_code": None}, "engine 'pytorch' needs custom_code"),
        ({"engine": "tgi"}, "set engine='pytorch'"),
        ({"model_data": "s3://twin-models/elsewhere/model.tar.gz"}, "leave it unset"),
        ({"image_version": "2.6"}, "custom_code.framework_version"),
        ({"environment": {"SAGEMAKER_PROGRAM": "other.py"}}, "SAGEMAKER_PROGRAM"),
    ],
)
def test_endpoint_spec_and_custom_code_must_agree(
    project: Path, overrides: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidParameterError, match="EndpointSpec") as info:
        endpoint_spec(project, **overrides)
    assert words in str(info.value)


def test_network_isolation_is_fine_with_the_archive_in_s3(project: Path) -> None:
    spec = endpoint_spec(project, security=SecuritySpec(network_isolation=True))
    assert spec.security.network_isolation


def test_the_container_environment_is_the_inference_toolkits(project: Path) -> None:
    spec = endpoint_spec(project, environment={"MODEL_THRESHOLD": "0.5", "API_TOKEN": "s3cret"})
    assert spec.container_environment(reveal_secrets=True) == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "MODEL_THRESHOLD": "0.5",
        "API_TOKEN": "s3cret",
    }
    assert "s3cret" not in str(spec.container_environment())
    assert "HF_MODEL_ID" not in spec.container_environment()
    (project / "serving" / "handlers").mkdir()
    (project / "serving" / "handlers" / "main.py").write_text("", encoding="utf-8")
    nested = code_spec(project, entry_point="handlers/main.py")
    assert nested.environment()["SAGEMAKER_PROGRAM"] == "handlers/main.py"


def test_the_role_may_read_the_archives_and_nothing_else_in_s3(project: Path) -> None:
    document = execution_policy(custom_code=code_spec(project))
    reads = [s for s in document["Statement"] if s["Sid"] == "ModelArchiveRead"]
    assert reads == [
        {
            "Sid": "ModelArchiveRead",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::twin-models/custom/*",
        }
    ]
    assert not any("s3:PutObject" in str(s["Action"]) for s in document["Statement"])


# -- the image, from the offline table ---------------------------------------------------------


def test_the_instance_picks_the_cpu_or_the_gpu_image(project: Path) -> None:
    cpu = resolve_image_uri(endpoint_spec(project), "eu-central-1")
    gpu = resolve_image_uri(endpoint_spec(project, instance_type="ml.g5.xlarge"), "eu-central-1")
    assert cpu == "763104351884.dkr.ecr.eu-central-1.amazonaws.com/pytorch-inference:2.6-cpu-py312"
    assert gpu == "763104351884.dkr.ecr.eu-central-1.amazonaws.com/pytorch-inference:2.6-gpu-py312"
    older = code_spec(project, framework_version="2.1.0", py_version="py310")
    uri = resolve_image_uri(endpoint_spec(project, custom_code=older), "us-east-1")
    assert uri.endswith("pytorch-inference:2.1.0-cpu-py310")


def test_an_unknown_framework_or_python_version_lists_the_known_ones(project: Path) -> None:
    unknown = endpoint_spec(project, custom_code=code_spec(project, framework_version="9.9"))
    with pytest.raises(ConfigurationError, match=r"custom_code.framework_version.*2\.6\.0"):
        resolve_image_uri(unknown, "us-east-1")
    python = endpoint_spec(project, custom_code=code_spec(project, py_version="py27"))
    with pytest.raises(ConfigurationError, match=r"py312; got 'py27'"):
        resolve_image_uri(python, "us-east-1")


def test_a_gpu_only_version_on_a_cpu_instance_is_refused(project: Path) -> None:
    # No PyTorch version of the shipped table is GPU-only; this table's 3.0 is.
    table = {
        "processors": ["cpu", "gpu"],
        "version_aliases": {"3.0": "3.0.0"},
        "versions": {"3.0.0": {"processors": ["gpu"], "py_versions": ["py312"]}},
    }
    code = code_spec(project, framework_version="3.0")
    with pytest.raises(ConfigurationError, match="GPU-only, and this instance is CPU"):
        check_framework_image(table, code, "cpu")
    assert check_framework_image(table, code, "gpu") == ("3.0", "py312")


# -- the archive -------------------------------------------------------------------------------


def _tar(raw: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz")


def test_the_archive_has_the_weights_at_its_root_and_the_code_under_code(
    project: Path, tmp_path: Path
) -> None:
    cache = project / "serving" / "__pycache__"
    cache.mkdir()
    (cache / "inference.cpython-311.pyc").write_bytes(b"\x00cache")
    archive = build_model_archive(code_spec(project), tmp_path)
    assert archive.members == ("code/inference.py", "weights.json")
    with _tar(archive.path.read_bytes()) as tar:
        entries = tar.getmembers()
        assert [e.name for e in entries] == ["code/inference.py", "weights.json"]
        assert {(e.mtime, e.uid, e.gid, e.uname, e.gname) for e in entries} == {(0, 0, 0, "", "")}
        script = tar.extractfile("code/inference.py")
        assert script is not None
        assert script.read() == (project / "serving" / "inference.py").read_bytes()
    assert archive.describe().startswith("2 file(s), ")


def test_the_same_content_gives_the_same_bytes(project: Path, tmp_path: Path) -> None:
    folders = [tmp_path / name for name in ("a", "b", "c")]
    for folder in folders:
        folder.mkdir()
    first = build_model_archive(code_spec(project), folders[0])
    for path in (project / "serving" / "inference.py", project / "model" / "weights.json"):
        os.utime(path, (1_000_000, 1_000_000))  # other times: the same archive
    second = build_model_archive(code_spec(project), folders[1])
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256
    assert len(first.sha256) == 64
    assert first.path.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # the gzip header's MTIME: 0
    # the content hash is the tar's, before gzip (another zlib, the same hash), and plan
    # gets it without compressing anything
    inner = gzip.decompress(first.path.read_bytes())
    assert hashlib.sha256(inner).hexdigest() == first.sha256
    assert content_hash(code_spec(project)) == (first.sha256, first.members)

    (project / "serving" / "inference.py").write_text("# changed\n", encoding="utf-8")
    third = build_model_archive(code_spec(project), folders[2])
    assert third.sha256 != first.sha256


def test_a_twin_deployment_refuses_custom_code_naming_invoke(project: Path) -> None:
    from llm_twin_sdk import TwinDeployment

    with pytest.raises(ConfigurationError, match=r"endpoint.client\(\).invoke"):
        TwinDeployment(endpoint_spec(project))
