"""Freshness: whether each asset is current by its policy, the one definition of it.

A policy is `[freshness.<asset>]`: a daily `deadline` ("07:30") in a `timezone`, and/or a
`max_age_hours`; an asset without one is fresh for `[history] fresh_for_hours` after a success.
The runner reads it to decide what a run needs to execute (an upstream asset that is fresh is not
run again), the scheduler to alert on a missed deadline, and the views to show fresh, stale or
never.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from daybreak import clock
from daybreak.config import FreshnessConfig, Settings
from daybreak.runner.history import History


@dataclass(frozen=True)
class Freshness:
    """An asset's state against its freshness policy."""

    asset: str
    state: str  # fresh | stale | never
    last_success: str | None
    deadline: str | None  # the most recent deadline it owed


def freshness(
    settings: Settings,
    history: History,
    now: dt.datetime | None = None,
    assets: Iterable[str] = (),
) -> list[Freshness]:
    """Each asset with a [freshness] policy (and each of `assets`, by the default): its state."""
    now = now or clock.now()
    successes = history.last_success()
    default = FreshnessConfig(max_age_hours=settings.history.fresh_for_hours)
    policies = {**dict.fromkeys(assets, default), **settings.freshness}
    found = []
    for asset, policy in policies.items():
        last = successes.get(asset)
        last_at = dt.datetime.fromisoformat(last) if last else None
        owed: dt.datetime | None = None
        stale = last_at is None
        if policy.deadline is not None:
            zone = ZoneInfo(policy.timezone)
            hour, minute = (int(x) for x in policy.deadline.split(":"))
            local = now.astimezone(zone)
            today = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
            owed = today if today <= local else today - dt.timedelta(days=1)
            # Current by the deadline: a success since the deadline before it.
            stale = stale or last_at < owed - dt.timedelta(days=1)  # type: ignore[operator]
        if policy.max_age_hours is not None and last_at is not None:
            stale = stale or now - last_at > dt.timedelta(hours=policy.max_age_hours)
        state = "never" if last_at is None else ("stale" if stale else "fresh")
        found.append(Freshness(asset, state, last, owed.isoformat() if owed else None))
    return found
