"""The benchmarks B1..B15. Each starts its own sandbox and service processes and stops them.

Every figure is measured in the same run as its reference and reported as a ratio (or a
count against a target), because the machine is shared and noisy.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import statistics
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import requests
from pyrate_limiter import Duration, Limiter, Rate

from app.config import Settings
from app.hubspot import HubSpotClient
from app.hubspot.budget import Budget, search_budget
from app.metrics import Metrics
from app.object_types import STANDARD_NAMES, ObjectType, standard_types
from app.sync import Exporter
from app.sync.positions import START
from app.sync.walk import KeysetWalk, QueryRead, search_body
from app.sync.workers import Workers
from sandbox.associations import PAGE_SIZE as ASSOCIATION_PAGE

from . import budget_model
from .consume import Export, Refused, consume
from .procs import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    TOKEN,
    BenchError,
    Process,
    SandboxProcess,
    ServiceProcess,
    free_port,
)
from .tutorial_port import TutorialService

MODIFIED = "lastmodifieddate"
HIGH_BUDGET = 100  # searches/s: the most HUBSPOT_SEARCH_RATE_PER_SECOND accepts
DEFAULTS = Settings()  # the service's defaults: search budget and page size
CONTACTS = standard_types(DEFAULTS.modified_property, {})["contacts"]
SEARCH_LIMIT = 5  # the sandbox's search limit in B2 and B5 (HubSpot: 4-5/s)
GENERAL_LIMIT = 100  # list and properties per 10 s (HubSpot Free/Starter)
SETTLE_SECONDS = 0
CONTAINER_MB = 128  # Sesam's default container memory
MAX_ROUNDS = 100_000  # a bound on the bare walk
SEED = 1
MB = 1024  # VmHWM is in KiB


@dataclass(frozen=True)
class Sizes:
    b1_contacts: int
    b1_repeats: int
    b2_contacts: int
    b2_latencies_ms: tuple[int, ...]
    b3_contacts: tuple[int, int]
    b3_concurrent_contacts: int
    b3_consumers: int
    b4_contacts: int
    b4_changes: tuple[int, ...]
    b4_snapshot_seconds: float  # longer than B4's longest run, so the second consumer shares it
    b5_contacts: int
    b5_latency_ms: int
    b5_repeats: int
    b6_contacts: int
    b6_changes: int
    b7_contacts: int  # the portal of B7 and B8 (companies and deals in proportion)
    b7_latency_ms: int
    b10_contacts: int  # the portal of B10's concurrent full exports
    b10_consumers: int
    b11_exports: int  # exports waiting on a hanging HubSpot while /health is timed
    b11_hang_seconds: int  # each search of that HubSpot (within the default 60 s read timeout)
    b12_calls: int  # association reads and archived-listing pages per run of B12 (a), half each
    b12_contacts: int  # the portal of B12 (b)'s full export


FULL = Sizes(b1_contacts=50_000, b1_repeats=2, b2_contacts=20_000, b2_latencies_ms=(150, 400),
             b3_contacts=(10_000, 200_000), b3_concurrent_contacts=20_000, b3_consumers=10,
             b4_contacts=30_000, b4_changes=(1, 150, 5_000, 25_000), b4_snapshot_seconds=10, b5_contacts=20_000,
             b5_latency_ms=150,
             b5_repeats=3, b6_contacts=10_000, b6_changes=150, b7_contacts=20_000, b7_latency_ms=150,
             b10_contacts=10_000, b10_consumers=50, b11_exports=40, b11_hang_seconds=20,
             b12_calls=80, b12_contacts=20_000)
SMOKE = Sizes(b1_contacts=2_000, b1_repeats=1, b2_contacts=2_000, b2_latencies_ms=(150,),
              b3_contacts=(1_000, 4_000), b3_concurrent_contacts=2_000, b3_consumers=10,
              b4_contacts=2_000, b4_changes=(1, 150), b4_snapshot_seconds=2, b5_contacts=2_000, b5_latency_ms=150,
              b5_repeats=1, b6_contacts=2_000, b6_changes=150, b7_contacts=2_000, b7_latency_ms=150,
              b10_contacts=1_000, b10_consumers=50, b11_exports=40, b11_hang_seconds=5,
              b12_calls=20, b12_contacts=2_000)


@dataclass
class Row:
    """One line of the results table; `data` holds the raw numbers for the JSON file."""

    id: str
    what: str
    measured: str
    reference: str
    value: str
    target: str
    holds: bool | None
    data: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


@contextmanager
def running(process: Process) -> Iterator[Any]:
    """The process started, and stopped whatever happens."""
    try:
        yield process.start()
    finally:
        process.stop()


@contextmanager
def portal(contacts: int, search_rate: int | None = HIGH_BUDGET, **service_env: str
           ) -> Iterator[tuple[SandboxProcess, ServiceProcess, requests.Session]]:
    """A sandbox of `contacts`, a service reading it (None: the default budget; more
    settings by environment), an HTTP session."""
    with ExitStack() as stack:
        sandbox = stack.enter_context(running(SandboxProcess(contacts, SEED)))
        service = stack.enter_context(running(ServiceProcess(sandbox, search_rate, SETTLE_SECONDS, service_env)))
        yield sandbox, service, stack.enter_context(requests.Session())


def warm(http: requests.Session, service: ServiceProcess) -> None:
    """One tiny export, so that the property catalogue is cached and a connection is open."""
    consume(http, service.url, limit=1)


def pause_for_budgets() -> None:
    """Let the per-second search budgets (the service's and the sandbox's) refill."""
    time.sleep(1.1)


def expect(count: int, expected: int, what: str, notes: list[str]) -> None:
    if count != expected:
        notes.append(f"{what}: {count:,} entities, but the sandbox holds {expected:,}: the service lost or "
                     "repeated contacts")


def upstream_calls(stats: dict[str, int]) -> int:
    return stats["search"] + stats["list"]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def rate(x: float) -> str:
    return f"{x:,.0f} entities/s"


def megabytes(kib: int) -> str:
    return f"{kib / MB:,.1f} MB"


def properties_of(client: HubSpotClient, kind: ObjectType) -> list[str]:
    """The properties the service's export asks for."""
    return Exporter(client, kind, DEFAULTS, Workers()).properties()


