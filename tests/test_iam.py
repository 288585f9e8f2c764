"""The SageMaker execution role: least privilege, idempotent, validated before any call.

Most tests run against moto in server mode (real HTTP); the races and retries that moto cannot
produce on demand use botocore's Stubber, so parameters are checked against IAM's own model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from llm_twin_sdk.aws import AWSClients
from llm_twin_sdk.deploy.iam import (
    INLINE_POLICY_NAME,
    SAGEMAKER_PRINCIPAL,
    ensure_execution_role,
    execution_policy,
    execution_role_arn,
    trust_policy,
    validate_bucket_name,
    validate_role_name,
)
from llm_twin_sdk.errors import (
    AccessDeniedError,
    AWSError,
    ConfigurationError,
    InvalidParameterError,
)
from llm_twin_sdk.retry import RetryPolicy

ACCOUNT = "123456789012"  # moto's account
ROLE = "twin-sagemaker"

ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
LOGS = [
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
]
BASE_STATEMENTS: list[dict[str, Any]] = [
    {
        "Sid": "EcrAuthorizationToken",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    },
    {
        "Sid": "EcrImagePull",
        "Effect": "Allow",
        "Action": ECR_PULL,
        "Resource": "arn:aws:ecr:*:*:repository/*",
    },
    {
        "Sid": "CloudWatchLogs",
        "Effect": "Allow",
        "Action": LOGS,
        "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*",
    },
    {
        "Sid": "CloudWatchMetrics",
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
    },
]


def bucket_statements(bucket: str) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "ModelBucketRead",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
        {
            "Sid": "ModelBucketList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
        },
    ]


def iam_of(aws: AWSClients) -> Any:
    return aws.client("iam")


@pytest.fixture
def iam_calls(moto_aws: AWSClients) -> list[str]:
    """Names of the IAM operations sent on the wire (``CreateRole``, ``GetRole``...)."""
    calls: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    iam_of(moto_aws).meta.events.register("before-send.iam.*", record)
    return calls


def writes(calls: list[str]) -> list[str]:
    return [c for c in calls if not c.startswith(("Get", "List"))]


def inline_policy(aws: AWSClients, role: str = ROLE) -> dict[str, Any]:
    out = iam_of(aws).get_role_policy(RoleName=role, PolicyName=INLINE_POLICY_NAME)
    document = out["PolicyDocument"]
    return document if isinstance(document, dict) else json.loads(document)


def make_role(aws: AWSClients, name: str, service: str, **extra: Any) -> None:
    iam_of(aws).create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
        **extra,
    )


# -- pure policy documents ---------------------------------------------------------------------


def test_trust_policy_trusts_only_sagemaker_acting_for_this_account() -> None:
    """The confused-deputy guard: SageMaker may assume the role only for this account's
    resources (and, when given, one region's)."""
    assert trust_policy(ACCOUNT, region="eu-central-1") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:eu-central-1:{ACCOUNT}:*"},
                },
            }
        ],
    }
    any_region = trust_policy(ACCOUNT, partition="aws-cn")["Statement"][0]["Condition"]
    assert any_region["ArnLike"] == {"aws:SourceArn": f"arn:aws-cn:sagemaker:*:{ACCOUNT}:*"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"account_id": "1234"}, "account_id"),
        ({"account_id": ACCOUNT, "region": "Europe"}, "region"),
        ({"account_id": ACCOUNT, "partition": "azure"}, "partition"),
    ],
)
def test_trust_policy_rejects_bad_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"^{field}: "):
        trust_policy(**kwargs)


def test_execution_policy_without_bucket_has_no_s3() -> None:
    document = execution_policy()
    assert document == {"Version": "2012-10-17", "Statement": BASE_STATEMENTS}
    assert "s3:" not in json.dumps(document)


def test_execution_policy_with_bucket_reads_that_bucket_only() -> None:
    document = execution_policy("twin-models")
    assert document["Statement"] == BASE_STATEMENTS + bucket_statements("twin-models")


def test_execution_policy_is_least_privilege() -> None:
    text = json.dumps(execution_policy("twin-models"))
    for broad in ('"s3:*"', '"ecr:*"', '"logs:*"', '"*:*"', "FullAccess", "iam:", "PutObject"):
        assert broad not in text
    # "*" resources only where the action supports no resource scoping
    star = [s["Action"] for s in execution_policy("b-1")["Statement"] if s["Resource"] == "*"]
    assert star == ["ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"]


def test_execution_policy_in_another_partition() -> None:
    text = json.dumps(execution_policy("twin-models", partition="aws-cn"))
    assert "arn:aws:" not in text
    assert "arn:aws-cn:s3:::twin-models/*" in text
    with pytest.raises(InvalidParameterError, match="partition"):
        execution_policy(partition="azure")


