"""EndpointSpec and parts: validated before any AWS call, masked token, content-hashed names."""

from __future__ import annotations

import subprocess
import sys
import traceback
from typing import Any

import pytest

from llm_twin_sdk.deploy.spec import (
    DEFAULT_MODEL_ID,
    ENDPOINT_NAME_MAX,
    MANAGED_BY_TAG,
    EndpointRef,
    EndpointSpec,
    InferenceComponentSpec,
    RolloutSpec,
    gpus_of,
)
from llm_twin_sdk.errors import InvalidInputError, InvalidParameterError, LLMTwinError
from llm_twin_sdk.redaction import is_secret_name

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
TOKEN = "hf_SuperSecretToken123"


def spec(**overrides: Any) -> EndpointSpec:
    fields: dict[str, Any] = {"name": "twin", "role_arn": ROLE}
    fields.update(overrides)
    return EndpointSpec(**fields)


# -- defaults -----------------------------------------------------------------------------------


def test_defaults_follow_the_issue() -> None:
    s = spec()
    assert s.model_id == DEFAULT_MODEL_ID == "mlabonne/TwinLlama-3.1-8B-DPO"
    assert s.engine == "tgi"
    assert s.instance_type == "ml.g5.2xlarge"
    assert s.instance_count == 1
    assert (s.max_input_tokens, s.max_total_tokens, s.max_batch_total_tokens) == (2048, 4096, 4096)
    assert s.health_check_timeout_s == 900
    assert s.components is None
    assert s.kind == "model"


def test_spec_is_immutable() -> None:
    s = spec()
    with pytest.raises(Exception, match="frozen"):
        s.instance_count = 2  # type: ignore[misc]


# -- bad input: field named, allowed values given ----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        # token limits: max input >= max total
        (
            {"max_input_tokens": 4096},
            "max_input_tokens",
            "max_input_tokens < max_total_tokens <= max_batch_total_tokens",
        ),
        (
            {"max_input_tokens": 5000},
            "max_total_tokens",
            "max_input_tokens < max_total_tokens <= max_batch_total_tokens",
        ),
        (
            {"max_total_tokens": 8192},
            "max_batch_total_tokens",
            "max_input_tokens < max_total_tokens <= max_batch_total_tokens",
        ),
        ({"max_input_tokens": 0}, "max_input_tokens", "greater than 0"),
        # instance count 0 (model-based endpoint)
        ({"instance_count": 0}, "instance_count", "greater than or equal to 1"),
        # names SageMaker would reject
        ({"name": "my_twin"}, "name", "letters, digits and single or repeated hyphens"),
        ({"name": "x" * (ENDPOINT_NAME_MAX + 1)}, "name", f"1-{ENDPOINT_NAME_MAX}"),
        ({"name": "-twin"}, "name", "starting and ending with a letter or digit"),
        ({"name": "twin-"}, "name", "starting and ending with a letter or digit"),
        ({"name": ""}, "name", f"1-{ENDPOINT_NAME_MAX}"),
        ({"name": "twin.v2"}, "name", "letters, digits"),
        ({"variant_name": "All_Traffic"}, "variant_name", "letters, digits and hyphens"),
        # instance types
        ({"instance_type": "ml.z9.2xlarge"}, "instance_type", "known: c5, c6i"),
        ({"instance_type": "ml.x1e.2xlarge"}, "instance_type", "g4dn, g5"),
        ({"instance_type": "g5.2xlarge"}, "instance_type", "ml.<family>.<size>"),
        # role ARN
        ({"role_arn": "twin-sagemaker"}, "role_arn", "arn:aws:iam::<12-digit account>:role/"),
        ({"role_arn": "arn:aws:iam::1234:role/x"}, "role_arn", "<12-digit account>"),
        ({"role_arn": "arn:aws:iam::123456789012:user/x"}, "role_arn", ":role/<name>"),
        # S3 model archive
        ({"model_data": "s3://bucket/model"}, "model_data", "s3://<bucket>/<key>.tar.gz"),
        ({"model_data": "https://bucket/m.tar.gz"}, "model_data", "s3://<bucket>/<key>.tar.gz"),
        ({"model_data": "s3://Bad_Bucket/m.tar.gz"}, "model_data", "s3://<bucket>/<key>.tar.gz"),
        # reserved and invalid tag keys
        ({"tags": {"managed-by": "me"}}, "tags", "reserved for llm-twin-sdk"),
        ({"tags": {"llm-twin-sdk:spec-hash": "x"}}, "tags", "reserved for llm-twin-sdk"),
        ({"tags": {"aws:owner": "me"}}, "tags", "not starting 'aws:'"),
        ({"tags": {"": "x"}}, "tags", "1-128 characters"),
        ({"tags": {f"k{i}": "v" for i in range(41)}}, "tags", "at most 40 tags"),
        ({"tags": {"team": "ml#1"}}, "tags", "0-256 characters among letters"),
        # enumerations list their values
        ({"engine": "triton"}, "engine", "'tgi', 'vllm', 'lmi', 'tei' or 'pytorch'"),
        ({"quantize": "int3"}, "quantize", "'awq', 'gptq'"),
        ({"health_check_timeout_s": 30}, "health_check_timeout_s", "greater than or equal to 60"),
        ({"model_id": "not a hub id"}, "model_id", "'org/model'"),
        ({"image_uri": "my image"}, "image_uri", "without spaces"),
        ({"num_gpus": 0}, "num_gpus", "greater than or equal to 1"),
        ({"unknown_field": 1}, "unknown_field", "Extra inputs are not permitted"),
    ],
)
def test_bad_spec_names_field_and_allowed_values(
    overrides: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        spec(**overrides)
    message = str(info.value)
    assert message.startswith("invalid EndpointSpec: ")
    assert field in message
    assert allowed in message
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LLMTwinError)


