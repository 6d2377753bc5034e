"""The Litestar application factory: routes, auth, errors, metrics, OpenAPI, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Controller, Litestar, Request, Response, get
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from app import __version__
from app.delivery.publisher import EventPublisher
from app.http.allow_header import complete_allow_headers
from app.http.api_docs import api_reference_assets, api_reference_plugin
from app.http.auth import BearerAuthMiddleware
from app.http.deliveries import DeliveryController
from app.http.events import EventController
from app.http.health import healthz, readyz
from app.http.imports import ImportController
from app.http.ingest import IngestController
from app.http.openapi_docs import make_exact
from app.http.problems import EXCEPTION_HANDLERS
from app.http.request_context import RequestContext, check_request
from app.http.request_metrics import RequestMetrics, RequestsInProgress
from app.http.resources import Resources
from app.http.sources import SourceController
from app.http.subscriptions import SubscriptionController
from app.http.tenant_cache import TenantCache
from app.metrics import GATEWAY_REGISTRY, exposition
from app.security.jwt_auth import KeyConfig, KeyRing, TokenVerifier
from app.security.secret_box import SecretBox
from app.security.ssrf import AddressPolicy
from app.settings import Settings, SettingsError, load_settings
from app.store.engine import create_engine
from workers.queue import queue_connection

logger = logging.getLogger(__name__)

UNAUTHENTICATED_PATHS = ["^/healthz$", "^/readyz$", "^/metrics", "^/schema", "^/v1/ingest/"]


# Scrapes are not requests of the API: counting them would only measure Prometheus.
_NOT_MEASURED = ("/metrics",)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get()
    async def get(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        # Negotiated like the worker's metrics port: the same Accept, the same format.
        body, headers = exposition(
            GATEWAY_REGISTRY,
            request.headers.get("accept"),
            request.headers.get("accept-encoding"),
        )
        return Response(body, headers=headers)


def build_resources(settings: Settings) -> Resources:
    if settings.redis_url is None:
        raise SettingsError("GATEWAY_REDIS_URL: required to serve (`run` starts one for you)")
    try:
        keyring = KeyRing.load(
            KeyConfig(
                hs256_secrets=settings.jwt_secrets,
                public_key_files=settings.jwt_public_keys,
                jwks_url=settings.jwt_jwks_url,
            )
        )
    except ValueError as exc:
        raise SettingsError(
            f"GATEWAY_JWT_SECRETS / GATEWAY_JWT_PUBLIC_KEYS / GATEWAY_JWT_JWKS_URL: {exc}"
        ) from None
    engine = create_engine(settings.database_url)
    redis = queue_connection(settings.redis_url)
    return Resources(
        settings=settings,
        engine=engine,
        redis=redis,
        verifier=TokenVerifier(keyring, issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        keyring=keyring,
        secret_box=SecretBox(settings.secret_key),
        address_policy=AddressPolicy(allow_cidrs=settings.ssrf_allow_cidrs),
        tenants=TenantCache(settings.tenant_cache_s),
        publisher=EventPublisher(engine, redis),
    )


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    # Build (and so validate) everything before serving; a bad key file stops start-up here.
    resources = build_resources(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.publisher.aclose()
            await resources.redis.aclose()
            await resources.keyring.aclose()
            await resources.engine.dispose()

    config = AppConfig(
        route_handlers=[
            healthz,
            readyz,
            MetricsController,
            SubscriptionController,
            EventController,
            DeliveryController,
            SourceController,
            IngestController,
            ImportController,
            api_reference_assets(),
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(RequestsInProgress, excluded_prefixes=_NOT_MEASURED),
            DefineMiddleware(BearerAuthMiddleware, exclude=UNAUTHENTICATED_PATHS),
        ],
        before_request=check_request,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="pwbi-gateway",
            version=__version__,
            description="Canonical F&B events in, signed webhooks out.",
            path="/schema",
            render_plugins=[api_reference_plugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
        ),
        debug=False,
    )
    app = Litestar.from_config(config)
    make_exact(app.openapi_schema)
    complete_allow_headers(app)
    app.asgi_handler = RequestContext(
        RequestMetrics(app.asgi_handler, excluded_prefixes=_NOT_MEASURED)
    )
    return app
