"""The statements a delivery batch runs (lease, read, record), built once per SQL dialect.

Two things matter on PostgreSQL, where every batch of attempts runs them:

* A list of ids is one array parameter (`id = ANY(:ids)`), not an expanding IN list: the
  statement text is then the same for every batch size, so it is prepared once and
  PostgreSQL settles on a generic plan instead of planning each batch anew. SQLite has no
  arrays and keeps the IN list.
* Rows are found by primary key only. The status test is written so that no index serves it
  (`status || ''`): the planner's statistics lag behind a burst of new deliveries, and with
  "few rows are pending" in them it scanned the whole status index (every pending delivery)
  for each batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.store.bulk import column_arrays, unnest_insert
from app.store.driver_sql import DriverStatement
from app.store.tables import attempts, deliveries, events, subscriptions, unfinished_deliveries


@dataclass(frozen=True)
class AttemptStatements:
    lease_pending: sa.Update  # ids, keys, b_now, b_lease -> (id, attempt_count)
    claimed_rows: sa.Select[Any]  # ids -> delivery + subscription + payload
    # PostgreSQL: lease_pending and claimed_rows as one statement (ids, keys, b_now, b_lease),
    # run on the driver's connection.
    lease_and_read: DriverStatement | None
    cancel: sa.Update  # ids, b_now
    record: sa.Update  # PostgreSQL: arrays u_*; SQLite: executemany of u_* per row
    # PostgreSQL: record plus the attempt rows (arrays a_*) as one statement, run on the
    # driver's connection.
    record_with_attempts: DriverStatement | None
    # Throttled attempts back to their deliveries, due again later; their unfinished rows
    # follow. PostgreSQL: one statement of arrays t_id, t_next (and b_now) on the driver's
    # connection; SQLite: postpone then postpone_unfinished, executemany of t_* per row.
    postpone: sa.Update
    postpone_unfinished: sa.Update | None
    postpone_all: DriverStatement | None


def _pending(dialect: str) -> sa.ColumnElement[bool]:
    if dialect == "postgresql":
        return deliveries.c.status.concat(sa.literal_column("''")) == "pending"
    return deliveries.c.status == "pending"


def _in_list(dialect: str, column: sa.ColumnElement[str], name: str) -> sa.ColumnElement[bool]:
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String())))
    return column.in_(sa.bindparam(name, expanding=True))


def _ids_match(dialect: str) -> sa.ColumnElement[bool]:
    return _in_list(dialect, deliveries.c.id, "ids")


def _attempt_key() -> sa.ColumnElement[str]:
    """`{delivery id}:{attempts made}`: which attempt a job is for, as one comparable value."""
    return deliveries.c.id.concat(":").concat(sa.cast(deliveries.c.attempt_count, sa.String()))


def attempt_key(delivery_id: str, attempts_made: int) -> str:
    return f"{delivery_id}:{attempts_made}"


_TIME = deliveries.c.lease_until.type
# Positions in a claimed row (_claimed_rows).
CLAIM_ID = 0
CLAIM_SUBSCRIPTION_STATUS = 5


@cache
def attempt_statements(dialect: str) -> AttemptStatements:
    ids_match = _ids_match(dialect)
    pending = _pending(dialect)
    lease_pending = (
        deliveries.update()
        .where(
            ids_match,
            # Only the attempt the job is for: a job for an attempt already made leases nothing.
            _in_list(dialect, _attempt_key(), "keys"),
            pending,
            sa.or_(
                deliveries.c.lease_until.is_(None),
                deliveries.c.lease_until < sa.bindparam("b_now", type_=_TIME),
            ),
        )
        .values(lease_until=sa.bindparam("b_lease", type_=_TIME))
        .returning(deliveries.c.id, deliveries.c.attempt_count)
    )
    claimed_rows = _claimed_rows(deliveries).where(ids_match)
    lease_and_read: DriverStatement | None = None
    if dialect == "postgresql":
        leased = lease_pending.returning(
            deliveries.c.tenant_id, deliveries.c.event_id, deliveries.c.subscription_id
        ).cte("leased")
        lease_and_read = DriverStatement.compile(_claimed_rows(leased))
    cancel = (
        deliveries.update()
        .where(ids_match)
        .values(
            status="cancelled",
            next_attempt_at=None,
            lease_until=None,
            updated_at=sa.bindparam("b_now", type_=_TIME),
        )
    )
    record = _record(dialect)
    return AttemptStatements(
        lease_pending=lease_pending,
        claimed_rows=claimed_rows,
        lease_and_read=lease_and_read,
        cancel=cancel,
        record=record,
        record_with_attempts=(
            DriverStatement.compile(_record_with_attempts(record))
            if dialect == "postgresql"
            else None
        ),
        **_postpone_statements(dialect),
    )


def _postpone_statements(dialect: str) -> dict[str, Any]:
    """A throttled attempt gives its lease back and its delivery is due at t_next, if it is
    still pending (one cancelled meanwhile keeps no due time); the unfinished row follows."""
    if dialect == "postgresql":
        wanted = (
            sa.func.unnest(
                sa.bindparam("t_id", type_=postgresql.ARRAY(deliveries.c.id.type)),
                sa.bindparam("t_next", type_=postgresql.ARRAY(_TIME)),
            )
            .table_valued(sa.column("id", deliveries.c.id.type), sa.column("next", _TIME))
            .render_derived()
        )
        delivery_id, next_at = wanted.c.id, wanted.c.next
    else:
        delivery_id = sa.bindparam("t_id", type_=deliveries.c.id.type)
        next_at = sa.bindparam("t_next", type_=_TIME)
    postpone = (
        deliveries.update()
        .where(deliveries.c.id == delivery_id)
        .values(
            lease_until=None,
            next_attempt_at=sa.case(
                (deliveries.c.status == "pending", next_at), else_=deliveries.c.next_attempt_at
            ),
            updated_at=sa.bindparam("b_now", type_=_TIME),
        )
    )
    if dialect != "postgresql":
        return {
            "postpone": postpone,
            "postpone_unfinished": unfinished_deliveries.update()
            .where(
                unfinished_deliveries.c.delivery_id == delivery_id,
                unfinished_deliveries.c.status == "pending",
            )
            .values(next_attempt_at=next_at),
            "postpone_all": None,
        }
    postponed = postpone.returning(deliveries.c.id, deliveries.c.next_attempt_at).cte("postponed")
    follow = (
        unfinished_deliveries.update()
        .where(unfinished_deliveries.c.delivery_id == postponed.c.id)
        .values(next_attempt_at=postponed.c.next_attempt_at)
        .add_cte(postponed)
    )
    return {
        "postpone": postpone,
        "postpone_unfinished": None,
        "postpone_all": DriverStatement.compile(follow),
    }


def _record_with_attempts(record: sa.Update) -> sa.Insert:
    """The outcomes, their attempt rows, and the succeeded deliveries' unfinished rows
    removed (only those the record changed: a cancelled one keeps its row)."""
    recorded = record.returning(deliveries.c.id, deliveries.c.status).cte("recorded")
    finished = unfinished_deliveries.delete().where(
        unfinished_deliveries.c.delivery_id.in_(
            sa.select(recorded.c.id).where(recorded.c.status == "succeeded")
        )
    )
    return _attempts_of_record().add_cte(recorded).add_cte(finished.cte("finished"))


def _claimed_rows(source: sa.TableClause | sa.CTE) -> sa.Select[Any]:
    """What an attempt needs: the delivery, its subscription's settings, the event's body.

    AttemptRunner._claimed unpacks these columns by position: keep the order (CLAIM_ID and
    CLAIM_SUBSCRIPTION_STATUS name two of them).
    """
    return (
        sa.select(
            source.c.id,
            source.c.attempt_count,
            source.c.tenant_id,
            source.c.event_id,
            source.c.subscription_id,
            subscriptions.c.status.label("subscription_status"),
            subscriptions.c.url,
            subscriptions.c.headers,
            subscriptions.c.secret,
            subscriptions.c.previous_secret,
            subscriptions.c.previous_secret_expires_at,
            subscriptions.c.timeout_s,
            subscriptions.c.max_in_flight,
            subscriptions.c.rate_limit_per_s,
            subscriptions.c.consecutive_failures,
            subscriptions.c.failing_since,
            events.c.payload,
        )
        .select_from(source)
        .join(subscriptions, subscriptions.c.id == source.c.subscription_id)
        .join(events, events.c.id == source.c.event_id)
    )


# The columns of an attempt row (arrays a_* in record_with_attempts).
ATTEMPT_COLUMNS = (
    "id",
    "delivery_id",
    "tenant_id",
    "attempt",
    "started_at",
    "duration_ms",
    "status_code",
    "error",
    "response_body",
)


# Attempt columns that repeat an outcome's field (RECORD_FIELDS), row for row: in
# record_with_attempts they are read from the outcome's array instead of one of their own.
ATTEMPT_FROM_RECORD = {
    "delivery_id": "id",
    "attempt": "attempt",
    "started_at": "last",
    "status_code": "code",
}
# The attempt columns record_with_attempts takes as arrays a_* of their own.
ATTEMPT_OWN_COLUMNS = tuple(c for c in ATTEMPT_COLUMNS if c not in ATTEMPT_FROM_RECORD)


def _attempts_of_record() -> sa.Insert:
    """INSERT of the attempt rows from unnest() of arrays: a_* for ATTEMPT_OWN_COLUMNS, the
    outcome's u_* for the rest (fewer arrays to encode: asyncpg checks every element)."""
    return unnest_insert(
        attempts,
        ATTEMPT_COLUMNS,
        tuple(
            f"u_{ATTEMPT_FROM_RECORD[name]}" if name in ATTEMPT_FROM_RECORD else f"a_{name}"
            for name in ATTEMPT_COLUMNS
        ),
    )


