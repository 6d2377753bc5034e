"""Moka POS has no webhooks: poll its latest-transactions report for each Moka source.

Each poll asks for sales since the source's saved cursor, follows `next_url` until the report
says `completed`, files the sales (dedupe makes an overlapping window harmless), and only
then moves the cursor. An expired access token is refreshed once with the refresh token;
429 and 5xx end this poll early and the next one retries the same window.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urljoin

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.fanout import enqueue_published
from app.ingest.filing import file_events
from app.metrics import INBOUND_REQUESTS
from app.security.secret_box import SecretBox
from app.store.sources import IngestSource, load_ingest_source, polled_source_ids, save_poll_state
from contracts.providers.base import PayloadRejected
from contracts.providers.moka import parse_moka_page

logger = logging.getLogger(__name__)

MAX_PAGES = 50
PER_PAGE = 100
FIRST_WINDOW = timedelta(days=1)


class MokaUnavailable(Exception):
    """Moka answered 429/5xx or could not be reached: try the same window next time."""


@dataclass(frozen=True)
class MokaApi:
    base_url: str
    client_id: str | None
    client_secret: str | None


@dataclass
class PollResult:
    pages: int = 0
    accepted: int = 0
    duplicates: int = 0
    completed: bool = False


async def _refresh(
    client: httpx.AsyncClient, api: MokaApi, credentials: dict[str, str]
) -> dict[str, str]:
    response = await client.post(
        urljoin(api.base_url, "/oauth/token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": credentials["refresh_token"],
            "client_id": api.client_id or "",
            "client_secret": api.client_secret or "",
        },
    )
    if response.status_code != 200:
        raise MokaUnavailable(f"token refresh answered {response.status_code}")
    tokens = response.json()
    return {
        **credentials,
        "access_token": str(tokens["access_token"]),
        "refresh_token": str(tokens.get("refresh_token") or credentials["refresh_token"]),
    }


async def poll_source(
    engine: AsyncEngine,
    queue: ArqRedis,
    client: httpx.AsyncClient,
    api: MokaApi,
    source: IngestSource,
    box: SecretBox,
) -> PollResult:
    result = PollResult()
    credentials = dict(source.credentials)
    now = int(time.time())
    since = int(source.settings.get("moka_since") or now - FIRST_WINDOW.total_seconds())
    outlet = credentials["outlet_id"]
    url = urljoin(
        api.base_url,
        f"/v3/outlets/{outlet}/reports/get_latest_transactions"
        f"?since={since}&until={now}&per_page={PER_PAGE}",
    )
    refreshed = False
    while result.pages < MAX_PAGES:
        response = await client.get(
            url, headers={"Authorization": f"Bearer {credentials['access_token']}"}
        )
        if response.status_code == 401 and not refreshed:
            credentials = await _refresh(client, api, credentials)
            refreshed = True
            async with engine.begin() as conn:
                await save_poll_state(conn, source.id, box=box, credentials=credentials)
            continue
        if response.status_code != 200:
            raise MokaUnavailable(f"report answered {response.status_code}")
        try:
            page = parse_moka_page(response.content, outlet_id=outlet)
        except PayloadRejected as exc:
            INBOUND_REQUESTS.labels(provider="moka", outcome="unparseable").inc()
            raise MokaUnavailable(f"report not understood: {exc}") from None
        result.pages += 1
        filed = await file_events(engine, source, page.events, method="poll")
        for published in filed.published:
            await enqueue_published(queue, published)
        result.accepted += len(filed.published)
        result.duplicates += len(filed.duplicate_ids)
        if page.completed or not page.next_url:
            result.completed = True
            break
        url = urljoin(api.base_url, page.next_url)
        if not url.startswith(api.base_url.rstrip("/") + "/"):
            # next_url comes from the response: never let it point our token elsewhere.
            raise MokaUnavailable("next_url leaves the Moka API")
    if result.accepted:
        INBOUND_REQUESTS.labels(provider="moka", outcome="accepted").inc(result.accepted)
    if result.duplicates:
        INBOUND_REQUESTS.labels(provider="moka", outcome="duplicate").inc(result.duplicates)
    if result.completed:
        async with engine.begin() as conn:
            await save_poll_state(
                conn, source.id, box=box, settings={**source.settings, "moka_since": now}
            )
    return result


async def poll_all_moka_sources(
    engine: AsyncEngine, queue: ArqRedis, api: MokaApi, box: SecretBox
) -> int:
    """One poll of every enabled Moka source; a failing one does not stop the others."""
    async with engine.connect() as conn:
        source_ids = await polled_source_ids(conn, "moka")
    polled = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0)) as client:
        for source_id in source_ids:
            async with engine.connect() as conn:
                source = await load_ingest_source(conn, source_id, box)
            if source is None:
                continue
            try:
                await poll_source(engine, queue, client, api, source, box)
                polled += 1
            except (MokaUnavailable, httpx.HTTPError) as exc:
                logger.warning(
                    "moka poll deferred",
                    extra={
                        "source_id": source_id,
                        "error": type(exc).__name__,
                    },
                )
    return polled
