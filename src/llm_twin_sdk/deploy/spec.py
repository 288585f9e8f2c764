"""EndpointSpec: everything that defines a SageMaker deployment of the twin, validated (an
invalid field raises :class:`~llm_twin_sdk.errors.InvalidParameterError` naming it); model and
endpoint config are named ``<name>-<content hash>`` (docs/deployment.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any, Literal, TypeAlias

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from ..display import brief
from ..endpoint import MANAGED_BY_TAG, RESOURCE_NAME, EndpointRef, tag_problem
from ..redaction import mask_secrets
from ..types import _Model
from .async_inference import AsyncInferenceSpec
from .custom_code import RESERVED_ENVIRONMENT as _CODE_ENV
from .custom_code import CustomCodeSpec
from .security import SecuritySpec, check_fits

__all__ = [
    "DEFAULT_MODEL_ID",
    "ENDPOINT_NAME_MAX",
    "KNOWN_INSTANCE_FAMILIES",
    "NEURON_FAMILIES",
    "MANAGED_BY_TAG",
    "RESOURCE_NAME",
    "Engine",
    "CustomCodeSpec",
    "EndpointRef",
    "EndpointSpec",
    "InferenceComponentSpec",
    "Quantize",
    "RolloutSpec",
    "SecuritySpec",
    "gpus_of",
]

DEFAULT_MODEL_ID = "mlabonne/TwinLlama-3.1-8B-DPO"
SPEC_HASH_TAG = "llm-twin-sdk:spec-hash"

Engine: TypeAlias = Literal["tgi", "vllm", "lmi", "tei", "pytorch"]
"""The serving container: an LLM engine (TGI, vLLM, DJL-LMI), Text Embeddings Inference
(``"tei"``: an embedding model for :class:`~llm_twin_sdk.rag.embedder_tei.RemoteEmbedder`),
or a framework container running your own inference code (``"pytorch"``, with
``custom_code=``; called with :meth:`~llm_twin_sdk.InferenceClient.invoke`)."""
FRAMEWORK_ENGINES = frozenset({"pytorch"})
"""Engines that run the user's code (:class:`CustomCodeSpec`), not a text-generation server."""
Quantize: TypeAlias = Literal[
    "awq", "gptq", "eetq", "fp8", "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4"
]

ENDPOINT_NAME_MAX = 50  # SageMaker allows 63; "-" + 8 hash characters are appended to it


def _names(limit: int, rule: str) -> tuple[re.Pattern[str], str]:
    """SageMaker's name rule, at most ``limit`` characters."""
    pattern = re.compile(rf"^(?=.{{1,{limit}}}$){RESOURCE_NAME.pattern[1:]}")
    return pattern, f"must be 1-{limit} {rule}"


_SHAPES = {  # field -> (pattern, SageMaker's rule)
    "name": _names(
        ENDPOINT_NAME_MAX,
        "letters, digits and single or repeated hyphens, starting and ending with a letter "
        "or digit (SageMaker's naming rule)",
    ),
    "variant_name": _names(63, "letters, digits and hyphens"),
    "role_arn": (
        re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"),
        "must be an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>",
    ),
    "model_id": (
        re.compile(r"^[\w.-]+(/[\w.-]+)?$"),
        "must be a Hugging Face hub id such as 'org/model'",
    ),
    "model_data": (
        re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+\.tar\.gz$"),
        "must be an S3 URI of a model archive: s3://<bucket>/<key>.tar.gz",
    ),
    "image_uri": (re.compile(r"^\S+\Z"), "must be a container image URI without spaces"),
}
_INSTANCE = re.compile(r"^ml\.([a-z0-9-]+)\.([a-z0-9]+)$")

_CPU_FAMILIES = frozenset({"c5", "c6i", "c7i", "m5", "m6i", "m7i", "r5", "r6i", "r7i", "t2"})
_MULTI_GPU_FAMILIES = frozenset({"g5", "g6", "g6e", "g7e"})  # 12x/24xlarge: 4, 48xlarge: 8
_EIGHT_GPU_FAMILIES = frozenset({"p4d", "p4de", "p5", "p5e", "p5en"})
_DEVICES = {  # sizes whose accelerator count the family rule above does not give
    "ml.g4dn.12xlarge": 4,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.inf2.24xlarge": 6,
    "ml.inf2.48xlarge": 12,
    "ml.trn1.32xlarge": 16,
    "ml.trn2.48xlarge": 16,
}
NEURON_FAMILIES = frozenset({"inf2", "trn1", "trn2"})
KNOWN_INSTANCE_FAMILIES = frozenset(
    {"g4dn", "p3"} | _CPU_FAMILIES | _MULTI_GPU_FAMILIES | _EIGHT_GPU_FAMILIES | NEURON_FAMILIES
)


