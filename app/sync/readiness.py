"""Readiness: whether the service can export, asked of HubSpot at most once per interval.

`/health` only says the process runs. This says whether an export would work now: HubSpot
reachable, the token accepted, its clock usable, every object type the service is set up
for (contacts, the types of `HUBSPOT_OBJECT_PROPERTIES`) or was asked for since it started
readable with the token's scopes, and the portal's daily allowance not used up. Each check
is one HubSpot read of one record, not retried; the answer is kept for ``interval`` seconds
whatever the traffic, so a monitor that polls often costs HubSpot nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..hubspot import HubSpotClient, HubSpotError
from ..object_types import ObjectType, UnknownObjectType
from .crm import Crm

log = logging.getLogger(__name__)

READY_SECONDS = 60.0
OK = "ok"


@dataclass(frozen=True)
class Readiness:
    """What was checked, each "ok" or why not."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(outcome == OK for outcome in self.checks.values())

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {outcome}" for name, outcome in self.checks.items() if outcome != OK]


class ReadinessCheck:
    """The service's readiness, checked at most once per ``interval``. Thread-safe."""

    def __init__(self, client: HubSpotClient, crm: Crm, interval: float = READY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._crm = crm
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Readiness] | None = None

    def report(self) -> Readiness:
        with self._lock:
            now = self._clock()
            if self._last is None or now - self._last[0] >= self._interval:
                previous = self._last[1] if self._last else None
                self._last = (now, self._check())
                if not self._last[1].ready and self._last[1] != previous:
                    log.warning("not ready: %s", "; ".join(self._last[1].failures))
            return self._last[1]

    def _check(self) -> Readiness:
        checks: dict[str, str] = {}
        kinds: list[ObjectType] = []
        for name in self._crm.set_up_for():
            try:
                kinds.append(self._crm.types.resolve(name))
            except (UnknownObjectType, HubSpotError) as exc:
                checks[name] = str(exc)
        for kind in kinds:
            try:
                self._client.probe(kind)
            except HubSpotError as exc:
                checks[kind.name] = str(exc)
                if exc.upstream_status != 403:  # not this type's scope: HubSpot itself fails
                    break
            else:
                checks[kind.name] = OK
        left = self._client.daily_calls_left()
        checks["daily allowance"] = OK if left is None or left > 0 else "HubSpot's daily limit is used up"
        return Readiness(checks)
