"""CSV imports for sources that only export files (Qasir): sales become sale.completed."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.params import PathParameter

from app.delivery.fanout import enqueue_published
from app.http.auth import principal_of, requires_scope
from app.http.openapi_docs import documented
from app.http.problems import ApiError, not_found
from app.http.resources import resources_of
from app.ingest.filing import file_events
from app.metrics import INBOUND_REQUESTS
from app.store.sources import load_ingest_source
from contracts.providers.base import PayloadRejected
from contracts.providers.qasir import columns_from_settings, normalize_qasir_csv


class ImportResult(msgspec.Struct, kw_only=True):
    imported: int
    duplicates: int
    events: list[str]


class ImportController(Controller):
    path = "/v1/sources"
    tags = ["sources"]

    @post(
        "/{source_id:str}/imports",
        status_code=200,
        opt={**requires_scope("sources:write"), "accepts_media": ("text/csv",)},
        summary="Import a sales export (CSV) into sale.completed events",
        **documented(403, 404, 409, 422, has_body=True),
        description="Re-importing the same file creates no duplicates. Body: the CSV file, "
        "content-type text/csv; columns as configured in the source's settings.",
    )
    async def import_file(
        self,
        request: Request[Any, Any, Any],
        source_id: Annotated[str, PathParameter(max_length=40)],
    ) -> ImportResult:
        resources = resources_of(request.app.state)
        principal = principal_of(request)
        async with resources.engine.connect() as conn:
            source = await load_ingest_source(conn, source_id, resources.secret_box)
        if source is None or source.tenant_id != principal.tenant_id:
            raise not_found("source")
        if source.provider != "qasir":
            raise ApiError(409, f"{source.provider} sources do not take file imports")
        try:
            columns = columns_from_settings(source.settings)
        except ValueError as exc:
            raise ApiError(409, f"the source's settings are unusable: {exc}") from None
        try:
            events = normalize_qasir_csv(await request.body(), columns=columns)
        except PayloadRejected as exc:
            INBOUND_REQUESTS.labels(provider="qasir", outcome="unparseable").inc()
            raise ApiError(422, f"file not understood: {exc}") from None
        filed = await file_events(resources.engine, source, events, method="csv")
        for published in filed.published:
            await enqueue_published(resources.redis, published)
        INBOUND_REQUESTS.labels(provider="qasir", outcome="accepted").inc(len(filed.published))
        return ImportResult(
            imported=len(filed.published),
            duplicates=len(filed.duplicate_ids),
            events=[p.event_id for p in filed.published],
        )
