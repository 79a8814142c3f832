"""Error kinds the runner treats differently: transient ones may succeed if retried, others not."""

from __future__ import annotations


class TransientError(Exception):
    """A failure that may go away on its own (network, timeout, throttling, a 5xx); retry it."""
