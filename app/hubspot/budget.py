"""The client's request budgets: its own, and the one HubSpot announces in its headers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from pyrate_limiter import Limiter


class Budget:
    """A client-side request budget (pyrate-limiter's) whose slots go to the callers in the
    order they asked for them.

    pyrate-limiter lets every blocked caller sleep until the slot it computed and then race
    the others for it. An export hands its pages over in the order it requested them, so a
    page that loses that race to pages requested after it holds them all up until the next
    window: at 5 searches/s and 400 ms latency that idled the budget for half a second in
    every other second (bench B2). Here one caller at a time waits in the limiter; the
    others wait their turn behind it.
    """

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._turns = threading.Condition()
        self._issued = 0  # turns handed out
        self._serving = 0  # the turn now waiting in the limiter

    def acquire(self) -> None:
        """Block until this caller's slot, after those of every caller that asked before."""
        with self._turns:
            turn = self._issued
            self._issued += 1
            self._turns.wait_for(lambda: self._serving == turn)
        try:
            self._limiter.try_acquire("hubspot")
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()


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