def test_longest_valid_name_keeps_derived_names_within_sagemaker_limit() -> None:
    s = spec(name="a" * ENDPOINT_NAME_MAX, components=InferenceComponentSpec())
    for derived in (s.name, s.model_name, s.endpoint_config_name, s.inference_component_name):
        assert derived is not None
        assert len(derived) <= 63


@pytest.mark.parametrize("name", ["a", "twin", "Twin-2", "twin--blue", "a1-b2-c3"])
def test_valid_names(name: str) -> None:
    assert spec(name=name).name == name


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"min_instances": 3, "max_instances": 1}, "min_instances", "must be <= max_instances"),
        ({"max_instances": 0}, "max_instances", "greater than or equal to 1"),
        ({"min_instances": -1}, "min_instances", "greater than or equal to 0"),
        ({"copies": 0}, "copies", "greater than or equal to 1"),
        ({"accelerators": -1}, "accelerators", "greater than or equal to 0"),
        ({"cpu_cores": 0}, "cpu_cores", "greater than 0"),
        ({"memory_mb": 64}, "memory_mb", "greater than or equal to 128"),
    ],
)
def test_bad_component_spec(overrides: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        InferenceComponentSpec(**overrides)
    assert str(info.value).startswith("invalid InferenceComponentSpec: ")
    assert field in str(info.value)
    assert allowed in str(info.value)


def test_bad_component_inside_endpoint_spec_names_the_path() -> None:
    with pytest.raises(InvalidParameterError, match=r"components: .*min_instances \(3\)"):
        spec(components={"min_instances": 3, "max_instances": 1})


def test_scale_to_zero_floor_is_allowed_for_components() -> None:
    ic = InferenceComponentSpec(min_instances=0, max_instances=2)
    assert (ic.min_instances, ic.max_instances) == (0, 2)


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"traffic": "big_bang"}, "traffic", "'all_at_once', 'canary' or 'linear'"),
        ({"step_percent": 0}, "step_percent", "greater than or equal to 1"),
        ({"step_percent": 100}, "step_percent", "less than or equal to 99"),
        ({"step_wait_s": -1}, "step_wait_s", "greater than or equal to 0"),
        ({"termination_wait_s": 3601}, "termination_wait_s", "less than or equal to 3600"),
        ({"rollback_alarms": ("",)}, "rollback_alarms", "non-empty"),
        ({"rollback_alarms": tuple(f"a{i}" for i in range(11))}, "rollback_alarms", "at most 10"),
    ],
)
def test_bad_rollout_spec(overrides: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        RolloutSpec(**overrides)
    assert str(info.value).startswith("invalid RolloutSpec: ")
    assert field in str(info.value)
    assert allowed in str(info.value)


# -- the HF token -------------------------------------------------------------------------------


def test_token_is_masked_everywhere_but_the_revealed_environment() -> None:
    s = spec(hf_token=TOKEN)
    shown = [
        repr(s),
        str(s),
        s.model_dump_json(),
        str(s.model_dump()),
        str(s.container_environment()),
        s.model_name,
        s.endpoint_config_name,
        str(s.aws_tags()),
    ]
    for text in shown:
        assert TOKEN not in text
    assert s.container_environment()["HUGGING_FACE_HUB_TOKEN"] == "**********"
    assert s.container_environment(reveal_secrets=True)["HUGGING_FACE_HUB_TOKEN"] == TOKEN
    assert s.hf_token is not None
    assert s.hf_token.get_secret_value() == TOKEN


def test_no_token_no_token_variable() -> None:
    assert "HUGGING_FACE_HUB_TOKEN" not in spec().container_environment(reveal_secrets=True)


@pytest.mark.parametrize(
    "overrides",
    [
        {"instance_count": 0},
        {"name": "bad_name"},
        {"tags": {"managed-by": "x"}},
        {"hf_token": 12345},
    ],
)
def test_token_never_in_error_messages(overrides: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"hf_token": TOKEN, **overrides}
    with pytest.raises(InvalidParameterError) as info:
        spec(**fields)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert "12345" not in str(info.value)


def test_token_never_in_the_printed_traceback() -> None:
    # hf_token passed last: pydantic's truncated input_value keeps the dict's tail
    with pytest.raises(InvalidParameterError) as info:
        spec(max_input_tokens=9999, hf_token=TOKEN)
    assert TOKEN not in str(info.value)
    printed = "".join(traceback.format_exception(info.value))
    assert TOKEN not in printed


# -- names: deterministic, changed by deployment-relevant fields only ---------------------------


def test_names_are_deterministic_and_prefixed() -> None:
    a, b = spec(hf_token=TOKEN), spec(hf_token=TOKEN)
    assert a.model_name == b.model_name
    assert a.endpoint_config_name == b.endpoint_config_name
    assert a.model_name.startswith("twin-")
    assert len(a.model_hash) == len(a.config_hash) == 8
    assert a.model_name == f"twin-{a.model_hash}"
    assert a.endpoint_config_name == f"twin-{a.config_hash}"


def test_names_are_the_same_in_another_process() -> None:
    """Hashes come from the content, not from Python's per-process ``hash()``."""
    code = (
        "from llm_twin_sdk.deploy.spec import EndpointSpec as S;"
        f"s = S(name='twin', role_arn={ROLE!r}, tags={{'team': 'ml'}});"
        "print(s.model_name, s.endpoint_config_name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        timeout=60,
    ).stdout.split()
    s = spec(tags={"team": "ml"})
    assert out == [s.model_name, s.endpoint_config_name]


@pytest.mark.parametrize(
    "overrides",
    [
        {"tags": {"team": "ml", "cost-center": "42"}},
        {"rollout": RolloutSpec(traffic="canary", step_percent=20, rollback_alarms=("5xx",))},
        {"rollout": {"traffic": "linear"}},
    ],
)
def test_tags_and_rollout_change_no_name(overrides: dict[str, Any]) -> None:
    base, other = spec(), spec(**overrides)
    assert other.model_name == base.model_name
    assert other.endpoint_config_name == base.endpoint_config_name


def test_component_copies_and_sizes_change_no_name() -> None:
    """Copies and per-copy resources are updated on the component, not in the config."""
    base = spec(components=InferenceComponentSpec())
    other = spec(
        components=InferenceComponentSpec(copies=3, accelerators=2, cpu_cores=4, memory_mb=8192)
    )
    assert other.model_name == base.model_name
    assert other.endpoint_config_name == base.endpoint_config_name


@pytest.mark.parametrize(
    "overrides",
    [
        {"instance_type": "ml.g5.xlarge"},  # same GPU count: only the config changes
        {"instance_type": "ml.g6.2xlarge"},
        {"instance_count": 2},
        {"health_check_timeout_s": 1200},
        {"variant_name": "Blue"},
        {"components": InferenceComponentSpec()},
    ],
)
def test_config_fields_change_the_config_name_only(overrides: dict[str, Any]) -> None:
    base, other = spec(), spec(**overrides)
    assert other.model_name == base.model_name
    assert other.endpoint_config_name != base.endpoint_config_name


def test_managed_scaling_bounds_change_the_config_name() -> None:
    a = spec(components=InferenceComponentSpec(min_instances=1, max_instances=1))
    b = spec(components=InferenceComponentSpec(min_instances=0, max_instances=2))
    assert a.endpoint_config_name != b.endpoint_config_name
    assert a.model_name == b.model_name


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_id": "mlabonne/TwinLlama-3.1-8B"},
        {"model_data": "s3://twin-models/twin/model.tar.gz"},
        {"engine": "vllm"},
        {"image_version": "3.3"},
        {"image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tgi:custom"},
        {"max_input_tokens": 1024},
        {"max_total_tokens": 3072},
        {"max_batch_total_tokens": 8192},
        {"quantize": "awq"},
        {"hf_token": TOKEN},
        {"environment": {"LOG_LEVEL": "debug"}},
        {"role_arn": "arn:aws:iam::123456789012:role/other"},
        {"num_gpus": 2},
        {"instance_type": "ml.g5.12xlarge"},  # 4 GPUs: SM_NUM_GPUS changes the container
    ],
)
def test_model_fields_change_both_names(overrides: dict[str, Any]) -> None:
    base, other = spec(), spec(**overrides)
    assert other.model_name != base.model_name
    assert other.endpoint_config_name != base.endpoint_config_name


