"""Missed calls into the promise book, from the reactor, without ever waiting for it.

``submit`` is the call pipeline's consumer: it reads each ended call with the pure rule
(``rules.decide``) and queues what the store must do. The queue is drained one job at a
time through the node's thread pool, in the order the calls ended, so an abandon and the
answered call that follows it from the same number reach the store in that order (a
resolve before its abandon would leave the promise open).

Nothing here may break the call pipeline: ``submit`` never raises and never blocks.
When the store fails, the job is tried again after a capped, jittered back-off, up to
``max_tries`` times (the store's work is idempotent per call, so a try that did commit
before the error is harmless); then it is logged as an error and set aside, and the
queue moves on. The queue is bounded: past ``max_pending`` jobs, new ones are refused,
counted and logged.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from cti_bridge.backoff import Backoff
from cti_bridge.calls.events import CallEnded, DomainEvent

from .ports import MissedCallBook, NumberOwners
from .rules import Ignore, Missed, Normalizer, QueueSettings, Resolve, decide

__all__ = ["MissedCallService"]

log = structlog.get_logger("cti_bridge.missed")
T = TypeVar("T")
Runner = Callable[[Callable[[], T]], "Deferred[T]"]
#: ``(start, business hours) -> deadline`` (``dialer.policy.business_deadline`` bound to
#: the site's opening hours).
Deadline = Callable[[datetime, float], datetime]
Job = Missed | Resolve


class MissedCallService:
    def __init__(
        self,
        book: MissedCallBook,
        owners: NumberOwners,
        *,
        settings: QueueSettings,
        normalize: Normalizer,
        deadline: Deadline,
        clock: IReactorTime,
        run: Runner[Any],
        max_pending: int = 10_000,
        max_tries: int = 6,
        backoff: Backoff | None = None,
    ) -> None:
        if max_pending < 1 or max_tries < 1:
            raise ValueError("max_pending and max_tries must be positive")
        self._book = book
        self._owners = owners
        self._settings = settings
        self._normalize = normalize
        self._deadline = deadline
        self._clock = clock
        self._run = run
        self._max_pending = max_pending
        self._max_tries = max_tries
        self._backoff = backoff or Backoff(initial=0.5, cap=30.0, rng=random.Random())
        self._queue: deque[Job] = deque()
        self._busy = False  # a job is in the pool or waiting for its retry
        self._pumping = False
        self._tries = 0
        self._retry: IDelayedCall | None = None
        self._stopped = False
        self._released = False
        self._waiters: list[Deferred[None]] = []
        self._counts = {
            "created": 0,
            "joined": 0,
            "unchanged": 0,
            "resolved": 0,
            "retries": 0,
            "failed": 0,
            "dropped": 0,
        }
        self._last_error: str | None = None
        #: Called after a missed call made a new callback (the dialer's ``kick``: it is
        #: due at once, the dialer need not wait for its next pass).
        self.agreement_listeners: list[Callable[[], object]] = []

    # -- the reactor side --------------------------------------------------------------

    def submit(self, event: DomainEvent) -> None:
        """The pipeline's consumer: an ended call that means something is queued."""
        if type(event) is not CallEnded:
            return
        decision = decide(event.call, self._settings, self._normalize)
        if isinstance(decision, Ignore):
            return
        if self._stopped or len(self._queue) >= self._max_pending:
            self._counts["dropped"] += 1
            log.error(
                "missed-call work refused (stopped or backlog full)",
                pbx=decision.pbx,
                linkedid=decision.linkedid,
                pending=len(self._queue),
            )
            return
        self._queue.append(decision)
        self._next()

    def flush(self) -> Deferred[None]:
        """Fires once every job queued so far is done (or set aside)."""
        if self._idle():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def stop(self, timeout: float = 10.0) -> Deferred[None]:
        """Take no more calls; give the queue ``timeout`` seconds, then let go."""
        self._stopped = True
        done: Deferred[None] = Deferred()

        def finished(_: object = None) -> None:
            self._released = True  # past the deadline: start nothing new
            if give_up.active():
                give_up.cancel()
            if self._retry is not None and self._retry.active():
                self._retry.cancel()
            if self._queue or self._busy:
                log.error("missed-call work left undone at stop", pending=self.pending)
            if not done.called:
                done.callback(None)

        give_up = self._clock.callLater(timeout, finished)
        self.flush().addBoth(finished)
        return done

    @property
    def pending(self) -> int:
        """Jobs not done yet, the one under way included."""
        return len(self._queue)

    def status(self) -> dict[str, Any]:
        """For /healthz: degraded while the store fails (a job waits for its retry)."""
        return {
            "status": "degraded" if self._tries else "ok",
            "pending": self.pending,
            **self._counts,
            "last_error": self._last_error,
        }

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    # -- draining ----------------------------------------------------------------------

    def _idle(self) -> bool:
        return not self._queue and not self._busy

    def _next(self) -> None:
        """Start the next job unless one is under way; loops instead of recursing when
        the runner finishes at once (as it does in tests)."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._busy and self._queue and not self._released:
                job = self._queue[0]
                self._busy = True
                d = self._run(partial(self._store, job))
                d.addCallbacks(self._done, self._failed, callbackArgs=(job,), errbackArgs=(job,))
        finally:
            self._pumping = False
        if self._idle():
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _store(self, job: Job) -> tuple[str, list[int]]:
        """In a pool thread: the store's part of one call."""
        if isinstance(job, Resolve):
            return "resolved", self._book.resolve_by_call(job.pbx, job.linkedid, job.number, job.at)
        owner = self._owners.caller(job.number)
        done, agreement_id = self._book.record_missed_call(
            job.pbx,
            job.linkedid,
            job.number,
            queue=job.queue,
            at=job.at,
            deadline=self._deadline(job.at, job.deadline_hours),
            customer_id=None if owner is None else owner.customer_id,
        )
        return done, [agreement_id]

    def _done(self, result: tuple[str, list[int]], job: Job) -> None:
        done, agreements = result
        self._queue.popleft()
        self._busy = False
        if self._tries:
            log.info("missed-call work goes on again", pbx=job.pbx, linkedid=job.linkedid)
        self._tries = 0
        self._counts[done] += len(agreements) if done == "resolved" else 1
        if done != "unchanged" and agreements:
            log.info(
                "missed call resolved" if done == "resolved" else f"missed call {done}",
                pbx=job.pbx,
                linkedid=job.linkedid,
                agreements=agreements,
            )
        if done == "created":
            for listener in self.agreement_listeners:
                try:
                    listener()
                except Exception:  # a listener's bug must not stop the missed-call work
                    log.exception("agreement listener failed", agreements=agreements)
        self._next()

    def _failed(self, failure: Failure, job: Job) -> None:
        self._tries += 1
        kind = type(failure.value).__name__
        self._last_error = f"{kind}: {failure.getErrorMessage()}"[:300]
        if self._tries >= self._max_tries or self._stopped:
            log.error(
                "missed-call work failed; set aside",
                error=self._last_error,
                pbx=job.pbx,
                linkedid=job.linkedid,
                tries=self._tries,
            )
            self._counts["failed"] += 1
            self._queue.popleft()
            self._busy = False
            self._tries = 0
            self._next()
            return
        delay = self._backoff.delay(self._tries)
        self._counts["retries"] += 1
        (log.error if self._tries == 1 else log.warning)(
            "missed-call work failed; trying again",
            error=self._last_error,
            pbx=job.pbx,
            linkedid=job.linkedid,
            retry_in=round(delay, 2),
        )
        self._retry = self._clock.callLater(delay, self._again)

    def _again(self) -> None:
        self._retry = None
        self._busy = False
        self._next()