def test_execution_role_arn() -> None:
    assert execution_role_arn(ACCOUNT, ROLE) == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    assert execution_role_arn(ACCOUNT, ROLE, partition="aws-us-gov").startswith("arn:aws-us-gov:")
    with pytest.raises(InvalidParameterError, match=r"account_id.*12 digits"):
        execution_role_arn("1234", ROLE)
    with pytest.raises(InvalidParameterError, match="name"):
        execution_role_arn(ACCOUNT, "bad name")


@pytest.mark.parametrize("name", ["a", "x" * 64, "Twin_Role+=,.@-1"])
def test_valid_role_names(name: str) -> None:
    assert validate_role_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "has space", "path/role", "rôle", "semi;colon", "star*"]
)
def test_invalid_role_names(name: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"name: .*1-64 characters.*_\+=,\.@-"):
        validate_role_name(name)


@pytest.mark.parametrize("bucket", ["abc", "my-twin.models-2026", "a" * 63, "1bucket"])
def test_valid_bucket_names(bucket: str) -> None:
    assert validate_bucket_name(bucket) == bucket


@pytest.mark.parametrize(
    "bucket",
    [
        "ab",
        "a" * 64,
        "My-Bucket",
        "under_score",
        "-leading",
        "trailing-",
        "two..dots",
        "192.168.1.1",
        "xn--bucket",
        "bucket-s3alias",
        "s3://twin-models",
        "twin-models/prefix",
        "",
    ],
)
def test_invalid_bucket_names(bucket: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"model_bucket: .*3-63 lowercase"):
        validate_bucket_name(bucket)


# -- against moto --------------------------------------------------------------------------------


