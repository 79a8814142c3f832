"""Metadata an asset carries on its function, as Hamilton tags: its retry policy, for one.

`@retry_policy(max_retries=5, delay=60)` sits beside `@tag(group=...)` on a dataflow function, so
the graph carries the policy; `[retries.assets.<name>]` in the config overrides it. Only transient
failures are retried (daybreak.errors.is_transient); exponential backoff with delay 60 and 5
retries waits 60, 120, 240, 480, 960 seconds, as the original deployment did.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hamilton.function_modifiers import tag

from daybreak.errors import Backoff, backoff_seconds

GROUP = "group"  # every asset has one; a node without it is plumbing
KIND = "kind"
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
        return backoff_seconds(
            self.delay, retry, self.backoff, max_delay=self.max_delay, jitter=self.jitter, rand=rand
        )

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
