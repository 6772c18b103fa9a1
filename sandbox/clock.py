"""A portal's clock, and the one lock that guards all of the portal's state."""

from __future__ import annotations

import threading
import time


class Clock:
    """The sandbox's time in epoch ms: frozen at `now_ms` when given (it moves only by
    advance()/set_now()), else the wall clock plus what advance() added.

    `lock` guards the clock and everything else of the portal; `start_ms` is when the portal
    was made (the seeded records' times lie before it)."""

    def __init__(self, now_ms: int | None) -> None:
        self.lock = threading.RLock()
        self._frozen_at = now_ms
        self._offset = 0
        self._last_now = 0
        self.start_ms = self.now_locked()

    def now_locked(self) -> int:
        """now_ms() for a caller that holds the lock."""
        base = self._frozen_at if self._frozen_at is not None else time.time_ns() // 1_000_000
        # Never backwards, even if the wall clock steps back: search lag relies on it.
        self._last_now = max(base + self._offset, self._last_now)
        return self._last_now

    def now_ms(self) -> int:
        with self.lock:
            return self.now_locked()

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self.lock:
            self._offset += ms

    def set_now(self, ms: int) -> None:
        with self.lock:
            current = self.now_locked()
            if ms < current:
                raise ValueError(f"cannot set the sandbox clock back from {current} to {ms}")
            self._offset += ms - current