def test_creates_role_with_trust_and_inline_policy(
    moto_aws: AWSClients, iam_calls: list[str], tmp_path: Path
) -> None:
    arn = ensure_execution_role(ROLE, "twin-models", aws=moto_aws)
    made = list(iam_calls)

    assert arn == execution_role_arn(ACCOUNT, ROLE)
    iam = iam_of(moto_aws)
    role = iam.get_role(RoleName=ROLE)["Role"]
    assert role["Arn"] == arn
    assert role["AssumeRolePolicyDocument"] == trust_policy(ACCOUNT)  # moto's caller account
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {"managed-by": "llm-twin-sdk"}

    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == [INLINE_POLICY_NAME]
    document = inline_policy(moto_aws)
    assert document["Statement"] == BASE_STATEMENTS + bucket_statements("twin-models")
    actions = sorted(
        a
        for s in document["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    )
    assert actions == sorted(
        [
            "ecr:GetAuthorizationToken",
            *ECR_PULL,
            *LOGS,
            "cloudwatch:PutMetricData",
            "s3:GetObject",
            "s3:ListBucket",
        ]
    )

    # no managed policy, no user, no access key, nothing on disk
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    assert iam.list_users()["Users"] == []
    assert writes(made) == ["CreateRole", "PutRolePolicy"]
    assert not any("AccessKey" in c or "Attach" in c or "User" in c for c in made)
    assert list(tmp_path.iterdir()) == []


def test_role_without_bucket_has_no_s3_access(moto_aws: AWSClients) -> None:
    ensure_execution_role(ROLE, aws=moto_aws)
    assert inline_policy(moto_aws)["Statement"] == BASE_STATEMENTS


def test_second_call_is_idempotent(moto_aws: AWSClients, iam_calls: list[str]) -> None:
    first = ensure_execution_role(ROLE, "twin-models", aws=moto_aws, tags={"team": "ml"})
    iam_calls.clear()

    second = ensure_execution_role(ROLE, "twin-models", aws=moto_aws, tags={"team": "ml"})

    assert second == first
    assert writes(iam_calls) == []  # no CreateRole, PutRolePolicy or TagRole
    assert "CreateRole" not in iam_calls
    assert "GetRole" in iam_calls


def test_policy_is_rewritten_only_when_it_differs(
    moto_aws: AWSClients, iam_calls: list[str]
) -> None:
    ensure_execution_role(ROLE, "twin-models", aws=moto_aws)
    iam_calls.clear()

    ensure_execution_role(ROLE, aws=moto_aws)  # bucket dropped: policy changes
    assert writes(iam_calls) == ["PutRolePolicy"]
    assert inline_policy(moto_aws)["Statement"] == BASE_STATEMENTS

    # someone widened the policy by hand: it is put back
    iam_of(moto_aws).put_role_policy(
        RoleName=ROLE,
        PolicyName=INLINE_POLICY_NAME,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    iam_calls.clear()
    ensure_execution_role(ROLE, "other-bucket", aws=moto_aws)
    assert writes(iam_calls) == ["PutRolePolicy"]
    assert inline_policy(moto_aws)["Statement"] == BASE_STATEMENTS + bucket_statements(
        "other-bucket"
    )


def test_user_tags_are_added(moto_aws: AWSClients, iam_calls: list[str]) -> None:
    ensure_execution_role(ROLE, aws=moto_aws, tags={"team": "ml", "cost-center": "42"})
    tags = iam_of(moto_aws).list_role_tags(RoleName=ROLE)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "team": "ml",
        "cost-center": "42",
        "managed-by": "llm-twin-sdk",
    }
    iam_calls.clear()
    ensure_execution_role(ROLE, aws=moto_aws, tags={"team": "ml", "cost-center": "43"})
    assert writes(iam_calls) == ["TagRole"]


def test_existing_sagemaker_role_is_adopted_and_tagged(
    moto_aws: AWSClients, iam_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    make_role(moto_aws, ROLE, SAGEMAKER_PRINCIPAL)
    broad = iam_of(moto_aws).create_policy(
        PolicyName="SageMakerFullAccessCopy",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}],
            }
        ),
    )
    iam_of(moto_aws).attach_role_policy(RoleName=ROLE, PolicyArn=broad["Policy"]["Arn"])
    iam_calls.clear()

    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.deploy.iam"):
        arn = ensure_execution_role(ROLE, aws=moto_aws)

    assert arn == execution_role_arn(ACCOUNT, ROLE)
    # the open trust policy it had (SageMaker from any account) gets the confused-deputy guard
    assert writes(iam_calls) == ["UpdateAssumeRolePolicy", "TagRole", "PutRolePolicy"]
    role = iam_of(moto_aws).get_role(RoleName=ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"] == trust_policy(ACCOUNT)
    tags = iam_of(moto_aws).list_role_tags(RoleName=ROLE)["Tags"]
    assert {"Key": "managed-by", "Value": "llm-twin-sdk"} in tags
    assert "SageMakerFullAccessCopy" in caplog.text  # the user is told; nothing detached
    # the SDK never attaches or detaches managed policies
    assert not any(c.startswith(("Attach", "Detach")) for c in iam_calls)


def test_existing_role_trusted_by_another_service_raises(
    moto_aws: AWSClients, iam_calls: list[str]
) -> None:
    make_role(moto_aws, "ec2-role", "ec2.amazonaws.com")
    iam_calls.clear()

    with pytest.raises(ConfigurationError, match=r"'ec2-role'.*sagemaker\.amazonaws\.com") as info:
        ensure_execution_role("ec2-role", "twin-models", aws=moto_aws)

    assert "ec2.amazonaws.com" in str(info.value)
    assert writes(iam_calls) == []  # nothing changed on that role
    assert iam_of(moto_aws).list_role_policies(RoleName="ec2-role")["PolicyNames"] == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "bad name"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": ""}, "name"),
        ({"name": ROLE, "model_bucket": "s3://twin-models"}, "model_bucket"),
        ({"name": ROLE, "model_bucket": "Bad_Bucket"}, "model_bucket"),
        ({"name": ROLE, "tags": {"aws:owner": "me"}}, "tags"),
        ({"name": ROLE, "tags": {"managed-by": "me"}}, "tags"),
        ({"name": ROLE, "tags": {f"k{i}": "v" for i in range(50)}}, "tags"),
    ],
)
def test_invalid_input_fails_before_any_call(
    moto_aws: AWSClients, iam_calls: list[str], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParameterError, match=f"^{field}: "):
        ensure_execution_role(aws=moto_aws, **kwargs)
    assert iam_calls == []


def test_iam_client_can_be_injected(moto_aws: AWSClients) -> None:
    arn = ensure_execution_role(ROLE, iam_client=iam_of(moto_aws), account_id=ACCOUNT)
    assert arn.endswith(f":role/{ROLE}")


def test_an_iam_client_alone_cannot_tell_the_account_of_a_new_role(
    moto_aws: AWSClients, iam_calls: list[str]
) -> None:
    with pytest.raises(ConfigurationError, match="account_id="):
        ensure_execution_role(ROLE, iam_client=iam_of(moto_aws))
    assert writes(iam_calls) == []


