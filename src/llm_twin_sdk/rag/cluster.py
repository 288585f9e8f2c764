"""Checks of :class:`~llm_twin_sdk.qdrant_cluster.QdrantClusterSettings` against Qdrant: the
nodes of the deployment (its cluster info, ``GET /cluster``) before a collection is created,
and an existing collection's settings (docs/configuration.md, "Qdrant as a cluster")."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import (
    ClusterSettingsError,
    CollectionSettingsMismatchError,
    CollectionSettingsWarning,
)
from ..qdrant_cluster import QdrantClusterSettings, setting_name
from .points import DENSE_VECTOR

if TYPE_CHECKING:
    from .engine import CollectionInfo, QdrantEngine

__all__ = [
    "QdrantClusterSettings",
    "check_capacity",
    "check_collection",
    "describe_quantization",
    "node_count",
]

logger = logging.getLogger(__name__)


def node_count(engine: QdrantEngine, where: str) -> int | None:
    """The nodes of the engine's cluster, from its cluster info (``GET /cluster``): the peers
    of a cluster, 1 for a standalone server or an in-process engine; ``None`` (with a
    :class:`CollectionSettingsWarning`) when the server refuses to tell (401, 403, 404)."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    try:
        status = engine.cluster_status()
    except NotImplementedError:  # qdrant-client's local mode: in-process, one node
        return 1
    except UnexpectedResponse as exc:
        if exc.status_code not in {401, 403, 404}:
            raise
        message = (
            f"cannot read the cluster info of {where} (HTTP {exc.status_code}): the replicas "
            "the settings ask for are not checked against its nodes"
        )
        warnings.warn(message, CollectionSettingsWarning, stacklevel=5)
        return None
    peers = getattr(status, "peers", None)
    return max(1, len(peers)) if status.status == "enabled" and peers else 1


def check_capacity(
    settings: QdrantClusterSettings, nodes: int | None, where: str, *, embedded: bool = False
) -> None:
    """Raise :class:`ClusterSettingsError` when ``nodes`` cannot honour ``settings``: more
    replicas (or replicas to write or read) than nodes; ``embedded`` Qdrant (one node in this
    process) also holds one shard. ``None`` nodes (unknown): nothing to check."""
    if nodes is None:
        return
    if embedded and (settings.shard_number or 1) > 1:
        raise ClusterSettingsError(
            f"{setting_name('shard_number')} is {settings.shard_number}, but {where} is "
            "embedded Qdrant: one shard in this process. Unset it, or use a Qdrant server "
            "(LLM_TWIN_QDRANT_URL).",
            setting="shard_number",
            nodes=1,
        )
    for field, needed in _replica_settings(settings):
        if needed > nodes:
            plural = "s" if nodes > 1 else ""
            kind = (
                "embedded Qdrant (one node, in this process)"
                if embedded
                else f"a Qdrant {'cluster' if nodes > 1 else 'server'} of {nodes} node{plural}"
            )
            raise ClusterSettingsError(
                f"{setting_name(field)} is {needed}, but {where} is {kind}: each replica "
                f"needs its own node. Lower it to {nodes} or less, or add nodes to the "
                "cluster (Qdrant's cluster info, GET /cluster, lists its peers). Nothing was "
                "written.",
                setting=field,
                nodes=nodes,
            )


def _replica_settings(settings: QdrantClusterSettings) -> Iterable[tuple[str, int]]:
    factor = settings.read_consistency
    for field, value in (
        ("replication_factor", settings.replication_factor),
        ("write_consistency_factor", settings.write_consistency_factor),
        ("read_consistency", factor if isinstance(factor, int) else None),
    ):
        if value is not None:
            yield field, value


def check_collection(
    settings: QdrantClusterSettings, info: CollectionInfo, collection: str
) -> None:
    """Compare an existing collection's ``info`` with every setting that is set; a difference
    raises :class:`CollectionSettingsMismatchError` listing each one (or warns, with
    ``on_mismatch="warn"``). A read consistency factor above its replicas always raises."""
    params = info.config.params
    dense = params.vectors.get(DENSE_VECTOR) if isinstance(params.vectors, dict) else None
    found: dict[str, object] = {
        "shard_number": params.shard_number or 1,
        "replication_factor": params.replication_factor or 1,
        "write_consistency_factor": params.write_consistency_factor or 1,
        "on_disk_payload": params.on_disk_payload,
        "on_disk_vectors": bool(dense is not None and dense.on_disk),
        "quantization": describe_quantization(
            (dense.quantization_config if dense is not None else None)
            or getattr(info.config, "quantization_config", None)
        ),
    }
    wanted: dict[str, object] = {
        **settings.create_options(),
        "on_disk_vectors": settings.on_disk_vectors,
        "quantization": None
        if settings.quantization is None
        else describe_quantization(settings.quantization_config()),
    }
    differences = {
        key: (found[key], value)
        for key, value in wanted.items()
        if value is not None and found[key] != value
    }
    factor = settings.read_consistency
    replicas = int(params.replication_factor or 1)
    if isinstance(factor, int) and factor > replicas:
        raise ClusterSettingsError(
            f"{setting_name('read_consistency')} is {factor}, but collection {collection} "
            f"has {replicas} replica(s) of each shard. Lower it, or use 'majority'.",
            setting="read_consistency",
            nodes=None,
        )
    if not differences:
        return
    listed = "; ".join(
        f"{setting_name(key)}: the collection has {had!r}, the settings say {want!r}"
        for key, (had, want) in differences.items()
    )
    message = (
        f"collection {collection} exists with other settings than configured: {listed}. "
        "Settings apply when a collection is created: delete it and ingest again (or change "
        "it with Qdrant's update-collection API), unset those settings, or set "
        f"{setting_name('on_mismatch')} to 'warn' to use it as it is."
    )
    if settings.on_mismatch == "warn":
        logger.warning("%s", message)
        warnings.warn(message, CollectionSettingsWarning, stacklevel=4)
        return
    raise CollectionSettingsMismatchError(message, differences=differences)


def describe_quantization(config: object) -> str:
    """A quantization config in a word or two: ``none``, ``scalar``, ``binary``,
    ``product x16``."""
    if config is None:
        return "none"
    for kind in ("scalar", "binary", "product", "turbo"):
        inner = getattr(config, kind, None)
        if inner is not None:
            compression = getattr(inner, "compression", None)
            value = getattr(compression, "value", compression)
            return f"{kind} {value}" if value else kind
    return type(config).__name__
