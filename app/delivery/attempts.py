"""Running delivery attempts: claim, send signed, decide, record; one batch per job."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import __version__
from app.clock import utcnow
from app.delivery.admission import PARK_LIMIT_S, SlotWaiter
from app.delivery.fanout import Published, enqueue_published, write_event
from app.delivery.http_client import PostResult, WebhookClient
from app.delivery.isolation import SubscriptionLimiter
from app.delivery.jobs import AttemptRef, enqueue_attempt
from app.delivery.micro_batch import MicroBatcher
from app.delivery.policy import AttemptResult, Decision, decide
from app.delivery.signing import webhook_headers
from app.ids import new_ids
from app.metrics import (
    ATTEMPT_DURATION,
    DELIVERY_ATTEMPTS,
    GIVE_UPS,
    RETRIES_SCHEDULED,
    SUBSCRIPTIONS_DISABLED,
    THROTTLED,
)
from app.security.secret_box import SecretBox, SecretUnreadable
from app.settings import Settings
from app.store.attempt_sql import (
    ATTEMPT_OWN_COLUMNS,
    CLAIM_ID,
    CLAIM_SUBSCRIPTION_STATUS,
    attempt_key,
    attempt_statements,
    record_params,
)
from app.store.audit import record_audit
from app.store.bulk import column_arrays, insert_rows
from app.store.driver_sql import HeldConnections
from app.store.subscriptions import cancel_pending_deliveries
from app.store.tables import attempts, subscriptions
from app.store.unfinished import sync_unfinished
from contracts.canonical import EventSource, SubscriptionDisabledData

logger = logging.getLogger(__name__)

USER_AGENT = f"pwbi-gateway/{__version__}"
RESPONSE_BODY_LIMIT = 4096
# Auto-disable needs both: failing for GATEWAY_DISABLE_AFTER and this many failures in a row,
# so one old failure followed by silence never disables a subscription.
DISABLE_MIN_CONSECUTIVE_FAILURES = 5
# The lease outlives waiting for a slot plus the attempt's own timeout, so a live worker
# never loses its claim.
LEASE_MARGIN_S = PARK_LIMIT_S + 10.0
# Decrypted signing secrets kept per worker (a stored secret changes when it is rotated).
OPENED_SECRETS_KEPT = 4096
# The hot statements find every row by primary key (an id from a job, a claimed batch).
# PostgreSQL plans a prepared statement once per connection and keeps that plan while the
# table's statistics stand; planned while the tables were small, or before a backlog grew
# (statistics lag behind a burst, autovacuum may be off), a hot statement kept sequential
# scans that grew with the table: measured in a 10 s hanging-endpoint run at 2,000
# deliveries, 1.1 ms a record batch, 0.76 ms a postpone and 0.65 ms a claim, rows joined by
# a nested loop over the whole table. Told to avoid them, the planner takes the primary
# keys' indexes from the first execution, at every table size.
HOT_STATEMENT_SETTINGS = {"enable_seqscan": "off"}


@dataclass(slots=True)
class Claimed:
    delivery_id: str
    attempt: int
    tenant_id: str
    event_id: str
    subscription_id: str
    url: str
    headers: dict[str, str]
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    timeout_s: int
    max_in_flight: int
    rate_limit_per_s: int | None
    consecutive_failures: int
    failing_since: datetime | None
    payload: str


@dataclass
class Sent:
    claim: Claimed
    started_at: datetime
    result: PostResult
    decision: Decision


@dataclass
class Throttled:
    claim: Claimed
    limit: str
    retry_in_ms: int


@dataclass
class Recorded:
    retries: list[tuple[str, int, datetime]] = field(default_factory=list)
    throttled: list[Throttled] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)


class AttemptRunner:
    """Everything a delivery job needs, built once per worker process."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        queue: ArqRedis,
        client: WebhookClient,
        limiter: SubscriptionLimiter,
        secret_box: SecretBox,
        settings: Settings,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.client = client
        self.limiter = limiter
        self.secret_box = secret_box
        self.settings = settings
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        # The claim, record and postpone statements' own connections (PostgreSQL).
        self.held = HeldConnections(engine, session_settings=HOT_STATEMENT_SETTINGS)
        self._claims: MicroBatcher[AttemptRef, Claimed | None] = MicroBatcher(self._claim_batch)
        self._records: MicroBatcher[Sent | Throttled, Recorded] = MicroBatcher(self._record_batch)
        self.slots = SlotWaiter(limiter, self.rng)
        self._opened: dict[str, str] = {}

    async def close(self) -> None:
        """Free the slots of the last attempts and the held connections (at shutdown)."""
        await self.slots.drain()
        await self.held.close()

    async def run(self, refs: Sequence[AttemptRef]) -> int:
        """Attempt each (delivery, attempt) that is still current; returns how many were sent.

        Claims and records go through micro-batchers: the attempts of every job running in
        this worker at about the same moment share one claim and one record transaction.
        """
        claims = await self._claims.submit_many(refs)
        sent = await asyncio.gather(*(self._run_one(claim) for claim in claims if claim))
        return sum(sent)

    async def _run_one(self, claim: Claimed) -> bool:
        outcome = await self._attempt(claim)
        recorded = await self._records.submit(outcome)
        await self._after_commit(recorded)
        return isinstance(outcome, Sent)

    async def _claim_batch(self, refs: list[AttemptRef]) -> list[Claimed | None]:
        """Take a lease on each attempt that is still the delivery's next one.

        A job for an attempt that is no longer current (already made, delivery finished or
        cancelled, or leased by a live worker) matches no row and does nothing.
        """
        now = utcnow()
        # Long enough for the slowest attempt allowed; released as soon as it is recorded.
        lease_until = now + timedelta(seconds=self.settings.delivery_timeout_s + LEASE_MARGIN_S)
        lease = {
            "ids": sorted({delivery_id for delivery_id, _ in refs}),
            "keys": sorted(
                {attempt_key(delivery_id, attempt - 1) for delivery_id, attempt in refs}
            ),
            "b_now": now,
            "b_lease": lease_until,
        }
        sql = attempt_statements(self.engine.dialect.name)
        if sql.lease_and_read is not None:
            # One statement, no transaction around it: a round trip instead of four.
            rows = await self.held.fetch(sql.lease_and_read, lease)
            orphaned = [r[CLAIM_ID] for r in rows if r[CLAIM_SUBSCRIPTION_STATUS] != "enabled"]
            if orphaned:
                async with self.engine.begin() as conn:
                    await conn.execute(sql.cancel, {"ids": orphaned, "b_now": now})
                    await sync_unfinished(conn, orphaned)
        else:
            async with self.engine.begin() as conn:
                leased = (await conn.execute(sql.lease_pending, lease)).all()
                rows = (
                    (await conn.execute(sql.claimed_rows, {"ids": [r.id for r in leased]})).all()
                    if leased
                    else []
                )
                orphaned = [r[CLAIM_ID] for r in rows if r[CLAIM_SUBSCRIPTION_STATUS] != "enabled"]
                if orphaned:
                    # The subscription was disabled or deleted after this job was queued.
                    await conn.execute(sql.cancel, {"ids": orphaned, "b_now": now})
                    await sync_unfinished(conn, orphaned)
        by_id = {
            r[CLAIM_ID]: self._claimed(r) for r in rows if r[CLAIM_SUBSCRIPTION_STATUS] == "enabled"
        }
        results: list[Claimed | None] = []
        seen: set[str] = set()
        for delivery_id, attempt in refs:
            claim = by_id.get(delivery_id)
            # The same attempt twice in one batch (duplicate jobs): only the first one runs.
            if claim is None or claim.attempt != attempt or delivery_id in seen:
                results.append(None)
            else:
                seen.add(delivery_id)
                results.append(claim)
        return results

    def _claimed(self, row: Any) -> Claimed:
        # Unpacked by position (attempt_sql.claimed_rows' column order): attribute access on
        # a SQLAlchemy row costs several times more, for every attempt.
        (
            delivery_id,
            attempts_made,
            tenant_id,
            event_id,
            subscription_id,
            _subscription_status,
            url,
            headers,
            secret,
            previous_secret,
            previous_secret_expires_at,
            timeout_s,
            max_in_flight,
            rate_limit_per_s,
            consecutive_failures,
            failing_since,
            payload,
        ) = row
        return Claimed(
            delivery_id=delivery_id,
            attempt=attempts_made + 1,
            tenant_id=tenant_id,
            event_id=event_id,
            subscription_id=subscription_id,
            url=url,
            headers=dict(headers or {}),
            secret=secret,
            previous_secret=previous_secret,
            previous_secret_expires_at=previous_secret_expires_at,
            timeout_s=timeout_s,
            max_in_flight=max_in_flight,
            rate_limit_per_s=rate_limit_per_s,
            consecutive_failures=consecutive_failures,
            failing_since=failing_since,
            payload=payload,
        )

    def _signing_secrets(self, claim: Claimed, now: datetime) -> list[str]:
        secrets = [self._open(claim.secret)]
        expires = claim.previous_secret_expires_at
        if claim.previous_secret and expires is not None and expires > now:
            secrets.append(self._open(claim.previous_secret))
        return secrets

    def _open(self, stored: str) -> str:
        """Decrypt a stored secret once per process, not once per attempt."""
        secret = self._opened.get(stored)
        if secret is None:
            if len(self._opened) >= OPENED_SECRETS_KEPT:
                self._opened.clear()
            secret = self._opened[stored] = self.secret_box.open(stored)
        return secret

    async def _attempt(self, claim: Claimed) -> Sent | Throttled:
        timeout_s = min(float(claim.timeout_s), self.settings.delivery_timeout_s)
        token = f"{claim.delivery_id}:{claim.attempt}"
        admission = await self.slots.admit(
            claim.subscription_id,
            token,
            max_in_flight=claim.max_in_flight,
            rate_limit_per_s=claim.rate_limit_per_s,
            timeout_s=timeout_s,
            lease_s=timeout_s + LEASE_MARGIN_S,
        )
        if not admission.admitted:
            THROTTLED.labels(limit=admission.limit or "unknown").inc()
            return Throttled(claim, admission.limit or "unknown", admission.retry_in_ms)
        started_at = utcnow()
        try:
            result = await self._send(claim, started_at, timeout_s)
        finally:
            self.slots.release(claim.subscription_id, token)
        decision = decide(
            claim.attempt,
            AttemptResult(
                status_code=result.status_code, error=result.error, retry_after=result.retry_after
            ),
            self.settings.retry_schedule,
            now=utcnow(),
            rng=self.rng,
        )
        succeeded = decision.outcome == "succeeded"
        _attempts_counter("succeeded" if succeeded else "failed", _status_class(result)).inc()
        if not succeeded:
            # Why it failed, in the worker's log as well as in GET /v1/deliveries/{id}: the
            # status or the error the attempt row keeps, never a header, the body or a secret.
            logger.warning(
                "delivery attempt failed",
                extra={
                    "delivery_id": claim.delivery_id,
                    "attempt": claim.attempt,
                    "status_code": result.status_code,
                    "error": _error_text(result),
                    "next": decision.outcome,
                },
            )
        ATTEMPT_DURATION.observe(result.duration_ms / 1000)
        return Sent(claim, started_at, result, decision)

    async def _send(self, claim: Claimed, started_at: datetime, timeout_s: float) -> PostResult:
        """Sign and POST; whatever goes wrong on the way is this attempt's error.

        Raised instead, it would leave the delivery leased with no attempt recorded, to be
        claimed again by the sweeper and fail the same way for ever.
        """
        clock = time.monotonic()
        try:
            body = claim.payload.encode("utf-8")
            headers = {
                **claim.headers,
                **webhook_headers(
                    msg_id=claim.event_id,
                    timestamp=int(time.time()),
                    body=body,
                    secrets=self._signing_secrets(claim, started_at),
                    user_agent=USER_AGENT,
                ),
            }
            return await self.client.post(claim.url, body, headers, timeout_s=timeout_s)
        except Exception as exc:
            # SecretUnreadable's own text names no secret; any other text might quote the
            # URL or a header value, so only the exception's type is kept.
            # The attempt's own failure line (in _attempt) logs it with the delivery's id.
            why = str(exc) if isinstance(exc, SecretUnreadable) else type(exc).__name__
            return PostResult(
                status_code=None,
                body_head=None,
                retry_after=None,
                error="request_error",
                error_detail=f"the request could not be built ({why})",
                duration_ms=round((time.monotonic() - clock) * 1000),
            )

    async def _record_batch(self, outcomes: list[Sent | Throttled]) -> list[Recorded]:
        """One statement (or transaction) for every attempt that finished at about the same
        time: the deliveries' new state and the attempt rows; one more for the throttled."""
        now = utcnow()
        recorded = [Recorded() for _ in outcomes]
        sent: list[tuple[Sent, Recorded]] = []
        throttled: list[Throttled] = []
        for outcome, record in zip(outcomes, recorded, strict=True):
            if isinstance(outcome, Sent):
                sent.append((outcome, record))
            else:
                throttled.append(outcome)
                record.throttled.append(outcome)
        if throttled:
            await self._postpone(throttled, now)
        if sent:
            await self._record_sent(sent, now)
        return recorded

    async def _postpone(self, throttled: list[Throttled], now: datetime) -> None:
        """Throttled attempts give their leases back; their deliveries are due again later."""
        ids = [refused.claim.delivery_id for refused in throttled]
        due = [now + timedelta(milliseconds=max(r.retry_in_ms, 50)) for r in throttled]
        sql = attempt_statements(self.engine.dialect.name)
        if sql.postpone_all is not None:
            await self.held.execute(sql.postpone_all, {"b_now": now, "t_id": ids, "t_next": due})
            return
        rows = [
            {"b_now": now, "t_id": delivery_id, "t_next": next_at}
            for delivery_id, next_at in zip(ids, due, strict=True)
        ]
        async with self.engine.begin() as conn:
            await conn.execute(sql.postpone, rows)
            if sql.postpone_unfinished is not None:
                await conn.execute(sql.postpone_unfinished, rows)

    async def _record_sent(self, sent: list[tuple[Sent, Recorded]], now: datetime) -> None:
        state = [self._new_state(item, record, now) for item, record in sent]
        rows = [
            _attempt_row(item, attempt_id)
            for (item, _), attempt_id in zip(sent, new_ids("att", len(sent)), strict=True)
        ]
        dialect = self.engine.dialect.name
        sql = attempt_statements(dialect)
        if sql.record_with_attempts is not None and not any(
            _changes_health(item) for item, _ in sent
        ):
            # The usual batch: one statement, no transaction around it.
            await self.held.execute(
                sql.record_with_attempts,
                {
                    "b_now": now,
                    **column_arrays(state, "u_"),
                    **column_arrays(rows, "a_", ATTEMPT_OWN_COLUMNS),
                },
            )
            return
        async with self.engine.begin() as conn:
            await conn.execute(sql.record, record_params(dialect, state, now))
            # After the delivery rows: the attempts' foreign-key check then finds each row
            # already locked by this transaction instead of taking a lock of its own.
            await insert_rows(conn, attempts, rows)
            for item, record in sent:
                await self._record_subscription_health(conn, item, now, record)
            await sync_unfinished(conn, [item.claim.delivery_id for item, _ in sent])

    def _new_state(self, item: Sent, record: Recorded, now: datetime) -> dict[str, Any]:
        """The delivery's row after this attempt (RECORD_FIELDS' names); counts the outcome."""
        decision = item.decision
        next_at: datetime | None = None
        if decision.outcome == "succeeded":
            status = "succeeded"
        elif decision.outcome == "retry" and decision.next_delay_s is not None:
            status = "pending"
            next_at = now + timedelta(seconds=decision.next_delay_s)
            RETRIES_SCHEDULED.inc()
            record.retries.append((item.claim.delivery_id, item.claim.attempt + 1, next_at))
        else:
            status = "failed"
            GIVE_UPS.inc()
        return {
            "id": item.claim.delivery_id,
            "status": status,
            "attempt": item.claim.attempt,
            "next": next_at,
            "last": item.started_at,
            "code": item.result.status_code,
        }

    async def _record_subscription_health(
        self, conn: AsyncConnection, sent: Sent, now: datetime, recorded: Recorded
    ) -> None:
        claim = sent.claim
        if sent.decision.outcome == "succeeded":
            if claim.consecutive_failures or claim.failing_since is not None:
                await conn.execute(
                    subscriptions.update()
                    .where(subscriptions.c.id == claim.subscription_id)
                    .values(consecutive_failures=0, failing_since=None)
                )
            return
        await conn.execute(
            subscriptions.update()
            .where(subscriptions.c.id == claim.subscription_id)
            .values(
                consecutive_failures=subscriptions.c.consecutive_failures + 1,
                failing_since=sa.func.coalesce(subscriptions.c.failing_since, sent.started_at),
            )
        )
        reason: str | None = None
        if sent.decision.disable_subscription:
            reason = "gone"
        elif (
            claim.failing_since is not None
            and claim.consecutive_failures + 1 >= DISABLE_MIN_CONSECUTIVE_FAILURES
            and now - claim.failing_since >= timedelta(seconds=self.settings.disable_after_s)
        ):
            reason = "failing"
        if reason is not None:
            published = await disable_failing_subscription(
                conn,
                tenant_id=claim.tenant_id,
                subscription_id=claim.subscription_id,
                reason=reason,
                now=now,
            )
            if published is not None:
                recorded.published.append(published)

    async def _after_commit(self, recorded: Recorded) -> None:
        for delivery_id, attempt, due in recorded.retries:
            await enqueue_attempt(self.queue, delivery_id, attempt, defer_until=due)
        for throttled in recorded.throttled:
            claim = throttled.claim
            delay = timedelta(milliseconds=max(throttled.retry_in_ms, 50))
            # A fresh job id: the current one is still running and would swallow the enqueue.
            await enqueue_attempt(
                self.queue,
                claim.delivery_id,
                claim.attempt,
                defer_until=utcnow() + delay,
                job_id=f"{claim.delivery_id}:{claim.attempt}:t{time.monotonic_ns()}",
            )
        for published in recorded.published:
            await enqueue_published(self.queue, published)


