"""SecuritySpec: what a company's security review asks of an endpoint — the model in your VPC,
network isolation, your KMS keys for the storage volume and for asynchronous results.

Set ``EndpointSpec(security=SecuritySpec(...))``; the same object given to
``ensure_execution_role(network=...)`` widens the execution role by exactly what it needs
(:func:`security_statements`). Guide: docs/deployment.md, "Networking and encryption". Example::

    security = SecuritySpec(
        subnets=("subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"),
        security_group_ids=("sg-0123456789abcdef0",),
        network_isolation=True,
        volume_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..display import listing
from ..errors import InvalidParameterError
from ..types import _Model

__all__ = [
    "LOCAL_STORAGE_FAMILIES",
    "SecuritySpec",
    "check_fits",
    "check_key_regions",
    "security_statements",
]

_SUBNET = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
_GROUP = re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")
_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z]{2}(-[a-z]+)+-\d):\d{12}:key/"
    r"(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_KEY_RULE = (
    "must be a KMS key ARN, arn:aws:kms:<region>:<account>:key/<key id> (a bare key id or an "
    "alias cannot scope the execution role's permissions to that one key)"
)
_LIMITS = {"subnets": 16, "security_group_ids": 5}  # SageMaker's VpcConfig limits

LOCAL_STORAGE_FAMILIES = frozenset(
    {"g4dn", "g5", "g6", "g6e", "g7e", "p4d", "p4de", "p5", "p5e", "p5en", "trn1", "trn2"}
)
"""Instance families with local NVMe storage, which their own hardware encrypts: SageMaker
refuses a ``KmsKeyId`` on their endpoint configs (CreateEndpointConfig fails)."""


class SecuritySpec(_Model):
    """Networking and encryption of an endpoint; every field is off by default.

    - ``subnets`` and ``security_group_ids``: run the model in your VPC (both, or neither);
      give subnets in two or more Availability Zones when you run more than one instance.
    - ``network_isolation``: the container makes no network call at all (weights come from
      ``model_data`` in S3, which SageMaker fetches for it).
    - ``volume_kms_key_id``: your KMS key for the instances' storage volume.
    - ``output_kms_key_id``: your KMS key for asynchronous-inference results in S3 (an
      asynchronous endpoint's ``AsyncInferenceConfig.OutputConfig.KmsKeyId``).
    """

    subnets: tuple[str, ...] = Field((), description="VPC subnet ids (1-16), e.g. subnet-0a1b...")
    security_group_ids: tuple[str, ...] = Field((), description="Security group ids (1-5).")
    network_isolation: bool = Field(False, description="No network calls in or out of the model.")
    volume_kms_key_id: str | None = Field(None, description="KMS key ARN of the storage volume.")
    output_kms_key_id: str | None = Field(None, description="KMS key ARN of async results.")

    @field_validator("subnets", "security_group_ids")
    @classmethod
    def _ids(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        field = str(info.field_name)
        pattern, prefix = (_SUBNET, "subnet") if field == "subnets" else (_GROUP, "sg")
        if bad := [item for item in value if not pattern.match(item)]:
            raise ValueError(
                f"{bad[0]!r} is not a {prefix} id: '{prefix}-' and 8 or 17 lowercase hex digits"
            )
        if len(set(value)) != len(value):
            raise ValueError("each id at most once")
        if len(value) > _LIMITS[field]:
            raise ValueError(f"at most {_LIMITS[field]} (SageMaker's limit)")
        return value

    @field_validator("volume_kms_key_id", "output_kms_key_id")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and not _KEY_ARN.match(value):
            raise ValueError(_KEY_RULE)
        return value

    @model_validator(mode="after")
    def _whole_vpc(self) -> SecuritySpec:
        if self.security_group_ids and not self.subnets:
            _fail(("subnets",), "a VPC needs at least 1 subnet beside its security groups", ())
        if self.subnets and not self.security_group_ids:
            _fail(("security_group_ids",), "a VPC needs at least 1 security group", ())
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # What is set; id lists as [count: first, …] and ARNs cut short, so 16 subnets and
        # two keys still fit one line.
        for name, value in self._changed_args():
            ids = name in _LIMITS
            yield name, listing(getattr(self, name), shown=2) if ids else value

    @property
    def in_vpc(self) -> bool:
        """Whether the model runs in your VPC."""
        return bool(self.subnets)

    def vpc_config(self) -> dict[str, list[str]] | None:
        """SageMaker's ``VpcConfig`` (``None``: SageMaker's own network)."""
        if not self.in_vpc:
            return None
        return {"SecurityGroupIds": list(self.security_group_ids), "Subnets": list(self.subnets)}

    def network_fields(self) -> dict[str, Any]:
        """``VpcConfig`` and ``EnableNetworkIsolation`` where set: the model's for a
        model-based endpoint, the endpoint config's for inference components."""
        fields: dict[str, Any] = {}
        if (vpc := self.vpc_config()) is not None:
            fields["VpcConfig"] = vpc
        if self.network_isolation:
            fields["EnableNetworkIsolation"] = True
        return fields

    def hashed(self) -> dict[str, Any]:
        """What of this spec the endpoint config's name hashes (empty when nothing is set,
        so the names of endpoints deployed before security existed hold)."""
        keys = {"volume_kms": self.volume_kms_key_id, "output_kms": self.output_kms_key_id}
        return {key: value for key, value in keys.items() if value is not None}

    def secure_config(self, request: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``create_endpoint_config`` parameters with the volume key and, for an
        asynchronous endpoint (its ``AsyncInferenceConfig``), the results' key."""
        secured = dict(request)
        if self.volume_kms_key_id is not None:
            secured["KmsKeyId"] = self.volume_kms_key_id
        if self.output_kms_key_id is not None and "AsyncInferenceConfig" in secured:
            config = secured["AsyncInferenceConfig"]
            output = {**config["OutputConfig"], "KmsKeyId": self.output_kms_key_id}
            secured["AsyncInferenceConfig"] = {**config, "OutputConfig": output}
        return secured

    def keywords(self) -> list[str]:
        """What is set, in a word each, for reprs: ``["vpc", "isolated", "kms"]``."""
        flags = {
            "vpc": self.in_vpc,
            "isolated": self.network_isolation,
            "kms": bool(self.volume_kms_key_id or self.output_kms_key_id),
        }
        return [word for word, on in flags.items() if on]

    def describe(self) -> dict[str, str]:
        """What is set, one line each, for plans: ``{"vpc": "subnets ...; security groups
        ...", "isolation": ..., "encryption": "volume: KMS key ..."}`` (empty: SageMaker's
        defaults)."""
        facts: dict[str, str] = {}
        if self.in_vpc:
            facts["vpc"] = f"subnets {', '.join(self.subnets)}; security groups " + ", ".join(
                self.security_group_ids
            )
        if self.network_isolation:
            facts["isolation"] = "no network calls in or out of the container"
        keys = {"volume": self.volume_kms_key_id, "async results": self.output_kms_key_id}
        if encryption := [f"{what}: KMS key {key}" for what, key in keys.items() if key]:
            facts["encryption"] = "; ".join(encryption)
        return facts


def _fail(loc: tuple[str, ...], message: str, value: Any) -> None:
    """Raise a validation error located at ``loc`` (so a spec file names that field's line)."""
    error = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
    raise ValidationError.from_exception_data("SecuritySpec", [error])


def check_fits(
    security: SecuritySpec, *, instance_type: str, model_data: str | None, model_id: str
) -> None:
    """Refuse what SageMaker would reject, or a container that could not start, naming the
    field: a volume key on an instance type with local storage; network isolation with
    weights on the Hugging Face hub (the isolated container cannot download them)."""
    family = instance_type.split(".")[1] if instance_type.count(".") == 2 else ""
    if security.volume_kms_key_id is not None and family in LOCAL_STORAGE_FAMILIES:
        _fail(
            ("security", "volume_kms_key_id"),
            f"{instance_type} has local NVMe storage, which its own hardware encrypts; "
            "SageMaker refuses a volume KMS key there: drop volume_kms_key_id or choose a "
            "family without local storage (e.g. "
            "ml.p3, ml.inf2, ml.m5, ml.c5)",
            security.volume_kms_key_id,
        )
    if security.network_isolation and model_data is None:
        _fail(
            ("security", "network_isolation"),
            f"an isolated container cannot download {model_id!r} from the Hugging Face hub; "
            "put the weights in S3 (model_data='s3://<bucket>/<key>.tar.gz'), which SageMaker "
            "fetches for the container",
            True,
        )


def check_key_regions(security: SecuritySpec, region: str) -> None:
    """InvalidParameterError when the volume key is not in the endpoint's ``region`` (SageMaker
    encrypts a volume only with a key of its own region)."""
    key = security.volume_kms_key_id
    match = _KEY_ARN.match(key or "")
    if key is not None and match is not None and match.group("region") != region:
        raise InvalidParameterError(
            f"security.volume_kms_key_id: the key is in {match.group('region')}, the endpoint "
            f"in {region}; SageMaker needs a key of the endpoint's region (KMS multi-Region "
            "keys have a replica ARN in each region)"
        )


def _allow(sid: str, actions: list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def security_statements(security: SecuritySpec, *, partition: str) -> list[dict[str, Any]]:
    """The execution role's statements for ``security``: nothing when nothing is set.

    A VPC: describe the network (these actions take no resource), create network interfaces
    only in the spec's subnets with its security groups, and manage only interfaces in those
    subnets. A key: use that one key, for what the volume (EBS, through a grant for an AWS
    resource only) or the S3 results (SSE-KMS writes) need.
    """
    statements: list[dict[str, Any]] = []
    ec2 = f"arn:{partition}:ec2:*:*"
    if security.in_vpc:
        subnets = [f"{ec2}:subnet/{subnet}" for subnet in security.subnets]
        groups = [f"{ec2}:security-group/{group}" for group in security.security_group_ids]
        interfaces = f"{ec2}:network-interface/*"
        targets = [interfaces, *subnets, *groups]
        describe = ["DhcpOptions", "NetworkInterfaces", "SecurityGroups", "Subnets", "Vpcs"]
        statements += [
            _allow("VpcDescribe", [f"ec2:Describe{what}" for what in describe], "*"),
            _allow("VpcCreateInterfaces", ["ec2:CreateNetworkInterface"], targets),
            _allow(
                "VpcManageInterfaces",
                [
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                interfaces,
                Condition={"ArnLike": {"ec2:Subnet": subnets}},
            ),
        ]
    if (volume := security.volume_kms_key_id) is not None:
        use = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        statements += [
            _allow("VolumeKeyUse", [*use, "kms:GenerateDataKeyWithoutPlaintext"], volume),
            _allow(
                "VolumeKeyGrant",
                ["kms:CreateGrant"],
                volume,
                Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ]
    if (output := security.output_kms_key_id) is not None:
        actions = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
        statements.append(_allow("AsyncOutputKey", actions, output))
    return statements
