"""The one retry policy of the SDK, built on tenacity.

Every retried call in the SDK (AWS control plane today; model invocations later) goes through
:class:`RetryPolicy`: exponential backoff with full jitter, a maximum number of attempts and a
total deadline. What is worth retrying is decided by the caller's predicate, at the seam that
knows the foreign error types. The underlying clients are configured not to retry on their
own, so attempts never multiply.

Example::

    policy = RetryPolicy(max_attempts=6, initial_wait_s=0.5, max_wait_s=20, deadline_s=120)
    result = policy.call(lambda: client.describe_endpoint(EndpointName="x"), is_retryable)

Tests pass ``sleep=`` to observe the waits without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import ConfigurationError

__all__ = ["DEFAULT_RETRY_POLICY", "NO_RETRY", "RetryPolicy", "is_transient_inference_error"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a failed call again.

    Attributes:
        max_attempts: total attempts, the first included (1 disables retries).
        initial_wait_s: upper bound of the first wait; doubles on each retry (full jitter).
        max_wait_s: cap of one wait.
        deadline_s: no new attempt starts this long after the first (``None``: no deadline).
        sleep: how to wait; tests inject a recorder.
    """

    max_attempts: int = 5
    initial_wait_s: float = 0.5
    max_wait_s: float = 20.0
    deadline_s: float | None = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_wait_s < 0 or self.max_wait_s < 0:
            raise ConfigurationError("initial_wait_s and max_wait_s must be >= 0")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ConfigurationError(f"deadline_s must be > 0 or None, got {self.deadline_s}")

    def call(self, fn: Callable[[], T], retryable: Callable[[BaseException], bool]) -> T:
        """Run ``fn``, retrying while it raises an exception ``retryable`` accepts.

        The last exception is re-raised unchanged when attempts or the deadline run out.
        """
        import tenacity

        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.max_attempts)
        if self.deadline_s is not None:
            stop = stop | tenacity.stop_after_delay(self.deadline_s)
        retrying = tenacity.Retrying(
            stop=stop,
            wait=tenacity.wait_random_exponential(
                multiplier=self.initial_wait_s, max=self.max_wait_s
            ),
            retry=tenacity.retry_if_exception(retryable),
            sleep=self.sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        return retrying(fn)


def is_transient_inference_error(exc: BaseException) -> bool:
    """The retry predicate of model invocations, on SDK errors (every backend converts first).

    Retried: throttling, an unavailable / starting / unreachable model, and a model error whose
    container status is 408, 429, 502, 503 or 504. Never: validation errors, other model
    errors, timeouts of a call that may still be running, or a broken stream.
    """
    from .errors import ModelError, ModelUnavailableError, ThrottledError

    if isinstance(exc, (ThrottledError, ModelUnavailableError)):
        return True
    return isinstance(exc, ModelError) and exc.status in {408, 429, 502, 503, 504}


def _log_retry(state: object) -> None:
    attempt = getattr(state, "attempt_number", "?")
    outcome = getattr(state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    logger.warning("attempt %s failed (%s); retrying", attempt, type(error).__name__)


DEFAULT_RETRY_POLICY = RetryPolicy()
"""5 attempts, waits of up to 0.5 s, 1 s, 2 s, 4 s (random), 120 s deadline."""

NO_RETRY = RetryPolicy(max_attempts=1)
"""One attempt only."""
