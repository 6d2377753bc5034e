"""Partner API for the delivery log and replays: read attempts, retry, replay, recover."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.delivery.replay import (
    ReplayNotFound,
    ReplayRefused,
    enqueue_recover,
    replay_event,
    replay_progress,
    retry_delivery,
    start_recover,
)
from app.http.auth import principal_of, requires_scope
from app.http.openapi_docs import documented
from app.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, next_cursor
from app.http.problems import ApiError, invalid_field, not_found
from app.http.query_rules import aware_time
from app.http.resources import resources_of
from app.store.audit import list_audit_entries
from app.store.deliveries import get_delivery, list_deliveries
from contracts.api import (
    AuditLog,
    DeliveryDetail,
    DeliveryList,
    DeliveryRetried,
    DeliveryStatus,
    EventReplayed,
    Recover,
    RecoverAccepted,
    ReplayEvent,
    ReplayProgress,
)

Id = Annotated[str, PathParameter(max_length=40)]


def _refused(exc: ReplayRefused) -> ApiError:
    return ApiError(409, str(exc), slug="conflict")


class DeliveryController(Controller):
    path = "/v1"
    tags = ["deliveries"]

    @get(
        "/deliveries",
        opt=requires_scope("deliveries:read"),
        summary="List deliveries",
        **documented(403, 422),
    )
    async def list_deliveries(
        self,
        request: Request[Any, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
        subscription_id: Annotated[str | None, QueryParameter(max_length=40)] = None,
        event_id: Annotated[str | None, QueryParameter(max_length=40)] = None,
        status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
        since: Annotated[datetime | None, QueryParameter()] = None,
        until: Annotated[datetime | None, QueryParameter()] = None,
    ) -> DeliveryList:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            rows = await list_deliveries(
                conn,
                principal_of(request).tenant_id,
                limit=limit,
                before_id=decode_cursor(cursor, "dlv"),
                subscription_id=subscription_id,
                event_id=event_id,
                status=status,
                since=aware_time(request, "since", since),
                until=aware_time(request, "until", until),
            )
        return DeliveryList(data=rows, next_cursor=next_cursor([r.id for r in rows], limit))

    @get(
        "/deliveries/{delivery_id:str}",
        opt=requires_scope("deliveries:read"),
        summary="Read a delivery with every attempt",
        **documented(403, 404, 422),
    )
    async def get_delivery(
        self, request: Request[Any, Any, Any], delivery_id: Id
    ) -> DeliveryDetail:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            found = await get_delivery(conn, principal_of(request).tenant_id, delivery_id)
        if found is None:
            raise not_found("delivery")
        return found

    @post(
        "/deliveries/{delivery_id:str}/retry",
        status_code=202,
        opt=requires_scope("deliveries:replay"),
        summary="Attempt a delivery again now, whatever its status",
        **documented(403, 404, 409, 422, has_body=True),
    )
    async def retry_delivery(
        self, request: Request[Any, Any, Any], delivery_id: Id
    ) -> DeliveryRetried:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        try:
            retried = await retry_delivery(
                resources.engine,
                resources.redis,
                tenant_id=principal.tenant_id,
                delivery_id=delivery_id,
                actor=principal.actor,
            )
        except ReplayNotFound as exc:
            raise not_found(exc.kind) from None
        except ReplayRefused as exc:
            raise _refused(exc) from None
        return DeliveryRetried(id=retried.delivery_id, attempt=retried.attempt, status="pending")

    @post(
        "/events/{event_id:str}/replay",
        status_code=202,
        opt=requires_scope("deliveries:replay"),
        summary="Deliver a stored event again",
        **documented(403, 404, 422, has_body=True),
        description="To the named subscriptions, or to every subscription that matches it now.",
    )
    async def replay_event(
        self,
        request: Request[Any, Any, Any],
        event_id: Id,
        data: JSONBody[ReplayEvent | None] = None,
    ) -> EventReplayed:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        try:
            published = await replay_event(
                resources.engine,
                resources.redis,
                tenant_id=principal.tenant_id,
                event_id=event_id,
                subscription_ids=data.subscription_ids if data else None,
                actor=principal.actor,
            )
        except ReplayNotFound as exc:
            raise not_found(exc.kind) from None
        except ReplayRefused as exc:
            raise invalid_field("subscription_ids", str(exc)) from None
        return EventReplayed(event_id=event_id, deliveries=published.delivery_ids)

    @post(
        "/subscriptions/{subscription_id:str}/recover",
        status_code=202,
        opt=requires_scope("deliveries:replay"),
        summary="Re-attempt a subscription's deliveries in a time window",
        **documented(403, 404, 409, 422, has_body=True),
        description="Runs in the background at the subscription's rate limit; "
        "GET /v1/replays/{id} shows progress.",
    )
    async def recover(
        self, request: Request[Any, Any, Any], subscription_id: Id, data: JSONBody[Recover]
    ) -> RecoverAccepted:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        if data.until is not None and data.until <= data.since:
            raise invalid_field("until", "must be after since")
        try:
            replay_id = await start_recover(
                resources.engine,
                resources.redis,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                since=data.since,
                until=data.until,
                statuses=[data.status],
                actor=principal.actor,
            )
        except ReplayNotFound as exc:
            raise not_found(exc.kind) from None
        except ReplayRefused as exc:
            raise _refused(exc) from None
        await enqueue_recover(resources.redis, replay_id)
        return RecoverAccepted(replay_id=replay_id)

    @get(
        "/replays/{replay_id:str}",
        opt=requires_scope("deliveries:read"),
        summary="Progress of a recover",
        **documented(403, 404, 422),
    )
    async def get_replay(self, request: Request[Any, Any, Any], replay_id: Id) -> ReplayProgress:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            progress = await replay_progress(conn, principal_of(request).tenant_id, replay_id)
        if progress is None:
            raise not_found("replay")
        return progress

    @get(
        "/audit-log",
        opt=requires_scope("subscriptions:read"),
        summary="The tenant's audit log, newest first",
        **documented(403, 422),
    )
    async def audit_log(
        self,
        request: Request[Any, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> AuditLog:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            rows = await list_audit_entries(
                conn,
                principal_of(request).tenant_id,
                limit=limit,
                before_id=decode_cursor(cursor, "aud"),
            )
        return AuditLog(data=rows, next_cursor=next_cursor([r.id for r in rows], limit))