_RESERVED_ENV = frozenset(
    {
        "HF_MODEL_ID", "SM_NUM_GPUS", "MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH", "MAX_TOTAL_TOKENS",
        "MAX_BATCH_TOTAL_TOKENS", "MAX_BATCH_PREFILL_TOKENS", "HF_MODEL_QUANTIZE",
        "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN", "MESSAGES_API_ENABLED",
    }
)  # fmt: skip


def gpus_of(instance_type: str) -> int:
    """GPUs (Neuron chips for inf2/trn) of a SageMaker instance type; 0 for CPU types."""
    match = _INSTANCE.match(instance_type)
    if not match:
        return 0
    family, size = match.groups()
    if instance_type in _DEVICES:
        return _DEVICES[instance_type]
    if family in _CPU_FAMILIES:
        return 0
    if family in _EIGHT_GPU_FAMILIES:
        return 8
    if family in _MULTI_GPU_FAMILIES:
        return {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}.get(size, 1)
    return 1


class InferenceComponentSpec(_Model):
    """Deploy the model as an inference component (needed for scale-to-zero): SageMaker manages
    the instances between ``min_instances`` and ``max_instances``; each copy asks for the
    resources below (docs/deployment.md, "How deployment works")."""

    copies: int = Field(1, ge=1, description="Initial copies of the model.")
    accelerators: int = Field(1, ge=0, description="GPUs per copy.")
    cpu_cores: float | None = Field(None, gt=0, description="CPU cores per copy.")
    memory_mb: int = Field(1024, ge=128, description="Memory per copy, in MB.")
    min_instances: int = Field(1, ge=0, description="Managed instance scaling floor (0 allowed).")
    max_instances: int = Field(1, ge=1, description="Managed instance scaling ceiling.")

    @model_validator(mode="after")
    def _min_below_max(self) -> InferenceComponentSpec:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) must be <= max_instances "
                f"({self.max_instances})"
            )
        return self


class RolloutSpec(_Model):
    """How an existing endpoint moves to a new endpoint config (blue/green): ``all_at_once``
    once the new fleet is healthy, ``canary`` (``step_percent`` first, the rest after
    ``step_wait_s``) or ``linear`` (``step_percent`` every ``step_wait_s``); firing
    ``rollback_alarms`` roll the update back."""

    traffic: Literal["all_at_once", "canary", "linear"] = "all_at_once"
    step_percent: int = Field(10, ge=1, le=99)
    step_wait_s: int = Field(300, ge=0, le=3600)
    termination_wait_s: int = Field(0, ge=0, le=3600)
    rollback_alarms: tuple[str, ...] = ()

    @field_validator("rollback_alarms")
    @classmethod
    def _alarm_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not a.strip() for a in value):
            raise ValueError("alarm names must be non-empty")
        if len(value) > 10:
            raise ValueError("at most 10 rollback alarms")
        return value


