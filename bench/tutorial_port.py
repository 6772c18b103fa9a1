"""The Sesam tutorial's `get_contacts` ("Microservices - Continuation support"), ported for B6.

Written from the tutorial's description, to run its approach against the sandbox next to
this service. Its logic is kept as it is, faults included:

* full run (no `since`): one GET of the contacts list with no `limit` and no paging, so
  HubSpot's default page of 10 contacts is all it ever returns;
* incremental run: one search with the single filter ``<since-field> <since-operator>
  find_epoch(since)``, again with no `limit`, no `sorts` and no paging (10 results);
* ``_updated`` is the contact's ``properties[since-field]`` as HubSpot renders it, so on a
  whole second it has no milliseconds, and `find_epoch` then fails on it as the next
  run's `since` (``strptime`` with ``%f`` requires them): that run errors;
* a status other than 200 raises (Flask answers 500, Sesam's run fails).

Changed only so that it can run at all:

* the `hapikey` query parameter (retired by HubSpot in November 2022, and refused by the
  sandbox) is replaced by the `Authorization: Bearer` header;
* the tutorial's ``since-field`` / ``since-operator`` in the filter are Python
  subtractions (a NameError as printed); they stand for the configured values;
* the list URL has no trailing slash (``/objects/contacts``): the sandbox routes only that
  form, and the slash is not part of the approach being measured;
* requests get a timeout, so that the benchmark cannot hang.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

import requests

logger = logging.getLogger("hubspot")
TIMEOUT = 60


def find_epoch(time: str) -> int:
    """The tutorial's parser: milliseconds are required (no fix for whole seconds)."""
    utc_time = datetime.strptime(time, "%Y-%m-%dT%H:%M:%S.%fZ")
    epoch_time_milliseconds = (utc_time - datetime(1970, 1, 1)).total_seconds() * 1000
    return int(epoch_time_milliseconds)


class TutorialService:
    """The tutorial's configuration (`base-url` ends in /crm/v3) and its one route."""

    def __init__(self, base_url: str, api_key: str, since_field: str = "lastmodifieddate",
                 since_operator: str = "GT") -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.since_field = since_field
        self.since_operator = since_operator

    def get_contacts(self, since: str | None = None) -> str:
        """The body of GET /get_contacts?since=…: a JSON array (or an exception, i.e. a 500)."""
        auth = {"Authorization": f"Bearer {self.api_key}"}
        if since:
            data = json.dumps({"filterGroups": [{"filters": [
                {"propertyName": self.since_field, "operator": self.since_operator, "value": find_epoch(since)}
            ]}]})
            url = self.base_url + "/objects/contacts/search"
            res = requests.post(url=url, data=data, headers={"Content-Type": "application/json", **auth},
                                timeout=TIMEOUT)
        else:
            url = self.base_url + "/objects/contacts"
            res = requests.get(url=url, headers=auth, timeout=TIMEOUT)

        if res.status_code != 200:
            logger.error("Unexpected response status code: %d with response text %s", res.status_code, res.text)
            raise AssertionError(f"Unexpected response status code: {res.status_code} with response text {res.text}")

        entities = res.json()["results"]
        for entity in entities:
            entity["_updated"] = entity["properties"][self.since_field]

        return json.dumps(entities)
