"""Partner API for sources: the provider connections whose events flow in."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.http.auth import principal_of, requires_scope
from app.http.openapi_docs import documented
from app.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, next_cursor
from app.http.problems import ApiError, invalid_field, not_found
from app.http.resources import resources_of
from app.ingest.credentials import new_credentials
from app.store import sources as store
from contracts.api import Source, SourceCreate, SourceList, SourceUpdate, SourceWithCredentials
from contracts.providers.qasir import columns_from_settings

SourceId = Annotated[str, PathParameter(description="Source id (src_...)", max_length=40)]


class SourceController(Controller):
    path = "/v1/sources"
    tags = ["sources"]

    @post(
        "/",
        status_code=201,
        opt=requires_scope("sources:write"),
        summary="Connect a provider",
        **documented(403, 422, has_body=True),
        description="Returns ingest_url, the endpoints to configure at the provider, and the "
        "credentials it must use; credentials are shown only here and on rotation.",
    )
    async def create_source(
        self, request: Request[Any, Any, Any], data: JSONBody[SourceCreate]
    ) -> SourceWithCredentials:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        shown: dict[str, str]
        if data.provider == "moka":
            if data.credentials is None:
                raise invalid_field(
                    "credentials", "moka needs access_token, refresh_token, outlet_id"
                )
            credentials = msgspec.structs.asdict(data.credentials)
            shown = {}  # the tenant's own tokens are never echoed back
        else:
            if data.credentials is not None:
                raise invalid_field("credentials", f"{data.provider} credentials are generated")
            credentials = shown = new_credentials(data.provider)
        settings = data.settings or {}
        if data.provider == "qasir":
            try:
                columns_from_settings(settings)
            except ValueError as exc:
                raise invalid_field("settings", str(exc)) from None
        elif settings:
            raise invalid_field("settings", f"{data.provider} takes no settings")
        async with resources.engine.begin() as conn:
            created = await store.create_source(
                conn,
                tenant_id=principal.tenant_id,
                provider=data.provider,
                name=data.name,
                external_store_id=data.external_store_id,
                credentials=credentials,
                settings=settings,
                box=resources.secret_box,
                actor=principal.actor,
                base_url=resources.settings.base_url(),
            )
        return SourceWithCredentials(**msgspec.structs.asdict(created), credentials=shown)

    @get(
        "/",
        opt=requires_scope("sources:read"),
        summary="List sources",
        **documented(403, 422),
    )
    async def list_sources(
        self,
        request: Request[Any, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> SourceList:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            rows = await store.list_sources(
                conn,
                principal_of(request).tenant_id,
                limit=limit,
                before_id=decode_cursor(cursor, "src"),
                base_url=resources.settings.base_url(),
            )
        return SourceList(data=rows, next_cursor=next_cursor([r.id for r in rows], limit))

    @get(
        "/{source_id:str}",
        opt=requires_scope("sources:read"),
        summary="Read a source",
        **documented(403, 404, 422),
    )
    async def get_source(self, request: Request[Any, Any, Any], source_id: SourceId) -> Source:
        resources = resources_of(request.app.state)
        async with resources.engine.connect() as conn:
            found = await store.get_source(
                conn, principal_of(request).tenant_id, source_id, resources.settings.base_url()
            )
        if found is None:
            raise not_found("source")
        return found

    @patch(
        "/{source_id:str}",
        opt=requires_scope("sources:write"),
        summary="Change a source",
        **documented(403, 404, 422, has_body=True),
    )
    async def update_source(
        self, request: Request[Any, Any, Any], source_id: SourceId, data: JSONBody[SourceUpdate]
    ) -> Source:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        async with resources.engine.begin() as conn:
            updated = await store.update_source(
                conn,
                tenant_id=principal.tenant_id,
                source_id=source_id,
                changes=changes,
                actor=principal.actor,
                base_url=resources.settings.base_url(),
            )
        if updated is None:
            raise not_found("source")
        return updated

    @delete(
        "/{source_id:str}",
        status_code=204,
        opt=requires_scope("sources:write"),
        summary="Disconnect a source (its ingest URL answers 404 from then on)",
        **documented(403, 404, 422),
    )
    async def delete_source(self, request: Request[Any, Any, Any], source_id: SourceId) -> None:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        async with resources.engine.begin() as conn:
            deleted = await store.delete_source(
                conn, tenant_id=principal.tenant_id, source_id=source_id, actor=principal.actor
            )
        if not deleted:
            raise not_found("source")

    @post(
        "/{source_id:str}/rotate-credentials",
        status_code=200,
        opt=requires_scope("sources:write"),
        summary="Replace the provider credentials (the old ones stop working at once)",
        **documented(403, 404, 409, 422, has_body=True),
    )
    async def rotate_credentials(
        self, request: Request[Any, Any, Any], source_id: SourceId
    ) -> SourceWithCredentials:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        base_url = resources.settings.base_url()
        async with resources.engine.begin() as conn:
            found = await store.get_source(conn, principal.tenant_id, source_id, base_url)
            if found is None:
                raise not_found("source")
            if found.provider in ("moka", "qasir"):
                raise ApiError(409, f"{found.provider} sources have no gateway-issued credentials")
            credentials = new_credentials(found.provider)
            await store.replace_credentials(
                conn,
                tenant_id=principal.tenant_id,
                source_id=source_id,
                credentials=credentials,
                box=resources.secret_box,
                actor=principal.actor,
            )
        return SourceWithCredentials(**msgspec.structs.asdict(found), credentials=credentials)