class EndpointSpec(_Model):
    """A SageMaker real-time endpoint serving the LLM Twin.

    Defaults: the TwinLlama-3.1-8B-DPO model from the Hugging Face hub, the TGI container,
    one ``ml.g5.2xlarge``, 2048 input / 4096 total tokens, a 900 s health-check timeout.
    """

    name: str = Field(description="Endpoint name (the other resource names derive from it).")
    role_arn: str = Field(description="IAM role SageMaker assumes (see ensure_execution_role).")
    model_id: str = Field(DEFAULT_MODEL_ID, description="Hugging Face hub id.")
    model_data: str | None = Field(None, description="s3://bucket/key.tar.gz instead of the hub.")
    engine: Engine = "tgi"
    image_version: str | None = Field(None, description="Container version; None: the latest.")
    image_uri: str | None = Field(None, description="Explicit image; skips the lookup.")
    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = Field(1, ge=1, description="Instances (>= 1; use autoscaling to shrink).")
    num_gpus: int | None = Field(None, ge=1, description="SM_NUM_GPUS; default: the instance's.")
    max_input_tokens: int = Field(2048, gt=0)
    max_total_tokens: int = Field(4096, gt=0)
    max_batch_total_tokens: int = Field(4096, gt=0)
    quantize: Quantize | None = None
    hf_token: SecretStr | None = Field(None, description="For gated or private hub models.")
    health_check_timeout_s: int = Field(900, ge=60, le=3600)
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Extra container env; secret-like values are masked in repr, errors, plans.",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    variant_name: str = "AllTraffic"
    components: InferenceComponentSpec | None = Field(
        None, description="Set to deploy as an inference component; None: model-based."
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    security: SecuritySpec = Field(
        default_factory=SecuritySpec,
        description="VPC, network isolation, KMS keys (docs/deployment.md); default: none.",
    )
    async_inference: AsyncInferenceSpec | None = Field(
        None, description="Set for an asynchronous-inference endpoint (InvokeEndpointAsync)."
    )
    custom_code: CustomCodeSpec | None = Field(
        None,
        description="Your own inference code and weights, for engine 'pytorch' (packed, "
        "uploaded once per content hash, set as the model's ModelDataUrl).",
    )

    @field_validator(*_SHAPES)
    @classmethod
    def _shaped(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, rule = _SHAPES[str(info.field_name)]
        if value is not None and not pattern.match(value):
            raise ValueError(rule)
        return value

    @field_validator("instance_type")
    @classmethod
    def _valid_instance(cls, value: str) -> str:
        match = _INSTANCE.match(value)
        if not match:
            raise ValueError("must look like ml.<family>.<size>, e.g. ml.g5.2xlarge")
        if match.group(1) not in KNOWN_INSTANCE_FAMILIES:
            raise ValueError(
                f"unknown instance family {match.group(1)!r}; known: "
                + ", ".join(sorted(KNOWN_INSTANCE_FAMILIES))
            )
        return value

    @field_validator("environment")
    @classmethod
    def _valid_environment(cls, value: dict[str, str]) -> dict[str, str]:
        if reserved := sorted(set(value) & _RESERVED_ENV):
            raise ValueError(
                f"{', '.join(reserved)}: set from the spec's own fields (model_id, hf_token, "
                "num_gpus, max_*_tokens, quantize); set those instead"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, value: dict[str, str]) -> dict[str, str]:
        if problem := tag_problem(value, limit=40, reserved=(MANAGED_BY_TAG[0], SPEC_HASH_TAG)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _token_limits(self) -> EndpointSpec:
        if not self.max_input_tokens < self.max_total_tokens <= self.max_batch_total_tokens:
            raise ValueError(
                "token limits must satisfy max_input_tokens < max_total_tokens <= "
                f"max_batch_total_tokens; got {self.max_input_tokens} / {self.max_total_tokens}"
                f" / {self.max_batch_total_tokens}"
            )
        return self

    @model_validator(mode="after")
    def _security_fits(self) -> EndpointSpec:
        code = self.custom_code  # its archive goes to S3: an isolated container can read it
        check_fits(
            self.security,
            instance_type=self.instance_type,
            model_data=self.model_data or (code.artifact_path if code else None),
            model_id=self.model_id,
        )
        return self

    @model_validator(mode="after")
    def _async_model_based(self) -> EndpointSpec:
        if self.async_inference is not None and self.components is not None:
            raise ValueError(
                "async_inference: asynchronous endpoints are model-based; SageMaker runs no "
                "inference components on them (drop components=, scale with BacklogScaling)"
            )
        return self

    @model_validator(mode="after")
    def _custom_code_fits(self) -> EndpointSpec:
        code = self.custom_code
        if (code is None) != (self.engine not in FRAMEWORK_ENGINES):
            raise ValueError(
                f"custom_code: engine {self.engine!r} needs custom_code=CustomCodeSpec(...)"
                if code is None
                else f"custom_code: runs on a framework container; set engine={code.framework!r}"
            )
        if code is None:
            return self
        if code.framework != self.engine:
            raise ValueError(f"custom_code.framework {code.framework!r} differs from the engine")
        if self.model_data is not None and not code.is_archive_uri(self.model_data):
            raise ValueError(
                "model_data: with custom_code the Deployer packs model_dir and source_dir into "
                "one archive and sets model_data itself; leave it unset"
            )
        if self.image_version is not None:
            raise ValueError("image_version: set custom_code.framework_version instead")
        if reserved := sorted(set(self.environment) & _CODE_ENV):
            raise ValueError(
                f"environment: {', '.join(reserved)} are set from custom_code (entry_point, "
                "log_level); set those instead"
            )
        return self

    @property
    def kind(self) -> Literal["model", "inference-component"]:
        """``"model"`` (the variant holds the model) or ``"inference-component"``."""
        return "model" if self.components is None else "inference-component"

    @property
    def gpus(self) -> int:
        """GPUs the container uses (``SM_NUM_GPUS``)."""
        return self.num_gpus or max(gpus_of(self.instance_type), 1)

    def container_environment(self, *, reveal_secrets: bool = False) -> dict[str, str]:
        """The container's environment; secrets (the HF token, secret-like names in
        ``environment``) are masked unless ``reveal_secrets``; token limits always show."""
        if self.engine == "tei":  # an embedding model: none of the LLM limits apply
            return self._tei_environment(reveal_secrets=reveal_secrets)
        if self.custom_code is not None:  # the user's code: the inference toolkit's variables
            env = {**self.custom_code.environment(), **self.environment}
            return env if reveal_secrets else mask_secrets(env)
        env = {
            "HF_MODEL_ID": "/opt/ml/model" if self.model_data else self.model_id,
            "SM_NUM_GPUS": str(self.gpus),
            "MAX_INPUT_TOKENS": str(self.max_input_tokens),
            "MAX_INPUT_LENGTH": str(self.max_input_tokens),
            "MAX_TOTAL_TOKENS": str(self.max_total_tokens),
            "MAX_BATCH_TOTAL_TOKENS": str(self.max_batch_total_tokens),
            "MAX_BATCH_PREFILL_TOKENS": str(self.max_input_tokens),
            "MESSAGES_API_ENABLED": "true",
        }
        if self.quantize:
            env["HF_MODEL_QUANTIZE"] = self.quantize
        if self.hf_token is not None:
            env["HUGGING_FACE_HUB_TOKEN"] = self.hf_token.get_secret_value()
        env.update(self.environment)
        return env if reveal_secrets else mask_secrets(env)

    def _tei_environment(self, *, reveal_secrets: bool) -> dict[str, str]:
        """Text Embeddings Inference's environment: the model (and the hub token)."""
        env = {"HF_MODEL_ID": "/opt/ml/model" if self.model_data else self.model_id}
        if self.hf_token is not None:
            env["HF_TOKEN"] = self.hf_token.get_secret_value()
        env.update(self.environment)
        return env if reveal_secrets else mask_secrets(env)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """``repr`` and ``str``: name, model and fleet, then what differs from the defaults
        (but the role), long values cut short; the environment with secret-like values masked."""
        always = ("name", "model_id", "instance_type", "instance_count")
        shown = self._changed_args(*always, skip=("role_arn",))
        for name, value in shown:
            env = mask_secrets(self.environment)
            yield name, (brief(env, 80) if name == "environment" else value)

    def _digest(self, payload: dict[str, Any]) -> str:
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]

    @property
    def model_hash(self) -> str:
        """Hash of what defines the model resource (image, weights, environment, role, and
        for a model-based endpoint its VPC and network isolation).

        Secrets are part of it (rotating a token makes a new model) but only as input to
        SHA-256: the 8 characters kept reveal nothing.
        """
        shape = {
            "model_id": self.model_id,
            "model_data": self.model_data,
            "engine": self.engine,
            "image_version": self.image_version,
            "image_uri": self.image_uri,
            "env": self.container_environment(reveal_secrets=True),
            "role": self.role_arn,
        }
        if self.components is None and (network := self.security.network_fields()):
            shape["network"] = network  # absent when unset: earlier names hold
        if self.custom_code is not None:  # the archive's content hash is in model_data
            shape["code"] = self.custom_code.model_dump(
                include={"framework", "framework_version", "py_version"}
            )  # the image; not the folders' paths, so the same content names the same model
        return self._digest(shape)

    @property
    def config_hash(self) -> str:
        """Hash of what defines the endpoint config.

        Model-based: the model and its instances. Inference-component based: the fleet only
        (role, instance type, managed scaling bounds, VPC, network isolation); the model,
        copies and startup settings live in the component, which is updated in place. Equal
        hashes mean an equivalent config, so a model change never rebuilds an
        inference-component fleet. Both add the KMS keys (``security``) when set.
        """
        if self.components is None:
            shape: dict[str, Any] = {
                "model": self.model_hash,
                "count": self.instance_count,
                "health": self.health_check_timeout_s,
            }
        else:  # the health-check timeout belongs to the component's startup parameters
            shape = {
                "role": self.role_arn,
                "min": self.components.min_instances,
                "max": self.components.max_instances,
            }
            if network := self.security.network_fields():
                shape["network"] = network
        if encryption := self.security.hashed():
            shape["encryption"] = encryption
        if self.async_inference is not None:  # absent: the hashes of real-time specs hold
            shape["async"] = self.async_inference.request()
        return self._digest(
            {**shape, "instance_type": self.instance_type, "variant": self.variant_name}
        )

    @property
    def model_name(self) -> str:
        return f"{self.name}-{self.model_hash}"

    @property
    def endpoint_config_name(self) -> str:
        return f"{self.name}-{self.config_hash}"

    @property
    def inference_component_name(self) -> str | None:
        return None if self.components is None else f"{self.name}-ic"

    def aws_tags(self) -> list[dict[str, str]]:
        """The user's tags plus the SDK's own (how ``Deployer.list`` finds its endpoints)."""
        tags = {**self.tags, MANAGED_BY_TAG[0]: MANAGED_BY_TAG[1], SPEC_HASH_TAG: self.config_hash}
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def ref(self) -> EndpointRef:
        """The endpoint's identity, for the autoscaler and clients."""
        return EndpointRef(
            name=self.name,
            variant_name=self.variant_name,
            inference_component_name=self.inference_component_name,
            asynchronous=self.async_inference is not None,
        )
