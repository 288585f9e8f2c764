"""SecuritySpec: validation (field named), names (hashes), requests, plans, the spec file and
the execution role's statements — pure, no AWS. The AWS calls: test_security_aws.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llm_twin_sdk import SecuritySpec
from llm_twin_sdk.cli.specfile import load_spec
from llm_twin_sdk.deploy.iam import execution_policy
from llm_twin_sdk.deploy.plan import build_plan
from llm_twin_sdk.deploy.requests import check_spec, endpoint_config_request, model_request
from llm_twin_sdk.deploy.security import security_statements
from llm_twin_sdk.deploy.spec import EndpointSpec, InferenceComponentSpec
from llm_twin_sdk.errors import InvalidParameterError, SpecFileError

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = "arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
SUBNETS = ("subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c")
GROUPS = ("sg-0123456789abcdef0",)
VPC = {"subnets": SUBNETS, "security_group_ids": GROUPS}
ARCHIVE = "s3://twin-models/twin/model.tar.gz"


def spec(**overrides: Any) -> EndpointSpec:
    values: dict[str, Any] = {"name": "twin", "role_arn": ROLE, "instance_type": "ml.m5.xlarge"}
    return EndpointSpec(**{**values, **overrides})


def ic(**overrides: Any) -> EndpointSpec:
    parts = InferenceComponentSpec(accelerators=0, cpu_cores=2, memory_mb=4096)
    return spec(components=parts, **overrides)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("security", "field", "says"),
    [
        ({"subnets": ["subnet-xyz"], "security_group_ids": GROUPS}, "subnets", "not a subnet id"),
        ({"subnets": ["vpc-0a1b2c3d"], "security_group_ids": GROUPS}, "subnets", "not a subnet"),
        ({"subnets": SUBNETS, "security_group_ids": ["sg-12"]}, "security_group_ids", "not a sg"),
        ({"subnets": SUBNETS * 2, "security_group_ids": GROUPS}, "subnets", "at most once"),
        (
            {"subnets": [f"subnet-{i:08x}" for i in range(17)], "security_group_ids": GROUPS},
            "subnets",
            "at most 16",
        ),
        (
            {"subnets": SUBNETS, "security_group_ids": [f"sg-{i:08x}" for i in range(6)]},
            "security_group_ids",
            "at most 5",
        ),
        ({"security_group_ids": GROUPS}, "subnets", "at least 1 subnet"),
        ({"subnets": SUBNETS}, "security_group_ids", "at least 1 security group"),
        ({"volume_kms_key_id": "alias/twin"}, "volume_kms_key_id", "must be a KMS key ARN"),
        ({"volume_kms_key_id": KEY[-36:]}, "volume_kms_key_id", "must be a KMS key ARN"),
        ({"output_kms_key_id": KEY.replace(":kms:", ":s3:")}, "output_kms_key_id", "KMS key"),
        ({"network_isolation": "sometimes"}, "network_isolation", "boolean"),
        ({"firewall": True}, "firewall", "Extra inputs"),
    ],
)
def test_bad_security_names_the_field(security: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(InvalidParameterError, match=rf"security\.{field}: .*{says}"):
        spec(security=security)


def test_a_volume_key_on_an_instance_with_local_storage_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"security\.volume_kms_key_id: ml\.g5"):
        spec(instance_type="ml.g5.2xlarge", security={"volume_kms_key_id": KEY})
    # the same key on EBS-only families is fine
    for instance_type in ("ml.m5.xlarge", "ml.p3.2xlarge", "ml.inf2.xlarge"):
        assert spec(instance_type=instance_type, security={"volume_kms_key_id": KEY})


def test_network_isolation_needs_the_weights_in_s3() -> None:
    with pytest.raises(InvalidParameterError, match=r"security\.network_isolation: .*model_data"):
        spec(security={"network_isolation": True})
    isolated = spec(model_data=ARCHIVE, security={"network_isolation": True})
    assert isolated.security.network_isolation


def test_a_real_time_endpoint_refuses_an_output_key_before_any_call() -> None:
    real_time = spec(security={"output_kms_key_id": KEY})  # valid alone: async may use it
    with pytest.raises(InvalidParameterError, match=r"security\.output_kms_key_id: .*real-time"):
        check_spec(real_time)


def test_security_is_frozen_and_off_by_default() -> None:
    default = spec().security
    assert default == SecuritySpec()
    assert (default.network_fields(), default.hashed(), default.describe()) == ({}, {}, {})
    with pytest.raises(Exception, match="frozen"):
        default.network_isolation = True  # type: ignore[misc]  # the assignment is the test


# -- names: part of the hash, so a change is an update -----------------------------------------


def test_names_without_security_are_those_of_earlier_versions() -> None:
    # Pinned: an endpoint deployed before SecuritySpec existed must not be "updated".
    plain = EndpointSpec(name="t", role_arn="arn:aws:iam::123456789012:role/x")
    assert (plain.model_name, plain.endpoint_config_name) == ("t-dab35864", "t-ace0c18e")


@pytest.mark.parametrize(
    ("security", "model_changes"),
    [
        (VPC, True),
        ({**VPC, "subnets": SUBNETS[:1]}, True),
        ({"network_isolation": True}, True),
        ({"volume_kms_key_id": KEY}, False),
        ({"output_kms_key_id": KEY}, False),
    ],
)
def test_security_changes_the_config_and_the_network_the_model(
    security: dict[str, Any], model_changes: bool
) -> None:
    before, after = spec(model_data=ARCHIVE), spec(model_data=ARCHIVE, security=security)
    assert after.endpoint_config_name != before.endpoint_config_name
    assert (after.model_name != before.model_name) is model_changes


def test_inference_components_keep_the_model_and_change_the_fleet() -> None:
    before, after = ic(), ic(security=VPC)
    assert after.model_name == before.model_name  # the VPC belongs to the fleet's config
    assert after.endpoint_config_name != before.endpoint_config_name
    keyed = ic(security={**VPC, "volume_kms_key_id": KEY})
    assert keyed.endpoint_config_name != after.endpoint_config_name


# -- requests -----------------------------------------------------------------------------------


def test_model_based_requests_carry_vpc_isolation_and_key() -> None:
    secured = spec(
        model_data=ARCHIVE, security={**VPC, "network_isolation": True, "volume_kms_key_id": KEY}
    )
    model = model_request(secured, "image")
    assert model["VpcConfig"] == {"SecurityGroupIds": list(GROUPS), "Subnets": list(SUBNETS)}
    assert model["EnableNetworkIsolation"] is True
    config = endpoint_config_request(secured)
    assert config["KmsKeyId"] == KEY
    assert "VpcConfig" not in config
    assert "EnableNetworkIsolation" not in config


def test_inference_component_configs_carry_vpc_and_isolation() -> None:
    secured = ic(model_data=ARCHIVE, security={**VPC, "network_isolation": True})
    config = endpoint_config_request(secured)
    assert config["VpcConfig"]["Subnets"] == list(SUBNETS)
    assert config["EnableNetworkIsolation"] is True
    assert config["ExecutionRoleArn"] == ROLE
    assert "VpcConfig" not in model_request(secured, "image")


def test_nothing_set_adds_no_parameter() -> None:
    plain = spec()
    assert set(model_request(plain, "image")) == {
        "ModelName",
        "PrimaryContainer",
        "ExecutionRoleArn",
        "Tags",
    }
    assert "KmsKeyId" not in endpoint_config_request(plain)


def test_the_output_key_goes_into_an_async_output_config() -> None:
    security = SecuritySpec(volume_kms_key_id=KEY, output_kms_key_id=OTHER_KEY)
    request = {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://b/out"}}}
    secured = security.secure_config(request)
    assert secured["KmsKeyId"] == KEY
    assert secured["AsyncInferenceConfig"]["OutputConfig"]["KmsKeyId"] == OTHER_KEY
    assert request == {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://b/out"}}}


# -- plan -------------------------------------------------------------------------------------


def test_plan_shows_network_and_encryption_in_text_repr_and_html() -> None:
    secured = spec(
        model_data=ARCHIVE, security={**VPC, "network_isolation": True, "volume_kms_key_id": KEY}
    )
    plan = build_plan(
        secured, region="us-east-1", image_uri="img", model=None, config=None, endpoint=None
    )
    text = str(plan)
    assert f"  vpc: subnets {SUBNETS[0]}, {SUBNETS[1]}; security groups {GROUPS[0]}" in text
    assert "  isolation: no network calls in or out of the container" in text
    assert f"encryption: volume: KMS key {KEY}" in text
    assert "security=vpc, isolated, kms" in repr(plan)
    html = plan._repr_html_()
    assert SUBNETS[0] in html
    assert KEY in html
    assert plan.security == secured.security
    plain = build_plan(
        spec(), region="us-east-1", image_uri="img", model=None, config=None, endpoint=None
    )
    assert "vpc" not in str(plain)
    assert "security" not in repr(plain)


# -- spec file ----------------------------------------------------------------------------------

SPEC_FILE = f"""\
endpoint:
  name: twin
  role_arn: {ROLE}
  instance_type: ml.m5.xlarge
  model_data: {ARCHIVE}
  security:
    subnets: [{SUBNETS[0]}, {SUBNETS[1]}]
    security_group_ids: [{GROUPS[0]}]
    network_isolation: true
    volume_kms_key_id: {KEY}
