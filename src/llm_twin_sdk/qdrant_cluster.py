"""Qdrant as a cluster: :class:`QdrantClusterSettings` (shards, replicas, consistency, on-disk
storage, quantization), the ``qdrant_cluster`` settings. The store applies them when it creates
a collection and checks them against an existing one and the nodes that hold it
(:mod:`llm_twin_sdk.rag.cluster`; docs/configuration.md, "Qdrant as a cluster")::

    cluster = QdrantClusterSettings(
        shard_number=6, replication_factor=2, write_consistency_factor=2,
        read_consistency="majority", write_ordering="medium",
        on_disk_vectors=True, quantization="scalar",
    )
    store = QdrantStore.server("http://qdrant:6333", cluster=cluster)

Every field left unset (``None``) keeps the server's default and is never compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import ConfigurationError
from .types import changed_fields, describe_validation_error

if TYPE_CHECKING:
    from qdrant_client import models

__all__ = ["QdrantClusterSettings", "setting_name"]

ReadConsistency = Literal["majority", "quorum", "all"]
WriteOrdering = Literal["weak", "medium", "strong"]
Quantization = Literal["none", "scalar", "binary", "product"]
Compression = Literal["x4", "x8", "x16", "x32", "x64"]

SETTING = "qdrant_cluster"
"""The name of these settings in :class:`~llm_twin_sdk.config.TwinSettings`."""


def setting_name(field: str) -> str:
    """A field as the settings and the environment name it: ``qdrant_cluster.replication_factor
    (LLM_TWIN_QDRANT_CLUSTER__REPLICATION_FACTOR)``."""
    return f"{SETTING}.{field} (LLM_TWIN_{SETTING.upper()}__{field.upper()})"


class QdrantClusterSettings(BaseModel):
    """How the store's collections live on a Qdrant server or cluster (every field optional;
    unset keeps the server's default). Nested in the settings as ``qdrant_cluster``
    (``LLM_TWIN_QDRANT_CLUSTER__REPLICATION_FACTOR=2``).

    Attributes:
        shard_number: shards per collection (Qdrant's default: 1 standalone, one per node
            in a cluster). Fixed at creation.
        replication_factor: copies of each shard, on distinct nodes (needs that many nodes).
        write_consistency_factor: replicas that must apply a write before it succeeds
            (at most ``replication_factor``).
        read_consistency: replicas a read asks: a number (at most ``replication_factor``),
            ``"majority"``, ``"quorum"`` or ``"all"``; unset: Qdrant's fan-out to one.
        write_ordering: ``"weak"`` (Qdrant's default), ``"medium"`` (through a dynamic
            leader) or ``"strong"`` (through the permanent leader).
        on_disk_vectors: keep the dense vectors on disk (memory-mapped), not in RAM.
        on_disk_payload: keep payloads on disk (Qdrant's server default: on).
        quantization: compress the dense vectors for search: ``"scalar"`` (int8, 4x),
            ``"binary"`` (1 bit, 32x, for large vectors), ``"product"`` (``compression``),
            ``"none"``. Scores are rescored from the originals by Qdrant.
        quantile: scalar only: the quantile that bounds the int8 range (0.5 .. 1).
        compression: product only: the compression ratio (default ``x16``).
        quantization_always_ram: keep the quantized vectors in RAM (with on-disk
            originals, the usual production setup).
        on_mismatch: an existing collection whose settings differ: ``"error"`` (raise
            :class:`~llm_twin_sdk.errors.CollectionSettingsMismatchError`) or ``"warn"``
            (one :class:`~llm_twin_sdk.errors.CollectionSettingsWarning` per collection,
            then use it as it is).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    shard_number: int | None = Field(None, ge=1, description="Shards per collection.")
    replication_factor: int | None = Field(None, ge=1, description="Copies of each shard.")
    write_consistency_factor: int | None = Field(
        None, ge=1, description="Replicas that must apply a write."
    )
    read_consistency: int | ReadConsistency | None = Field(
        None, description="Replicas a read asks: a number, majority, quorum or all."
    )
    write_ordering: WriteOrdering | None = Field(None, description="weak, medium or strong.")
    on_disk_vectors: bool | None = Field(None, description="Dense vectors on disk.")
    on_disk_payload: bool | None = Field(None, description="Payloads on disk.")
    quantization: Quantization | None = Field(
        None, description="none, scalar (int8), binary or product."
    )
    quantile: float | None = Field(None, ge=0.5, le=1.0, description="Scalar quantile.")
    compression: Compression | None = Field(None, description="Product compression ratio.")
    quantization_always_ram: bool = Field(True, description="Quantized vectors in RAM.")
    on_mismatch: Literal["error", "warn"] = Field(
        "error", description="An existing collection that differs: error or warn."
    )

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error(SETTING, exc)) from exc

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return changed_fields(self)  # only what is set: the rest is the server's default

    @field_validator("write_consistency_factor", "read_consistency")
    @classmethod
    def _within_replicas(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        replicas = info.data.get("replication_factor")
        if isinstance(value, int) and value < 1:
            raise ValueError("must be >= 1")
        if isinstance(value, int) and value > (replicas or 1):
            default = "" if replicas else ", the default"
            raise ValueError(
                f"cannot exceed replication_factor ({replicas or 1}{default}): each shard has "
                f"{replicas or 1} replica(s)"
            )
        return value

    @field_validator("quantile", "compression")
    @classmethod
    def _of_its_quantization(cls, value: object, info: ValidationInfo) -> object:
        kind = "scalar" if info.field_name == "quantile" else "product"
        if value is not None and info.data.get("quantization") != kind:
            raise ValueError(f"applies to quantization {kind!r} only")
        return value

    @property
    def needs_nodes(self) -> int:
        """The nodes these settings need: one per replica of a shard."""
        factor = self.read_consistency if isinstance(self.read_consistency, int) else 1
        return max(self.replication_factor or 1, self.write_consistency_factor or 1, factor)

    # -- what the store sends -----------------------------------------------------------

    def consistency(self) -> int | models.ReadConsistencyType | None:
        """The ``consistency`` of reads (qdrant-client's type), ``None``: the server's."""
        factor = self.read_consistency
        if not isinstance(factor, str):
            return factor
        from qdrant_client import models

        return models.ReadConsistencyType(factor)

    def ordering(self) -> models.WriteOrdering | None:
        """The ``ordering`` of writes (qdrant-client's type), ``None``: the server's."""
        if self.write_ordering is None:
            return None
        from qdrant_client import models

        return models.WriteOrdering(self.write_ordering)

    def quantization_config(self) -> models.QuantizationConfig | None:
        """The quantization of the dense vector, as qdrant-client builds it."""
        from qdrant_client import models

        ram = self.quantization_always_ram
        if self.quantization == "scalar":
            return models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=self.quantile, always_ram=ram
                )
            )
        if self.quantization == "binary":
            return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=ram))
        if self.quantization == "product":
            ratio = models.CompressionRatio(self.compression or "x16")
            return models.ProductQuantization(
                product=models.ProductQuantizationConfig(compression=ratio, always_ram=ram)
            )
        return None

    def dense_params(self, params: models.VectorParams) -> models.VectorParams:
        """``params`` of the dense vector with the on-disk and quantization settings."""
        update: dict[str, Any] = {}
        if self.on_disk_vectors is not None:
            update["on_disk"] = self.on_disk_vectors
        if self.quantization is not None:
            update["quantization_config"] = self.quantization_config()
        return params.model_copy(update=update) if update else params

    def create_options(self) -> dict[str, Any]:
        """The collection-level arguments of ``create_collection`` that are set."""
        options = {
            "shard_number": self.shard_number,
            "replication_factor": self.replication_factor,
            "write_consistency_factor": self.write_consistency_factor,
            "on_disk_payload": self.on_disk_payload,
        }
        return {key: value for key, value in options.items() if value is not None}