def test_a_role_pinned_to_a_region_names_it_in_its_trust(moto_aws: AWSClients) -> None:
    ensure_execution_role(ROLE, aws=moto_aws, region="eu-west-1")
    role = iam_of(moto_aws).get_role(RoleName=ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"] == trust_policy(ACCOUNT, region="eu-west-1")


def test_a_guarded_trust_is_kept_as_it_is(moto_aws: AWSClients, iam_calls: list[str]) -> None:
    ensure_execution_role(ROLE, aws=moto_aws, region="eu-west-1")
    iam_calls.clear()
    ensure_execution_role(ROLE, aws=moto_aws)  # another region wish does not widen it
    assert writes(iam_calls) == []


def test_an_open_trust_shared_with_another_principal_is_left_alone_with_a_warning(
    moto_aws: AWSClients, iam_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    iam_of(moto_aws).create_role(
        RoleName=ROLE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": [SAGEMAKER_PRINCIPAL, "ec2.amazonaws.com"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    iam_calls.clear()
    with caplog.at_level(logging.WARNING, logger="llm_twin_sdk.deploy.iam"):
        ensure_execution_role(ROLE, aws=moto_aws)
    assert "UpdateAssumeRolePolicy" not in iam_calls
    assert "aws:SourceAccount" in caplog.text
    assert ACCOUNT in caplog.text


# -- Stubber: races, throttling, permissions -------------------------------------------------


@pytest.fixture
def stubbed_iam(aws_credentials: None) -> Any:
    return AWSClients(region="us-east-1").client("iam")


def _role(trust: dict[str, Any] | None = None) -> dict[str, Any]:
    import datetime

    return {
        "Path": "/",
        "RoleName": ROLE,
        "RoleId": "AROAEXAMPLEEXAMPLE01",
        "Arn": execution_role_arn(ACCOUNT, ROLE),
        "CreateDate": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "AssumeRolePolicyDocument": json.dumps(trust or trust_policy(ACCOUNT)),
        "Tags": [{"Key": "managed-by", "Value": "llm-twin-sdk"}],
    }


def test_role_created_concurrently_is_checked_not_failed(stubbed_iam: Any) -> None:
    with Stubber(stubbed_iam) as stub:
        stub.add_client_error("get_role", "NoSuchEntity", http_status_code=404)
        stub.add_client_error("create_role", "EntityAlreadyExists", http_status_code=409)
        stub.add_response("get_role", {"Role": _role()}, {"RoleName": ROLE})
        stub.add_response("list_attached_role_policies", {"AttachedPolicies": []})
        stub.add_client_error("get_role_policy", "NoSuchEntity", http_status_code=404)
        stub.add_response(
            "put_role_policy",
            {},
            {
                "RoleName": ROLE,
                "PolicyName": INLINE_POLICY_NAME,
                "PolicyDocument": json.dumps(execution_policy()),
            },
        )
        arn = ensure_execution_role(ROLE, iam_client=stubbed_iam, account_id=ACCOUNT)
        assert arn == execution_role_arn(ACCOUNT, ROLE)
        stub.assert_no_pending_responses()


def test_throttling_is_retried(stubbed_iam: Any, fast_retry: RetryPolicy) -> None:
    with Stubber(stubbed_iam) as stub:
        stub.add_client_error("get_role", "Throttling", http_status_code=400)
        stub.add_response("get_role", {"Role": _role()}, {"RoleName": ROLE})
        stub.add_response("list_attached_role_policies", {"AttachedPolicies": []})
        stub.add_response(
            "get_role_policy",
            {
                "RoleName": ROLE,
                "PolicyName": INLINE_POLICY_NAME,
                "PolicyDocument": json.dumps(execution_policy()),
            },
        )
        ensure_execution_role(ROLE, iam_client=stubbed_iam, retry=fast_retry)
        stub.assert_no_pending_responses()


def test_trust_with_action_list_and_service_list_is_accepted(stubbed_iam: Any) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["sagemaker.amazonaws.com"]},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {"StringEquals": {"aws:SourceAccount": [ACCOUNT]}},
            }
        ],
    }
    with Stubber(stubbed_iam) as stub:
        stub.add_response("get_role", {"Role": _role(trust)})
        stub.add_response("list_attached_role_policies", {"AttachedPolicies": []})
        stub.add_response(
            "get_role_policy",
            {
                "RoleName": ROLE,
                "PolicyName": INLINE_POLICY_NAME,
                "PolicyDocument": json.dumps(execution_policy()),
            },
        )
        ensure_execution_role(ROLE, iam_client=stubbed_iam)
        stub.assert_no_pending_responses()


def test_deny_statement_does_not_count_as_trust(stubbed_iam: Any) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"Service": SAGEMAKER_PRINCIPAL},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    with Stubber(stubbed_iam) as stub:
        stub.add_response("get_role", {"Role": _role(trust)})
        with pytest.raises(ConfigurationError, match="does not allow sagemaker"):
            ensure_execution_role(ROLE, iam_client=stubbed_iam)


def test_missing_permission_is_a_typed_error(stubbed_iam: Any) -> None:
    with Stubber(stubbed_iam) as stub:
        stub.add_client_error("get_role", "AccessDenied", http_status_code=403)
        with pytest.raises(AccessDeniedError) as info:
            ensure_execution_role(ROLE, iam_client=stubbed_iam)
    assert info.value.operation == "get_role"
    assert isinstance(info.value, AWSError)
