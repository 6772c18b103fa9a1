"""An emulated Sesam pipe over many rounds of changes: it must end up holding exactly what
HubSpot holds, with both of Sesam's continuation strategies."""

from __future__ import annotations

import random
from typing import Callable

import pytest

from app.sandbox import Sandbox, SandboxServer

from .conftest import sandbox_clock
from .sesam import T0, SesamPipe, assert_in_sync, settle

STRATEGIES = [("max", 0), ("chronological", 70), ("chronological", 7)]


def churn(sandbox: Sandbox, rng: random.Random) -> None:
    """A burst of random writes: creates, modifies, archives and restores, several of them
    on one millisecond (one call is one millisecond in the sandbox)."""
    for _ in range(rng.randint(1, 6)):
        live = sorted(sandbox.live(), key=int)
        archived = sorted(sandbox.archived(), key=int)
        operation = rng.choice(["create", "modify", "modify", "archive", "restore"])
        if operation == "create":
            sandbox.create(count=rng.randint(1, 30))
        elif operation == "modify" and live:
            sandbox.modify(rng.sample(live, k=min(len(live), rng.randint(1, 40))),
                           {"firstname": f"r{rng.randrange(10**6)}"})
        elif operation == "archive" and live:
            sandbox.archive(rng.sample(live, k=min(len(live), rng.randint(1, 5))))
        elif operation == "restore" and archived:
            sandbox.restore(rng.sample(archived, k=1))
        sandbox.advance(rng.choice([0, 0, 1, 7, 250, 1500]))


def modify_during_reads(sandbox: Sandbox, rng: random.Random) -> Callable[[int], None]:
    """A hook that changes contacts between two search pages of a read."""
    def between_pages(page: int) -> None:
        live = sorted(sandbox.live(), key=int)
        if page % 2 == 1 and live:
            sandbox.modify(rng.sample(live, k=min(3, len(live))), {"lastname": f"p{page}"})
    return between_pages


@pytest.mark.parametrize("strategy,page_size", STRATEGIES)
def test_rounds_of_random_changes(strategy: str, page_size: int, sandbox: Sandbox, configure) -> None:
    """Rounds of random creates, modifies, archives and restores, with ties, search lag,
    changes made while a read is under way and a pipe reset halfway: after the last
    round the pipe holds exactly HubSpot's live contacts, each in its latest version."""
    rng = random.Random(f"{strategy}-{page_size}")
    sandbox.search_lag_ms = 3000
    service = configure(search_page_size=rng.choice([9, 50, 200]))
    pipe = SesamPipe(service, strategy, page_size=page_size or 100)
    pipe.run()
    assert_in_sync(pipe, sandbox, "after the first full run")
    rounds = 10 if page_size < 10 else 30
    for round_no in range(rounds):
        churn(sandbox, rng)
        if rng.random() < 0.4:
            sandbox.on_search_page(modify_during_reads(sandbox, rng))
        if round_no == rounds // 2:
            pipe.reset()
        pipe.run()
        sandbox.on_search_page(None)
        sandbox.advance(rng.choice([0, 1000, 4000, 9000]))
    settle(sandbox)
    pipe.run()
    assert_in_sync(pipe, sandbox, f"after {rounds} rounds ({pipe.requests} requests)")


@pytest.fixture(name="big_sandbox")
def _big_sandbox() -> Sandbox:
    return Sandbox(contacts=10_300, seed=11, now_ms=T0, custom_properties=0, archived_fraction=0)


@pytest.mark.parametrize("strategy,page_size", [("max", 0), ("chronological", 2500)])
def test_more_than_ten_thousand_changes_on_one_millisecond(
    strategy: str, page_size: int, big_sandbox: Sandbox, configure
) -> None:
    """A bulk update puts every one of 10,300 contacts on one millisecond: past the search
    cap of 10,000 results per query. The next run still delivers each of them."""
    with SandboxServer(big_sandbox) as server:
        service = configure(token=big_sandbox.token, base_url=server.url,
                            properties=("email", "firstname"), clock=sandbox_clock(big_sandbox))
        pipe = SesamPipe(service, strategy, page_size=page_size or 100)
        pipe.run()
        big_sandbox.advance(60_000)
        big_sandbox.modify(list(big_sandbox.live()), {"firstname": "bulk"})
        settle(big_sandbox)
        received = pipe.run()
    merged_away = sum(len(ids) for ids in big_sandbox.merged().values())
    assert received - merged_away == 10_300, (
        f"the bulk-update run delivered {received - merged_away} of 10,300 (and {merged_away} "
        "deletions of ids merged into them)")
    assert_in_sync(pipe, big_sandbox, "after a 10,300-contact bulk update")
    assert all(e["properties"]["firstname"] == "bulk" for e in pipe.dataset.values()
               if not e.get("_deleted"))
