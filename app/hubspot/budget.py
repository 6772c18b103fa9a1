"""The client's request budgets: its own, and the one HubSpot announces in its headers."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from pyrate_limiter import Duration, Limiter, Rate

# HubSpot's announcements of its limits, beside X-HubSpot-RateLimit-Remaining.
SECONDLY_HEADER = "X-HubSpot-RateLimit-Secondly"
MAX_HEADER = "X-HubSpot-RateLimit-Max"
INTERVAL_HEADER = "X-HubSpot-RateLimit-Interval-Milliseconds"
# The share of an announced rate the calls are spaced at: requests leave evenly but arrive a
# little bunched (threads, connections), and HubSpot counts arrivals. At 11/s the slot is
# then 96 ms, so the 12th call arrives 52 ms after the first has left HubSpot's second.
ANNOUNCED_HEADROOM = 0.95
# AIMD on HubSpot's 429s: the rate drops to this share of itself on a 429 ...
DECREASE = 0.9
# ... at most once in this long (the window of the limit that refused; calls in flight at
# once come back 429 together) ...
DECREASE_HOLD_SECONDS = 1.0
# ... never below this share of the ceiling (a 429 storm does not stop the export) ...
MIN_SHARE = 0.25
# ... and creeps back by this share of the ceiling on every call answered: from one
# decrease back to the whole rate in 500 calls (100 s at 5 searches/s). HubSpot's count
# meets the calls as they arrive, a little late at random, so a rate near the whole one
# draws a 429 now and then whatever it is; the slower the creep, the rarer. Bench B16 (a
# model on a fake clock): 15 429s in 6,000 searches arriving 0-160 ms late at 0.867 of
# the limit, against 32 at 0.874 creeping back by 0.0005, and 319 without adapting.
RECOVERY_PER_SUCCESS = 0.0002
COUNT_DIGITS = 9  # a limit longer than this is no limit HubSpot would name


class Budget:
    """A client-side request budget (pyrate-limiter's) whose slots go to the callers in the
    order they asked for them, spaced evenly at a rate that follows what HubSpot says and
    does.

    pyrate-limiter lets every blocked caller sleep until the slot it computed and then race
    the others for it. An export hands its pages over in the order it requested them, so a
    page that loses that race to pages requested after it holds them all up until the next
    window: at 5 searches/s and 400 ms latency that idled the budget for half a second in
    every other second (bench B2). Here one caller at a time waits in the limiter; the
    others wait their turn behind it.

    Given ``per_second`` (the configured budget as calls per second), the calls also leave
    at least one slot apart. The limiter alone lets a whole window's budget go at once: the
    default 100 calls per 10 s in one burst, where HubSpot also counts 11 a second
    (``X-HubSpot-RateLimit-Secondly``) and answers the 12th with a 429. The slot is that of
    the lowest of: the configured figure; what HubSpot announces (`learn`), a little under
    it (`ANNOUNCED_HEADROOM`), as requests arrive a little bunched; and a share of it that
    adapts to HubSpot's 429s (`limited`, `succeeded`: AIMD, as TCP's congestion window), so
    that whatever window HubSpot counts in, the budget settles just under it. Never more
    than configured. A limiter whose window is HubSpot's own (search's second) already
    bounds every burst to HubSpot's limit: with ``spaced_at_full_rate`` False the calls are
    spaced only while the rate is below the configured one (bench B12: spacing search at
    its full rate cost 0.06 of the ceiling against pyrate-limiter's bursts alone).

    "Spaced" means at most ``burst`` calls in any ``burst / rate`` seconds: one call a slot
    by default, or, for a budget whose limiter lets a whole window's calls go together
    (search: its rate a second), those calls in the limiter's window as it keeps it (a
    second and pyrate-limiter's 50 ms buffer) lengthened by ``1 / share``.
    HubSpot counts arrivals, which come a little late at random. Spaced one a slot at
    share s, a 429 needs only one call late by the margin, 1000/s - 1000 ms for search,
    against the call five slots after it; in bursts, it needs a whole burst late by that
    margin against the next. Bench B16 models both on a fake clock: with searches arriving
    0-160 ms late, 15 429s in 6,000 searches at 0.867 of HubSpot's limit in bursts, 18 at
    0.843 one a slot.
    """

    def __init__(self, limiter: Limiter, per_second: float | None = None, *,
                 spaced_at_full_rate: bool = True, burst: int = 1, adaptive: bool = True,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """``adaptive`` False ignores HubSpot's 429s (`limited`, `succeeded` do nothing):
        the plain limiter bench B12 compares the adaptation with; no setting of the
        service turns it off."""
        self._limiter = limiter
        self._turns = threading.Condition()
        self._issued = 0  # turns handed out
        self._serving = 0  # the turn now waiting in the limiter
        self._sleep = sleep
        self._monotonic = monotonic
        self._configured = per_second
        self._ceiling = per_second  # the configured rate, or HubSpot's if it announced less
        self._share = 1.0  # of the ceiling, lowered on 429s and raised again on successes
        self._lowered_at = -math.inf  # monotonic time of the last lowering
        self._margin = getattr(limiter, "buffer_ms", 0) / 1000  # what pyrate-limiter adds to a window
        # When the last ``burst`` calls left (monotonic s), oldest first.
        self._sent: deque[float] = deque(maxlen=burst)
        self._spaced_at_full_rate = spaced_at_full_rate
        self._adaptive = adaptive

    @property
    def per_second(self) -> float | None:
        """The rate the calls are spaced at now (None: not spaced, only the limiter's)."""
        if self._ceiling is None or self._configured is None:
            return None
        rate = self._ceiling * self._share
        return rate if self._spaced_at_full_rate or rate < self._configured else None

    def acquire(self) -> None:
        """Block until this caller's slot, after those of every caller that asked before."""
        with self._turns:
            turn = self._issued
            self._issued += 1
            self._turns.wait_for(lambda: self._serving == turn)
        try:
            rate = self.per_second
            if rate is not None and len(self._sent) == self._sent.maxlen:
                window = len(self._sent) / rate
                if len(self._sent) > 1:  # bursts keep the limiter's margin, lengthened as the rate
                    window += self._margin / self._share
                pause = self._sent[0] + window - self._monotonic()
                if pause > 0:
                    self._sleep(pause)
            self._limiter.try_acquire("hubspot")
            self._sent.append(self._monotonic())
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()

    def limited(self) -> None:
        """HubSpot answered a call 429: the rate drops by `DECREASE`, once per
        `DECREASE_HOLD_SECONDS` (the calls already in flight when HubSpot started refusing
        come back 429 together; they are one signal, not several)."""
        if not self._adaptive:
            return
        with self._turns:
            now = self._monotonic()
            if now - self._lowered_at >= DECREASE_HOLD_SECONDS:
                self._share = max(MIN_SHARE, self._share * DECREASE)
                self._lowered_at = now

    def succeeded(self) -> None:
        """HubSpot answered a call: the rate creeps back up by `RECOVERY_PER_SUCCESS` of the
        ceiling, to the ceiling at most."""
        if not self._adaptive:
            return
        with self._turns:
            self._share = min(1.0, self._share + RECOVERY_PER_SUCCESS)

    def learn(self, headers: Mapping[str, str]) -> None:
        """Take in the rates an answer's headers announce: calls per second
        (``X-HubSpot-RateLimit-Secondly``) and per interval (``-Max`` per
        ``-Interval-Milliseconds``). The spacing follows the lower, under `ANNOUNCED_HEADROOM`,
        and never above the configured budget."""
        if self._configured is None:
            return
        announced: list[float | None] = [_count(headers.get(SECONDLY_HEADER))]
        most, interval_ms = _count(headers.get(MAX_HEADER)), _count(headers.get(INTERVAL_HEADER))
        if most is not None and interval_ms:
            announced.append(most * 1000 / interval_ms)
        rates = [rate * ANNOUNCED_HEADROOM for rate in announced if rate]
        if rates:
            with self._turns:
                self._ceiling = min(self._configured, *rates)


def search_budget(per_second: int, limiter: Limiter | None = None, *, adaptive: bool = True,
                  sleep: Callable[[float], None] = time.sleep,
                  monotonic: Callable[[], float] = time.monotonic) -> Budget:
    """Search's budget: ``per_second`` searches in each of pyrate-limiter's seconds (HubSpot's
    own window), in bursts; once a 429 has lowered the rate, in bursts as many in a second
    lengthened to match. ``limiter``: another limiter of that rate (bench B16's, on a fake
    clock)."""
    return Budget(limiter or Limiter(Rate(per_second, Duration.SECOND)), per_second,
                  spaced_at_full_rate=False, burst=per_second, adaptive=adaptive,
                  sleep=sleep, monotonic=monotonic)


def _count(value: str | None) -> int | None:
    """A header's non-negative whole number, if it is one (and not absurdly long)."""
    if value is None or not (value := value.strip()).isascii() or not value.isdigit() or len(value) > COUNT_DIGITS:
        return None
    return int(value)


class RateWindow:
    """HubSpot's own count of the calls left in its current window
    (``X-HubSpot-RateLimit-Remaining``): once it says none are left, no call goes out until
    the window has passed, instead of running into 429s."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._reopens = 0.0  # no call before this monotonic time

    def wait(self) -> None:
        """Block until the window HubSpot last announced as used up has passed."""
        with self._lock:
            pause = self._reopens - self._monotonic()
        if pause > 0:
            self._sleep(pause)

    def note(self, headers: Mapping[str, str]) -> None:
        """Take in what an answer's headers say of the window, if they say anything."""
        try:
            remaining = int(headers["X-HubSpot-RateLimit-Remaining"])
            interval_ms = int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", 10_000))
        except (KeyError, ValueError):
            return
        if remaining <= 1:
            with self._lock:
                self._reopens = max(self._reopens, self._monotonic() + min(interval_ms, 60_000) / 1000)
