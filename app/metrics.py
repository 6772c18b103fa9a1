"""Prometheus metrics of one service instance (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """The counters, in a registry of their own (so that several apps, e.g. in tests,
    never share or collide)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hubspot_contacts_requests", "HTTP requests answered, by path and status",
            ["path", "status"], registry=self.registry)
        self.exports = Counter(
            "hubspot_contacts_exports", "Exports by outcome (ok, failed, aborted, client_gone)",
            ["outcome"], registry=self.registry)
        self.entities = Counter(
            "hubspot_contacts_entities", "Entities sent to Sesam, by kind (live, deleted)",
            ["kind"], registry=self.registry)
        self.upstream_calls = Counter(
            "hubspot_contacts_upstream_calls", "HubSpot requests sent, retries included, by "
            "endpoint and status (or error kind)", ["endpoint", "status"], registry=self.registry)
        self.upstream_retries = Counter(
            "hubspot_contacts_upstream_retries", "HubSpot requests retried, by endpoint",
            ["endpoint"], registry=self.registry)
        self.export_seconds = Histogram(
            "hubspot_contacts_export_seconds", "Duration of exports, of every type",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600), registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