def test_another_token_changes_the_model_name() -> None:
    assert spec(hf_token=TOKEN).model_name != spec(hf_token=TOKEN + "x").model_name


# -- derived values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "gpus"),
    [
        ("ml.g5.xlarge", 1),
        ("ml.g5.2xlarge", 1),
        ("ml.g5.12xlarge", 4),
        ("ml.g5.24xlarge", 4),
        ("ml.g5.48xlarge", 8),
        ("ml.g4dn.xlarge", 1),
        ("ml.g4dn.12xlarge", 4),
        ("ml.g6.2xlarge", 1),
        ("ml.g6e.12xlarge", 4),
        ("ml.g6e.48xlarge", 8),
        ("ml.p4d.24xlarge", 8),
        ("ml.p5.48xlarge", 8),
        ("ml.p3.2xlarge", 1),
        ("ml.inf2.xlarge", 1),
        ("ml.c5.xlarge", 0),
        ("ml.m5.large", 0),
        ("ml.t2.medium", 0),
        ("not-an-instance", 0),
    ],
)
def test_gpus_of(instance_type: str, gpus: int) -> None:
    assert gpus_of(instance_type) == gpus


@pytest.mark.parametrize(("instance_type", "gpus"), [("ml.p3.8xlarge", 4), ("ml.p3.16xlarge", 8)])
def test_gpus_of_multi_gpu_p3(instance_type: str, gpus: int) -> None:
    assert gpus_of(instance_type) == gpus