# The outcome of each attempt: (parameter, column type) in the order of _record's values.
RECORD_FIELDS = (
    ("id", deliveries.c.id.type),
    ("status", deliveries.c.status.type),
    ("attempt", deliveries.c.attempt_count.type),
    ("next", _TIME),
    ("last", _TIME),
    ("code", deliveries.c.last_status_code.type),
)


def record_params(
    dialect: str, outcomes: list[dict[str, Any]], now: datetime
) -> dict[str, Any] | list[dict[str, Any]]:
    """Parameters of `record` for these outcomes (dicts keyed by RECORD_FIELDS' names)."""
    if dialect == "postgresql":
        return {"b_now": now, **column_arrays(outcomes, "u_")}
    return [{"b_now": now, **{f"u_{k}": v for k, v in o.items()}} for o in outcomes]


def _record(dialect: str) -> sa.Update:
    """A delete or disable during the attempt has cancelled the delivery: keep that."""
    if dialect == "postgresql":
        # One statement for the whole batch: a row of arrays, joined to deliveries by id.
        outcome = (
            sa.func.unnest(
                *(
                    sa.bindparam(f"u_{name}", type_=postgresql.ARRAY(type_))
                    for name, type_ in RECORD_FIELDS
                )
            )
            .table_valued(*(sa.column(name, type_) for name, type_ in RECORD_FIELDS))
            .render_derived()
        )
        return (
            deliveries.update()
            .where(deliveries.c.id == outcome.c.id, _pending(dialect))
            .values(
                status=outcome.c.status,
                attempt_count=outcome.c.attempt,
                next_attempt_at=outcome.c.next,
                last_attempt_at=outcome.c.last,
                last_status_code=outcome.c.code,
                lease_until=None,
                updated_at=sa.bindparam("b_now", type_=_TIME),
            )
        )
    return (
        deliveries.update()
        .where(deliveries.c.id == sa.bindparam("u_id"), _pending(dialect))
        .values(
            status=sa.bindparam("u_status"),
            attempt_count=sa.bindparam("u_attempt"),
            next_attempt_at=sa.bindparam("u_next", type_=_TIME),
            last_attempt_at=sa.bindparam("u_last", type_=_TIME),
            last_status_code=sa.bindparam("u_code"),
            lease_until=None,
            updated_at=sa.bindparam("b_now", type_=_TIME),
        )
    )
