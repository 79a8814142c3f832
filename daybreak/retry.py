"""Retry policies: declared next to an asset with @retry_policy, overridable in [retries].

Only transient failures are retried (network, timeouts, throttling, a lock held too long); bad
input and configuration errors fail at once. Exponential backoff with delay 60 and 5 retries
waits 60, 120, 240, 480, 960 seconds, as the original deployment did.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from hamilton.function_modifiers import tag

from daybreak.errors import TransientError

Backoff = Literal["constant", "linear", "exponential"]
_PREFIX = "retry_"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently an asset is retried after a transient failure."""

    max_retries: int = 0
    delay: float = 0.0
    backoff: Backoff = "exponential"
    jitter: float = 0.0  # up to this fraction of each wait is added at random
    max_delay: float | None = None

    def wait(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if self.backoff == "constant":
            seconds = self.delay
        elif self.backoff == "linear":
            seconds = self.delay * retry
        else:
            seconds = self.delay * 2 ** (retry - 1)
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay)
        return seconds * (1 + self.jitter * rand())

    def scaled(self, factor: float) -> RetryPolicy:
        return replace(
            self,
            delay=self.delay * factor,
            max_delay=None if self.max_delay is None else self.max_delay * factor,
        )


def retry_policy(
    max_retries: int,
    delay: float,
    backoff: Backoff = "exponential",
    jitter: float = 0.0,
    max_delay: float | None = None,
) -> Any:
    """Declare an asset's retry policy; it travels as tags, so the graph carries it."""
    values = {
        "max_retries": str(max_retries),
        "delay": str(delay),
        "backoff": backoff,
        "jitter": str(jitter),
    }
    if max_delay is not None:
        values["max_delay"] = str(max_delay)
    return tag(**{_PREFIX + k: v for k, v in values.items()})


def policy_from_tags(tags: dict[str, str]) -> RetryPolicy:
    """The policy an asset declared (none: no retries)."""
    found = {k[len(_PREFIX) :]: v for k, v in tags.items() if k.startswith(_PREFIX)}
    if not found:
        return RetryPolicy()
    return RetryPolicy(
        max_retries=int(found.get("max_retries", 0)),
        delay=float(found.get("delay", 0)),
        backoff=found.get("backoff", "exponential"),  # type: ignore[arg-type]
        jitter=float(found.get("jitter", 0)),
        max_delay=float(found["max_delay"]) if "max_delay" in found else None,
    )


_TRANSIENT_NAMES = {
    # requests / urllib3
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ChunkedEncodingError",
    # azure-core
    "ServiceRequestError", "ServiceResponseError",
    # filelock's Timeout shares requests' name
}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: network, timeouts, throttling, 5xx, a held lock."""
    if isinstance(exc, TransientError | ConnectionError | TimeoutError):
        return True
    if type(exc).__name__ in _TRANSIENT_NAMES:
        return True
    status = getattr(exc, "status_code", None)  # azure HttpResponseError and friends
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)
