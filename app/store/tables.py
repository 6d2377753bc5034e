"""Table definitions (SQLAlchemy Core); the migrations in migrations/versions mirror them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite (no tz support) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(40), primary_key=True)


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", UTCDateTime(), nullable=False)


tenants = sa.Table(
    "tenants",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # enabled | disabled
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("event_types", json_type(), nullable=False),
    sa.Column("source_ids", json_type(), nullable=True),
    sa.Column("headers", json_type(), nullable=False),
    sa.Column("rate_limit_per_s", sa.Integer(), nullable=True),
    sa.Column("max_in_flight", sa.Integer(), nullable=False),
    sa.Column("timeout_s", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # enabled | disabled | deleted
    sa.Column("disabled_reason", sa.String(32), nullable=True),  # partner | failing | gone
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    # Signing secrets, sealed by app.security.secret_box when GATEWAY_SECRET_KEY is set.
    sa.Column("secret", sa.Text(), nullable=False),
    sa.Column("previous_secret", sa.Text(), nullable=True),
    sa.Column("previous_secret_expires_at", UTCDateTime(), nullable=True),
    sa.Column("failing_since", UTCDateTime(), nullable=True),
    sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    sa.Index("ix_subscriptions_tenant_id_id", "tenant_id", "id"),
    sa.Index("ix_subscriptions_status_tenant_id", "status", "tenant_id"),
)

# One row per event-type pattern of a subscription: fan-out looks up only the patterns an
# event type can match ('*', 'order.*', 'order.created'), never every subscription.
subscription_patterns = sa.Table(
    "subscription_patterns",
    metadata,
    sa.Column(
        "subscription_id", sa.String(40), sa.ForeignKey("subscriptions.id"), primary_key=True
    ),
    sa.Column("pattern", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Index("ix_subscription_patterns_tenant_id_pattern", "tenant_id", "pattern"),
)

sources = sa.Table(
    "sources",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("external_store_id", sa.String(200), nullable=True),
    sa.Column("credentials", sa.Text(), nullable=False),  # sealed JSON
    sa.Column("settings", json_type(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    sa.Index("ix_sources_tenant_id_id", "tenant_id", "id"),
)

HAS_DEDUPE_KEY = sa.text("dedupe_key IS NOT NULL")

events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("source_id", sa.String(40), nullable=True),
    sa.Column("provider", sa.String(32), nullable=True),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    # Provider redelivery dedupe: same (source, dedupe_key) is one event. Per source, not per
    # tenant: providers number their events per account (a POS its webhook-ids, a store its
    # receipts), so two sources of one tenant may reuse a key for different events.
    sa.Column("dedupe_key", sa.String(300), nullable=True),
    sa.Column("aggregate_key", sa.String(300), nullable=True),
    sa.Column("sequence", sa.BigInteger(), nullable=True),
    # The canonical envelope exactly as delivered (JSON text): every attempt to every
    # subscriber sends the same bytes; a JSONB column would reorder keys.
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Index("ix_events_tenant_id_id", "tenant_id", "id"),
    sa.Index("ix_events_tenant_id_type_id", "tenant_id", "type", "id"),
    sa.Index("ix_events_tenant_id_source_id_id", "tenant_id", "source_id", "id"),
    sa.Index("ix_events_received_at", "received_at"),
    # Partial: events published through the API have no dedupe key and need no entry here.
    sa.Index(
        "uq_events_source_id_dedupe_key",
        "source_id",
        "dedupe_key",
        unique=True,
        postgresql_where=HAS_DEDUPE_KEY,
        sqlite_where=HAS_DEDUPE_KEY,
    ),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("event_id", sa.String(40), sa.ForeignKey("events.id"), nullable=False),
    sa.Column("subscription_id", sa.String(40), sa.ForeignKey("subscriptions.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending|succeeded|failed|cancelled
    sa.Column("attempt_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    # A worker holds an attempt until this time; past it, the sweeper may hand it to another.
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("replay_id", sa.String(40), nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # No index names a column that recording an attempt changes (status, the times, the
    # counters): PostgreSQL then keeps the lease's and the outcome's new row versions
    # heap-only (HOT), without an entry in any index. Lookups by status go through
    # unfinished_deliveries.
    sa.Index("ix_deliveries_tenant_id_id", "tenant_id", "id"),
    sa.Index("ix_deliveries_subscription_id_id", "subscription_id", "id"),
    sa.Index("ix_deliveries_event_id", "event_id"),
)

# A partial index's condition, written the same way in the queries that use it: a planner
# must prove the condition from the query, and a generic plan (PostgreSQL reuses one for a
# prepared statement) cannot see the value of a bound parameter.
PENDING = sa.text("status = 'pending'")

# Every delivery that has not succeeded (pending, failed, cancelled), with the columns its
# lookups by status need: the sweeper's (pending, by next_attempt_at), the log's and a
# replay's (by tenant or subscription and status), cancelling a subscription's pending work.
# A row is written with its delivery, changed when the delivery's status or due time
# changes, and removed when it succeeds (app.store.unfinished keeps it in step). No foreign
# key: its check would cost every published delivery a lookup; the rows go with their
# deliveries (retention removes both).
unfinished_deliveries = sa.Table(
    "unfinished_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(40), primary_key=True),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Column("subscription_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending|failed|cancelled
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Index(
        "ix_unfinished_deliveries_tenant_id_status_delivery_id",
        "tenant_id",
        "status",
        "delivery_id",
    ),
    sa.Index(
        "ix_unfinished_deliveries_subscription_id_status_delivery_id",
        "subscription_id",
        "status",
        "delivery_id",
    ),
    # The sweeper's: pending deliveries only.
    sa.Index(
        "ix_unfinished_deliveries_pending_next_attempt_at",
        "next_attempt_at",
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    ),
)


def pending_only() -> sa.ColumnElement[bool]:
    """PENDING as a condition on `unfinished_deliveries` for a query (the sweeper's index)."""
    return unfinished_deliveries.c.status == sa.literal_column("'pending'")


attempts = sa.Table(
    "attempts",
    metadata,
    _id(),
    sa.Column("delivery_id", sa.String(40), sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("duration_ms", sa.Integer(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("response_body", sa.Text(), nullable=True),
    sa.UniqueConstraint("delivery_id", "attempt", name="uq_attempts_delivery_id_attempt"),
)

# Per-order progress of provider events: the next sequence number, and the furthest status
# reached, so a late status (accepted after delivered) is delivered marked stale. Per source,
# not per tenant: providers number orders per account (two outlets' POSes both have an order
# 1001), so two sources of one tenant may reuse an order id for different orders.
order_progress = sa.Table(
    "order_progress",
    metadata,
    sa.Column("source_id", sa.String(40), primary_key=True),
    sa.Column("order_key", sa.String(300), primary_key=True),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Column("last_sequence", sa.BigInteger(), nullable=False),
    sa.Column("max_rank", sa.Integer(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response_status", sa.Integer(), nullable=False),
    sa.Column("response_body", sa.Text(), nullable=False),
    _created(),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

replays = sa.Table(
    "replays",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("subscription_id", sa.String(40), sa.ForeignKey("subscriptions.id"), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | completed | failed
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("until", UTCDateTime(), nullable=True),
    sa.Column("delivery_status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("enqueued", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("succeeded", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("cursor", sa.String(40), nullable=True),  # last delivery id enqueued: resume point
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_replays_tenant_id_id", "tenant_id", "id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(64), nullable=True),
    sa.Column("details", json_type(), nullable=True),
    _created(),
    sa.Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),
)
