"""Polling SageMaker until a resource settles, with progress, failure reasons and a timeout.

botocore's waiters cover endpoints only and neither report progress nor take an injected
clock: :class:`Poller` does both (tests inject ``sleep`` and ``clock``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from pydantic import Field

from ..errors import ConfigurationError, EndpointTimeoutError
from ..types import _Model

__all__ = ["Outcome", "Poller", "ResourceKind", "Settled", "WaitProgress"]

logger = logging.getLogger(__name__)

ResourceKind: TypeAlias = Literal["model", "endpoint-config", "endpoint", "inference-component"]
"""The SageMaker resources the SDK deploys (see :data:`~llm_twin_sdk.deploy.resources.KINDS`)."""
Outcome: TypeAlias = Literal["done", "failed", "waiting"]
Response: TypeAlias = dict[str, Any]


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
    response: Response | None
    """The last ``describe_*`` answer (``None`` when the resource is gone)."""
    elapsed_s: float

    @property
    def failure_reason(self) -> str | None:
        reason = (self.response or {}).get("FailureReason")
        return str(reason) if reason else None


@dataclass(frozen=True)
class Poller:
    """Polls a describe call until ``judge`` says done or failed, or the timeout passes.

    Args:
        poll_interval_s: seconds between two observations.
        sleep / clock: how to wait and monotonic seconds (tests inject fakes).
        on_progress: called with every observation.
    """

    poll_interval_s: float = 15.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    on_progress: Callable[[WaitProgress], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.poll_interval_s > 0:
            raise ConfigurationError(f"poll_interval_s must be > 0, got {self.poll_interval_s}")

    def wait(
        self,
        *,
        resource: ResourceKind,
        name: str,
        describe: Callable[[], Response | None],
        judge: Callable[[Response | None], Outcome],
        status_of: Callable[[Response | None], str],
        timeout_s: float,
        endpoint_name: str | None = None,
        first: Response | None = None,
        hint: str = "",
    ) -> Settled:
        """Observe until settled; return the last observation.

        Args:
            describe: one ``describe_*`` call; ``None`` means the resource does not exist.
            judge: ``"done"``, ``"failed"`` or ``"waiting"`` for one observation.
            status_of: the status to report for one observation.
            first: an observation already made (saves one call when it is terminal).
            hint: what the caller can do after a timeout, appended to the error message.

        Raises:
            EndpointTimeoutError: still waiting after ``timeout_s`` seconds.
        """
        start = self.clock()
        response = first if first is not None else describe()
        while True:
            elapsed = max(self.clock() - start, 0.0)
            status, outcome = status_of(response), judge(response)
            reason = (response or {}).get("FailureReason") if outcome == "failed" else None
            progress = WaitProgress(
                resource=resource,
                name=name,
                status=status,
                elapsed_s=elapsed,
                timeout_s=max(timeout_s, 1e-9),
                failure_reason=str(reason) if reason else None,
            )
            logger.info("%s", progress)
            if self.on_progress is not None:
                self.on_progress(progress)
            if outcome != "waiting":
                return Settled(outcome=outcome, response=response, elapsed_s=elapsed)
            if elapsed >= timeout_s:
                message = (
                    f"{resource} {name!r} is still {status} after {elapsed:.0f} s "
                    f"(timeout_s={timeout_s:g}). {hint}"
                )
                raise EndpointTimeoutError(message.strip(), endpoint_name=endpoint_name or name)
            self.sleep(min(self.poll_interval_s, timeout_s - elapsed))
            response = describe()
