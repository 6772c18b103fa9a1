"""The unauthenticated /_sandbox/ surface: tests and benchmarks in another process drive the portal through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import Reply, admin_reply, bad_request
from .faults import SEARCH_WINDOWS, Fault

if TYPE_CHECKING:
    from .portal import Sandbox


def handle_admin(sandbox: Sandbox, method: str, path: str, payload: Any, valid_json: bool,
                 query: dict[str, list[str]] | None = None) -> Reply:
    """The unauthenticated /_sandbox/ surface for tests and benchmarks in another process.

    Record changes and the truth concern contacts unless the body's "type" (the truth's
    ?type=) names another object type."""
    body = payload if isinstance(payload, dict) else {}
    # Popped, so that a body of knobs or a fault never sees it.
    kind = {"object_type": str(body.pop("type", (query or {}).get("type", ["contacts"])[-1]))}

    def ids() -> list[str]:
        if not isinstance(body.get("ids"), list):
            raise ValueError("'ids' must be a list of record ids")
        return body["ids"]

    def link() -> tuple[str, str, str, str]:
        """from_type, from_id, to_type and to_id of the body ("id" for "from_id" reads too)."""
        return (str(body.get("from_type", "contacts")), str(body.get("from_id", body.get("id"))),
                str(body.get("to_type")), str(body.get("to_id")))

    actions: dict[tuple[str, str], Callable[[], dict | None]] = {
        ("GET", "/_sandbox/truth"): lambda: {"now_ms": sandbox.now_ms(), "live": sandbox.live(**kind),
                                             "archived": sandbox.archived(**kind)},
        ("POST", "/_sandbox/contacts"): lambda: {"ids": sandbox.create(body.get("count", 1), body.get("properties"),
                                                                       **kind)},
        ("POST", "/_sandbox/modify"): lambda: sandbox.modify(ids(), body.get("properties"), **kind,
                                                             raw=body.get("raw") is True),
        ("POST", "/_sandbox/archive"): lambda: sandbox.archive(ids(), **kind),
        ("POST", "/_sandbox/restore"): lambda: sandbox.restore(ids(), **kind),
        ("POST", "/_sandbox/merge"): lambda: sandbox.merge(str(body.get("primary")), str(body.get("secondary")),
                                                           **kind),
        ("POST", "/_sandbox/associations"): lambda: {"results": [
            {"id": to_id, "types": types} for to_id, types in sandbox.associations(*link()[:3])]},
        ("POST", "/_sandbox/associate"): lambda: sandbox.associate(*link(), body.get("label")),
        ("POST", "/_sandbox/dissociate"): lambda: sandbox.dissociate(*link()),
        ("POST", "/_sandbox/clock"): lambda: _admin_clock(sandbox, body),
        ("POST", "/_sandbox/config"): lambda: _admin_config(sandbox, body),
        ("POST", "/_sandbox/faults"): lambda: sandbox.inject(Fault(**body)),
        ("DELETE", "/_sandbox/faults"): sandbox.clear_faults,
        ("GET", "/_sandbox/stats"): lambda: {"requests": sandbox.request_counts()},
        ("POST", "/_sandbox/stats/reset"): sandbox.reset_counters,
    }
    actions[("POST", "/_sandbox/objects")] = actions[("POST", "/_sandbox/contacts")]

    def check() -> None:
        if not valid_json or (payload is not None and not isinstance(payload, dict)):
            raise bad_request("The body must be a JSON object.")

    return admin_reply(method, path, actions.get((method, path)), check)


def _admin_clock(sandbox: Sandbox, body: dict) -> dict:
    if "advance_ms" in body:
        sandbox.advance(int(body["advance_ms"]))
    if "now_ms" in body:
        sandbox.set_now(int(body["now_ms"]))
    return {"now_ms": sandbox.now_ms()}


def _admin_config(sandbox: Sandbox, body: dict) -> dict:
    knobs: dict[str, Callable[[Any], Any]] = {
        "search_lag_ms": int, "search_rate_per_second": int, "general_rate_per_10s": int, "latency_ms": float,
        "general_rate_per_second": int, "search_window": _search_window,
        "search_jitter_ms": float,
        "reorder_ties_per_request": bool, "archived_list_lag_ms": int, "search_lag_jitter_ms": int,
        "search_drop_lag_ms": int, "date_skew_ms": int,
        "archived_at_is_modified": bool, "epoch_ms_modified": bool,
        "scopes": _scopes,
    }
    unknown = set(body) - set(knobs)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(knobs)}")
    for name, value in body.items():
        setattr(sandbox, name, None if value is None and name != "scopes" else knobs[name](value))
    return {name: sorted(value) if isinstance(value := getattr(sandbox, name), set) else value for name in knobs}


def _search_window(value: Any) -> str:
    if value not in SEARCH_WINDOWS:
        raise ValueError(f"search_window must be one of {list(SEARCH_WINDOWS)}, not {value!r}")
    return str(value)


def _scopes(value: Any) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ValueError("scopes must be a list of scope names")
    return set(value)