def test_container_environment() -> None:
    env = spec(instance_type="ml.g5.12xlarge", quantize="awq").container_environment()
    assert env["HF_MODEL_ID"] == DEFAULT_MODEL_ID
    assert env["SM_NUM_GPUS"] == "4"
    assert env["MAX_INPUT_TOKENS"] == "2048"
    assert env["MAX_TOTAL_TOKENS"] == "4096"
    assert env["MAX_BATCH_TOTAL_TOKENS"] == "4096"
    assert env["HF_MODEL_QUANTIZE"] == "awq"
    assert env["MESSAGES_API_ENABLED"] == "true"
    assert spec(num_gpus=2).container_environment()["SM_NUM_GPUS"] == "2"
    assert spec(instance_type="ml.c5.xlarge").gpus == 1  # CPU types still run one shard
    s3 = spec(model_data="s3://twin-models/twin/model.tar.gz")
    assert s3.container_environment()["HF_MODEL_ID"] == "/opt/ml/model"


def test_aws_tags_add_the_sdk_tags() -> None:
    s = spec(tags={"team": "ml"})
    tags = {t["Key"]: t["Value"] for t in s.aws_tags()}
    assert tags["team"] == "ml"
    assert tags[MANAGED_BY_TAG[0]] == MANAGED_BY_TAG[1]
    assert tags["llm-twin-sdk:spec-hash"] == s.config_hash


def test_ref_and_kind_of_a_model_endpoint() -> None:
    s = spec()
    ref = s.ref()
    assert ref == EndpointRef(name="twin", variant_name="AllTraffic")
    assert ref.inference_component_name is None
    assert s.kind == ref.kind == "model"
    assert s.inference_component_name is None


def test_ref_and_kind_of_a_component_endpoint() -> None:
    s = spec(variant_name="Main", components=InferenceComponentSpec(min_instances=0))
    ref = s.ref()
    assert ref == EndpointRef(name="twin", variant_name="Main", inference_component_name="twin-ic")
    assert s.kind == ref.kind == "inference-component"


@pytest.mark.parametrize("key", ["HF_MODEL_ID", "SM_NUM_GPUS", "MAX_TOTAL_TOKENS", "HF_TOKEN"])
def test_environment_cannot_override_the_specs_own_fields(key: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"environment: {key}"):
        spec(environment={key: "x"})