async def disable_failing_subscription(
    conn: AsyncConnection, *, tenant_id: str, subscription_id: str, reason: str, now: datetime
) -> Published | None:
    """Disable, cancel its pending deliveries, and tell the tenant's other subscribers."""
    result = await conn.execute(
        subscriptions.update()
        .where(subscriptions.c.id == subscription_id, subscriptions.c.status == "enabled")
        .values(status="disabled", disabled_reason=reason, disabled_at=now, updated_at=now)
    )
    if result.rowcount != 1:
        return None  # already disabled by someone else
    cancelled = await cancel_pending_deliveries(conn, subscription_id)
    SUBSCRIPTIONS_DISABLED.labels(reason=reason).inc()
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor="gateway",
        action="subscription.auto_disabled",
        target=subscription_id,
        details={"reason": reason, "cancelled_deliveries": cancelled},
    )
    logger.warning(
        "subscription disabled", extra={"subscription_id": subscription_id, "reason": reason}
    )
    return await write_event(
        conn,
        tenant_id=tenant_id,
        event_type="subscription.disabled",
        data=SubscriptionDisabledData(
            subscription_id=subscription_id, reason=reason, disabled_at=now
        ),
        source=EventSource(source_id=None, provider=None, method="api"),
    )


def _attempt_row(item: Sent, attempt_id: str) -> dict[str, Any]:
    """The attempt's history row (attempt_sql.ATTEMPT_COLUMNS)."""
    return {
        "id": attempt_id,
        "delivery_id": item.claim.delivery_id,
        "tenant_id": item.claim.tenant_id,
        "attempt": item.claim.attempt,
        "started_at": item.started_at,
        "duration_ms": item.result.duration_ms,
        "status_code": item.result.status_code,
        "error": _error_text(item.result),
        "response_body": (item.result.body_head or "")[:RESPONSE_BODY_LIMIT] or None,
    }


@functools.cache
def _attempts_counter(outcome: str, status_class: str) -> Any:
    """The labelled counter, looked up once per (outcome, status class) and process."""
    return DELIVERY_ATTEMPTS.labels(outcome=outcome, status_class=status_class)


def _changes_health(item: Sent) -> bool:
    """Whether recording this attempt also writes its subscription's failure streak."""
    claim = item.claim
    return (
        item.decision.outcome != "succeeded"
        or bool(claim.consecutive_failures)
        or claim.failing_since is not None
    )


def _status_class(result: PostResult) -> str:
    if result.status_code is None:
        return "error"
    return f"{result.status_code // 100}xx"


def _error_text(result: PostResult) -> str | None:
    if result.error is None:
        if result.status_code is not None and not 200 <= result.status_code < 300:
            return f"http_{result.status_code}"
        return None
    return f"{result.error}: {result.error_detail}" if result.error_detail else result.error
