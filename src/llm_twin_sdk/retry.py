"""The one retry policy of the SDK, built on tenacity: :class:`RetryPolicy`.

Every retried call (AWS, models, Qdrant servers) goes through it; the caller's predicate, at
the seam that knows the foreign errors, says what is worth retrying. The clients underneath
never retry on their own, so attempts never multiply. Example::

    policy = RetryPolicy(max_attempts=6, initial_wait_s=0.5, max_wait_s=20, deadline_s=120)
    result = policy.call(lambda: client.describe_endpoint(EndpointName="x"), is_retryable)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigurationError, ModelError, ModelUnavailableError, ThrottledError

__all__ = ["DEFAULT_RETRY_POLICY", "NO_RETRY", "RetryPolicy", "is_transient_inference_error"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BLOCKING_SLEEP = time.sleep
"""The default ``sleep``; :meth:`RetryPolicy.acall` replaces it with ``asyncio.sleep``."""


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
    sleep: Callable[[float], None] = field(default=_BLOCKING_SLEEP, repr=False, compare=False)

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
        The first attempt runs without any retry machinery (the common, successful case
        costs nothing); retries then follow exactly the policy's waits and limits.
        """
        started = time.monotonic()
        try:
            return fn()
        except BaseException as exc:
            if self.max_attempts == 1 or not retryable(exc):
                raise
            first_error = exc
        elapsed = time.monotonic() - started
        if self.deadline_s is not None and elapsed >= self.deadline_s:
            raise first_error
        import tenacity

        logger.warning("attempt 1 failed (%s); retrying", type(first_error).__name__)
        self.sleep(random.uniform(0, min(self.max_wait_s, self.initial_wait_s)))
        retrying = tenacity.Retrying(
            sleep=self.sleep, **self._tenacity_options(retryable, done=1, elapsed_s=elapsed)
        )
        return retrying(fn)

    async def acall(
        self, fn: Callable[[], Awaitable[T]], retryable: Callable[[BaseException], bool]
    ) -> T:
        """:meth:`call` for a coroutine function: same attempts, backoff and deadline.

        Waits with ``asyncio.sleep``, never blocking the event loop. A policy built with its
        own ``sleep`` (tests record waits with ``sleep=sleeps.append``) has it called instead,
        then yields to the event loop once.

        Example: ``await policy.acall(lambda: backend.agenerate(prompt, params), retryable)``.
        """
        import tenacity

        custom = None if self.sleep is _BLOCKING_SLEEP else self.sleep

        async def sleep(seconds: float) -> None:
            if custom is None:
                await asyncio.sleep(seconds)
            else:
                custom(seconds)
                await asyncio.sleep(0)

        retrying = tenacity.AsyncRetrying(sleep=sleep, **self._tenacity_options(retryable))
        async for attempt in retrying:  # a lambda returning a coroutine is awaited too
            with attempt:
                return await fn()
        raise AssertionError("unreachable: tenacity returns or re-raises")  # pragma: no cover

    def _tenacity_options(
        self,
        retryable: Callable[[BaseException], bool],
        *,
        done: int = 0,
        elapsed_s: float = 0.0,
    ) -> dict[str, Any]:
        """tenacity settings for the attempts left after ``done`` failed ones."""
        import tenacity

        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.max_attempts - done)
        if self.deadline_s is not None:
            stop = stop | tenacity.stop_after_delay(self.deadline_s - elapsed_s)
        return {
            "stop": stop,
            # Full jitter, doubling per attempt: attempt k waits up to initial * 2**(k-1).
            "wait": tenacity.wait_random_exponential(
                multiplier=self.initial_wait_s * 2**done, max=self.max_wait_s
            ),
            "retry": tenacity.retry_if_exception(retryable),
            "reraise": True,
            "before_sleep": functools.partial(_log_retry, offset=done),
        }


def is_transient_inference_error(exc: BaseException) -> bool:
    """The retry predicate of model invocations, on SDK errors (every backend converts first).

    Retried: throttling, an unavailable / starting / unreachable model, and a model error whose
    container status is 408, 429, 502, 503 or 504. Never: validation errors, other model
    errors, timeouts of a call that may still be running, or a broken stream.
    """
    if isinstance(exc, (ThrottledError, ModelUnavailableError)):
        return True
    return isinstance(exc, ModelError) and exc.status in {408, 429, 502, 503, 504}


def _log_retry(state: object, offset: int = 0) -> None:
    attempt = getattr(state, "attempt_number", 0) + offset
    outcome = getattr(state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    logger.warning("attempt %s failed (%s); retrying", attempt, type(error).__name__)


DEFAULT_RETRY_POLICY = RetryPolicy()
"""5 attempts, waits of up to 0.5 s, 1 s, 2 s, 4 s (random), 120 s deadline."""

NO_RETRY = RetryPolicy(max_attempts=1)
"""One attempt only."""
