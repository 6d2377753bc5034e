"""Partner API for events: publish (with Idempotency-Key), list, read, and the type catalogue."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import PathParameter, QueryParameter
from sqlalchemy.exc import IntegrityError

from app.clock import utcnow
from app.delivery.fanout import EventDraft, enqueue_published, write_event
from app.http.auth import principal_of, requires_scope
from app.http.openapi_docs import documented
from app.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, next_cursor
from app.http.problems import ApiError, FieldError, invalid_field, not_found
from app.http.query_rules import aware_time
from app.http.resources import resources_of
from app.store.events import get_event, list_events
from app.store.idempotency import RememberedResponse, find_response, remember_response
from app.store.sources import find_source
from contracts.api import EventList, EventTypeInfo, EventTypeList, PublishAccepted
from contracts.canonical import EventSource, PublishEvent, event_type_catalog, publish_decoder

_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`")
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_encoder = msgspec.json.Encoder()
_CATALOG = EventTypeList(data=[msgspec.convert(t, EventTypeInfo) for t in event_type_catalog()])
MAX_IDEMPOTENCY_KEY = 255


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(
            422,
            "Idempotency-Key must be 1-255 printable characters",
            errors=[FieldError(field="Idempotency-Key", message="invalid", source="header")],
        )
    return key


def _decode_publish(raw: bytes) -> PublishEvent:
    """Decode once, with msgspec's own error path (`$.data.totals.total`) for the 422."""
    try:
        return publish_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        field = where.rstrip("`").lstrip(".") or "body"
        if match := _UNKNOWN_FIELD.match(message):
            field = f"{field}.{match['name']}" if field != "body" else match["name"]
            message = "unknown field"
        elif match := _MISSING_FIELD.match(message):
            field = f"{field}.{match['name']}" if field != "body" else match["name"]
            message = "required field is missing"
        raise ApiError(
            422,
            f"{field}: {message}",
            errors=[FieldError(field=field, message=message, source="body")],
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(422, f"request body is not valid JSON: {exc}") from None


def _replay(remembered: RememberedResponse, request_hash: str) -> Response[bytes]:
    if remembered.request_hash != request_hash:
        raise ApiError(
            422,
            "this Idempotency-Key was already used with a different request body",
            slug="idempotency-key-reused",
        )
    return Response(
        content=remembered.body.encode("utf-8"),
        status_code=remembered.status,
        media_type="application/json",
        headers={"idempotent-replayed": "true"},
    )


class EventController(Controller):
    path = "/v1"
    tags = ["events"]

    @post(
        "/events",
        status_code=202,
        opt=requires_scope("events:write"),
        summary="Publish a canonical event",
        description=(
            "Stored with one delivery per matching subscription before the 202 is sent. "
            "With an Idempotency-Key header, repeats within 24 h get the first response. "
            "Body: {type, data, occurred_at?, source_id?}; GET /v1/event-types has the JSON "
            "Schema and an example for each type."
        ),
        **documented(403, 422, has_body=True, returns=(202, PublishAccepted)),
    )
    async def publish_event(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        key = _idempotency_key(request)
        raw = await request.body()
        data = _decode_publish(raw)
        request_hash = hashlib.sha256(raw).hexdigest() if key is not None else ""
        if key is not None:
            async with resources.engine.connect() as conn:
                remembered = await find_response(conn, principal.tenant_id, key, utcnow())
            if remembered is not None:
                return _replay(remembered, request_hash)

        source = EventSource(source_id=None, provider=None, method="api")
        if data.source_id is not None:
            async with resources.engine.connect() as conn:
                found = await find_source(conn, principal.tenant_id, data.source_id)
            if found is None:
                raise invalid_field("source_id", "unknown source")
            source = EventSource(source_id=found.id, provider=found.provider, method="api")

        if key is None:
            # Concurrent publishes share one transaction (group commit); 202 after it commits.
            published = await resources.publisher.publish(
                EventDraft(
                    tenant_id=principal.tenant_id,
                    event_type=data.type,
                    data=data.data,
                    source=source,
                    occurred_at=data.occurred_at,
                )
            )
            return Response(
                content=_encoder.encode(
                    PublishAccepted(id=published.event_id, deliveries=len(published.delivery_ids))
                ),
                status_code=202,
                media_type="application/json",
            )
        try:
            async with resources.engine.begin() as conn:
                published = await write_event(
                    conn,
                    tenant_id=principal.tenant_id,
                    event_type=data.type,
                    data=data.data,
                    source=source,
                    occurred_at=data.occurred_at,
                )
                body = _encoder.encode(
                    PublishAccepted(id=published.event_id, deliveries=len(published.delivery_ids))
                )
                await remember_response(
                    conn,
                    tenant_id=principal.tenant_id,
                    key=key,
                    request_hash=request_hash,
                    status=202,
                    body=body.decode("utf-8"),
                    now=utcnow(),
                )
        except IntegrityError:
            # A concurrent request with the same key committed first: answer as it did.
            async with resources.engine.connect() as conn:
                remembered = await find_response(conn, principal.tenant_id, key, utcnow())
            if remembered is None:
                raise
            return _replay(remembered, request_hash)
        # Enqueued after the response is sent: the rows are committed (the outbox), and
        # should this process stop first, the sweeper enqueues them.
        return Response(
            content=body,
            status_code=202,
            media_type="application/json",
            background=BackgroundTask(enqueue_published, resources.redis, published),
        )

    @get(
        "/events",
        opt=requires_scope("events:read"),
        summary="List events",
        **documented(403, 422),
    )
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
        event_type: Annotated[str | None, QueryParameter(name="type", max_length=64)] = None,
        source_id: Annotated[str | None, QueryParameter(max_length=40)] = None,
        since: Annotated[datetime | None, QueryParameter()] = None,
        until: Annotated[datetime | None, QueryParameter()] = None,
    ) -> EventList:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        since = aware_time(request, "since", since)
        until = aware_time(request, "until", until)
        async with resources.engine.connect() as conn:
            rows = await list_events(
                conn,
                principal.tenant_id,
                limit=limit,
                before_id=decode_cursor(cursor, "evt"),
                event_type=event_type,
                source_id=source_id,
                since=since,
                until=until,
            )
        return EventList(
            data=[_decode_payload(r.payload) for r in rows],
            next_cursor=next_cursor([r.id for r in rows], limit),
        )

    @get(
        "/events/{event_id:str}",
        opt=requires_scope("events:read"),
        summary="Read an event",
        **documented(403, 404, 422),
    )
    async def get_event(
        self,
        request: Request[Any, Any, Any],
        event_id: Annotated[str, PathParameter(max_length=40)],
    ) -> dict[str, Any]:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            found = await get_event(conn, principal_of(request).tenant_id, event_id)
        if found is None:
            raise not_found("event")
        return _decode_payload(found.payload)

    @get(
        "/event-types",
        summary="Event type catalogue: JSON Schema and an example per type",
        **documented(),
    )
    async def event_types(self) -> EventTypeList:
        return _CATALOG
