"""The IAM execution role SageMaker assumes to run the twin's endpoint — least privilege.

What the role may do, and why: docs/deployment.md (IAM). :func:`trust_policy` and
:func:`execution_policy` are pure, for review or for Terraform / CloudFormation.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..aws import AWSClients, call_aws, describe_or_none, error_kind
from ..endpoint import MANAGED_BY_TAG, tag_problem
from ..errors import AWSError, ConfigurationError, InvalidParameterError
from ..retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .security import SecuritySpec, security_statements

if TYPE_CHECKING:
    from .async_inference import AsyncInferenceSpec
    from .custom_code import CustomCodeSpec

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

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_RULES = {  # field -> (pattern, what it allows)
    "name": (
        r"[A-Za-z0-9_+=,.@-]{1,64}",
        "1-64 characters among letters, digits and _+=,.@- (no spaces, no slashes)",
    ),
    "partition": (r"aws[a-z-]*", "aws, aws-cn, aws-us-gov"),
    "region": (r"\*|[a-z]{2}(-[a-z]+)+-\d", "'*' or a region, e.g. us-east-1"),
    "account_id": (r"\d{12}", "exactly 12 digits"),
}
_MAX_TAGS = 50  # IAM's limit per role
_DEPUTY_KEYS = {"aws:sourceaccount", "aws:sourcearn"}
_Call = Callable[..., Any]


def _check(field: str, value: Any) -> str:
    pattern, allowed = _RULES[field]
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise InvalidParameterError(f"{field}: {value!r}; allowed: {allowed}")
    return value


def validate_role_name(name: str) -> str:
    """``name`` if IAM accepts it as a role name (1-64 of letters, digits and ``_+=,.@-``)."""
    return _check("name", name)


def validate_bucket_name(bucket: str) -> str:
    """``bucket`` if it is a valid S3 bucket name, else InvalidParameterError.

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


def trust_policy(account_id: str, *, region: str = "*", partition: str = "aws") -> dict[str, Any]:
    """The role's trust policy: only SageMaker, acting for ``account_id``, may assume it.

    The conditions are the confused-deputy guard AWS recommends for service roles: SageMaker
    may use the role only for resources of this account (``aws:SourceAccount``) and of
    ``region`` (``aws:SourceArn``; ``"*"``: every region).

    >>> trust_policy("123456789012", region="eu-central-1")["Statement"][0]["Condition"]["ArnLike"]
    {'aws:SourceArn': 'arn:aws:sagemaker:eu-central-1:123456789012:*'}
    """
    source = f"arn:{_check('partition', partition)}:sagemaker:{_check('region', region)}"
    condition = {
        "StringEquals": {"aws:SourceAccount": _check("account_id", account_id)},
        "ArnLike": {"aws:SourceArn": f"{source}:{account_id}:*"},
    }
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": SAGEMAKER_PRINCIPAL},
        "Action": "sts:AssumeRole",
        "Condition": condition,
    }
    return {"Version": "2012-10-17", "Statement": [statement]}


def _allow(sid: str, action: str | list[str], resource: str, **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource, **extra}


