"""The portal's reference data: owners and their teams, pipelines and their stages, property
groups and archived property definitions, in the shapes of HubSpot's owners, pipelines and
properties APIs; and what tests change of them (add, update and deactivate an owner, archive
a pipeline), in process or over HTTP at /_sandbox/reference/.

The deals the portal generates carry values that exist here: `hubspot_owner_id` one of
OWNER_IDS, `pipeline` one of the deal pipelines and `dealstage` one of its stages
(`deal_pipeline`, `deal_stage`).

Whether HubSpot moves an owner's `updatedAt` when it is deactivated (or reactivated) is not
documented; `deactivation_moves_updated_at` (off by default, the harder case for a consumer)
says what this portal does.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable
from typing import Any

from .clock import Clock
from .common import DAY_MS, Reply, admin_reply, bad_request, int_param, iso, mix

OWNERS_SCOPE = "crm.objects.owners.read"
SCOPES = {"owners": (OWNERS_SCOPE,)}  # endpoints that concern no object type, and their scopes
OWNERS_DEFAULT_LIMIT = 100
OWNERS_MAX_LIMIT = 500  # HubSpot's owners API: at most 500 a page

# (id, name) of the teams; owners: (id, first name, last name, team ids (the first primary)).
_TEAMS = (("4100001", "Sales Oslo"), ("4100002", "Sales Stockholm"), ("4100003", "Customer Success"))
_OWNERS = (
    ("61000101", "Ingrid", "Haugen", ("4100001",)), ("61000102", "Bjørn", "Dahl", ("4100001",)),
    ("61000103", "Mei", "Larsen", ("4100001", "4100003")), ("61000104", "Sven", "Quist", ("4100002",)),
    ("61000105", "Priya", "Singh", ("4100002",)), ("61000106", "José", "Costa", ("4100003",)),
    ("61000107", "Nora", "Berg", ("4100003",)), ("61000108", "Hiro", "Tanaka", ()),
    ("61000109", "Kari", "Johansen", ("4100002",)), ("61000110", "Liam", "O'Brien", ("4100001",)),
)
_DEACTIVATED = ("61000109", "61000110")  # deactivated before the portal's start
OWNER_IDS = tuple(owner_id for owner_id, *_ in _OWNERS)

# HubSpot's default deal pipeline, with its standard stages: (id, label, probability, closed).
_DEFAULT_DEAL_STAGES = (
    ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    ("presentationscheduled", "Presentation Scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    ("contractsent", "Contract Sent", "0.9", False),
    ("closedwon", "Closed Won", "1.0", True),
    ("closedlost", "Closed Lost", "0.0", True),
)
RENEWALS = "75e28846-ad0d-4be2-a027-5e1da6590b98"  # a pipeline made in the portal: HubSpot gives a UUID
_RENEWAL_STAGES = (
    ("1180114", "Renewal due", "0.5", False), ("1180115", "Negotiation", "0.7", False),
    ("1180116", "Renewed", "1.0", True), ("1180117", "Churned", "0.0", True),
)
# HubSpot's default ticket pipeline "0": (id, label, ticketState).
_TICKET_STAGES = (("1", "New", "OPEN"), ("2", "Waiting on contact", "OPEN"),
                  ("3", "Waiting on us", "OPEN"), ("4", "Closed", "CLOSED"))
DEAL_PIPELINES = {"default": tuple(stage for stage, *_ in _DEFAULT_DEAL_STAGES),
                  RENEWALS: tuple(stage for stage, *_ in _RENEWAL_STAGES)}
DEAL_STAGES = tuple(stage for stages in DEAL_PIPELINES.values() for stage in stages)

_GROUP_LABELS = {"custom_fields": "Custom fields", "deal_activity": "Deal activity",
                 "analyticsinformation": "Analytics information"}
# Definitions archived in the portal, by type: (name, label, type, fieldType, options).
_ARCHIVED = {
    "contacts": (("legacy_lead_score", "Legacy lead score", "number", "number", ()),),
    "deals": (("legacy_region", "Region (old)", "enumeration", "select", ("north", "south", "east", "west")),),
}
_CREATED = "2022-01-10T09:00:00Z"


def deal_pipeline(tie: int) -> str:
    """The pipeline of a generated deal: most in the default one, one in four in renewals."""
    return RENEWALS if mix(tie ^ 0x51A9E) % 4 == 0 else "default"


def deal_stage(tie: int) -> str:
    """A stage of the generated deal's pipeline."""
    stages = DEAL_PIPELINES[deal_pipeline(tie)]
    return stages[mix(tie ^ 0x57A6E) % len(stages)]


def _stage(stage_id: str, label: str, order: int, metadata: dict[str, str], stamp: str) -> dict:
    return {"id": stage_id, "label": label, "displayOrder": order, "metadata": metadata,
            "archived": False, "createdAt": stamp, "updatedAt": stamp,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}


def _pipeline(pipeline_id: str, label: str, order: int, stages: list[dict], created: str, updated: str) -> dict:
    return {"id": pipeline_id, "label": label, "displayOrder": order, "archived": False,
            "createdAt": created, "updatedAt": updated, "stages": stages}


