"""Inbound provider webhooks: authenticate the provider's way, normalize, file, acknowledge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import msgspec
from litestar import Controller, Request, Response, post, route
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter

from app.delivery.fanout import enqueue_published
from app.http.openapi_docs import documented, problem_responses
from app.http.problems import (
    NESTED_TOO_DEEPLY,
    ApiError,
    is_decoding_recursion,
)
from app.http.resources import Resources, resources_of
from app.ingest import provider_auth
from app.ingest.filing import file_events
from app.metrics import INBOUND_REQUESTS, INBOUND_UNKNOWN_STATUS
from app.store.sources import IngestSource, load_ingest_source
from contracts.providers import custom_pos, gofood, grabfood, shopeefood
from contracts.providers.base import NormalizedEvent, PayloadRejected

logger = logging.getLogger(__name__)
SourceId = Annotated[str, PathParameter(max_length=40)]
Normalizer = Callable[[bytes], list[NormalizedEvent]]
# Providers whose events reach the gateway another way; a POST here is a misconfiguration.
_NO_WEBHOOKS: Mapping[str, str] = {
    "moka": "their sales are polled from Moka's API by the gateway",
    "qasir": "their sales are imported from export files (POST /v1/sources/{id}/imports)",
}


class Acknowledged(msgspec.Struct, kw_only=True):
    status: str  # "accepted", "duplicate" (seen before) or "ignored" (nothing to publish)
    events: list[str]


OAuthErrorCode = Literal["invalid_request", "invalid_client", "unsupported_grant_type"]


class OAuthError(msgspec.Struct, kw_only=True):
    error: OAuthErrorCode
    error_description: str


# What provider-called routes can answer besides their success (never bearer-authenticated).
_INGEST_PROBLEMS = documented(401, 403, 404, 422, 503, authenticated=False, has_body=True)


class GrabToken(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str
    expires_in: int


async def _source(resources: Resources, source_id: str, provider: str | None) -> IngestSource:
    async with resources.engine.connect() as conn:
        source = await load_ingest_source(conn, source_id, resources.secret_box)
    if source is None or (provider is not None and source.provider != provider):
        raise ApiError(404, "unknown source", slug="not-found")
    if source.status != "enabled":
        raise ApiError(403, "this source is disabled by its owner", slug="forbidden")
    return source


def _rejected(source: IngestSource, outcome: str, detail: str, status: int) -> ApiError:
    INBOUND_REQUESTS.labels(provider=source.provider, outcome=outcome).inc()
    logger.warning("inbound refused", extra={"source_id": source.id, "outcome": outcome})
    return ApiError(status, detail, slug="bad-signature" if status == 401 else None)


async def _accept(
    resources: Resources, source: IngestSource, normalize: Normalizer, raw: bytes
) -> Acknowledged:
    try:
        events = normalize(raw)
    except PayloadRejected as exc:
        # Stored nowhere; counted, so an operator sees a provider changing its format.
        raise _rejected(source, "unparseable", f"payload not understood: {exc}", 422) from None
    except RecursionError as exc:
        if not is_decoding_recursion(exc):
            raise
        raise _rejected(
            source, "unparseable", f"payload not understood: {NESTED_TOO_DEEPLY}", 422
        ) from None
    for event in events:
        if event.unknown_status:
            INBOUND_UNKNOWN_STATUS.labels(provider=source.provider).inc()
    filed = await file_events(resources.engine, source, events)
    for published in filed.published:
        await enqueue_published(resources.redis, published)
    if filed.published:
        INBOUND_REQUESTS.labels(provider=source.provider, outcome="accepted").inc()
        return Acknowledged(status="accepted", events=[p.event_id for p in filed.published])
    if not events:
        # Understood, but nothing a subscriber needs (e.g. a sync still in progress).
        INBOUND_REQUESTS.labels(provider=source.provider, outcome="ignored").inc()
        return Acknowledged(status="ignored", events=[])
    INBOUND_REQUESTS.labels(provider=source.provider, outcome="duplicate").inc()
    return Acknowledged(status="duplicate", events=filed.duplicate_ids)


def _lower_headers(request: Request[Any, Any, Any]) -> Mapping[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def _grab_call(
    request: Request[Any, Any, Any], source_id: str, normalize: Normalizer
) -> Acknowledged:
    resources = resources_of(request.app.state)
    source = await _source(resources, source_id, "grabfood")
    if not provider_auth.grab_bearer_ok(
        source.id, source.credentials["client_secret"], _lower_headers(request)
    ):
        raise _rejected(source, "bad_signature", "missing or invalid bearer token", 401)
    return await _accept(resources, source, normalize, await request.body())


class IngestController(Controller):
    path = "/v1/ingest"
    tags = ["ingest"]
    opt = {"exclude_from_auth": True}

    @post(
        "/{source_id:str}",
        status_code=200,
        summary="A provider's webhook (GoFood, ShopeeFood, custom POS; GrabFood Submit Order)",
        **documented(401, 403, 404, 409, 422, 503, authenticated=False, has_body=True),
    )
    async def provider_webhook(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> Acknowledged:
        resources = resources_of(request.app.state)
        source = await _source(resources, source_id, None)
        if source.provider in _NO_WEBHOOKS:
            raise ApiError(
                409,
                f"{source.provider} sources take no webhooks: {_NO_WEBHOOKS[source.provider]}",
                slug="conflict",
            )
        if source.provider == "grabfood":
            return await _grab_call(request, source_id, grabfood.normalize_submit_order)
        raw = await request.body()
        headers = _lower_headers(request)
        credentials = source.credentials
        normalize: Normalizer
        if source.provider == "gofood":
            if not provider_auth.gofood_signature_ok(
                credentials["notification_secret"], headers, raw
            ):
                raise _rejected(source, "bad_signature", "X-Go-Signature does not match", 401)
            normalize = gofood.normalize_gofood
        elif source.provider == "shopeefood":
            url = resources.settings.base_url() + request.url.path
            base = shopeefood.signature_base(url, raw)
            if not provider_auth.shopeefood_signature_ok(
                credentials["partner_key"], url, headers, raw, base
            ):
                raise _rejected(source, "bad_signature", "Authorization signature mismatch", 401)
            normalize = shopeefood.normalize_shopeefood
        else:  # custom_pos
            problem = provider_auth.custom_pos_signature_problem(
                credentials["secret"], headers, raw
            )
            if problem is not None:
                raise _rejected(source, "bad_signature", f"signature refused: {problem}", 401)
            webhook_id = headers["webhook-id"]

            def normalize(body: bytes) -> list[NormalizedEvent]:
                return custom_pos.normalize_custom_pos(body, webhook_id=webhook_id)

        return await _accept(resources, source, normalize, raw)

    @post(
        "/{source_id:str}/oauth/token",
        status_code=200,
        opt={"accepts_media": ("application/x-www-form-urlencoded",)},
        summary="GrabFood OAuth client-credentials token endpoint",
        responses={
            **problem_responses(413, 415, 422, 503),
            **{
                status: ResponseSpec(
                    data_container=OAuthError,
                    description=why,
                    generate_examples=False,
                )
                for status, why in (
                    (400, "RFC 6749 error: the grant type is not client_credentials"),
                    (401, "RFC 6749 error: unknown client, or wrong client credentials"),
                )
            },
        },
    )
    async def grab_token(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> Response[Any]:
        resources = resources_of(request.app.state)
        try:
            source = await _source(resources, source_id, "grabfood")
        except ApiError:
            # An unknown or disabled source is an unknown client to an OAuth client.
            return _oauth_error(401, "invalid_client", "client authentication failed")
        raw = await request.body()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fields: dict[str, str] = {}
        try:
            if media == "application/x-www-form-urlencoded":
                fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
            else:
                decoded = msgspec.json.decode(raw) if raw else {}
                if isinstance(decoded, dict):
                    fields = {str(k): str(v) for k, v in decoded.items()}
        except (UnicodeDecodeError, msgspec.DecodeError, RecursionError):
            # Unreadable (RecursionError: nested too deep to decode): no grant_type, so
            # RFC 6749's error answers it, before any credential is looked at.
            fields = {}
        if fields.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        if not provider_auth.grab_client_ok(
            source.credentials, fields.get("client_id", ""), fields.get("client_secret", "")
        ):
            INBOUND_REQUESTS.labels(provider="grabfood", outcome="bad_signature").inc()
            return _oauth_error(401, "invalid_client", "client authentication failed")
        token = provider_auth.issue_grab_token(source.id, source.credentials["client_secret"])
        return Response(
            GrabToken(
                access_token=token,
                token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
                expires_in=provider_auth.GRAB_TOKEN_TTL_S,
            ),
            headers={"Cache-Control": "no-store"},
        )

    @post(
        "/{source_id:str}/order",
        status_code=200,
        summary="GrabFood Submit Order",
        **_INGEST_PROBLEMS,
    )
    async def grab_submit_order(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> Acknowledged:
        return await _grab_call(request, source_id, grabfood.normalize_submit_order)

    @route(
        "/{source_id:str}/order/state",
        http_method=["PUT", "POST"],
        status_code=200,
        summary="GrabFood Push Order State",
        **_INGEST_PROBLEMS,
    )
    async def grab_order_state(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> Acknowledged:
        return await _grab_call(request, source_id, grabfood.normalize_order_state)

    @post(
        "/{source_id:str}/menu/sync-state",
        status_code=200,
        summary="GrabFood menu sync state",
        **_INGEST_PROBLEMS,
    )
    async def grab_menu_sync_state(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> Acknowledged:
        return await _grab_call(request, source_id, grabfood.normalize_menu_sync_state)

    @post(
        "/{source_id:str}/integration/status",
        status_code=200,
        summary="GrabFood Push Integration Status",
        **_INGEST_PROBLEMS,
    )
    async def grab_integration_status(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> Acknowledged:
        return await _grab_call(request, source_id, grabfood.normalize_integration_status)


def _oauth_error(status: int, error: OAuthErrorCode, description: str) -> Response[OAuthError]:
    """RFC 6749 section 5.2: a token endpoint's errors are this JSON object, which OAuth
    clients parse; a problem-details body would not be understood by them."""
    return Response(
        OAuthError(error=error, error_description=description),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