"""


def test_a_spec_file_with_a_security_section(tmp_path: Path) -> None:
    path = tmp_path / "twin.yaml"
    path.write_text(SPEC_FILE)
    loaded = load_spec(path).spec
    assert loaded.security.subnets == SUBNETS
    assert loaded.security.network_isolation
    assert loaded.security.volume_kms_key_id == KEY


@pytest.mark.parametrize(
    ("change", "line", "field"),
    [
        (("subnet-0f1e2d3c]", "subnet-nope]"), 7, "endpoint.security.subnets"),
        (("ml.m5.xlarge", "ml.g5.xlarge"), 10, "endpoint.security.volume_kms_key_id"),
        # model_data removed: network_isolation moves up from line 9 to line 8
        ((f"  model_data: {ARCHIVE}\n", ""), 8, "endpoint.security.network_isolation"),
    ],
)
def test_spec_file_security_errors_name_line_and_field(
    tmp_path: Path, change: tuple[str, str], line: int, field: str
) -> None:
    path = tmp_path / "twin.yaml"
    path.write_text(SPEC_FILE.replace(*change))
    with pytest.raises(SpecFileError) as caught:
        load_spec(path)
    assert (caught.value.line, caught.value.field) == (line, field)
    assert str(caught.value).startswith(f"{path}:{line}: {field}: ")


# -- the execution role -------------------------------------------------------------------------


def statements_of(security: SecuritySpec, partition: str = "aws") -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in security_statements(security, partition=partition)}


def test_nothing_set_widens_nothing() -> None:
    assert execution_policy("twin-models", security=SecuritySpec()) == execution_policy(
        "twin-models"
    )


def test_a_vpc_lets_the_role_make_interfaces_in_its_subnets_only() -> None:
    by_sid = statements_of(SecuritySpec(**VPC))
    assert set(by_sid) == {"VpcDescribe", "VpcCreateInterfaces", "VpcManageInterfaces"}
    assert by_sid["VpcDescribe"]["Resource"] == "*"  # Describe* take no resource
    assert all(a.startswith("ec2:Describe") for a in by_sid["VpcDescribe"]["Action"])
    subnets = [f"arn:aws:ec2:*:*:subnet/{s}" for s in SUBNETS]
    assert by_sid["VpcCreateInterfaces"]["Resource"] == [
        "arn:aws:ec2:*:*:network-interface/*",
        *subnets,
        f"arn:aws:ec2:*:*:security-group/{GROUPS[0]}",
    ]
    manage = by_sid["VpcManageInterfaces"]
    assert manage["Resource"] == "arn:aws:ec2:*:*:network-interface/*"
    assert manage["Condition"] == {"ArnLike": {"ec2:Subnet": subnets}}


def test_keys_are_usable_by_the_role_on_those_keys_only() -> None:
    by_sid = statements_of(SecuritySpec(volume_kms_key_id=KEY, output_kms_key_id=OTHER_KEY))
    assert set(by_sid) == {"VolumeKeyUse", "VolumeKeyGrant", "AsyncOutputKey"}
    for sid in ("VolumeKeyUse", "VolumeKeyGrant"):
        assert by_sid[sid]["Resource"] == KEY
    assert by_sid["AsyncOutputKey"]["Resource"] == OTHER_KEY
    assert by_sid["VolumeKeyGrant"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    actions = {a for s in by_sid.values() for a in s["Action"]}
    assert actions <= {
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
    }


def test_the_policy_adds_only_scoped_statements_to_the_base_ones() -> None:
    base = execution_policy()["Statement"]
    full = SecuritySpec(**VPC, volume_kms_key_id=KEY, output_kms_key_id=OTHER_KEY)
    widened = execution_policy(security=full, partition="aws-cn")["Statement"]
    assert [s["Sid"] for s in widened[: len(base)]] == [s["Sid"] for s in base]
    added = widened[len(base) :]
    star = [s["Sid"] for s in added if s["Resource"] == "*"]
    assert star == ["VpcDescribe"]
    assert "arn:aws-cn:ec2:*:*:network-interface/*" in json.dumps(added)
    with pytest.raises(InvalidParameterError, match="security: expected a SecuritySpec"):
        execution_policy(security=VPC)  # type: ignore[arg-type]  # the wrong type is the test


def test_repr_shows_what_is_set_on_one_line() -> None:
    many = SecuritySpec(
        subnets=tuple(f"subnet-{i:017x}" for i in range(16)), security_group_ids=GROUPS
    )
    text = repr(many)
    assert text.startswith("SecuritySpec(subnets=[16: subnet-00000000000000000, ")
    assert f"security_group_ids=[1: {GROUPS[0]}]" in text
    assert "network_isolation" not in text  # a default is not shown
    assert repr(SecuritySpec()) == "SecuritySpec()"


def test_an_async_endpoint_gets_its_output_key_and_the_role_both_statements() -> None:
    from llm_twin_sdk import AsyncInferenceSpec

    jobs = AsyncInferenceSpec(output_path="s3://twin-jobs/out")
    secured = spec(async_inference=jobs, security={"output_kms_key_id": OTHER_KEY})
    check_spec(secured)  # an async endpoint may carry an output key
    request = endpoint_config_request(secured)
    output = request["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"] == "s3://twin-jobs/out"
    assert output["KmsKeyId"] == OTHER_KEY
    assert endpoint_config_request(spec(async_inference=jobs))["AsyncInferenceConfig"] == (
        jobs.request()
    )
    assert secured.config_hash != spec(async_inference=jobs).config_hash
    policy = execution_policy(security=secured.security, async_inference=jobs, partition="aws")
    resources = json.dumps(policy["Statement"])
    assert OTHER_KEY in resources
    assert "twin-jobs" in resources
