"""The service's search budget against HubSpot's search limit, on a fake clock (bench B16).

Over HTTP (B12 b) a figure mixes the budget with the machine's load: on 2 shared cores the
service and the sandbox stall each other by up to a few hundred ms, which no rate can see,
and two runs of the same export differ by more than two budgets do. Here nothing else runs:
the service's own search budget (`search_budget`, pyrate-limiter included, its waits on a
fake clock) hands out slots to a client that always has a search ready, the worst case for
a budget; each search reaches the sandbox's search gate (`Gate`, the "sliding" window an
independent gateway counts in) 0..J ms after it left, drawn from a seeded generator; each
429 goes back to the budget (`limited`), each answer too (`succeeded`), as the client does.
The same seed gives the same figures on any machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from unittest import mock

from pyrate_limiter import AbstractClock, Duration, InMemoryBucket, Limiter, Rate, SingleBucketFactory

from app.hubspot.budget import search_budget
from sandbox.common import ApiError
from sandbox.faults import Gate

SEARCH_LIMIT = 5  # HubSpot's searches per second, and the budget's


class FakeClock(AbstractClock):
    """Time that moves only when someone sleeps; pyrate-limiter's bucket reads it in ms."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def now(self) -> int:
        return int(self.seconds * 1000)

    def monotonic(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.seconds += max(0.0, seconds)


@dataclass(frozen=True)
class Outcome:
    answered: int
    refused: int  # searches HubSpot answered 429
    share: float  # searches answered a second, as a share of HubSpot's limit

    @property
    def refused_per_100(self) -> float:
        return 100 * self.refused / (self.answered + self.refused)


def drive(answered: int, jitter_ms: float, adaptive: bool, seed: int = 1) -> Outcome:
    """Searches through the budget until ``answered`` were answered (every 429 is sent
    again), each arriving 0..``jitter_ms`` late."""
    clock, late = FakeClock(), random.Random(seed)
    bucket = InMemoryBucket([Rate(SEARCH_LIMIT, Duration.SECOND)])
    bucket._clock = clock  # pyrate-limiter's buckets read their time here  # noqa: SLF001
    limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False))
    gate = Gate()
    # pyrate-limiter waits with its own module's sleep and monotonic.
    with mock.patch("pyrate_limiter.limiter.sleep", clock.sleep), \
            mock.patch("pyrate_limiter.limiter.monotonic", clock.monotonic):
        budget = search_budget(SEARCH_LIMIT, limiter, adaptive=adaptive, sleep=clock.sleep,
                               monotonic=clock.monotonic)
        began, done, refused = clock.seconds, 0, 0
        while done < answered:
            budget.acquire()
            try:
                gate.admit("search", SEARCH_LIMIT, None, search_window="sliding",
                           received=clock.seconds + late.uniform(0, jitter_ms) / 1000)
            except ApiError:
                refused += 1
                budget.limited()
            else:
                done += 1
                budget.succeeded()
    return Outcome(done, refused, done / (clock.seconds - began) / SEARCH_LIMIT)