def bare_walk(sandbox: SandboxProcess, budget: int = HIGH_BUDGET) -> tuple[int, float]:
    """A full read of the sandbox with the service's own HubSpot client, driven the way the
    export's `_live` drives it (keyset walk; each query read as a stream of overlapping
    pages, up to `search_concurrency` in flight; same page size and properties), results
    discarded; at search budget ``budget``."""
    settings = Settings(token=TOKEN, base_url=sandbox.url, search_rate_per_second=budget,
                        settle_seconds=SETTLE_SECONDS)
    prop, size, most = settings.modified_property, settings.search_page_size, settings.search_concurrency
    client = HubSpotClient(settings)
    contacts = CONTACTS
    try:
        properties = properties_of(client, contacts)
        with ThreadPoolExecutor(most) as pool:
            began = time.perf_counter()
            walk, entities, expected = KeysetWalk(START), 0, None
            for _ in range(MAX_ROUNDS):
                query = walk.next_query()
                if query is None:
                    return entities, time.perf_counter() - began
                read, in_flight = QueryRead(walk, query, size, expected=expected), deque()
                while True:
                    while len(in_flight) < most and (offset := read.next_offset()) is not None:
                        in_flight.append(pool.submit(client.search, contacts, search_body(
                            query, prop, properties, size, offset=offset)))
                    if not in_flight:
                        break
                    page = in_flight.popleft().result()
                    walk.fix_horizon(page.server_ms - int(settings.settle_seconds * 1000))
                    entities += len(read.take([(r.key, r) for r in page.records],
                                              page.has_more, page.total))
                    if not read.open:
                        break
                for future in in_flight:
                    future.result()
                expected = read.left()
        raise BenchError(f"the bare walk did not end within {MAX_ROUNDS} queries")
    finally:
        client.close()


def make_changes(sandbox: SandboxProcess, k: int, rng: random.Random) -> set[str]:
    """Modify k random live contacts through the admin surface: a bulk update of k // 3 of
    them on one millisecond (a tie) between two halves of single-contact edits (one admin
    call each, so mostly on distinct milliseconds). Then the sandbox clock is moved past
    the service's settle time. Returns the ids changed."""
    ids = rng.sample(sorted(sandbox.truth()["live"]), k)
    tie = k // 3
    singles = ids[tie:]
    half = len(singles) // 2
    for batch in [[cid] for cid in singles[:half]] + [ids[:tie]] + [[cid] for cid in singles[half:]]:
        if batch:
            sandbox.admin("POST", "modify", {"ids": batch})
    sandbox.advance(int(SETTLE_SECONDS * 1000) + 2000)  # the Date header has whole seconds
    return set(ids)


