"""Prometheus metrics of the gateway and workers. Labels never hold tenant ids or URLs.

Each process serves its own registry: the API process the request and ingest families, a
worker the delivery families (and the ingest ones, which its Moka polling feeds). One
shared default registry would make each process export the other's families as constant
zeros, which reads on a dashboard as "nothing happens" rather than "not measured here".
"""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    # The same process_*, python_gc_* and python_info series the default registry has.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


GATEWAY_REGISTRY = _registry()
WORKER_REGISTRY = _registry()

# --- published events: the API process (POST /v1/events, ingest) and workers (Moka polls) ---
EVENTS_PUBLISHED = Counter(
    "gateway_events_published_total",
    "Canonical events accepted, by type and source provider ('api' for POST /v1/events).",
    ["type", "provider"],
    registry=None,
)
FANOUT_SIZE = Histogram(
    "gateway_fanout_size",
    "Deliveries created per published event.",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 250),
    registry=None,
)
INBOUND_REQUESTS = Counter(
    "gateway_inbound_requests_total",
    "Provider webhooks received, by provider and outcome "
    "(accepted, duplicate, ignored, bad_signature, unparseable).",
    ["provider", "outcome"],
    registry=None,
)

# --- the API process only ----------------------------------------------------------------
INBOUND_UNKNOWN_STATUS = Counter(
    "gateway_inbound_unknown_status_total",
    "Provider order statuses with no canonical mapping (kept as provider_status).",
    ["provider"],
    registry=None,
)
# The request families keep the names and labels Litestar's Prometheus middleware used, so
# dashboards and alerts read them unchanged; the in-progress gauge has no status_code: a
# request still in progress has none yet.
_REQUEST_LABELS = ["method", "path", "status_code", "app_name"]
REQUESTS = Counter(
    "gateway_requests_total", "Total requests", _REQUEST_LABELS, registry=GATEWAY_REGISTRY
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Request duration, in seconds",
    _REQUEST_LABELS,
    registry=GATEWAY_REGISTRY,
)
REQUEST_ERRORS = Counter(
    "gateway_requests_error_total",
    "Total errors in requests",
    _REQUEST_LABELS,
    registry=GATEWAY_REGISTRY,
)
REQUESTS_IN_PROGRESS = Gauge(
    "gateway_requests_in_progress",
    "Total requests currently in progress",
    ["method", "path", "app_name"],
    registry=GATEWAY_REGISTRY,
)

# --- workers only ------------------------------------------------------------------------
DELIVERY_ATTEMPTS = Counter(
    "gateway_delivery_attempts_total",
    "Delivery attempts by outcome (succeeded, failed) and response status class.",
    ["outcome", "status_class"],
    registry=WORKER_REGISTRY,
)
ATTEMPT_DURATION = Histogram(
    "gateway_delivery_attempt_duration_seconds",
    "Time from sending a webhook to its response (or error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    registry=WORKER_REGISTRY,
)
RETRIES_SCHEDULED = Counter(
    "gateway_delivery_retries_scheduled_total",
    "Failed attempts that got a next attempt.",
    registry=WORKER_REGISTRY,
)
GIVE_UPS = Counter(
    "gateway_delivery_give_ups_total",
    "Deliveries marked failed after the whole schedule.",
    registry=WORKER_REGISTRY,
)
SUBSCRIPTIONS_DISABLED = Counter(
    "gateway_subscriptions_disabled_total",
    "Subscriptions disabled by the gateway, by reason (gone = 410, failing = too long failing).",
    ["reason"],
    registry=WORKER_REGISTRY,
)
THROTTLED = Counter(
    "gateway_delivery_throttled_total",
    "Attempts postponed by a subscription's max_in_flight or rate limit.",
    ["limit"],
    registry=WORKER_REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "gateway_queue_depth", "Jobs waiting in the delivery queue.", registry=WORKER_REGISTRY
)
OLDEST_DUE_LAG = Gauge(
    "gateway_delivery_oldest_due_lag_seconds",
    "How long the oldest due, pending delivery has been waiting.",
    registry=WORKER_REGISTRY,
)
SWEEPER_ENQUEUED = Counter(
    "gateway_sweeper_enqueued_total",
    "Due deliveries the sweeper found without a job.",
    registry=WORKER_REGISTRY,
)

for _family in (EVENTS_PUBLISHED, FANOUT_SIZE, INBOUND_REQUESTS):
    GATEWAY_REGISTRY.register(_family)
    WORKER_REGISTRY.register(_family)
GATEWAY_REGISTRY.register(INBOUND_UNKNOWN_STATUS)


def exposition(
    registry: CollectorRegistry, accept: str | None, accept_encoding: str | None
) -> tuple[bytes, dict[str, str]]:
    """The scrape body and headers both processes answer with for the same request headers.

    The worker's metrics server is prometheus_client's own, which picks the format from
    Accept (OpenMetrics when asked for) and gzips when Accept-Encoding allows; the API's
    /metrics does exactly the same through the same functions.
    """
    encoder, content_type = choose_encoder(accept or "")
    body = encoder(registry)
    headers = {"Content-Type": content_type}
    if gzip_accepted(accept_encoding or ""):
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return body, headers