def execution_policy(
    model_bucket: str | None = None,
    *,
    partition: str = "aws",
    security: SecuritySpec | None = None,
    async_inference: AsyncInferenceSpec | None = None,
    custom_code: CustomCodeSpec | None = None,
) -> dict[str, Any]:
    """The role's inline permissions policy; the model bucket's statements only if one is given.

    Args:
        model_bucket: bare name of the S3 bucket holding model archives (read-only access).
        partition: ``aws``, ``aws-cn`` or ``aws-us-gov`` — the ARN prefix of the resources.
        security: the endpoint's :class:`~llm_twin_sdk.deploy.security.SecuritySpec`; its VPC
            and KMS keys add what they need, scoped to those subnets and keys
            (:func:`~llm_twin_sdk.deploy.security.security_statements`).
        async_inference: an asynchronous endpoint's paths and topics (write results, read
            inputs, publish notifications: :meth:`AsyncInferenceSpec.role_statements`).
        custom_code: your own code's archives (read them under its ``artifact_path``:
            :meth:`CustomCodeSpec.role_statements`).
    """
    arn = f"arn:{_check('partition', partition)}"
    pull = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    logs = ["CreateLogGroup", "CreateLogStream", "DescribeLogStreams", "PutLogEvents"]
    namespace = {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
    statements = [
        # GetAuthorizationToken supports no resource-level scoping: "*" is the only value.
        _allow("EcrAuthorizationToken", "ecr:GetAuthorizationToken", "*"),
        # Serving images live in AWS's own accounts (one per region), so the account and
        # region cannot be pinned; the ARN still limits these reads to ECR repositories.
        _allow("EcrImagePull", pull, f"{arn}:ecr:*:*:repository/*"),
        _allow(
            "CloudWatchLogs",
            [f"logs:{action}" for action in logs],
            f"{arn}:logs:*:*:log-group:/aws/sagemaker/*",
        ),
        # PutMetricData has no resource scoping either; its namespace condition key does.
        _allow("CloudWatchMetrics", "cloudwatch:PutMetricData", "*", Condition=namespace),
    ]
    if model_bucket is not None:
        bucket = f"{arn}:s3:::{validate_bucket_name(model_bucket)}"
        statements.append(_allow("ModelBucketRead", "s3:GetObject", f"{bucket}/*"))
        statements.append(_allow("ModelBucketList", "s3:ListBucket", bucket))
    if security is not None:
        statements += security_statements(_security(security), partition=partition)
    if async_inference is not None:
        statements += async_inference.role_statements(partition=partition)
    if custom_code is not None:
        statements += custom_code.role_statements(partition=partition)
    return {"Version": "2012-10-17", "Statement": statements}


def _security(value: object) -> SecuritySpec:
    if not isinstance(value, SecuritySpec):
        kind = type(value).__name__
        raise InvalidParameterError(f"security: expected a SecuritySpec, got {kind}")
    return value


def execution_role_arn(account_id: str, name: str, *, partition: str = "aws") -> str:
    """The ARN of role ``name`` (path ``/``) in ``account_id``, without any AWS call.

    >>> execution_role_arn("123456789012", "twin-sagemaker")
    'arn:aws:iam::123456789012:role/twin-sagemaker'
    """
    _check("account_id", account_id)
    return f"arn:{_check('partition', partition)}:iam::{account_id}:role/{validate_role_name(name)}"


def _as_document(value: Any) -> dict[str, Any]:
    """A policy document as returned by boto3 (already a dict) or as a (URL-encoded) string."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        text = value if value.lstrip().startswith("{") else unquote(value)
        loaded = json.loads(text)
        if isinstance(loaded, dict):
            return loaded
    raise ConfigurationError(f"unreadable IAM policy document: {value!r}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _trust(document: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The Allow statements that let SageMaker ``sts:AssumeRole``, and the other principals."""
    sagemaker: list[dict[str, Any]] = []
    others: list[str] = []
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = {str(a).lower() for a in _as_list(statement.get("Action"))}
        principal = statement.get("Principal")
        if not isinstance(principal, dict):
            others.append(str(principal))
            continue
        for kind, values in principal.items():
            others += [f"{kind}:{v}" for v in _as_list(values) if v != SAGEMAKER_PRINCIPAL]
        services = _as_list(principal.get("Service"))
        if actions & {"sts:assumerole", "sts:*", "*"} and SAGEMAKER_PRINCIPAL in services:
            sagemaker.append(statement)
    return sagemaker, others


def _guarded(statement: Mapping[str, Any]) -> bool:
    """The statement carries a confused-deputy condition (source account or ARN)."""
    conditions = [c for c in (statement.get("Condition") or {}).values() if isinstance(c, dict)]
    return any(key.lower() in _DEPUTY_KEYS for condition in conditions for key in condition)


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
    valid = isinstance(partition, str) and re.fullmatch(_RULES["partition"][0], partition)
    return str(partition) if valid else "aws"


def ensure_execution_role(
    name: str,
    model_bucket: str | None = None,
    *,
    iam_client: Any = None,
    aws: AWSClients | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    tags: dict[str, str] | None = None,
    account_id: str | None = None,
    region: str = "*",
    security: SecuritySpec | None = None,
    async_inference: AsyncInferenceSpec | None = None,
    custom_code: CustomCodeSpec | None = None,
) -> str:
    """Create or find the SageMaker execution role ``name``; return its ARN.

    The role trusts only SageMaker acting for your account (:func:`trust_policy`), carries
    one inline policy, :data:`INLINE_POLICY_NAME` (:func:`execution_policy`), and is tagged
    ``managed-by: llm-twin-sdk`` plus ``tags``. Idempotent: a repeated call writes nothing.
    An existing role is checked; how, and the IAM actions the caller needs: docs/deployment.md.

    Args:
        model_bucket: bare name of the S3 bucket with model archives; ``None`` for hub models.
        tags: extra tags for a new role (or added to an existing one).
        iam_client: a boto3 IAM client.
        aws: or the SDK's clients (default: ``AWSClients()``).
        account_id: the account the trust policy names; default: the existing role's, else
            the caller's (``sts:GetCallerIdentity`` through ``aws``). Needed with an
            ``iam_client`` alone when the role does not exist yet.
        region: pin the trust policy to this region; ``"*"``: every region of the account.
        security: the ``SecuritySpec`` the role's endpoints use (the same object as
            ``EndpointSpec(security=...)``): the role may then create network interfaces in
            its subnets and use its KMS keys, and nothing more.
        async_inference: the role also serves this asynchronous endpoint (its S3 paths, its
            SNS topics).
        custom_code: the role's endpoint runs your own code: read its archives in S3 (the
            same object as ``EndpointSpec(custom_code=...)``).

    Raises:
        InvalidParameterError: invalid name, bucket, tags, account, region or security
            (before any call).
        ConfigurationError: the role exists but SageMaker may not assume it, or the account
            cannot be known.
        AccessDeniedError / AWSError: an IAM call failed.

    Example: ``EndpointSpec(name="twin", role_arn=ensure_execution_role("twin-sagemaker"))``.
    """
    validate_role_name(name)
    if model_bucket is not None:
        validate_bucket_name(model_bucket)
    if problem := tag_problem(tags or {}, limit=_MAX_TAGS - 1):
        raise InvalidParameterError(f"tags: {problem}")
    wanted_tags = {**(tags or {}), MANAGED_BY_TAG[0]: MANAGED_BY_TAG[1]}
    if account_id is not None:
        _check("account_id", account_id)
    _check("region", region)
    if security is not None:
        _security(security)

    if iam_client is None:
        aws = aws or AWSClients()
        iam_client = aws.client("iam")
    call: _Call = functools.partial(call_aws, iam_client, policy=retry)
    find: _Call = functools.partial(describe_or_none, iam_client, policy=retry)
    partition = _partition_of(iam_client)
    document = execution_policy(
        model_bucket,
        partition=partition,
        security=security,
        async_inference=async_inference,
        custom_code=custom_code,
    )
    role = (find("get_role", RoleName=name) or {}).get("Role")
    if role is None:
        account = account_id or _caller_account(aws, retry)
        trust = trust_policy(account, region=region, partition=partition)
        try:
            role = call(
                "create_role",
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=ROLE_DESCRIPTION,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(wanted_tags.items())],
            )["Role"]
            logger.info("created IAM role %s", name)
        except AWSError as exc:
            if error_kind(exc.code) != "already-exists":
                raise
            role = (find("get_role", RoleName=name) or {}).get("Role")  # made concurrently:
            if role is None:  # check it as any other
                raise
            _check_existing(call, role, wanted_tags, region=region, partition=partition)
    else:
        _check_existing(call, role, wanted_tags, region=region, partition=partition)

    current = find("get_role_policy", RoleName=name, PolicyName=INLINE_POLICY_NAME)
    current = None if current is None else _as_document(current["PolicyDocument"])
    if current is None or _canonical(current) != _canonical(document):
        text = json.dumps(document)
        call("put_role_policy", RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=text)
        action = "wrote" if current is None else "updated"
        logger.info("%s inline policy %s on role %s", action, INLINE_POLICY_NAME, name)
    return str(role["Arn"])