class Reference:
    """Owners, pipelines and property groups of one portal. Guarded by the portal's lock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = clock.lock
        self.deactivation_moves_updated_at = False
        start = clock.start_ms
        teams = dict(_TEAMS)
        self._owners: dict[str, dict] = {}
        for number, (owner_id, first, last, team_ids) in enumerate(_OWNERS):
            owner = {
                "id": owner_id, "email": f"{first.lower().replace('ø', 'o').replace('é', 'e')}."
                                         f"{last.lower().replace(chr(39), '')}@example.com",
                "type": "PERSON", "firstName": first, "lastName": last,
                "userId": 9_100_101 + number, "userIdIncludingInactive": 9_100_101 + number,
                "createdAt": iso(start - (900 - number) * DAY_MS),
                "updatedAt": iso(start - (30 + 7 * number) * DAY_MS), "archived": False,
                "teams": [{"id": team, "name": teams[team], "primary": index == 0}
                          for index, team in enumerate(team_ids)]}
            if owner_id in _DEACTIVATED:  # a deactivated user has no active user id
                owner["archived"] = True
                del owner["userId"]
            self._owners[owner_id] = owner
        created, updated = "1970-01-01T00:00:00Z", iso(start - 120 * DAY_MS)
        self._pipelines: dict[str, dict[str, dict]] = {
            "deals": {
                "default": _pipeline("default", "Sales Pipeline", 0, [
                    _stage(stage, label, order, {"probability": chance, "isClosed": str(closed).lower()}, created)
                    for order, (stage, label, chance, closed) in enumerate(_DEFAULT_DEAL_STAGES)], created, updated),
                RENEWALS: _pipeline(RENEWALS, "Renewals", 1, [
                    _stage(stage, label, order, {"probability": chance, "isClosed": str(closed).lower()}, _CREATED)
                    for order, (stage, label, chance, closed) in enumerate(_RENEWAL_STAGES)], _CREATED, updated),
            },
            "tickets": {
                "0": _pipeline("0", "Support Pipeline", 0, [
                    _stage(stage, label, order, {"ticketState": state}, created)
                    for order, (stage, label, state) in enumerate(_TICKET_STAGES)], created, updated),
            },
        }

    # -- what tests change ---------------------------------------------------------------

    def add_owner(self, first_name: str, last_name: str, email: str | None = None,
                  teams: list[dict] | None = None) -> str:
        """A new active owner at now; its id."""
        with self._lock:
            now = iso(self._clock.now_locked())
            owner_id = str(max(map(int, self._owners)) + 1)
            user_id = 9_100_101 + len(self._owners)
            self._owners[owner_id] = {
                "id": owner_id, "email": email or f"{first_name.lower()}.{last_name.lower()}@example.com",
                "type": "PERSON", "firstName": first_name, "lastName": last_name, "userId": user_id,
                "userIdIncludingInactive": user_id, "createdAt": now, "updatedAt": now, "archived": False,
                "teams": list(teams or [])}
            return owner_id

    def update_owner(self, owner_id: str, **fields: Any) -> None:
        """Change an active owner's fields (firstName, lastName, email, teams) at now."""
        allowed = {"firstName", "lastName", "email", "teams"}
        if set(fields) - allowed:
            raise ValueError(f"an owner's changeable fields are {sorted(allowed)}, not {sorted(set(fields) - allowed)}")
        with self._lock:
            owner = self._active(owner_id)
            owner.update(fields, updatedAt=iso(self._clock.now_locked()))

    def deactivate_owner(self, owner_id: str) -> None:
        """Deactivate an owner (it moves to HubSpot's archived list); its updatedAt moves
        only if `deactivation_moves_updated_at`."""
        with self._lock:
            owner = self._active(owner_id)
            owner["archived"] = True
            owner.pop("userId", None)
            if self.deactivation_moves_updated_at:
                owner["updatedAt"] = iso(self._clock.now_locked())

    def reactivate_owner(self, owner_id: str) -> None:
        """Reactivate a deactivated owner; its updatedAt moves only if
        `deactivation_moves_updated_at` (HubSpot does not say either)."""
        with self._lock:
            owner = self._owners.get(str(owner_id))
            if owner is None or not owner["archived"]:
                raise KeyError(f"no deactivated owner {owner_id!r}")
            owner["archived"] = False
            owner["userId"] = owner["userIdIncludingInactive"]
            if self.deactivation_moves_updated_at:
                owner["updatedAt"] = iso(self._clock.now_locked())

    def archive_pipeline(self, object_type: str, pipeline_id: str, vanish: bool = False) -> None:
        """Archive a pipeline (and so its stages); ``vanish``: it leaves the list instead of
        being listed as archived, as HubSpot may do."""
        with self._lock:
            pipelines = self._pipelines.get(object_type, {})
            if pipeline_id not in pipelines:
                raise KeyError(f"no pipeline {pipeline_id!r} of {object_type!r}")
            if vanish:
                del pipelines[pipeline_id]
                return
            now = iso(self._clock.now_locked())
            pipelines[pipeline_id].update(archived=True, archivedAt=now, updatedAt=now)

    def owners(self, archived: bool = False) -> dict[str, dict]:
        """The truth: id -> owner, of the active (or deactivated) owners."""
        with self._lock:
            return {oid: copy.deepcopy(o) for oid, o in self._owners.items() if o["archived"] == archived}

    def _active(self, owner_id: str) -> dict:
        owner = self._owners.get(str(owner_id))
        if owner is None or owner["archived"]:
            raise KeyError(f"no active owner {owner_id!r}")
        return owner

    # -- the API -------------------------------------------------------------------------

    def owners_reply(self, request: Any) -> Reply:
        """GET /crm/v3/owners: a page of owners by id (``archived=true``: deactivated ones)."""
        query = request.query
        limit = int_param(query.get("limit", [None])[-1], "limit", OWNERS_DEFAULT_LIMIT, 1, OWNERS_MAX_LIMIT)
        archived = query.get("archived", ["false"])[-1].lower()
        if archived not in ("true", "false"):
            raise bad_request(f"Invalid value {archived!r} for 'archived': must be true or false.")
        after = _decode(query.get("after", [None])[-1])
        with self._lock:
            listed = sorted((o for o in self._owners.values() if o["archived"] == (archived == "true")),
                            key=lambda o: int(o["id"]))
            page = [copy.deepcopy(o) for o in listed if int(o["id"]) > after][:limit]
            more = bool(page) and int(page[-1]["id"]) < int(listed[-1]["id"])
        body: dict[str, Any] = {"results": page}
        if more:
            token = _encode(int(page[-1]["id"]))
            body["paging"] = {"next": {"after": token, "link": f"{request.base_url}{request.path}?after={token}"}}
        return Reply(200, body)

    def pipelines_reply(self, object_type: str) -> Reply:
        """GET /crm/v3/pipelines/{objectType}: every pipeline of the type (by its name), its
        stages nested; HubSpot's 400 for a type without pipelines."""
        with self._lock:
            pipelines = self._pipelines.get(object_type)
            if pipelines is None:
                raise bad_request(f"Object type {object_type} does not support pipelines.")
            return Reply(200, {"results": [copy.deepcopy(p) for p in pipelines.values()]})

    @staticmethod
    def groups_reply(catalogue: list[dict]) -> Reply:
        """GET /crm/v3/properties/{objectType}/groups: the groups of a type's properties
        (``catalogue``: their definitions)."""
        names = list(dict.fromkeys(entry["groupName"] for entry in catalogue))
        return Reply(200, {"results": [
            {"name": name, "label": _GROUP_LABELS.get(name, name.replace("information", " information").capitalize()),
             "displayOrder": order, "archived": False} for order, name in enumerate(names)]})

    def archived_definitions(self, object_type: str, group: str) -> list[dict]:
        """The archived property definitions (``archived=true``) of a type by its name;
        ``group``: the group of its own properties."""
        found = []
        for order, (name, label, kind, field_type, options) in enumerate(_ARCHIVED.get(object_type, ())):
            found.append({
                "name": name, "label": label, "type": kind, "fieldType": field_type, "groupName": group,
                "description": f"{label} (archived).", "hidden": False, "calculated": False,
                "externalOptions": False, "hasUniqueValue": False, "formField": False, "displayOrder": order,
                "createdAt": _CREATED, "updatedAt": iso(self._clock.start_ms - 60 * DAY_MS),
                "archivedAt": iso(self._clock.start_ms - 60 * DAY_MS), "archived": True,
                "options": [{"label": value.title(), "value": value, "displayOrder": position, "hidden": False}
                            for position, value in enumerate(options)],
                "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False}})
        return found

    def handle_admin(self, method: str, path: str, body: dict) -> Reply:
        """/_sandbox/reference/…: POST owners (add), owners/update, owners/deactivate,
        owners/reactivate, pipelines/archive; GET owners (the truth)."""
        actions: dict[tuple[str, str], Callable[[], Any]] = {
            ("POST", "owners"): lambda: {"id": self.add_owner(
                str(body["firstName"]), str(body["lastName"]), body.get("email"), body.get("teams"))},
            ("POST", "owners/update"): lambda: self.update_owner(
                str(body.pop("id")), **body),
            ("POST", "owners/deactivate"): lambda: self.deactivate_owner(str(body["id"])),
            ("POST", "owners/reactivate"): lambda: self.reactivate_owner(str(body["id"])),
            ("POST", "pipelines/archive"): lambda: self.archive_pipeline(
                str(body["type"]), str(body["id"]), bool(body.get("vanish", False))),
            ("GET", "owners"): lambda: {"active": self.owners(), "deactivated": self.owners(archived=True)},
        }
        return admin_reply(method, path, actions.get((method, path.removeprefix("/_sandbox/reference/"))))


def _encode(last: int) -> str:
    return base64.urlsafe_b64encode(f"owner:{last}".encode()).decode().rstrip("=")


def _decode(token: str | None) -> int:
    if token is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not (text.startswith("owner:") and text[6:].isdigit()):
        raise bad_request(f"Invalid paging cursor 'after': {token!r}")
    return int(text[6:])
