"""What a wait on SageMaker reports: :class:`WaitProgress` for every observation and
:class:`Settled` for the last; ``Resources.wait_for_status`` polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pydantic import Field

from ..types import _Model

__all__ = ["Outcome", "ResourceKind", "Settled", "WaitProgress"]

ResourceKind: TypeAlias = Literal["model", "endpoint-config", "endpoint", "inference-component"]
"""The SageMaker resources the SDK deploys (see :data:`~llm_twin_sdk.deploy.resources.KINDS`)."""
Outcome: TypeAlias = Literal["done", "failed", "waiting"]


class WaitProgress(_Model):
    """One observation while waiting: what, its SageMaker status, and the time spent so far."""

    resource: ResourceKind
    name: str
    status: str
    elapsed_s: float = Field(ge=0)
    timeout_s: float = Field(gt=0)
    failure_reason: str | None = None

    def __str__(self) -> str:
        text = f"{self.resource} {self.name}: {self.status} ({self.elapsed_s:.0f} s)"
        return f"{text}: {self.failure_reason}" if self.failure_reason else text


@dataclass(frozen=True)
class Settled:
    """The last observation of a wait that reached a terminal state."""

    outcome: Literal["done", "failed"]
    response: dict[str, Any] | None
    """The last ``describe_*`` answer (``None`` when the resource is gone)."""
    elapsed_s: float

    @property
    def failure_reason(self) -> str | None:
        reason = (self.response or {}).get("FailureReason")
        return str(reason) if reason else None
