"""Prometheus metrics of one service instance (served at GET /metrics).

Every figure that belongs to an object type carries an ``object_type`` label. The label
sets are bounded whatever the requests: paths are the named ones, ``/objects/{objectType}``
or ``other``; object types are the standard ones and the portal's custom objects (an
unknown type is refused before anything is counted for it); outcomes, kinds, endpoints and
statuses are the service's own words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

PREFIX = "hubspot_sesam"
NO_TYPE = "-"  # the object_type of a HubSpot call that concerns none (the schemas)


class Metrics:
    """The metrics, in a registry of their own (so that several apps, e.g. in tests, never
    share or collide)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests answered, by path and status",
            ["path", "status"], registry=self.registry)
        self.exports = Counter(
            f"{PREFIX}_exports", "Exports that ended, by object type and outcome (ok, failed, "
            "aborted, client_gone)", ["object_type", "outcome"], registry=self.registry)
        self.exports_in_progress = Gauge(
            f"{PREFIX}_exports_in_progress", "Exports running now, by object type",
            ["object_type"], registry=self.registry)
        self.exports_refused = Counter(
            f"{PREFIX}_exports_refused", "Exports refused with a 503 because "
            "MAX_CONCURRENT_EXPORTS exports were running", registry=self.registry)
        self.entities = Counter(
            f"{PREFIX}_entities", "Entities sent to Sesam, as they are sent, by object type and "
            "kind (live, deleted)", ["object_type", "kind"], registry=self.registry)
        self.export_seconds = Histogram(
            f"{PREFIX}_export_seconds", "Duration of exports, by object type", ["object_type"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600), registry=self.registry)
        self.values_unparsed = Counter(
            f"{PREFIX}_values_unparsed", "Property values of typed exports that did not read as "
            "their type in HubSpot's catalogue, sent as the text they were, by object type",
            ["object_type"], registry=self.registry)
        self.upstream_calls = Counter(
            f"{PREFIX}_upstream_calls", "HubSpot requests sent, retries included, by endpoint, "
            "object type and status (or error kind)", ["endpoint", "object_type", "status"],
            registry=self.registry)
        self.upstream_retries = Counter(
            f"{PREFIX}_upstream_retries", "HubSpot requests retried, by endpoint and object type",
            ["endpoint", "object_type"], registry=self.registry)
        self.rate_limit_remaining = Gauge(
            f"{PREFIX}_hubspot_rate_limit_remaining", "Calls HubSpot said were left, in its last "
            "answer that said so, by window (secondly, ten_seconds, daily)", ["window"],
            registry=self.registry)

    def watch_snapshots(self, ages: Callable[[], Mapping[str, float]]) -> None:
        """Serve the age of each type's archived snapshot, as ``ages`` tells it when
        scraped."""
        self.registry.register(_SnapshotAges(ages))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SnapshotAges(Collector):
    def __init__(self, ages: Callable[[], Mapping[str, float]]) -> None:
        self._ages = ages

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            f"{PREFIX}_archived_snapshot_age_seconds", "Age of each type's listing of its "
            "archived records, shared by its exports", labels=["object_type"])
        for object_type, age in sorted(self._ages().items()):
            family.add_metric([object_type], age)
        yield family
