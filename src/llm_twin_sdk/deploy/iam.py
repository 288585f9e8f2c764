"""The IAM execution role SageMaker assumes to run the twin's endpoint — least privilege.

:func:`ensure_execution_role` creates (or finds) a role that only ``sagemaker.amazonaws.com``
may assume, with one inline policy granting what a real-time endpoint needs and nothing else:

* pull the serving container from ECR (``ecr:GetAuthorizationToken`` on ``*``, the only
  resource that action accepts, and the three image-layer reads on ECR repositories);
* write its logs to CloudWatch Logs under ``/aws/sagemaker/*``;
* publish CloudWatch metrics, only in namespaces under ``/aws/sagemaker/``;
* read the model archive bucket, only when ``model_bucket`` is given (``s3:GetObject`` on its
  objects, ``s3:ListBucket`` on the bucket).

No ``*FullAccess`` managed policy is attached, no access key is created, nothing is written to
disk. The policy documents are built by pure functions (:func:`trust_policy`,
:func:`execution_policy`) that can be reviewed or reused (Terraform, CloudFormation) on their own.

Example::

    from llm_twin_sdk.aws import AWSClients
    from llm_twin_sdk.deploy.iam import ensure_execution_role

    role_arn = ensure_execution_role("twin-sagemaker", model_bucket="my-twin-models",
                                     aws=AWSClients(profile="ml"))
    spec = EndpointSpec(name="twin", role_arn=role_arn, ...)

A role IAM has just created can take a few seconds before SageMaker is able to assume it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from ..aws import AWSClients, call_aws
from ..errors import AWSError, ConfigurationError, InvalidParameterError, ResourceNotFoundError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .spec import MANAGED_BY_TAG

__all__ = [
    "INLINE_POLICY_NAME",
    "SAGEMAKER_PRINCIPAL",
    "ensure_execution_role",
    "execution_policy",
    "execution_role_arn",
    "trust_policy",
    "validate_bucket_name",
    "validate_role_name",
]

logger = logging.getLogger(__name__)

SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
"""The only principal the execution role trusts."""

INLINE_POLICY_NAME = "llm-twin-sdk-execution"
"""Name of the one inline policy :func:`ensure_execution_role` puts on the role."""

ROLE_DESCRIPTION = "SageMaker execution role for llm-twin-sdk endpoints (least privilege)."

_ROLE_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_ACCOUNT_ID = re.compile(r"\d{12}")
_PARTITION = re.compile(r"aws[a-z-]*")
_TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{0,256}")
_MAX_TAGS = 50  # IAM's limit per role


# -- validation -----------------------------------------------------------------------------


def validate_role_name(name: str) -> str:
    """Return ``name`` if IAM accepts it as a role name, else raise InvalidParameterError.

    IAM's rule: 1-64 characters among letters, digits and ``_+=,.@-``.
    """
    if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"name: invalid IAM role name {name!r}; allowed: 1-64 characters among letters, "
            "digits and _+=,.@- (no spaces, no slashes)"
        )
    return name


def validate_bucket_name(bucket: str) -> str:
    """Return ``bucket`` if it is a valid S3 bucket name, else raise InvalidParameterError.

    S3's rule (general purpose buckets): 3-63 characters among lowercase letters, digits, ``.``
    and ``-``, starting and ending with a letter or digit, no ``..``, not an IP address, and
    none of the reserved prefixes and suffixes. Pass the bare name, not ``s3://...``.
    """
    allowed = (
        "allowed: a bare bucket name of 3-63 lowercase letters, digits, '.' and '-', starting "
        "and ending with a letter or digit (no 's3://', no key, no '..', not an IP address)"
    )
    if not isinstance(bucket, str) or bucket.startswith("s3://") or "/" in bucket:
        raise InvalidParameterError(f"model_bucket: {bucket!r} is not a bucket name; {allowed}")
    reserved = bucket.startswith(_BUCKET_BAD_PREFIXES) or bucket.endswith(_BUCKET_BAD_SUFFIXES)
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket) or reserved:
        raise InvalidParameterError(f"model_bucket: invalid S3 bucket name {bucket!r}; {allowed}")
    return bucket


def _validate_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """The user's tags plus ``managed-by: llm-twin-sdk``, validated against IAM's rules."""
    user = dict(tags or {})
    for key, value in user.items():
        if (
            not isinstance(key, str)
            or not _TAG_KEY.fullmatch(key)
            or key.lower().startswith("aws:")
        ):
            raise InvalidParameterError(
                f"tags: invalid tag key {key!r}; allowed: 1-128 letters, digits, spaces and "
                "_.:/=+-@, not starting with 'aws:'"
            )
        if key == MANAGED_BY_TAG[0]:
            raise InvalidParameterError(f"tags: tag key {key!r} is reserved for llm-twin-sdk")
        if not isinstance(value, str) or not _TAG_VALUE.fullmatch(value):
            raise InvalidParameterError(
                f"tags: invalid value for tag {key!r}; allowed: 0-256 letters, digits, spaces "
                "and _.:/=+-@"
            )
    if len(user) + 1 > _MAX_TAGS:
        raise InvalidParameterError(f"tags: at most {_MAX_TAGS - 1} tags (IAM allows {_MAX_TAGS})")
    return {**user, MANAGED_BY_TAG[0]: MANAGED_BY_TAG[1]}


# -- policy documents (pure) ----------------------------------------------------------------


def trust_policy() -> dict[str, Any]:
    """The role's trust policy: only SageMaker may assume it (``sts:AssumeRole``)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": SAGEMAKER_PRINCIPAL},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def execution_policy(model_bucket: str | None = None, *, partition: str = "aws") -> dict[str, Any]:
    """The role's inline permissions policy; the model bucket's statements only if one is given.

    Args:
        model_bucket: bare name of the S3 bucket holding model archives (read-only access).
        partition: ``aws``, ``aws-cn`` or ``aws-us-gov`` — the ARN prefix of the resources.

    Raises:
        InvalidParameterError: the bucket name or partition is invalid.
    """
    if not _PARTITION.fullmatch(partition):
        raise InvalidParameterError(f"partition: {partition!r}; allowed: aws, aws-cn, aws-us-gov")
    statements: list[dict[str, Any]] = [
        {
            # GetAuthorizationToken supports no resource-level scoping: "*" is the only value.
            "Sid": "EcrAuthorizationToken",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "EcrImagePull",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            # Serving images live in AWS's own accounts (one per region), so the account and
            # region cannot be pinned; the ARN still limits these reads to ECR repositories.
            "Resource": f"arn:{partition}:ecr:*:*:repository/*",
        },
        {
            "Sid": "CloudWatchLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            "Resource": f"arn:{partition}:logs:*:*:log-group:/aws/sagemaker/*",
        },
        {
            # PutMetricData has no resource scoping either; its namespace condition key does.
            "Sid": "CloudWatchMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
    ]
    if model_bucket is not None:
        bucket = validate_bucket_name(model_bucket)
        statements += [
            {
                "Sid": "ModelBucketRead",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/*",
            },
            {
                "Sid": "ModelBucketList",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def execution_role_arn(account_id: str, name: str, *, partition: str = "aws") -> str:
    """The ARN of role ``name`` (path ``/``) in ``account_id``, without any AWS call.

    >>> execution_role_arn("123456789012", "twin-sagemaker")
    'arn:aws:iam::123456789012:role/twin-sagemaker'
    """
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidParameterError(f"account_id: {account_id!r}; allowed: exactly 12 digits")
    if not _PARTITION.fullmatch(partition):
        raise InvalidParameterError(f"partition: {partition!r}; allowed: aws, aws-cn, aws-us-gov")
    return f"arn:{partition}:iam::{account_id}:role/{validate_role_name(name)}"


# -- the role ---------------------------------------------------------------------------------


def _as_document(value: Any) -> dict[str, Any]:
    """A policy document as returned by boto3 (already a dict) or as a (URL-encoded) string."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        from urllib.parse import unquote

        text = value if value.lstrip().startswith("{") else unquote(value)
        loaded = json.loads(text)
        if isinstance(loaded, dict):
            return loaded
    raise ConfigurationError(f"unreadable IAM policy document: {value!r}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _trusts_sagemaker(document: Mapping[str, Any]) -> bool:
    """True if an Allow statement lets ``sagemaker.amazonaws.com`` call ``sts:AssumeRole``."""
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = {str(a).lower() for a in _as_list(statement.get("Action"))}
        if not actions & {"sts:assumerole", "sts:*", "*"}:
            continue
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if SAGEMAKER_PRINCIPAL in services:
            return True
    return False


def _other_principals(document: Mapping[str, Any]) -> list[str]:
    """Principals other than SageMaker that the trust policy allows (for a warning)."""
    others: list[str] = []
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if not isinstance(principal, dict):
            others.append(str(principal))
            continue
        for kind, values in principal.items():
            others += [f"{kind}:{v}" for v in _as_list(values) if v != SAGEMAKER_PRINCIPAL]
    return others


def _canonical(document: Mapping[str, Any]) -> str:
    """A comparable form of a policy document (IAM may reorder keys or wrap single values)."""

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [norm(v) for v in value]
            return items[0] if len(items) == 1 else items
        return value

    return json.dumps(norm(dict(document)), sort_keys=True, separators=(",", ":"))


def _partition_of(client: Any) -> str:
    partition = getattr(getattr(client, "meta", None), "partition", None)
    return partition if isinstance(partition, str) and _PARTITION.fullmatch(partition) else "aws"


def ensure_execution_role(
    name: str,
    model_bucket: str | None = None,
    *,
    iam_client: Any = None,
    aws: AWSClients | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    tags: dict[str, str] | None = None,
) -> str:
    """Create or find the SageMaker execution role ``name``; return its ARN.

    The role trusts only ``sagemaker.amazonaws.com`` and carries one inline policy,
    :data:`INLINE_POLICY_NAME` (see :func:`execution_policy`): ECR image pull, CloudWatch logs
    under ``/aws/sagemaker/*``, CloudWatch metrics in ``/aws/sagemaker/*`` namespaces, and
    read-only access to ``model_bucket`` when given. It is tagged ``managed-by: llm-twin-sdk``
    (plus ``tags``). No managed policy is attached and no access key is created.

    Idempotent: when the role exists, its trust policy is checked, and the inline policy and
    tags are written again only if they differ — a second call with the same arguments makes
    no write call at all. Other inline or managed policies already on an existing role are left
    alone (a warning is logged for attached managed policies).

    The caller needs ``iam:GetRole``, ``iam:CreateRole``, ``iam:TagRole``,
    ``iam:GetRolePolicy``, ``iam:PutRolePolicy`` and (optional, for the warning)
    ``iam:ListAttachedRolePolicies`` on this role.

    Args:
        name: role name (IAM rule: 1-64 characters among letters, digits and ``_+=,.@-``).
        model_bucket: bare name of the S3 bucket with model archives; ``None`` for hub models.
        iam_client: a boto3 IAM client (wins over ``aws``).
        aws: the SDK's AWS clients; default: ``AWSClients()`` from the environment.
        retry: retry policy for the IAM calls (throttling, 5xx).
        tags: extra tags for a new role (or added to an existing one).

    Returns:
        The role's ARN, for ``EndpointSpec(role_arn=...)``.

    Raises:
        InvalidParameterError: invalid role name, bucket name or tags (before any AWS call).
        ConfigurationError: the role exists but SageMaker is not allowed to assume it.
        AccessDeniedError: the caller lacks one of the IAM permissions above.
        AWSError: any other IAM failure.

    Example::

        arn = ensure_execution_role("twin-sagemaker", model_bucket="my-twin-models")
        Deployer(region="eu-central-1").deploy(EndpointSpec(name="twin", role_arn=arn))
    """
    validate_role_name(name)
    if model_bucket is not None:
        validate_bucket_name(model_bucket)
    wanted_tags = _validate_tags(tags)

    iam = iam_client if iam_client is not None else (aws or AWSClients()).client("iam")
    document = execution_policy(model_bucket, partition=_partition_of(iam))

    role = _get_role(iam, name, retry)
    if role is None:
        try:
            role = call_aws(
                iam,
                "create_role",
                policy=retry,
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust_policy()),
                Description=ROLE_DESCRIPTION,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(wanted_tags.items())],
            )["Role"]
            logger.info("created IAM role %s", name)
        except AWSError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
            role = _get_role(iam, name, retry)  # created concurrently: check it as any other
            if role is None:
                raise
            _check_existing(iam, role, wanted_tags, retry)
    else:
        _check_existing(iam, role, wanted_tags, retry)

    current = _inline_policy(iam, name, retry)
    if current is None or _canonical(current) != _canonical(document):
        call_aws(
            iam,
            "put_role_policy",
            policy=retry,
            RoleName=name,
            PolicyName=INLINE_POLICY_NAME,
            PolicyDocument=json.dumps(document),
        )
        action = "wrote" if current is None else "updated"
        logger.info("%s inline policy %s on role %s", action, INLINE_POLICY_NAME, name)
    return str(role["Arn"])


def _get_role(iam: Any, name: str, retry: RetryPolicy) -> dict[str, Any] | None:
    try:
        role: dict[str, Any] = call_aws(iam, "get_role", policy=retry, RoleName=name)["Role"]
    except ResourceNotFoundError:
        return None
    return role


def _inline_policy(iam: Any, name: str, retry: RetryPolicy) -> dict[str, Any] | None:
    try:
        out = call_aws(
            iam, "get_role_policy", policy=retry, RoleName=name, PolicyName=INLINE_POLICY_NAME
        )
    except ResourceNotFoundError:
        return None
    return _as_document(out["PolicyDocument"])


def _check_existing(
    iam: Any, role: Mapping[str, Any], wanted_tags: Mapping[str, str], retry: RetryPolicy
) -> None:
    """Refuse a role SageMaker cannot assume; add missing tags; warn about extra trust/policies."""
    name = str(role["RoleName"])
    trust = _as_document(role.get("AssumeRolePolicyDocument", {}))
    if not _trusts_sagemaker(trust):
        raise ConfigurationError(
            f"IAM role {name!r} exists but does not allow {SAGEMAKER_PRINCIPAL} to assume it "
            f"(trusted: {', '.join(_other_principals(trust)) or 'nobody'}). Choose another role "
            "name, or add SageMaker to that role's trust policy yourself; llm-twin-sdk does not "
            "change the trust policy of an existing role."
        )
    others = _other_principals(trust)
    if others:
        logger.warning(
            "IAM role %s is also trusted by %s: they get the endpoint's permissions too",
            name,
            ", ".join(others),
        )

    current = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    missing = {k: v for k, v in wanted_tags.items() if current.get(k) != v}
    if missing:
        call_aws(
            iam,
            "tag_role",
            policy=retry,
            RoleName=name,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(missing.items())],
        )

    try:
        attached = call_aws(iam, "list_attached_role_policies", policy=retry, RoleName=name)
    except AWSError as exc:  # optional check: the caller may lack the permission
        logger.debug("cannot list managed policies of role %s: %s", name, exc)
        return
    names = [p["PolicyName"] for p in attached.get("AttachedPolicies", [])]
    if names:
        logger.warning(
            "IAM role %s has managed policies attached (%s): it has more than the least "
            "privilege llm-twin-sdk grants; detach them if SageMaker does not need them",
            name,
            ", ".join(names),
        )