def test_secret_like_environment_values_are_masked() -> None:
    s = spec(environment={"WANDB_API_KEY": "wandb-secret-1", "LOG_LEVEL": "debug"})
    assert s.container_environment()["WANDB_API_KEY"] == "**********"
    assert s.container_environment()["LOG_LEVEL"] == "debug"
    assert s.container_environment(reveal_secrets=True)["WANDB_API_KEY"] == "wandb-secret-1"


@pytest.mark.parametrize("key", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
def test_a_token_refused_in_environment_is_not_echoed(key: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"environment: {key}") as info:
        spec(environment={key: TOKEN, "LOG_LEVEL": "debug"})
    printed = "".join(traceback.format_exception(info.value))
    assert TOKEN not in str(info.value)
    assert TOKEN not in printed


def test_repr_and_str_mask_secret_like_environment_values() -> None:
    s = spec(environment={"MY_API_KEY": "sk-live-123", "DB_PASSWORD": "pw-456", "LOG_LEVEL": "x"})
    for text in (repr(s), str(s)):
        assert "sk-live-123" not in text
        assert "pw-456" not in text
        assert "'MY_API_KEY': '**********'" in text
        assert "'LOG_LEVEL': 'x'" in text
    assert s.environment["MY_API_KEY"] == "sk-live-123"  # the value itself is kept


def test_token_limits_show_and_secrets_hide_by_one_rule() -> None:
    env = spec(
        hf_token=TOKEN,
        environment={
            "MAX_NEW_TOKENS": "512",
            "MAX_TOKEN_LENGTH": "64",
            "TOKENIZER": "fast",
            "GITHUB_TOKEN": "gh-1",
            "AWS_SECRET_ACCESS_KEY": "aws-2",
            "SERVICE_PASSWD": "pw-3",
            "SIGNING_KEY": "k-4",
        },
    ).container_environment()
    shown = {
        "MAX_INPUT_TOKENS": "2048",
        "MAX_INPUT_LENGTH": "2048",
        "MAX_TOTAL_TOKENS": "4096",
        "MAX_BATCH_TOTAL_TOKENS": "4096",
        "MAX_BATCH_PREFILL_TOKENS": "2048",
        "MAX_NEW_TOKENS": "512",
        "MAX_TOKEN_LENGTH": "64",
        "TOKENIZER": "fast",
    }
    assert {key: env[key] for key in shown} == shown
    hidden = ["HUGGING_FACE_HUB_TOKEN", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "SERVICE_PASSWD"]
    assert {env[key] for key in [*hidden, "SIGNING_KEY"]} == {"**********"}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("hf_token", True),
        ("HUGGING_FACE_HUB_TOKEN", True),
        ("OPENAI_API_KEY", True),
        ("MY_APIKEY", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("ACCESS_KEY", True),
        ("DB_PASSWORD_FILE", True),
        ("CLIENT_CREDENTIALS", True),
        ("MAX_INPUT_TOKENS", False),
        ("MAX_BATCH_PREFILL_TOKENS", False),
        ("MAX_TOKEN_LENGTH", False),
        ("TOKENIZER_NAME", False),
        ("MONKEY", False),
        ("MESSAGES_API_ENABLED", False),
    ],
)
def test_one_rule_tells_secrets_from_limits(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_copies_and_parsed_data_are_validated_too() -> None:
    with pytest.raises(InvalidParameterError, match="instance_count"):
        spec().model_copy(update={"instance_count": 0})
    with pytest.raises(InvalidParameterError, match="name"):
        EndpointSpec.model_validate({**spec().model_dump(), "name": "bad_name"})
    with pytest.raises(InvalidParameterError, match="max_input_tokens"):
        EndpointSpec.model_validate_json(
            spec()
            .model_copy(update={"max_input_tokens": 10})
            .model_dump_json()
            .replace('"max_input_tokens":10', '"max_input_tokens":99999')
        )


def test_inference_component_config_does_not_change_with_the_model() -> None:
    from llm_twin_sdk.deploy.spec import InferenceComponentSpec

    a = spec(components=InferenceComponentSpec(min_instances=0))
    b = a.model_copy(update={"model_id": "org/another-model"})
    assert a.model_name != b.model_name
    assert a.endpoint_config_name == b.endpoint_config_name  # the component is updated instead
    slow = a.model_copy(update={"health_check_timeout_s": 1800})  # a component setting too
    assert slow.endpoint_config_name == a.endpoint_config_name
    c = a.model_copy(update={"instance_type": "ml.g5.12xlarge", "num_gpus": 1})
    assert c.endpoint_config_name != a.endpoint_config_name