def measure_calls(sandbox: SandboxProcess, run: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
    """What `run` returns, and the HubSpot requests it caused (by endpoint)."""
    sandbox.reset_stats()
    result = run()
    return result, sandbox.stats()


# --------------------------------------------------------------------------- B1


def b1_serving_overhead(sizes: Sizes, notes: list[str]) -> list[Row]:
    n = sizes.b1_contacts
    with portal(n) as (sandbox, service, http):
        live = len(sandbox.truth()["live"])
        warm(http, service)
        bare: list[float] = []
        served: list[float] = []
        for _ in range(sizes.b1_repeats):  # interleaved, so both see the same machine
            entities, seconds = bare_walk(sandbox)
            expect(entities, live, "B1 bare walk", notes)
            bare.append(entities / seconds)
            export = consume(http, service.url)
            expect(export.entities, live, "B1 full export", notes)
            served.append(export.rate)
    ratio = max(served) / max(bare)
    return [Row("B1", f"serving overhead: full export of {n:,}, no latency/limits",
                rate(max(served)), f"{rate(max(bare))} (bare client)", f"{ratio:.2f}", ">= 0.80", ratio >= 0.8,
                {"contacts": n, "live": live, "served_rates": served, "bare_rates": bare, "ratio": ratio,
                 "note": f"best of {sizes.b1_repeats} interleaved runs each"})]


# --------------------------------------------------------------------------- B2


def b2_latency_hiding(sizes: Sizes, notes: list[str]) -> list[Row]:
    """A full export at the default search budget and at HubSpot's whole search limit
    (HUBSPOT_SEARCH_RATE_PER_SECOND=5, the sandbox's limit too), against the ceiling that
    budget allows: budget x page size."""
    n, page_size = sizes.b2_contacts, DEFAULTS.search_page_size
    rows = []
    for budget in (DEFAULTS.search_rate_per_second, SEARCH_LIMIT):
        ceiling = budget * page_size
        # The default settle time. At its end a full export reads on to a later horizon:
        # the 150 ms run lists the archived contacts for it and searches once more; the
        # 400 ms run finds that snapshot fresh but not past its own horizon, and stops.
        with portal(n, search_rate=budget, HUBSPOT_SEARCH_SETTLE_SECONDS="60") as (sandbox, service, http):
            live = len(sandbox.truth()["live"])
            warm(http, service)
            for latency in sizes.b2_latencies_ms:
                sandbox.configure(latency, SEARCH_LIMIT, GENERAL_LIMIT)
                pause_for_budgets()
                export, stats = measure_calls(sandbox, lambda: consume(http, service.url))
                expect(export.entities, live, f"B2 full export at {latency} ms, {budget}/s", notes)
                retries = service.search_retries()
                ratio = export.rate / ceiling
                rows.append(Row("B2", f"latency hiding: {latency} ms latency, {budget}/s budget, full export of {n:,}",
                                rate(export.rate), f"ceiling {ceiling:,}/s ({budget}/s x {page_size})",
                                f"{ratio:.2f}", ">= 0.90", ratio >= 0.9,
                                {"contacts": n, "latency_ms": latency, "budget": budget, "rate": export.rate,
                                 "ceiling": ceiling, "ratio": ratio, "seconds": export.seconds,
                                 "search_calls": stats["search"], "search_retries_so_far": retries,
                                 "sandbox_search_limit_per_s": SEARCH_LIMIT}))
    return rows


# --------------------------------------------------------------------------- B3


def peak_rss(contacts: int, consumers: int, notes: list[str]) -> tuple[int, list[Export]]:
    """Peak RSS (KiB) of a fresh service over `consumers` concurrent full exports."""
    with portal(contacts) as (sandbox, service, http):
        live = len(sandbox.truth()["live"])
        if consumers == 1:
            exports = [consume(http, service.url)]
        else:
            def one(_: int) -> Export:
                with requests.Session() as own:
                    return consume(own, service.url)

            with ThreadPoolExecutor(consumers) as pool:
                exports = list(pool.map(one, range(consumers)))
        for export in exports:
            expect(export.entities, live, f"B3 full export of {contacts:,}", notes)
        return service.vm_hwm_kb(), exports


def b3_memory(sizes: Sizes, notes: list[str]) -> list[Row]:
    small, large = sizes.b3_contacts
    small_kb, _ = peak_rss(small, 1, notes)
    large_kb, [large_export] = peak_rss(large, 1, notes)
    growth = large_kb - small_kb
    notes.append(f"B3: the export of {large:,} ran at {rate(large_export.rate)} (about "
                 f"{large_export.rate / DEFAULTS.search_page_size:.0f} search pages/s) under a search budget of "
                 f"{HIGH_BUDGET}/s, the most HUBSPOT_SEARCH_RATE_PER_SECOND accepts")
    concurrent, consumers = sizes.b3_concurrent_contacts, sizes.b3_consumers
    many_kb, exports = peak_rss(concurrent, consumers, notes)
    limit = f"< {CONTAINER_MB} MB"
    return [
        Row("B3", f"peak RSS, full export of {small:,}", megabytes(small_kb), "-", megabytes(small_kb), limit,
            small_kb < CONTAINER_MB * MB, {"contacts": small, "vm_hwm_kb": small_kb}),
        Row("B3", f"peak RSS, full export of {large:,}", megabytes(large_kb), f"{megabytes(small_kb)} ({small:,})",
            f"+{megabytes(growth)}", "growth <= 25 MB", growth <= 25 * MB,
            {"contacts": large, "vm_hwm_kb": large_kb, "growth_kb": growth, "body_bytes": large_export.bytes,
             "rate": large_export.rate}),
        Row("B3", f"peak RSS, {consumers} concurrent full exports of {concurrent:,}", megabytes(many_kb),
            f"{megabytes(small_kb)} (1 consumer)", f"x{many_kb / small_kb:.2f}", limit,
            many_kb < CONTAINER_MB * MB,
            {"contacts": concurrent, "consumers": consumers, "vm_hwm_kb": many_kb,
             "seconds": max(e.seconds for e in exports)}),
    ]


# --------------------------------------------------------------------------- B4


def b4_upstream_cost(sizes: Sizes, notes: list[str]) -> list[Row]:
    """Two consumers (pipes) at the same offset run one after the other after each batch of
    changes, as several pipes (or the pages of a chronological one) do within one snapshot
    interval: the first finds the archived snapshot stale and lists it, the second shares it."""
    rng = random.Random(SEED)
    rows = []
    with portal(sizes.b4_contacts, HUBSPOT_ARCHIVED_SNAPSHOT_SECONDS=str(sizes.b4_snapshot_seconds)) as (
            sandbox, service, http):
        live = len(sandbox.truth()["live"])
        full = consume(http, service.url)
        expect(full.entities, live, "B4 full run", notes)
        since = full.last_updated
        for k in sizes.b4_changes:
            changed = make_changes(sandbox, k, rng)
            time.sleep(sizes.b4_snapshot_seconds)  # the snapshot from before the changes is stale
            target = math.ceil(k / DEFAULTS.search_page_size) + 2
            for who in ("refreshes the snapshot", "shares it"):
                export, stats = measure_calls(
                    sandbox, lambda: consume(http, service.url, since=since, collect=True))  # noqa: B023 (called at once)
                missed = len(changed - export.ids.keys())
                if missed:
                    notes.append(f"B4 k={k:,} ({who}): {missed:,} changed contacts were not delivered")
                calls = upstream_calls(stats)
                shared = who == "shares it"
                rows.append(Row("B4", f"HubSpot calls, incremental run after {plural(k, 'change')}, {who}",
                                plural(calls, "call"), f"{stats['search']} search + {stats['list']} list",
                                f"{calls:,}", f"<= {target:,}" if shared else "(once per interval)",
                                calls <= target if shared else None,
                                {"k": k, "calls": calls, "target": target, "search": stats["search"],
                                 "list": stats["list"], "properties": stats["properties"],
                                 "delivered": export.entities, "missed": missed, "contacts": sizes.b4_contacts}))
            since = export.last_updated or since
    return rows


# --------------------------------------------------------------------------- B5


def b5_time_to_first_byte(sizes: Sizes, notes: list[str]) -> list[Row]:
    latency = sizes.b5_latency_ms
    with portal(sizes.b5_contacts, search_rate=None) as (sandbox, service, http):
        sandbox.configure(latency, SEARCH_LIMIT, GENERAL_LIMIT)
        cold = consume(http, service.url, first_byte_only=True).ttfb
        client = HubSpotClient(Settings(token=TOKEN, base_url=sandbox.url))
        try:
            properties = properties_of(client, CONTACTS)
        finally:
            client.close()
        query = KeysetWalk(START).next_query()
        assert query is not None
        body = search_body(query, MODIFIED, properties, DEFAULTS.search_page_size)
        ttfbs, trips = [], []
        for _ in range(sizes.b5_repeats):
            pause_for_budgets()
            ttfbs.append(consume(http, service.url, first_byte_only=True).ttfb)
            pause_for_budgets()
            began = time.perf_counter()
            response = sandbox.search(body)
            trips.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise BenchError(f"direct search: {response.status_code} {response.text[:300]}")
    ttfb, trip = statistics.median(ttfbs), statistics.median(trips)
    data = {"latency_ms": latency, "ttfb_s": ttfbs, "round_trip_s": trips, "cold_ttfb_s": cold}
    return [
        Row("B5", f"time to first byte, full export, {latency} ms latency", f"{ttfb * 1000:,.0f} ms",
            f"{trip * 1000:,.0f} ms (1 search)", f"x{ttfb / trip:.2f}", "(none given)", None,
            {**data, "ratio": ttfb / trip}),
        Row("B5", "  the same, first request after start (catalogue)", f"{cold * 1000:,.0f} ms",
            f"{trip * 1000:,.0f} ms (1 search)", f"x{cold / trip:.2f}", "(none given)", None,
            {**data, "ratio": cold / trip}),
    ]


# --------------------------------------------------------------------------- B6


@dataclass
class Run:
    """One pipe run of one approach: what it delivered, or why it failed."""

    delivered: dict[str, str]  # id -> _updated
    calls: dict[str, int]
    error: str | None = None


def tutorial_run(sandbox: SandboxProcess, port: TutorialService, since: str | None) -> Run:
    def run() -> tuple[dict[str, str], str | None]:
        try:
            entities = json.loads(port.get_contacts(since))
        except (AssertionError, ValueError, KeyError) as exc:  # the tutorial's 500
            return {}, f"{type(exc).__name__}: {str(exc)[:120]}"
        return {e["id"]: e["_updated"] for e in entities}, None

    (delivered, error), calls = measure_calls(sandbox, run)
    return Run(delivered, calls, error)


def service_run(sandbox: SandboxProcess, http: requests.Session, service: ServiceProcess,
                since: str | None) -> Run:
    export, calls = measure_calls(sandbox, lambda: consume(http, service.url, since=since, collect=True))
    return Run(export.ids, calls)


def sesam_offset(run: Run, previous: str | None) -> str | None:
    """Sesam's default ("max") strategy: the greatest _updated, compared as strings."""
    return max(run.delivered.values(), default=previous) if run.error is None else previous


def b6_tutorial(sizes: Sizes, notes: list[str]) -> list[Row]:
    k = sizes.b6_changes
    with portal(sizes.b6_contacts) as (sandbox, service, http):
        port = TutorialService(sandbox.url + "/crm/v3", TOKEN, MODIFIED, "GT")
        before = sandbox.truth()["live"]
        full = {"tutorial port": tutorial_run(sandbox, port, None),
                "service": service_run(sandbox, http, service, None)}
        changed = make_changes(sandbox, k, random.Random(SEED))
        after = sandbox.truth()["live"]
        truth_changed = {cid for cid, ms in after.items() if before.get(cid) != ms}
        if truth_changed != changed:
            raise BenchError("the sandbox's truth disagrees with the changes made")
        incremental = {
            "tutorial port": tutorial_run(sandbox, port, sesam_offset(full["tutorial port"], None)),
            "service": service_run(sandbox, http, service, sesam_offset(full["service"], None)),
        }
    rows = []
    for name in full:
        for label, run, expected in (("full run", full[name], set(before)),
                                     (f"incremental after {k} changes (a tie of {k // 3})", incremental[name],
                                      changed)):
            missed = len(expected - run.delivered.keys())
            calls = sum(run.calls.values())
            measured = f"{len(run.delivered):,} delivered, {plural(calls, 'call')}"
            if run.error:
                measured += ", ERROR"
            rows.append(Row("B6", f"{name}: {label}", measured, f"{len(expected):,} expected",
                            f"{missed:,} missed", "0 missed", missed == 0 and run.error is None,
                            {"approach": name, "run": label, "delivered": len(run.delivered), "expected": len(expected),
                             "missed": missed, "calls": run.calls, "error": run.error}))
            if run.error:
                notes.append(f"B6 {name}, {label}: {run.error}")
    return rows


# --------------------------------------------------------------------------- B7, B8

THREE_PIPES = ("contacts", "companies", "deals")


def b7_shared_budget(sizes: Sizes, notes: list[str]) -> list[Row]:
    """Three pipes (contacts, companies, deals) read one service at once: together they
    should use the one search budget they share (HubSpot's limit is per account)."""
    budget, page_size = DEFAULTS.search_rate_per_second, DEFAULTS.search_page_size
    ceiling = budget * page_size
    with portal(sizes.b7_contacts, search_rate=None, HUBSPOT_SEARCH_SETTLE_SECONDS="60") as (sandbox, service, http):
        live = {kind: len(sandbox.truth(kind)["live"]) for kind in THREE_PIPES}
        for kind in THREE_PIPES:
            consume(http, service.url, limit=1, path=f"/objects/{kind}")  # catalogues cached
        sandbox.configure(sizes.b7_latency_ms, SEARCH_LIMIT, GENERAL_LIMIT)
        pause_for_budgets()

        def one(kind: str) -> Export:
            with requests.Session() as own:
                return consume(own, service.url, path=f"/objects/{kind}")

        began = time.perf_counter()
        with ThreadPoolExecutor(len(THREE_PIPES)) as pool:
            exports = dict(zip(THREE_PIPES, pool.map(one, THREE_PIPES)))
        seconds = time.perf_counter() - began
    for kind, export in exports.items():
        expect(export.entities, live[kind], f"B7 {kind}", notes)
    total = sum(export.entities for export in exports.values())
    ratio = total / seconds / ceiling
    return [Row("B7", f"shared budget: {', '.join(THREE_PIPES)} at once, {sizes.b7_latency_ms} ms latency",
                rate(total / seconds), f"ceiling {ceiling:,}/s ({budget}/s x {page_size})", f"{ratio:.2f}",
                ">= 0.90", ratio >= 0.9,
                {"entities": {k: e.entities for k, e in exports.items()}, "seconds": seconds,
                 "per_pipe_seconds": {k: e.seconds for k, e in exports.items()}, "ratio": ratio})]


def b8_associations(sizes: Sizes, notes: list[str]) -> list[Row]:
    """A deals export with its contacts' associations against one without: the calls the
    associations add, and what they cost in rate."""
    with portal(sizes.b7_contacts, search_rate=None, HUBSPOT_SEARCH_SETTLE_SECONDS="60") as (sandbox, service, http):
        live = len(sandbox.truth("deals")["live"])
        consume(http, service.url, limit=1, path="/objects/deals", associations="contacts")
        sandbox.configure(sizes.b7_latency_ms, SEARCH_LIMIT, GENERAL_LIMIT)
        pause_for_budgets()
        plain, plain_calls = measure_calls(sandbox, lambda: consume(http, service.url, path="/objects/deals"))
        pause_for_budgets()
        associated, calls = measure_calls(sandbox, lambda: consume(
            http, service.url, path="/objects/deals", associations="contacts"))
        sandbox.configure()
        body = http.get(service.url + "/objects/deals", params={"associations": "contacts"}, timeout=600).json()
    for export in (plain, associated):
        expect(export.entities, live, "B8 deals", notes)
    extra_pages = sum(max(0, -(-len(e["associations"]["contacts"]) // ASSOCIATION_PAGE) - 1) for e in body)
    target = math.ceil(live / 1000) + extra_pages
    extra = calls.get("associations", 0)
    ratio = associated.rate / plain.rate
    return [
        Row("B8", f"association calls, deals export of {live:,} with contacts", plural(extra, "call"),
            f"{extra_pages} records with more than a page", f"{extra:,}", f"<= {target:,}", extra <= target,
            {"deals": live, "association_calls": extra, "extra_pages": extra_pages, "target": target,
             "search_calls": calls["search"], "search_calls_without": plain_calls["search"]}),
        Row("B8", f"rate with associations, {sizes.b7_latency_ms} ms latency", rate(associated.rate),
            f"{rate(plain.rate)} (without)", f"{ratio:.2f}", ">= 0.80", ratio >= 0.8,
            {"rate": associated.rate, "rate_without": plain.rate, "ratio": ratio}),
    ]


def b9_memory_per_type(sizes: Sizes, notes: list[str]) -> list[Row]:
    """Peak RSS after a full export of contacts, then after a full export of every other
    type too (one exporter, archived snapshot and catalogue per type): memory should not
    grow with the number of types."""
    with portal(sizes.b7_contacts) as (sandbox, service, http):
        consume(http, service.url, path="/objects/contacts")
        one = service.vm_hwm_kb()
        kinds = [k for k in STANDARD_NAMES if k != "contacts"]
        for kind in kinds:
            export = consume(http, service.url, path=f"/objects/{kind}")
            expect(export.entities, len(sandbox.truth(kind)["live"]), f"B9 {kind}", notes)
        every = service.vm_hwm_kb()
    growth = every - one
    return [Row("B9", f"peak RSS after full exports of all {len(kinds) + 1} types", megabytes(every),
                f"{megabytes(one)} (contacts only)", f"+{megabytes(growth)}", "growth <= 25 MB", growth <= 25 * MB,
                {"vm_hwm_kb_contacts": one, "vm_hwm_kb_all": every, "types": len(kinds) + 1})]


# --------------------------------------------------------------------------- B10, B11


B10_MOST = 32  # the most MAX_CONCURRENT_EXPORTS accepts


def b10_many_consumers(sizes: Sizes, notes: list[str]) -> list[Row]:
    """Peak RSS of a fresh service while `b10_consumers` clients ask for a full export at
    once (those beyond MAX_CONCURRENT_EXPORTS are refused with a 503 at once, and Sesam
    retries them), against a fresh service's single export in the same run: at the default
    limit and at the most the setting accepts."""
    contacts, consumers = sizes.b10_contacts, sizes.b10_consumers
    one_kb, _ = peak_rss(contacts, 1, notes)
    return [many_consumers(contacts, consumers, limit, one_kb, notes)
            for limit in (DEFAULTS.max_concurrent_exports, B10_MOST)]


def many_consumers(contacts: int, consumers: int, limit: int, one_kb: int, notes: list[str]) -> Row:
    """The peak RSS of a fresh service at MAX_CONCURRENT_EXPORTS=``limit`` while
    ``consumers`` clients ask for a full export at once."""

    def one(_: int) -> Export | None:
        with requests.Session() as own:
            try:
                return consume(own, service.url)
            except Refused:
                return None

    with portal(contacts, MAX_CONCURRENT_EXPORTS=str(limit)) as (sandbox, service, http):
        live = len(sandbox.truth()["live"])
        began = time.perf_counter()
        with ThreadPoolExecutor(consumers) as pool:
            results = list(pool.map(one, range(consumers)))
        seconds = time.perf_counter() - began
        many_kb = service.vm_hwm_kb()
    served = [export for export in results if export is not None]
    for export in served:
        expect(export.entities, live, f"B10 full export of {contacts:,}", notes)
    notes.append(f"B10: of {consumers} clients at once, {len(served)} were served whole and "
                 f"{consumers - len(served)} refused with 503 + Retry-After (MAX_CONCURRENT_EXPORTS="
                 f"{limit}), in {seconds:.1f} s")
    return Row("B10", f"peak RSS, {consumers} clients ask for a full export of {contacts:,} at once, "
               f"MAX_CONCURRENT_EXPORTS={limit}", megabytes(many_kb), f"{megabytes(one_kb)} (1 consumer)",
               f"x{many_kb / one_kb:.2f}", f"< {CONTAINER_MB} MB", many_kb < CONTAINER_MB * MB,
               {"contacts": contacts, "consumers": consumers, "limit": limit, "served": len(served),
                "refused": consumers - len(served), "vm_hwm_kb": many_kb, "vm_hwm_kb_one": one_kb,
                "seconds": round(seconds, 1)})


B11_PROBES = 20  # /health requests timed, one after the other
B11_WAIT = 30.0  # bound on the exports' taking their slots, and on their end


def time_health(http: requests.Session, url: str) -> list[float]:
    """Seconds each of B11_PROBES GET /health took."""
    times = []
    for _ in range(B11_PROBES):
        began = time.perf_counter()
        response = http.get(url + "/health", timeout=B11_WAIT)
        times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise BenchError(f"/health answered {response.status_code}")
    return times


def exports_in_progress(http: requests.Session, url: str) -> float:
    text = http.get(url + "/metrics", timeout=B11_WAIT).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hubspot_sesam_exports_in_progress{"))


def b11_health_under_load(sizes: Sizes, notes: list[str]) -> list[Row]:
    """GET /health while `b11_exports` clients wait for an export whose every search hangs
    sizes.b11_hang_seconds, against /health of the same service idle. The service runs with the
    most MAX_CONCURRENT_EXPORTS accepts (32), so that as many exports as it ever lets run
    hold their threads; the others are refused at once."""
    admitted = min(sizes.b11_exports, 32)
    with portal(1_000, MAX_CONCURRENT_EXPORTS=str(admitted)) as (sandbox, service, http):
        warm(http, service)
        idle = time_health(http, service.url)
        sandbox.admin("POST", "faults", {"endpoint": "search", "kind": "hang",
                                         "seconds": sizes.b11_hang_seconds, "times": None})
        waiting = []
        try:
            for _ in range(sizes.b11_exports):  # requests sent, answers not read
                sock = socket.create_connection(("127.0.0.1", service.port), timeout=B11_WAIT)
                sock.sendall(b"GET /get_contacts HTTP/1.1\r\nHost: localhost\r\n\r\n")
                waiting.append(sock)
            deadline = time.monotonic() + B11_WAIT
            while exports_in_progress(http, service.url) < admitted:
                if time.monotonic() > deadline:
                    raise BenchError(f"{admitted} exports did not start within {B11_WAIT:.0f} s")
                time.sleep(0.2)
            loaded = time_health(http, service.url)
        finally:
            for sock in waiting:
                sock.close()
            sandbox.admin("DELETE", "faults")
        deadline = time.monotonic() + sizes.b11_hang_seconds + B11_WAIT  # the hung searches end
        while exports_in_progress(http, service.url) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
    idle_ms, loaded_ms = statistics.median(idle) * 1000, statistics.median(loaded) * 1000
    worst_ms = max(loaded) * 1000
    return [Row("B11", f"GET /health while {sizes.b11_exports} clients wait for exports on a HubSpot that "
                f"hangs {sizes.b11_hang_seconds} s ({admitted} admitted)",
                f"{loaded_ms:.1f} ms (max {worst_ms:.1f})", f"{idle_ms:.1f} ms (idle)",
                f"x{loaded_ms / idle_ms:.2f}", "max < 1,000 ms", worst_ms < 1000,
                {"exports": sizes.b11_exports, "admitted": admitted, "health_ms_median": loaded_ms,
                 "health_ms_max": worst_ms, "idle_ms_median": idle_ms,
                 "idle_ms_max": max(idle) * 1000})]


# --------------------------------------------------------------------------- B12

SECONDLY_LIMIT = 11  # HubSpot's per-second limit of a private app's calls besides search
TEN_SECOND_LIMIT = 110  # and its ten-second one (X-HubSpot-RateLimit-Max), both the sandbox's in B12
B12_ASSOCIATION_INPUTS = 100  # records per association batch read in B12 (a)
B12_LIST_PAGE = 5  # archived records per listing page in B12 (a): many pages


def outcomes_of(metrics: Metrics, outcome: str) -> int:
    """The client's HubSpot calls answered ``outcome`` (e.g. "429"), from its metrics."""
    return int(sum(sample.value for metric in metrics.upstream_calls.collect() for sample in metric.samples
                   if sample.name.endswith("_total") and sample.labels.get("status") == outcome))


def general_burst(sandbox: SandboxProcess, calls: int, budget_per_10s: int, spaced: bool) -> dict[str, Any]:
    """Association batch reads (companies to contacts) and archived-listing pages (contacts)
    side by side at full speed, through the service's own client: calls // 2 of each. With
    ``spaced`` False the general budget is pyrate-limiter's alone, as before HubSpot's
    per-second limit was followed (the reference)."""
    settings = Settings(token=TOKEN, base_url=sandbox.url, general_rate_per_10s=budget_per_10s,
                        list_page_size=B12_LIST_PAGE, retry_initial_wait=0.5)
    metrics = Metrics()
    client = HubSpotClient(settings, metrics=metrics)
    if not spaced:
        client._general_budget = Budget(Limiter(Rate(budget_per_10s, 10 * Duration.SECOND)))  # noqa: SLF001
    kinds = standard_types(settings.modified_property, {})
    companies, contacts = kinds["companies"], kinds["contacts"]
    ids = sorted(sandbox.truth("companies")["live"])
    half = calls // 2

    def associations() -> None:
        for n in range(half):
            batch = ids[n * B12_ASSOCIATION_INPUTS % len(ids):][:B12_ASSOCIATION_INPUTS]
            client.associations(companies, contacts, [{"id": i} for i in batch])

    def listing() -> None:
        read = 0
        while read < half:
            for _ in client.archived_pages(contacts):
                read += 1
                if read >= half:
                    return

    try:
        began = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(associations), pool.submit(listing)]:
                future.result()
        seconds = time.perf_counter() - began
    finally:
        client.close()
    sent = outcomes_of(metrics, "200") + outcomes_of(metrics, "207")
    return {"calls": sent, "refused": outcomes_of(metrics, "429"), "seconds": seconds,
            "rate": sent / seconds, "budget_per_10s": budget_per_10s, "spaced": spaced}


def b12_hubspots_limits(sizes: Sizes, notes: list[str]) -> list[Row]:
    """(a) HubSpot's calls besides search at full speed, against its per-second limit (11/s
    beside 110 per 10 s): the 429s drawn and the rate, at the default budget and at
    HubSpot's whole ten-second limit, and the budget without spacing (before it followed
    the per-second limit) for reference; each on a fresh sandbox. (b) A full export over
    HTTP at HubSpot's whole search limit (5/s), by a service whose budgets adapt to 429s and
    by one built with a plain limiter (`Budget(adaptive=False)`), against a search limit
    that counts arrivals as an independent fake HubSpot did (`search_window: sliding`, with
    `search_jitter_ms`), each export a fresh service, `B12_EXPORT_RUNS` of each interleaved:
    the 429s drawn against the searches sent, and the rate against that of the same exports
    with no search limit at HubSpot (what the budget alone reaches on this machine now)."""
    rows = []
    for budget, spaced in ((DEFAULTS.general_rate_per_10s, True), (TEN_SECOND_LIMIT, True),
                           (DEFAULTS.general_rate_per_10s, False)):
        with running(SandboxProcess(sizes.b12_contacts // 4, SEED)) as sandbox:
            sandbox.admin("POST", "config", {"general_rate_per_10s": TEN_SECOND_LIMIT,
                                             "general_rate_per_second": SECONDLY_LIMIT})
            run = general_burst(sandbox, sizes.b12_calls, budget, spaced)
        ratio = run["rate"] / SECONDLY_LIMIT
        how = f"budget {budget}/10 s" + ("" if spaced else ", limiter only (before)")
        rows.append(Row("B12", f"association reads + archived listing at full speed, {how}, "
                        f"HubSpot {SECONDLY_LIMIT}/s + {TEN_SECOND_LIMIT}/10 s",
                        f"{plural(run['refused'], '429')}, {run['rate']:.1f} calls/s",
                        f"{SECONDLY_LIMIT} calls/s (HubSpot's)", f"{ratio:.2f}", "0 429s",
                        run["refused"] == 0, run))
    n, latency, budget = sizes.b12_contacts, sizes.b5_latency_ms, SEARCH_LIMIT
    runs: dict[str, list[dict[str, Any]]] = {"reference": [], "adaptive": [], "plain": []}
    with running(SandboxProcess(n, SEED)) as sandbox:
        live = len(sandbox.truth()["live"])
        for _ in range(B12_EXPORT_RUNS if sizes == FULL else 1):  # interleaved: the load falls on each alike
            for how, kept in runs.items():
                sandbox.configure(latency, None if how == "reference" else SEARCH_LIMIT, GENERAL_LIMIT)
                sandbox.admin("POST", "config", {"search_window": "sliding", "search_jitter_ms": B12_JITTER_MS})
                run = export_at_the_limit(sandbox, budget, adaptive=how != "plain")
                expect(run["entities"], live, f"B12 export, {how}", notes)
                kept.append(run)
    reference = pooled_rate(runs["reference"])
    window = (f"HubSpot {SEARCH_LIMIT}/s counting arrivals in a sliding second (inclusive, ms stamps, "
              f"0-{B12_JITTER_MS} ms arrival jitter)")
    for how, label in (("adaptive", "adaptive"), ("plain", "not adaptive (the plain limiter)")):
        done = runs[how]
        searches, refused = sum(run["searches"] for run in done), sum(run["refused"] for run in done)
        speed = pooled_rate(done)
        ratio = speed / reference
        each = ", ".join(str(run["refused"]) for run in done)
        rows.append(Row("B12", f"{plural(len(done), 'export')} of {n:,} over HTTP at {budget}/s, {label}, {latency} ms "
                        f"latency, {window}",
                        f"{plural(refused, '429')} of {searches} searches ({each}), {rate(speed)}",
                        f"{rate(reference)}: the same exports with no search limit at HubSpot", f"{ratio:.2f}",
                        ">= 0.90, <= 1 429 per 100 searches",
                        ratio >= 0.9 and refused * 100 <= searches,
                        {"contacts": n, "ratio": ratio, "reference_rate": reference, "rate": speed,
                         "searches": searches, "refused": refused, "runs": done, "reference_runs": runs["reference"]}))
    return rows


def pooled_rate(runs: list[dict[str, Any]]) -> float:
    """Entities a second over several exports together."""
    return sum(run["entities"] for run in runs) / sum(run["seconds"] for run in runs)


# The arrival jitter of B12 (b)'s sandbox: each search reaches its limit 0..this many ms after
# it was sent (threads and network), as arrivals bunched at the independent fake HubSpot.
B12_JITTER_MS = 40
B12_EXPORT_RUNS = 2  # of each export in B12 (b)


@contextmanager
def service_in_process(sandbox: SandboxProcess, search_rate: int, adaptive: bool) -> Iterator[str]:
    """The service, built by `create_app` as `python -m app` builds it and served by uvicorn
    on a thread of this process, its budgets adaptive or not (``Budget(adaptive=False)``: no
    setting of the service turns the adaptation off, so the plain limiter is built here);
    yields its URL."""
    import functools
    from unittest import mock

    import uvicorn

    from app.web import create_app

    settings = Settings(token=TOKEN, base_url=sandbox.url, search_rate_per_second=search_rate,
                        settle_seconds=SETTLE_SECONDS)
    with mock.patch("app.hubspot.client.Budget", functools.partial(Budget, adaptive=adaptive)), \
            mock.patch("app.hubspot.client.search_budget", functools.partial(search_budget, adaptive=adaptive)):
        app = create_app(settings)
    # Its retries on 429s are counted from /metrics; the warnings would only fill the table's output.
    quiet = logging.getLogger("app")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="bench-service", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise BenchError("the in-process service did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        quiet.setLevel(level)


def search_outcomes(http: requests.Session, url: str) -> dict[str, int]:
    """The service's HubSpot searches so far by status (its /metrics)."""
    counts: dict[str, int] = {}
    for line in http.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("hubspot_sesam_upstream_calls_total{") and 'endpoint="search"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


def export_at_the_limit(sandbox: SandboxProcess, budget: int, adaptive: bool) -> dict[str, Any]:
    """A full export over HTTP by a fresh in-process service at search budget ``budget``:
    its entities, rate, wall time, the searches the sandbox saw and the 429s it drew."""
    with service_in_process(sandbox, budget, adaptive) as url, requests.Session() as http:
        consume(http, url, limit=1)  # the catalogue cached, a connection open
        pause_for_budgets()
        before = search_outcomes(http, url).get("429", 0)
        export, stats = measure_calls(sandbox, lambda: consume(http, url))
        refused = search_outcomes(http, url).get("429", 0) - before
    return {"adaptive": adaptive, "entities": export.entities, "rate": export.rate,
            "seconds": export.seconds, "searches": stats["search"], "refused": refused}


CASES: dict[str, Callable[[Sizes, list[str]], list[Row]]] = {
    "B1": b1_serving_overhead,
    "B2": b2_latency_hiding,
    "B3": b3_memory,
    "B4": b4_upstream_cost,
    "B5": b5_time_to_first_byte,
    "B6": b6_tutorial,
    "B7": b7_shared_budget,
    "B8": b8_associations,
    "B9": b9_memory_per_type,
    "B10": b10_many_consumers,
    "B11": b11_health_under_load,
    "B12": b12_hubspots_limits,
}


# --------------------------------------------------------------------------- B13

B13_ARCHIVED = 10_000  # the recycle bin listed; its figures are scaled to B13_SCALED_TO
B13_SMOKE_ARCHIVED = 300
B13_SCALED_TO = 100_000  # a bin listed 100 a call: calls scale with its size
B13_PIPE_SECONDS = 30  # a pipe that runs every 30 s
B13_DAILY_LIMIT = 500_000  # HubSpot Professional's daily limit, the share is reported of
HOUR = 3600


def b13_listing_at_scale(sizes: Sizes, notes: list[str]) -> list[Row]:
    """A recycle bin of B13_ARCHIVED contacts (scaled to B13_SCALED_TO): the list calls one
    listing takes (measured), so the interval the service keeps between listings
    (`listing_interval`, at the default 10 % share of the 250,000 a day it assumes while
    HubSpot reports no more), hence the calls an hour with a pipe every 30 s; and how long an
    incremental run takes without a snapshot (it waits for the first listing, paced at half
    the default 10-second budget) and with one in place."""
    from app.sync.deletions import ASSUMED_DAILY_LIMIT, listing_interval

    archived = B13_ARCHIVED if sizes == FULL else B13_SMOKE_ARCHIVED
    with portal(archived + 1_000) as (sandbox, service, http):
        ids = sorted(sandbox.truth()["live"], key=int)[:archived]
        sandbox.admin("POST", "archive", {"ids": ids})
        sandbox.advance(2000)
        since = consume(http, service.url).last_updated
        runs = []
        for _ in ("without a snapshot", "with a snapshot in place"):
            export, stats = measure_calls(sandbox, lambda: consume(http, service.url, since=since))  # noqa: B023
            runs.append((export.seconds, stats["list"]))
    (cold_s, calls), (warm_s, warm_calls) = runs
    if warm_calls:
        notes.append(f"B13: the run with a snapshot in place listed again ({warm_calls} calls)")
    scale = B13_SCALED_TO / archived
    scaled_calls = math.ceil(calls * scale)
    default_share = DEFAULTS.listing_daily_share / 100
    interval = listing_interval(DEFAULTS.snapshot_seconds, scaled_calls, default_share, ASSUMED_DAILY_LIMIT)
    period = math.ceil(interval / B13_PIPE_SECONDS) * B13_PIPE_SECONDS  # the first run after it lists
    per_hour = scaled_calls * HOUR / period
    before = scaled_calls * HOUR / max(DEFAULTS.snapshot_seconds, B13_PIPE_SECONDS)  # every 60 s
    share = per_hour * 24 / B13_DAILY_LIMIT
    scaled_cold = cold_s * scale
    return [
        Row("B13", f"list calls/hour, recycle bin of {B13_SCALED_TO:,} (measured on {archived:,}: "
            f"{calls} calls a listing), a pipe every {B13_PIPE_SECONDS} s",
            f"{per_hour:,.0f}/h (every {period:,} s)", f"{before:,.0f}/h (every 60 s, before)",
            f"{share:.1%} of {B13_DAILY_LIMIT:,}/day", f"<= {DEFAULTS.listing_daily_share:g} %",
            share <= default_share,
            {"archived": archived, "calls_per_listing": calls, "scaled_calls": scaled_calls,
             "interval_s": interval, "period_s": period, "calls_per_hour": per_hour,
             "calls_per_hour_before": before, "share_of_daily": share}),
        Row("B13", f"incremental run with the archived snapshot in place vs without (first listing, "
            f"{archived:,} archived; x{scale:g} = {scaled_cold:,.0f} s for {B13_SCALED_TO:,})",
            f"{warm_s:.2f} s", f"{cold_s:.2f} s", f"x{warm_s / cold_s:.3f}", "no listing waited for",
            warm_calls == 0,
            {"with_snapshot_s": warm_s, "without_snapshot_s": cold_s, "scaled_without_s": scaled_cold}),
    ]


CASES["B13"] = b13_listing_at_scale


# --------------------------------------------------------------------------- B14

HISTORY_NAMES = "firstname,lifecyclestage"


def b14_history(sizes: Sizes, notes: list[str]) -> list[Row]:
    """A full export of contacts with `history` of two properties against one without, in
    the same run, at the service's default budgets (search 4/s, the other calls 100 per
    10 s) and no latency: the batch reads history adds (one per 50 live records), what it
    costs in wall time, and the peak RSS after each."""
    general_per_second = DEFAULTS.general_rate_per_10s / 10
    with portal(sizes.b10_contacts, search_rate=None) as (sandbox, service, http):
        live = len(sandbox.truth()["live"])
        warm(http, service)
        pause_for_budgets()
        plain, plain_calls = measure_calls(sandbox, lambda: consume(http, service.url))
        plain_kb = service.vm_hwm_kb()
        pause_for_budgets()
        full, calls = measure_calls(sandbox, lambda: consume(http, service.url, history=HISTORY_NAMES))
        history_kb = service.vm_hwm_kb()
    for export in (plain, full):
        expect(export.entities, live, "B14 contacts", notes)
    reads, target = calls.get("batch-read", 0), math.ceil(live / 50)
    ratio = full.seconds / plain.seconds
    floor = target / general_per_second  # the batch reads alone, at the general budget's rate
    return [
        Row("B14", f"HubSpot calls, full export of {live:,} contacts with history={HISTORY_NAMES}",
            f"{calls['search']:,} searches + {plural(reads, 'batch read')}",
            f"{plain_calls['search']:,} searches (without)", f"{reads:,}", f"= {target:,} (1 per 50)",
            reads == target and calls["search"] == plain_calls["search"],
            {"contacts": live, "batch_reads": reads, "target": target, "search_calls": calls["search"],
             "search_calls_without": plain_calls["search"]}),
        Row("B14", "wall time with history, default budgets", f"{full.seconds:.1f} s",
            f"{plain.seconds:.1f} s (without); batch reads alone at {general_per_second:g}/s: {floor:.1f} s",
            f"x{ratio:.2f}", "none given", None,
            {"seconds": full.seconds, "seconds_without": plain.seconds, "ratio": ratio,
             "batch_read_floor_s": floor}),
        Row("B14", "peak RSS after the export with history", megabytes(history_kb),
            f"{megabytes(plain_kb)} (after the one without)", f"+{megabytes(history_kb - plain_kb)}",
            "growth <= 25 MB", history_kb - plain_kb <= 25 * MB,
            {"vm_hwm_kb": history_kb, "vm_hwm_kb_without": plain_kb}),
    ]


CASES["B14"] = b14_history


B15_TARGET = 0.80  # typed exports keep at least this share of the strings export's rate


def b15_typed_values(sizes: Sizes, notes: list[str]) -> list[Row]:
    """The cost of typed values (`values=typed`): full exports of B1's portal (the sandbox's
    realistic catalogue, 247 contact properties) as text and typed, interleaved, best of
    B1's repeats each; and the HubSpot calls each takes (the catalogue is read once for
    both: its types come from the same cached read)."""
    n = sizes.b1_contacts
    with portal(n) as (sandbox, service, http):
        live = len(sandbox.truth()["live"])
        warm(http, service)
        rates: dict[str, list[float]] = {"strings": [], "typed": []}
        calls: dict[str, int] = {}
        for _ in range(sizes.b1_repeats):
            for mode in rates:
                export, stats = measure_calls(sandbox, lambda: consume(http, service.url, values=mode))  # noqa: B023
                expect(export.entities, live, f"B15 {mode} export", notes)
                rates[mode].append(export.rate)
                calls[mode] = upstream_calls(stats) + stats.get("properties", 0)
    ratio = max(rates["typed"]) / max(rates["strings"])
    return [Row("B15", f"typed values: full export of {n:,} contacts (247 properties) typed vs as text",
                rate(max(rates["typed"])), f"{rate(max(rates['strings']))} (strings)", f"{ratio:.2f}",
                f">= {B15_TARGET:.2f}, the same calls", ratio >= B15_TARGET and calls["typed"] == calls["strings"],
                {"contacts": n, "live": live, "rates": rates, "ratio": ratio, "calls": calls,
                 "note": f"best of {sizes.b1_repeats} interleaved runs each"})]


CASES["B15"] = b15_typed_values


# --------------------------------------------------------------------------- B16

B16_JITTERS_MS = (0, 40, 80, 120, 160, 240)  # how late searches reach HubSpot's count, at most
B16_SEEDS = (1, 2, 3)
B16_SEARCHES = 2_000  # answered per seed
B16_SMOKE_SEARCHES = 200


def b16_budget_model(sizes: Sizes, notes: list[str]) -> list[Row]:
    """The search budget against HubSpot's sliding search window on a fake clock
    (`bench.budget_model`): a client that always has a search ready, at HubSpot's whole
    limit (5/s), each search arriving 0..J ms late; the adaptive budget against the plain
    limiter, three seeds each. No machine noise: the same figures on any machine."""
    searches = B16_SEARCHES if sizes == FULL else B16_SMOKE_SEARCHES
    rows = []
    for jitter in B16_JITTERS_MS:
        adaptive = [budget_model.drive(searches, jitter, True, seed) for seed in B16_SEEDS]
        plain = [budget_model.drive(searches, jitter, False, seed) for seed in B16_SEEDS]
        refused, plain_refused = sum(o.refused for o in adaptive), sum(o.refused for o in plain)
        sent = sum(o.answered + o.refused for o in adaptive)
        share = statistics.mean(o.share for o in adaptive)
        plain_share = statistics.mean(o.share for o in plain)
        rows.append(Row("B16", f"{len(B16_SEEDS) * searches:,} searches at {budget_model.SEARCH_LIMIT}/s "
                        f"arriving 0-{jitter} ms late, adaptive budget (model, fake clock)",
                        f"{plural(refused, '429')}, {share:.3f} of the limit",
                        f"plain limiter: {plural(plain_refused, '429')}, {plain_share:.3f}",
                        f"{100 * refused / sent:.2f} per 100", "<= 1 429 per 100 searches, >= 0.80 of the limit",
                        refused * 100 <= sent and share >= 0.8,
                        {"jitter_ms": jitter, "refused": refused, "share": share, "sent": sent,
                         "plain_refused": plain_refused, "plain_share": plain_share}))
    return rows


CASES["B16"] = b16_budget_model
