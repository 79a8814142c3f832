"""The long-lived scheduler: run each job's due ticks, sleep until the next one, stop cleanly.

Time comes from daybreak.clock (tests set it). Policies (each tested in tests/test_scheduler.py):
- The loop sleeps until the earliest next tick (at most 5 minutes, to notice a clock that jumped
  after the machine slept); it wakes early only to stop. No polling.
- A due tick starts its job in a thread of its own. A tick that arrives while the same job is
  still running is recorded as `skipped`, never stacked.
- When several ticks of a job passed at once (the machine slept), the latest runs and the earlier
  ones are recorded as `missed`.
- On start, runs left `running` by a process that is gone are marked `interrupted` (and
  alerted); the state database and the warehouse are checked (daybreak.runner.recovery). For each
  scheduled job, the ticks since its last recorded one were missed: the most recent is run once
  now (trigger `catch-up`) if it lies within the job's `catch_up_hours` (0: never), the older
  ones are recorded as `missed`, not replayed. A job with no recorded tick starts from now.
- An exception in a run is recorded in its history and never stops the scheduler.
- On stop (SIGINT/SIGTERM), no new run starts; running ones get `grace` seconds (their retry
  waits end at once), then whatever still runs is marked `interrupted`. The loop sleeps in slices
  of a second, so a stop is seen within one, on Windows too.
- With a Heartbeat, the loop also wakes to ping the outside monitor on its interval, and each
  job's start and failure are signalled to it.
- Jobs with `on_arrival` are also started by their files landing: the loop wakes every
  [arrival] poll_seconds to list their sources, and starts what daybreak.runner.arrival decides
  (trigger `arrival`, the files recorded with the run), and alerts inputs later than usual
  (daybreak.runner.eta). An arrival job that is running is never started twice: its arrivals
  wait and make one follow-up run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daybreak import clock
from daybreak.config import JobConfig, Settings
from daybreak.runner import recovery
from daybreak.runner.alerts import Alerter, alert_urls
from daybreak.runner.arrival import TRIGGER as ARRIVAL
from daybreak.runner.arrival import ArrivalWatch
from daybreak.runner.freshness import freshness
from daybreak.runner.heartbeat import Heartbeat
from daybreak.runner.history import History
from daybreak.runner.instance import RunnerInstance
from daybreak.runner.schedules import CronSchedule

log = logging.getLogger(__name__)

MAX_SLEEP = dt.timedelta(minutes=5)
SLEEP_SLICE = 1.0  # seconds: how soon a stop (Ctrl-C on Windows included) is noticed


def schedule_of(job: JobConfig) -> CronSchedule | None:
    return CronSchedule.parse(job.cron, job.timezone) if job.cron else None


@dataclass
class Started:
    job: str
    tick: dt.datetime | None
    trigger: str
    thread: threading.Thread | None = None
    detail: dict[str, Any] | None = None


RunJob = Callable[..., Any]


class Scheduler:
    """Owns no business logic: due times from cron and zone, runs started, ticks recorded."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_job: RunJob,
        history: History | None = None,
        heartbeat: Heartbeat | None = None,
        instance: RunnerInstance | None = None,
    ) -> None:
        self.settings = settings
        self.heartbeat = heartbeat
        self.instance = instance
        self.history = history or History(settings.state)
        self.run_job = run_job
        self.stop = threading.Event()
        self.schedules = {
            name: schedule
            for name, job in settings.jobs.items()
            if (schedule := schedule_of(job)) is not None
        }
        self._running: dict[str, threading.Thread] = {}
        self._next: dict[str, dt.datetime] = {}
        self._pruned_on: dt.date | None = None
        self.alerter = Alerter(settings.state, alert_urls(settings))
        watched = any(job.on_arrival for job in settings.jobs.values())
        self.arrivals = ArrivalWatch(settings, self.history) if watched else None
        self._polled: dt.datetime | None = None

    def _missed(self, name: str, tick: dt.datetime) -> None:
        self.history.record_tick(name, tick, "missed")
        self.alerter.tick_missed(name, tick)

    def check_freshness(self, now: dt.datetime) -> list[str]:
        """Alert (once per deadline) for every asset that missed its deadline; return them."""
        late = []
        for item in freshness(self.settings, self.history, now):
            if item.state != "fresh" and item.deadline is not None:
                self.alerter.stale(
                    item.asset, dt.datetime.fromisoformat(item.deadline), item.last_success
                )
                late.append(item.asset)
        return late

    # -- decisions (pure enough to test with a fake clock) --------------------------------

    def start(self) -> list[Started]:
        """Mark orphaned runs interrupted and apply each job's catch-up policy."""
        recovery.at_start(self.settings, self.history)  # dead runs, damaged files
        if self.arrivals is not None:
            self.arrivals.recover()
        now = clock.now()
        started = []
        for name, schedule in self.schedules.items():
            self._next[name] = schedule.next_after(now)
            window = dt.timedelta(hours=self.settings.jobs[name].catch_up_hours)
            last = next(iter(self.history.ticks(name, limit=1)), None)
            if last is None:
                continue  # never scheduled before: nothing was missed, start from now
            since = dt.datetime.fromisoformat(last["scheduled_for"])
            recent = schedule.previous_before(now, now - since)  # after the last one, oldest first
            for tick in recent:
                if tick <= since:
                    continue
                if tick == recent[-1] and now - tick <= window:
                    started.append(self._launch(name, tick, "catch-up"))
                else:
                    self._missed(name, tick)
        return started

    def due(self, now: dt.datetime) -> list[Started]:
        """Start (or skip) every job whose next tick has come; return what was decided."""
        decided = []
        for name, schedule in self.schedules.items():
            nxt = self._next.get(name) or schedule.next_after(now)
            if nxt > now:
                self._next[name] = nxt
                continue
            ticks = schedule.previous_before(now, now - nxt + dt.timedelta(seconds=1))
            for missed in ticks[:-1]:
                self._missed(name, missed)
            tick = ticks[-1] if ticks else nxt
            decided.append(self._launch(name, tick, "schedule"))
            self._next[name] = schedule.next_after(now)
        return decided

    def arrived(self, now: dt.datetime) -> list[Started]:
        """When a poll is due: list the arrival jobs' sources, start the jobs whose files have
        arrived (daybreak.runner.arrival), and alert the inputs later than usual."""
        if self.arrivals is None or now < self.arrivals.next_poll(self._polled, now):
            return []
        from daybreak.runner.eta import warn_late

        self._polled = now
        self.arrivals.poll(now)
        started = []
        for trigger in self.arrivals.due(now, set(self.running())):
            log.info("%s: %s", trigger.job, trigger.sentence())
            started.append(self._launch(trigger.job, None, ARRIVAL, trigger.detail()))
        warn_late(self.settings, self.history, now, self.alerter, self.arrivals.catalogue())
        return started

    def next_wakeup(self, now: dt.datetime) -> dt.datetime:
        upcoming = [t for t in self._next.values()] or [now + MAX_SLEEP]
        if self.arrivals is not None:
            upcoming.append(self.arrivals.next_poll(self._polled, now))
        if self.heartbeat is not None:
            upcoming.append(self.heartbeat.next_due())
        return min(min(upcoming), now + MAX_SLEEP)

    def _sleep(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Sleep `seconds`, or less if stopped: in slices of at most a second, since a long
        Event.wait in the main thread is not interrupted by Ctrl-C on Windows before 3.14.
        (time.sleep, not Event.wait: it also keeps working under a shifted clock, libfaketime.)"""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sleep(min(left, SLEEP_SLICE))

    def _beat(self, now: dt.datetime) -> None:
        """Ping the outside monitor when due, and record that the runner is alive."""
        if self.heartbeat is not None:
            self.heartbeat.beat_if_due(now)
        if self.instance is not None:
            self.instance.beat(running=self.running())

    def next_run(self, name: str, now: dt.datetime | None = None) -> dt.datetime | None:
        schedule = self.schedules.get(name)
        return schedule.next_after(now or clock.now()) if schedule else None

    # -- running --------------------------------------------------------------------------

    def _launch(
        self, name: str, tick: dt.datetime | None, trigger: str,
        detail: dict[str, Any] | None = None,
    ) -> Started:  # fmt: skip
        """Start a run of `name` for a cron tick, or (no tick) for the arrival in `detail`."""
        running = self._running.get(name)
        if running is not None and running.is_alive():
            if tick is not None:
                log.warning("%s: tick %s skipped: the previous run is still going", name, tick)
                self.history.record_tick(name, tick, "skipped")
            return Started(name, tick, "skipped")
        if tick is not None:
            self.history.record_tick(name, tick, "started")
        thread = threading.Thread(
            target=self._run, args=(name, tick, trigger, detail), name=f"job-{name}", daemon=True
        )
        self._running[name] = thread
        thread.start()
        return Started(name, tick, trigger, thread, detail)

    def _run(
        self, name: str, tick: dt.datetime | None, trigger: str, detail: dict[str, Any] | None
    ) -> None:
        job = self.settings.jobs[name]
        if self.heartbeat is not None:
            self.heartbeat.job_started(name)
        extra = {"trigger_detail": detail} if detail is not None else {}
        try:
            outcome = self.run_job(
                self.settings, job.select, job=name, trigger=trigger, scheduled_for=tick,
                stop=self.stop, history=self.history, **extra,
            )  # fmt: skip
            if tick is not None:
                self.history.record_tick(name, tick, "ran", getattr(outcome, "run_id", None))
            failed = getattr(outcome, "status", "success") == "failed"
            error = getattr(outcome, "error", None)
        except Exception as exc:  # execute_run records its own failures; this is a last guard
            log.exception("%s: the run crashed", name)
            failed, error = True, f"{type(exc).__name__}: {exc}"
        if failed and self.heartbeat is not None:
            self.heartbeat.job_failed(name, error)

    def running(self) -> list[str]:
        return [name for name, t in self._running.items() if t.is_alive()]

    def serve(self, grace: float = 60.0) -> None:
        """Run until `stop` is set; then let running jobs finish for `grace` seconds."""
        log.info(
            "scheduler started with %d scheduled job(s): %s",
            len(self.schedules),
            ", ".join(f"{n} {s.describe()}" for n, s in self.schedules.items()) or "none",
        )
        if self.arrivals is not None:
            log.info("watching for arrivals every %.0f s: %s", self.settings.arrival.poll_seconds,
                     ", ".join(f"{n} on {', '.join(j.on_arrival)}"
                               for n, j in self.arrivals.jobs.items()))  # fmt: skip
        self.start()
        while not self.stop.is_set():
            now = clock.now()
            self.due(now)
            try:
                self.arrived(now)
            except Exception:  # the watch must not stop the cron jobs: logged, tried next poll
                log.exception("the arrival watch failed; it tries again at the next poll")
            self.check_freshness(now)
            self._beat(now)
            if self._pruned_on != now.date():  # retention is in days: once a day is enough
                self.history.prune(self.settings.history.retention_days)
                self._pruned_on = now.date()
            wait = (self.next_wakeup(clock.now()) - clock.now()).total_seconds()
            self._sleep(max(wait, 0.05))
        log.info(
            "stopping: waiting up to %.0f s for %s", grace, ", ".join(self.running()) or "nothing"
        )
        for name, thread in list(self._running.items()):
            thread.join(timeout=grace)
            if thread.is_alive():
                log.warning("%s is still running after the grace period", name)
        interrupted = self.history.mark_interrupted(pids={os.getpid()})
        if interrupted:
            log.warning("interrupted: %s", ", ".join(interrupted))
        log.info("scheduler stopped")
