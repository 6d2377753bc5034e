"""Partner API for subscriptions: create, list, read, change, delete, rotate, enable/disable."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.delivery.fanout import enqueue_published, write_event
from app.delivery.replay import enqueue_recover, start_recover
from app.http.auth import principal_of, requires_scope
from app.http.openapi_docs import documented
from app.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, next_cursor
from app.http.problems import ApiError, FieldError, invalid_field, not_found
from app.http.resources import Resources, resources_of
from app.security.secret_box import new_webhook_secret
from app.security.ssrf import UrlRejected, vet_webhook_url
from app.store import subscriptions as store
from contracts.api import (
    EnableSubscription,
    PublishAccepted,
    RotateSecret,
    Subscription,
    SubscriptionCreate,
    SubscriptionEnabled,
    SubscriptionList,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)
from contracts.canonical import EventSource, PingData
from contracts.event_types import pattern_problem
from contracts.http_syntax import header_name_problem, header_value_problem, url_text_problem

# Headers we set ourselves, or that would break the request if a partner overrode them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)

SubscriptionId = Annotated[
    str, PathParameter(description="Subscription id (sub_...)", max_length=40)
]


async def _checked_url(resources: Resources, url: str) -> str:
    settings = resources.settings
    # Surrounding whitespace is trimmed (vet_webhook_url); inside the URL it is refused.
    if problem := url_text_problem(url.strip()):
        raise invalid_field("url", problem)
    try:
        return await vet_webhook_url(
            url, policy=resources.address_policy, allow_http=settings.allow_http
        )
    except UrlRejected as exc:
        raise invalid_field("url", str(exc)) from None


def _check_event_types(patterns: list[str]) -> list[str]:
    errors = [
        FieldError(field=f"event_types[{i}]", message=problem, source="body")
        for i, p in enumerate(patterns)
        if (problem := pattern_problem(p))
    ]
    if errors:
        raise ApiError(422, "; ".join(e.message for e in errors), errors=errors)
    return sorted(set(patterns), key=patterns.index)


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    errors: list[FieldError] = []
    seen: dict[str, str] = {}
    for name, value in headers.items():
        field = f"headers.{name}"
        problem = header_name_problem(name)
        if problem is None:
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS:
                problem = "set by the gateway; cannot override"
            elif lowered in seen:
                # Names are case-insensitive: both would be sent, as one header with two values.
                problem = f"same header as {seen[lowered]!r} (names are case-insensitive)"
            else:
                seen[lowered] = name
                problem = header_value_problem(value)
        if problem is not None:
            errors.append(FieldError(field=field, message=problem, source="body"))
    if errors:
        raise ApiError(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)
    return headers


async def _check_source_ids(resources: Resources, tenant_id: str, ids: list[str] | None) -> None:
    if not ids:
        return
    async with resources.engine.connect() as conn:
        unknown = await store.unknown_source_ids(conn, tenant_id, ids)
    if unknown:
        raise invalid_field("source_ids", f"unknown source ids: {', '.join(unknown)}")


def _with_secret(
    subscription: Subscription, secret: str, previous_expires: Any = None
) -> SubscriptionWithSecret:
    return SubscriptionWithSecret(
        **msgspec.structs.asdict(subscription),
        secret=secret,
        previous_secret_expires_at=previous_expires,
    )


class SubscriptionController(Controller):
    path = "/v1/subscriptions"
    tags = ["subscriptions"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        opt=requires_scope("subscriptions:write"),
        summary="Create a subscription",
        **documented(403, 422, has_body=True),
        description="Returns the signing secret; it is shown only here and on rotation.",
    )
    async def create_subscription(
        self, request: Request[Any, Any, Any], data: JSONBody[SubscriptionCreate]
    ) -> SubscriptionWithSecret:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        data.url = await _checked_url(resources, data.url)
        data.event_types = _check_event_types(data.event_types)
        data.headers = _check_headers(data.headers)
        await _check_source_ids(resources, principal.tenant_id, data.source_ids)
        secret = new_webhook_secret()
        async with resources.engine.begin() as conn:
            created = await store.insert_subscription(
                conn,
                tenant_id=principal.tenant_id,
                body=data,
                sealed_secret=resources.secret_box.seal(secret),
                actor=principal.actor,
            )
        return _with_secret(created, secret)

    @get(
        "/",
        opt=requires_scope("subscriptions:read"),
        summary="List subscriptions",
        **documented(403, 422),
    )
    async def list_subscriptions(
        self,
        request: Request[Any, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> SubscriptionList:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        before_id = decode_cursor(cursor, "sub")
        async with resources.engine.connect() as conn:
            rows = await store.list_subscriptions(
                conn, principal.tenant_id, limit=limit, before_id=before_id
            )
        return SubscriptionList(data=rows, next_cursor=next_cursor([r.id for r in rows], limit))

    @get(
        "/{subscription_id:str}",
        opt=requires_scope("subscriptions:read"),
        summary="Read a subscription",
        **documented(403, 404, 422),
    )
    async def get_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> Subscription:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            found = await store.get_subscription(
                conn, principal_of(request).tenant_id, subscription_id
            )
        if found is None:
            raise not_found("subscription")
        return found

    @patch(
        "/{subscription_id:str}",
        opt=requires_scope("subscriptions:write"),
        summary="Change a subscription",
        **documented(403, 404, 422, has_body=True),
    )
    async def update_subscription(
        self,
        request: Request[Any, Any, Any],
        subscription_id: SubscriptionId,
        data: JSONBody[SubscriptionUpdate],
    ) -> Subscription:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(data).items()
            if value is not msgspec.UNSET
        }
        if "url" in changes:
            changes["url"] = await _checked_url(resources, changes["url"])
        if "event_types" in changes:
            changes["event_types"] = _check_event_types(changes["event_types"])
        if "headers" in changes:
            changes["headers"] = _check_headers(changes["headers"])
        if "source_ids" in changes:
            await _check_source_ids(resources, principal.tenant_id, changes["source_ids"])
        async with resources.engine.begin() as conn:
            updated = await store.update_subscription(
                conn,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                changes=changes,
                actor=principal.actor,
            )
        if updated is None:
            raise not_found("subscription")
        return updated

    @delete(
        "/{subscription_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        opt=requires_scope("subscriptions:write"),
        summary="Delete a subscription",
        **documented(403, 404, 422),
        description="Stops future deliveries and cancels pending ones.",
    )
    async def delete_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> None:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        async with resources.engine.begin() as conn:
            deleted = await store.delete_subscription(
                conn,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                actor=principal.actor,
            )
        if not deleted:
            raise not_found("subscription")

    @post(
        "/{subscription_id:str}/rotate-secret",
        status_code=HTTP_200_OK,
        opt=requires_scope("subscriptions:write"),
        summary="Rotate the signing secret",
        **documented(403, 404, 422, has_body=True),
        description="The old secret keeps signing beside the new one until the grace period ends.",
    )
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        subscription_id: SubscriptionId,
        data: JSONBody[RotateSecret | None] = None,
    ) -> SubscriptionWithSecret:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        grace = (data or RotateSecret()).grace_period_s
        secret = new_webhook_secret()
        async with resources.engine.begin() as conn:
            expires_at = await store.rotate_secret(
                conn,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                sealed_new_secret=resources.secret_box.seal(secret),
                grace_period_s=grace,
                actor=principal.actor,
            )
            current = (
                await store.get_subscription(conn, principal.tenant_id, subscription_id)
                if expires_at is not None
                else None
            )
        if current is None:
            raise not_found("subscription")
        return _with_secret(current, secret, expires_at if grace > 0 else None)

    @post(
        "/{subscription_id:str}/enable",
        status_code=HTTP_200_OK,
        opt=requires_scope("subscriptions:write"),
        summary="Enable a subscription",
        **documented(403, 404, 422, has_body=True),
    )
    async def enable_subscription(
        self,
        request: Request[Any, Any, Any],
        subscription_id: SubscriptionId,
        data: JSONBody[EnableSubscription | None] = None,
    ) -> SubscriptionEnabled:
        """With recover_since, failed and cancelled deliveries since then are attempted again."""
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        recover_since = data.recover_since if data else None
        if recover_since is not None and "deliveries:replay" not in principal.scopes:
            raise ApiError(403, "recover_since needs the scope 'deliveries:replay'")
        replay_id: str | None = None
        async with resources.engine.begin() as conn:
            enabled = await store.set_subscription_enabled(
                conn,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                enabled=True,
                actor=principal.actor,
            )
            if enabled is None:
                raise not_found("subscription")
            if recover_since is not None:
                replay_id = await start_recover(
                    resources.engine,
                    resources.redis,
                    tenant_id=principal.tenant_id,
                    subscription_id=subscription_id,
                    since=recover_since,
                    until=None,
                    statuses=["failed", "cancelled"],
                    actor=principal.actor,
                    conn=conn,
                )
        if replay_id is not None:
            await enqueue_recover(resources.redis, replay_id)
        return SubscriptionEnabled(**msgspec.structs.asdict(enabled), replay_id=replay_id)

    @post(
        "/{subscription_id:str}/disable",
        status_code=HTTP_200_OK,
        opt=requires_scope("subscriptions:write"),
        summary="Pause a subscription",
        **documented(403, 404, 422, has_body=True),
        description="Cancels its pending deliveries; nothing is sent until it is enabled again.",
    )
    async def disable_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> Subscription:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        async with resources.engine.begin() as conn:
            result = await store.set_subscription_enabled(
                conn,
                tenant_id=principal.tenant_id,
                subscription_id=subscription_id,
                enabled=False,
                actor=principal.actor,
            )
        if result is None:
            raise not_found("subscription")
        return result

    @post(
        "/{subscription_id:str}/test",
        status_code=202,
        opt=requires_scope("subscriptions:write"),
        summary="Send a ping to this subscription only",
        **documented(403, 404, 409, 422, has_body=True),
    )
    async def send_test_event(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> PublishAccepted:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        async with resources.engine.begin() as conn:
            found = await store.get_subscription(conn, principal.tenant_id, subscription_id)
            if found is None:
                raise not_found("subscription")
            if found.status != "enabled":
                raise ApiError(409, "subscription is disabled; enable it to send a test")
            published = await write_event(
                conn,
                tenant_id=principal.tenant_id,
                event_type="ping",
                data=PingData(message="Test event from pwbi-gateway"),
                source=EventSource(source_id=None, provider=None, method="api"),
                only_subscription_ids=[subscription_id],
            )
        await enqueue_published(resources.redis, published)
        return PublishAccepted(id=published.event_id, deliveries=len(published.delivery_ids))