def _caller_account(aws: AWSClients | None, retry: RetryPolicy) -> str:
    if aws is None:
        raise ConfigurationError(
            "the trust policy names your AWS account, which an iam_client alone cannot tell: "
            "pass account_id= (or aws= instead of iam_client=)"
        )
    return str(call_aws(aws.client("sts"), "get_caller_identity", policy=retry)["Account"])


def _check_existing(
    call: _Call,
    role: Mapping[str, Any],
    wanted_tags: Mapping[str, str],
    *,
    region: str,
    partition: str,
) -> None:
    """Refuse a role SageMaker cannot assume; guard an open trust; add missing tags; warn
    about extra principals and policies."""
    name = str(role["RoleName"])
    sagemaker, others = _trust(_as_document(role.get("AssumeRolePolicyDocument", {})))
    if not sagemaker:
        raise ConfigurationError(
            f"IAM role {name!r} exists but does not allow {SAGEMAKER_PRINCIPAL} to assume it "
            f"(trusted: {', '.join(others) or 'nobody'}). Choose another role name, or add "
            "SageMaker to that role's trust policy yourself; llm-twin-sdk does not give an "
            "existing role a new principal."
        )
    if others:
        logger.warning(
            "IAM role %s is also trusted by %s: they get the endpoint's permissions too",
            name,
            ", ".join(others),
        )
    if not all(_guarded(statement) for statement in sagemaker):
        account = str(role["Arn"]).split(":")[4]
        guarded = trust_policy(account, region=region, partition=partition)
        if others:  # not ours to rewrite: say what is missing
            logger.warning(
                "IAM role %s lets %s assume it for any account (confused deputy); add the "
                "conditions %s to its trust statement",
                name,
                SAGEMAKER_PRINCIPAL,
                json.dumps(guarded["Statement"][0]["Condition"]),
            )
        else:
            call("update_assume_role_policy", RoleName=name, PolicyDocument=json.dumps(guarded))
            logger.info("IAM role %s: SageMaker may now assume it for %s only", name, account)
    current = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    if missing := {k: v for k, v in wanted_tags.items() if current.get(k) != v}:
        call(
            "tag_role",
            RoleName=name,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(missing.items())],
        )
    try:
        attached = call("list_attached_role_policies", RoleName=name).get("AttachedPolicies", [])
    except AWSError as exc:  # optional check: the caller may lack the permission
        logger.debug("cannot list managed policies of role %s: %s", name, exc)
        return
    if attached:
        logger.warning(
            "IAM role %s has managed policies attached (%s): it has more than the least "
            "privilege llm-twin-sdk grants; detach them if SageMaker does not need them",
            name,
            ", ".join(p["PolicyName"] for p in attached),
        )
