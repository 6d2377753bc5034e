"""PostgreSQL: a publish batch's outbox write as one statement, matching included.

Through a transaction, a batch of published events costs five round trips (BEGIN, the
matching of subscriptions, the events INSERT, the deliveries INSERT, COMMIT), and the
deliveries' rows go over the wire column by column although they repeat their event's id,
tenant and time. Here one statement in autocommit does all of it: it inserts the events,
finds the enabled subscriptions whose patterns (and sources) select each event, and inserts
one pending delivery per match, naming it from the event's block of delivery ids
(`app.ids.new_id_block`), with its row in unfinished_deliveries. Either all of it is written
or none.

Matching reads the same rows as `app.store.events.matching_subscription_ids` (the pattern
index: its cost follows the subscriptions that match, not the tenant's total), and orders
an event's deliveries by subscription id as that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.ids import ALPHABET, BLOCK_BITS, BLOCK_PREFIX_LENGTH
from app.store.driver_sql import DriverStatement, HeldConnections
from app.store.events import NewEvent
from contracts.event_types import patterns_matching

# An event's n-th delivery (from 0) is its block's prefix and n as four base32 characters.
assert BLOCK_BITS == 20
assert BLOCK_PREFIX_LENGTH == 22

# Parameters: e_* one element per event (e_key: the event's matching key, 1-based);
# k_* one element per (matching key, pattern); now: the batch's time; digits: the ids'
# base32 alphabet.
WRITE_BATCH = DriverStatement.compile_text(
    """
    WITH written AS (
        INSERT INTO events (id, tenant_id, type, source_id, provider, occurred_at,
                            received_at, payload)
        SELECT unnest(CAST(:e_id AS varchar[])), unnest(CAST(:e_tenant_id AS varchar[])),
               unnest(CAST(:e_type AS varchar[])), unnest(CAST(:e_source_id AS varchar[])),
               unnest(CAST(:e_provider AS varchar[])),
               unnest(CAST(:e_occurred_at AS timestamptz[])), CAST(:now AS timestamptz),
               unnest(CAST(:e_payload AS text[]))
    ),
    matched AS (
        SELECT DISTINCT k.key, s.id AS subscription_id
        FROM unnest(CAST(:k_key AS integer[]), CAST(:k_tenant_id AS varchar[]),
                    CAST(:k_pattern AS varchar[]), CAST(:k_source_id AS varchar[]))
             AS k(key, tenant_id, pattern, source_id)
        JOIN subscription_patterns AS p
             ON p.tenant_id = k.tenant_id AND p.pattern = k.pattern
        JOIN subscriptions AS s ON s.id = p.subscription_id
        WHERE s.status = 'enabled'
          AND (coalesce(s.source_ids, 'null') IN ('null', '[]') OR s.source_ids ? k.source_id)
    ),
    targets AS (
        SELECT e.ix, m.subscription_id,
               CAST(row_number() OVER (PARTITION BY e.ix ORDER BY m.subscription_id) - 1
                    AS integer) AS n
        FROM unnest(CAST(:e_key AS integer[])) WITH ORDINALITY AS e(key, ix)
        JOIN matched AS m ON m.key = e.key
    ),
    delivered AS (
        INSERT INTO deliveries (id, tenant_id, event_id, subscription_id, status, attempt_count,
                                next_attempt_at, created_at, updated_at)
        SELECT (CAST(:e_block AS varchar[]))[t.ix]
               || substr(CAST(:digits AS text), ((t.n >> 15) & 31) + 1, 1)
               || substr(CAST(:digits AS text), ((t.n >> 10) & 31) + 1, 1)
               || substr(CAST(:digits AS text), ((t.n >> 5) & 31) + 1, 1)
               || substr(CAST(:digits AS text), (t.n & 31) + 1, 1),
               (CAST(:e_tenant_id AS varchar[]))[t.ix], (CAST(:e_id AS varchar[]))[t.ix],
               t.subscription_id, 'pending', 0,
               CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(:now AS timestamptz)
        FROM targets AS t
        RETURNING event_id, id, tenant_id, subscription_id
    ),
    queued AS (
        INSERT INTO unfinished_deliveries (delivery_id, tenant_id, subscription_id, status,
                                           next_attempt_at)
        SELECT id, tenant_id, subscription_id, 'pending', CAST(:now AS timestamptz)
        FROM delivered
    )
    SELECT event_id, id FROM delivered
    """
)


def batch_params(
    events: Sequence[NewEvent], blocks: Sequence[str], now: datetime
) -> dict[str, Any]:
    """The statement's parameters: events (received at `now`), each with its id block."""
    keys: dict[tuple[str, str, str | None], int] = {}
    event_keys = []
    for event in events:
        key = (event.tenant_id, event.type, event.source_id)
        event_keys.append(keys.setdefault(key, len(keys) + 1))
    k_key, k_tenant, k_pattern, k_source = [], [], [], []
    for (tenant_id, event_type, source_id), number in keys.items():
        for pattern in patterns_matching(event_type):
            k_key.append(number)
            k_tenant.append(tenant_id)
            k_pattern.append(pattern)
            k_source.append(source_id)
    return {
        "e_id": [e.id for e in events],
        "e_tenant_id": [e.tenant_id for e in events],
        "e_type": [e.type for e in events],
        "e_source_id": [e.source_id for e in events],
        "e_provider": [e.provider for e in events],
        "e_occurred_at": [e.occurred_at for e in events],
        "e_payload": [e.payload for e in events],
        "e_key": event_keys,
        "e_block": list(blocks),
        "k_key": k_key,
        "k_tenant_id": k_tenant,
        "k_pattern": k_pattern,
        "k_source_id": k_source,
        "now": now,
        "digits": ALPHABET,
    }


async def write_batch(
    held: HeldConnections, events: Sequence[NewEvent], blocks: Sequence[str], now: datetime
) -> list[list[str]]:
    """Writes the events and their deliveries; each event's delivery ids, in id order."""
    rows = await held.fetch(WRITE_BATCH, batch_params(events, blocks, now))
    by_event: dict[str, list[str]] = {event.id: [] for event in events}
    for event_id, delivery_id in rows:
        by_event[event_id].append(delivery_id)
    return [sorted(by_event[event.id]) for event in events]
