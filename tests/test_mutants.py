"""A small, fast mutation test that runs with the suite: deliberate one-line bugs in the core
that once passed every test (issue 7) must each make a named test fail.

Each mutant rewrites one function's source (the exact line must still be there: a refactor
that moves it fails here and asks for this list to follow), compiles it in its module's
namespace and patches it in for one test, which must then fail. The full mutation run is
`mutmut run` (see docs/testing.md); this keeps the worst survivors dead on every change.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from starlette.testclient import TestClient

from app import redact
from app.hubspot import answers, client
from app.sync import deletions, export, walk
from sandbox import Sandbox

from . import test_continuation as unit
from . import test_deletions as deletions_level
from . import test_get_contacts as service_level
from . import test_listing as listing
from . import test_untrusted_answers as untrusted
from . import test_walk_guard as guard


@dataclass(frozen=True)
class Mutant:
    owner: Any  # the module or class that holds the function
    name: str
    line: str  # exactly as in the source
    replacement: str

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = inspect.unwrap(getattr(self.owner, self.name))
        source = textwrap.dedent(inspect.getsource(original))
        assert source.count(self.line) == 1, (
            f"{self.owner.__name__}.{self.name} no longer holds {self.line!r}: update this mutant")
        namespace: dict[str, Any] = {}
        exec(compile(source.replace(self.line, self.replacement), inspect.getfile(original),
                     "exec"), original.__globals__, namespace)
        mutated = namespace[self.name]
        monkeypatch.setattr(self.owner, self.name, mutated)
        # A module-level function is also bound by name wherever it was imported.
        for module in list(sys.modules.values()):
            for attribute, value in list(vars(module).items()) if module else []:
                if value is original:
                    monkeypatch.setattr(module, attribute, mutated)


def service_test(test: Callable[..., None]) -> Callable[[TestClient, Sandbox, Any], None]:
    return lambda service, sandbox, configure: test(service, sandbox)


MUTANTS = {
    "inclusive filter in KeysetWalk.accept": (
        Mutant(walk.KeysetWalk, "accept", "if item[0] > self._after", "if item[0] >= self._after"),
        lambda *_: unit.TestKeysetWalk().test_accept_drops_what_was_already_emitted()),
    "no seam check in join_overlapping": (
        Mutant(walk.OverlapJoin, "add",
               "if len(set(before) | set(after)) != len(before) + len(after) - 1:",
               "if False:"),
        lambda *_: unit.TestJoinOverlapping().test_a_tie_ordered_differently_on_the_seam_is_not_joined()),
    "no totals check in join_overlapping": (
        Mutant(walk.OverlapJoin, "add",
               "if self._check_totals and (total is None or total != self._total):",
               "if False:"),
        lambda *_: unit.TestJoinOverlapping().test_a_page_from_a_result_set_of_another_size_is_not_joined()),
    "inclusive id filter when resuming in a tie": (
        Mutant(walk, "search_body",
               'groups.insert(0, [where("EQ", ms), where("GT", last_id, ID_PROPERTY)])',
               'groups.insert(0, [where("EQ", ms), where("GTE", last_id, ID_PROPERTY)])'),
        lambda *_: unit.TestSearchBody().test_resume_in_a_tie_uses_two_groups()),
    "no settle-time cap on the search path": (
        Mutant(export._Pass, "_live", "horizon = page.server_ms - self._settle_ms",
               "horizon = page.server_ms"),
        service_test(service_level.TestFullExport().test_a_full_export_holds_back_changes_within_the_settle_time)),
    "a deletion ranked after the live contact on an equal position": (
        Mutant(export._Pass, "_deleted", "yield position, 0, deletion_entity(position)",
               "yield position, 1, deletion_entity(position)"),
        service_test(deletions_level.TestEqualPositions().test_a_deletion_on_the_position_of_its_live_version_wins)),
    "no equal-position de-duplication": (
        Mutant(export._Pass, "entities", "last = position", "last = None"),
        service_test(deletions_level.TestEqualPositions().test_a_deletion_on_the_position_of_its_live_version_wins)),
    # Bounds a mutation audit found unpinned (issue 20), and the fixes of its findings.
    "a correlationId that merely starts with a UUID": (
        Mutant(redact, "correlation_id", "_UUID.fullmatch(value)", "_UUID.match(value)"),
        lambda service, sandbox, configure: untrusted.TestExactBounds().test_a_correlation_id_is_a_whole_uuid(
            configure, sandbox, "0", False)),
    "a cut quote three characters over its limit": (
        Mutant(redact, "quote", "line[:max(limit - len(ELLIPSIS), 0)] + ELLIPSIS[:limit]",
               "line[:limit] + ELLIPSIS"),
        lambda *_: untrusted.TestExactBounds().test_a_quote_is_never_longer_than_its_limit(redact.QUOTE_LIMIT, 1)),
    "a quote cut before the token is redacted": (
        Mutant(redact, "quote", "_registered.text(_text(text))", "_text(text)"),
        lambda *_: untrusted.TestTheTokenIsRedactedBeforeItIsCut().test_quote_redacts_before_it_cuts(
            untrusted.SHOWN)),
    "merged ids without a bound": (
        Mutant(answers, "merged_ids", 'if text.count(";") >= MAX_MERGED_IDS:', "if False:"),
        service_test(untrusted.TestMergedIdsAreBounded().test_a_record_past_the_bound_is_refused_before_its_ids_are_read)),
    "an id at or above 2^63 taken": (
        Mutant(answers, "as_id", "return value if 0 < value <= MAX_ID else None", "return value"),
        lambda service, sandbox, configure: untrusted.TestEveryUpdatedIsAcceptedBack(
        ).test_an_id_outside_hubspots_range_is_a_502(service, sandbox, str(answers.MAX_ID + 1), None)),
    # The archived listing, which a mutation audit found unpinned (issue 21).
    "a listing that reads its first page only": (
        Mutant(client, "_cursor_pages", "if page.after is None:", "if True:"),
        lambda service, sandbox, configure: listing.TestPaging().test_every_page_is_read(
            5, configure, sandbox)),
    "a listing that asks every type for contacts' modification property": (
        Mutant(client.HubSpotClient, "archived_pages", '"properties": kind.modified_property}',
               '"properties": "lastmodifieddate"}'),
        lambda service, sandbox, configure: listing.TestEveryTypesProperty(
        ).test_the_listing_asks_for_the_types_modification_property(
            "deals", "deletion time", service, sandbox)),
    "a snapshot complete up to its last page": (
        Mutant(deletions.ArchivedSnapshots, "_read", "if complete_ms is None:", "if True:"),
        lambda service, sandbox, configure: _with_monkeypatch(
            lambda patch: listing.TestCompletenessPoint().test_a_deletion_while_the_listing_runs_is_not_hidden(
                configure, sandbox, patch))),
    "a search answer taken without checking it against its query": (
        Mutant(walk.QueryRead, "take", "check_answer(self.query, keyed)", "pass"),
        service_test(guard.TestOrder().test_a_scan_whose_times_go_backwards)),
}


def _with_monkeypatch(test: Callable[[pytest.MonkeyPatch], None]) -> None:
    """Runs ``test`` with a monkeypatch of its own, undone after it."""
    with pytest.MonkeyPatch.context() as patch:
        test(patch)


@pytest.mark.parametrize("name", MUTANTS)
def test_a_known_mutant_is_killed(name: str, monkeypatch: pytest.MonkeyPatch, service: TestClient,
                                  sandbox: Sandbox, configure) -> None:
    """Each of these one-line bugs once passed the whole suite; the named test now fails
    on it (and passes on the real code, as the suite shows)."""
    mutant, check = MUTANTS[name]
    mutant.apply(monkeypatch)
    with pytest.raises(AssertionError):
        check(service, sandbox, configure)
