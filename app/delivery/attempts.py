"""Running delivery attempts: claim, send signed, decide, record; one batch per job."""

from __future__ import annotations

import asyncio
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
from app.delivery.fanout import Published, enqueue_published, write_event
from app.delivery.http_client import PostResult, WebhookClient
from app.delivery.isolation import SubscriptionLimiter
from app.delivery.jobs import AttemptRef, enqueue_attempt
from app.delivery.policy import AttemptResult, Decision, decide
from app.delivery.signing import webhook_headers
from app.ids import new_id
from app.metrics import (
    ATTEMPT_DURATION,
    DELIVERY_ATTEMPTS,
    GIVE_UPS,
    RETRIES_SCHEDULED,
    SUBSCRIPTIONS_DISABLED,
    THROTTLED,
)
from app.security.secret_box import SecretBox
from app.settings import Settings
from app.store.audit import record_audit
from app.store.subscriptions import cancel_pending_deliveries
from app.store.tables import attempts, deliveries, events, subscriptions
from contracts.canonical import EventSource, SubscriptionDisabledData

logger = logging.getLogger(__name__)

USER_AGENT = f"pwbi-gateway/{__version__}"
RESPONSE_BODY_LIMIT = 4096
# Auto-disable needs both: failing for GATEWAY_DISABLE_AFTER and this many failures in a row,
# so one old failure followed by silence never disables a subscription.
DISABLE_MIN_CONSECUTIVE_FAILURES = 5
# The lease outlives the attempt's own timeout, so a live worker never loses its claim.
LEASE_MARGIN_S = 10.0


