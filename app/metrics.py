"""Prometheus metrics of the gateway and workers. Labels never hold tenant ids or URLs."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- gateway -----------------------------------------------------------------------------
EVENTS_PUBLISHED = Counter(
    "gateway_events_published_total",
    "Canonical events accepted, by type and source provider ('api' for POST /v1/events).",
    ["type", "provider"],
)
FANOUT_SIZE = Histogram(
    "gateway_fanout_size",
    "Deliveries created per published event.",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 250),
)

INBOUND_REQUESTS = Counter(
    "gateway_inbound_requests_total",
    "Provider webhooks received, by provider and outcome "
    "(accepted, duplicate, ignored, bad_signature, unparseable).",
    ["provider", "outcome"],
)
INBOUND_UNKNOWN_STATUS = Counter(
    "gateway_inbound_unknown_status_total",
    "Provider order statuses with no canonical mapping (kept as provider_status).",
    ["provider"],
)

# --- workers -----------------------------------------------------------------------------
DELIVERY_ATTEMPTS = Counter(
    "gateway_delivery_attempts_total",
    "Delivery attempts by outcome (succeeded, failed) and response status class.",
    ["outcome", "status_class"],
)
ATTEMPT_DURATION = Histogram(
    "gateway_delivery_attempt_duration_seconds",
    "Time from sending a webhook to its response (or error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
RETRIES_SCHEDULED = Counter(
    "gateway_delivery_retries_scheduled_total", "Failed attempts that got a next attempt."
)
GIVE_UPS = Counter(
    "gateway_delivery_give_ups_total", "Deliveries marked failed after the whole schedule."
)
SUBSCRIPTIONS_DISABLED = Counter(
    "gateway_subscriptions_disabled_total",
    "Subscriptions disabled by the gateway, by reason (gone = 410, failing = too long failing).",
    ["reason"],
)
THROTTLED = Counter(
    "gateway_delivery_throttled_total",
    "Attempts postponed by a subscription's max_in_flight or rate limit.",
    ["limit"],
)
QUEUE_DEPTH = Gauge("gateway_queue_depth", "Jobs waiting in the delivery queue.")
OLDEST_DUE_LAG = Gauge(
    "gateway_delivery_oldest_due_lag_seconds",
    "How long the oldest due, pending delivery has been waiting.",
)
SWEEPER_ENQUEUED = Counter(
    "gateway_sweeper_enqueued_total", "Due deliveries the sweeper found without a job."
)