@dataclass(frozen=True)
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

    async def run(self, refs: Sequence[AttemptRef]) -> int:
        """Attempt each (delivery, attempt) that is still current; returns how many were sent."""
        claimed = await self._claim(refs)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(c) for c in claimed))
        recorded = await self._record(outcomes)
        await self._after_commit(recorded)
        return sum(isinstance(o, Sent) for o in outcomes)

    async def _claim(self, refs: Sequence[AttemptRef]) -> list[Claimed]:
        """Take a lease on each attempt that is still the delivery's next one.

        A job for an attempt that is no longer current (already made, delivery finished or
        cancelled, or leased by a live worker) matches no row and does nothing.
        """
        wanted = {(d, n - 1) for d, n in refs}
        if not wanted:
            return []
        now = utcnow()
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        deliveries.c.id,
                        deliveries.c.attempt_count,
                        deliveries.c.tenant_id,
                        deliveries.c.event_id,
                        deliveries.c.subscription_id,
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
                    .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
                    .join(events, events.c.id == deliveries.c.event_id)
                    .where(
                        deliveries.c.id.in_([d for d, _ in wanted]),
                        deliveries.c.status == "pending",
                        sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
                    )
                )
            ).all()
            current = [r for r in rows if (r.id, r.attempt_count) in wanted]
            orphaned = [r.id for r in current if r.subscription_status != "enabled"]
            if orphaned:
                # The subscription was disabled or deleted after this job was queued.
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(orphaned), deliveries.c.status == "pending")
                    .values(status="cancelled", next_attempt_at=None, updated_at=now)
                )
            live = [r for r in current if r.subscription_status == "enabled"]
            claimed: list[Claimed] = []
            for row in live:
                lease_until = now + timedelta(seconds=row.timeout_s + LEASE_MARGIN_S)
                result = await conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.id == row.id,
                        deliveries.c.status == "pending",
                        deliveries.c.attempt_count == row.attempt_count,
                        sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
                    )
                    .values(lease_until=lease_until)
                )
                if result.rowcount == 1:
                    claimed.append(self._claimed(row))
        return claimed

    def _claimed(self, row: Any) -> Claimed:
        return Claimed(
            delivery_id=row.id,
            attempt=row.attempt_count + 1,
            tenant_id=row.tenant_id,
            event_id=row.event_id,
            subscription_id=row.subscription_id,
            url=row.url,
            headers=dict(row.headers or {}),
            secret=row.secret,
            previous_secret=row.previous_secret,
            previous_secret_expires_at=row.previous_secret_expires_at,
            timeout_s=row.timeout_s,
            max_in_flight=row.max_in_flight,
            rate_limit_per_s=row.rate_limit_per_s,
            consecutive_failures=row.consecutive_failures,
            failing_since=row.failing_since,
            payload=row.payload,
        )

    def _signing_secrets(self, claim: Claimed, now: datetime) -> list[str]:
        secrets = [self.secret_box.open(claim.secret)]
        expires = claim.previous_secret_expires_at
        if claim.previous_secret and expires is not None and expires > now:
            secrets.append(self.secret_box.open(claim.previous_secret))
        return secrets

    async def _attempt(self, claim: Claimed) -> Sent | Throttled:
        timeout_s = min(float(claim.timeout_s), self.settings.delivery_timeout_s)
        token = f"{claim.delivery_id}:{claim.attempt}"
        admission = await self.limiter.acquire(
            claim.subscription_id,
            token,
            max_in_flight=claim.max_in_flight,
            rate_limit_per_s=claim.rate_limit_per_s,
            lease_s=timeout_s + LEASE_MARGIN_S,
        )
        if not admission.admitted:
            THROTTLED.labels(limit=admission.limit or "unknown").inc()
            return Throttled(claim, admission.limit or "unknown", admission.retry_in_ms)
        try:
            started_at = utcnow()
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
            result = await self.client.post(claim.url, body, headers, timeout_s=timeout_s)
        finally:
            await self.limiter.release(claim.subscription_id, token)
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
        DELIVERY_ATTEMPTS.labels(
            outcome="succeeded" if succeeded else "failed",
            status_class=_status_class(result),
        ).inc()
        ATTEMPT_DURATION.observe(result.duration_ms / 1000)
        return Sent(claim, started_at, result, decision)

    async def _record(self, outcomes: Sequence[Sent | Throttled]) -> Recorded:
        recorded = Recorded()
        now = utcnow()
        async with self.engine.begin() as conn:
            for outcome in outcomes:
                if isinstance(outcome, Throttled):
                    wait = timedelta(milliseconds=max(outcome.retry_in_ms, 50))
                    await conn.execute(
                        deliveries.update()
                        .where(deliveries.c.id == outcome.claim.delivery_id)
                        .values(lease_until=None, next_attempt_at=now + wait, updated_at=now)
                    )
                    recorded.throttled.append(outcome)
                    continue
                await self._record_sent(conn, outcome, now, recorded)
        return recorded

    async def _record_sent(
        self, conn: AsyncConnection, sent: Sent, now: datetime, recorded: Recorded
    ) -> None:
        claim, result, decision = sent.claim, sent.result, sent.decision
        await conn.execute(
            attempts.insert().values(
                id=new_id("att"),
                delivery_id=claim.delivery_id,
                tenant_id=claim.tenant_id,
                attempt=claim.attempt,
                started_at=sent.started_at,
                duration_ms=result.duration_ms,
                status_code=result.status_code,
                error=_error_text(result),
                response_body=(result.body_head or "")[:RESPONSE_BODY_LIMIT] or None,
            )
        )
        next_at: datetime | None = None
        if decision.outcome == "succeeded":
            status = "succeeded"
        elif decision.outcome == "retry" and decision.next_delay_s is not None:
            status = "pending"
            next_at = now + timedelta(seconds=decision.next_delay_s)
        else:
            status = "failed"
        # A delete or disable during the attempt has cancelled the delivery: keep that.
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == claim.delivery_id, deliveries.c.status == "pending")
            .values(
                status=status,
                attempt_count=claim.attempt,
                next_attempt_at=next_at,
                last_attempt_at=sent.started_at,
                last_status_code=result.status_code,
                lease_until=None,
                updated_at=now,
            )
        )
        if status == "pending" and next_at is not None:
            RETRIES_SCHEDULED.inc()
            recorded.retries.append((claim.delivery_id, claim.attempt + 1, next_at))
        elif status == "failed":
            GIVE_UPS.inc()
        await self._record_subscription_health(conn, sent, now, recorded)

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
                conn, tenant_id=claim.tenant_id, subscription_id=claim.subscription_id,
                reason=reason, now=now,
            )  # fmt: skip
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
