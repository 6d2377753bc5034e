"""Moka (polled from a local fake of its API) and Qasir (CSV import) sources end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.embedded_redis import free_port
from app.ingest.moka_poller import MokaApi, poll_all_moka_sources
from app.security.secret_box import SecretBox
from app.store.sources import load_ingest_source
from app.store.tables import events
from tests.conftest import TokenFactory
from tests.fixtures import PROVIDER_FIXTURES
from workers.queue import queue_connection

Client = AsyncTestClient[Litestar]
FIXTURES = PROVIDER_FIXTURES


class FakeMoka:
    """Speaks Moka's protocol: bearer-protected report pages and a refresh-token grant."""

    def __init__(self) -> None:
        self.valid_token = "fresh-access"
        self.status = 200
        self.refreshes = 0
        self.requests: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v3/outlets/{outlet}/reports/get_latest_transactions", self._report)
        app.router.add_post("/oauth/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _report(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if request.headers.get("Authorization") != f"Bearer {self.valid_token}":
            return web.json_response({"error": "invalid_token"}, status=401)
        if self.status != 200:
            return web.json_response({"error": "slow down"}, status=self.status)
        if request.query.get("page") == "2":
            return web.json_response(
                {"data": {"completed": True, "next_url": None, "payments": []}}
            )
        body = (FIXTURES / "moka_latest_transactions_page1.json").read_bytes()
        return web.Response(body=body, content_type="application/json")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != "refresh-1":
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.refreshes += 1
        return web.json_response(
            {"access_token": self.valid_token, "refresh_token": "refresh-2", "expires_in": 3600}
        )


@pytest.fixture
async def moka() -> AsyncIterator[FakeMoka]:
    fake = FakeMoka()
    await fake.start()
    yield fake
    await fake.stop()


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(events.c.payload).order_by(events.c.id))
        return [json.loads(r.payload) for r in rows]


async def test_moka_sales_are_polled_with_a_refreshed_token_and_never_twice(
    client: Client, auth: dict[str, str], engine: AsyncEngine, moka: FakeMoka, redis_url: str
) -> None:
    created = await client.post(
        "/v1/sources",
        json={
            "provider": "moka",
            "name": "Moka Senayan",
            "credentials": {
                "access_token": "expired-access",
                "refresh_token": "refresh-1",
                "outlet_id": "1001",
            },
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    assert created.json()["credentials"] == {}  # the tenant's tokens are never echoed
    source_id = created.json()["id"]
    queue = queue_connection(redis_url)
    api = MokaApi(base_url=moka.url, client_id="app", client_secret="app-secret")
    box = SecretBox(())
    try:
        assert await poll_all_moka_sources(engine, queue, api, box) == 1
        first = await stored(engine)
        assert [e["type"] for e in first] == ["sale.completed", "sale.refunded"]
        assert first[0]["source"]["method"] == "poll"
        assert first[0]["data"]["totals"]["total"] == {"amount": 6050000, "currency": "IDR"}
        assert moka.refreshes == 1
        assert any("page=2" in path for path in moka.requests)  # next_url followed
        async with engine.connect() as conn:
            source = await load_ingest_source(conn, source_id, box)
        assert source is not None
        assert source.credentials["access_token"] == "fresh-access"
        assert source.credentials["refresh_token"] == "refresh-2"
        assert "moka_since" in source.settings

        # The next window overlaps the same sales: nothing new is published.
        await poll_all_moka_sources(engine, queue, api, box)
        assert len(await stored(engine)) == 2
    finally:
        await queue.aclose()


async def test_moka_throttling_keeps_the_window_for_the_next_poll(
    client: Client, auth: dict[str, str], engine: AsyncEngine, moka: FakeMoka, redis_url: str
) -> None:
    created = await client.post(
        "/v1/sources",
        json={
            "provider": "moka",
            "name": "Moka Kemang",
            "credentials": {
                "access_token": "fresh-access",
                "refresh_token": "refresh-1",
                "outlet_id": "1001",
            },
        },
        headers=auth,
    )
    moka.status = 429
    queue = queue_connection(redis_url)
    box = SecretBox(())
    try:
        assert await poll_all_moka_sources(engine, queue, MokaApi(moka.url, None, None), box) == 0
        async with engine.connect() as conn:
            source = await load_ingest_source(conn, created.json()["id"], box)
        assert source is not None
        assert "moka_since" not in source.settings
        assert await stored(engine) == []
    finally:
        await queue.aclose()


async def test_moka_sources_need_their_tokens(client: Client, auth: dict[str, str]) -> None:
    missing = await client.post("/v1/sources", json={"provider": "moka", "name": "x"}, headers=auth)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "credentials"
    generated = await client.post(
        "/v1/sources",
        json={
            "provider": "gofood",
            "name": "x",
            "credentials": {"access_token": "a", "refresh_token": "b", "outlet_id": "c"},
        },
        headers=auth,
    )
    assert generated.status_code == 422


async def test_a_qasir_export_imports_once(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = (
        await client.post("/v1/sources", json={"provider": "qasir", "name": "Qasir"}, headers=auth)
    ).json()
    url = f"/v1/sources/{source['id']}/imports"
    assert source["endpoints"]["imports"].endswith(url)
    csv = (FIXTURES / "qasir_sales_export.csv").read_bytes()
    headers = {**auth, "content-type": "text/csv"}
    first = await client.post(url, content=csv, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["imported"] == 2
    sales = await stored(engine)
    assert [s["data"]["external_sale_id"] for s in sales] == ["QS-2025-0001", "QS-2025-0002"]
    assert sales[0]["data"]["totals"]["total"] == {"amount": 3850000, "currency": "IDR"}
    assert sales[0]["source"]["method"] == "csv"
    again = await client.post(url, content=csv, headers=headers)
    assert again.json() == {**again.json(), "imported": 0, "duplicates": 2}
    assert len(await stored(engine)) == 2


async def test_a_qasir_export_with_renamed_columns_uses_the_source_settings(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    csv = (FIXTURES / "qasir_sales_export.csv").read_text().replace("receipt_no", "No Struk")
    source = (
        await client.post(
            "/v1/sources",
            json={"provider": "qasir", "name": "Qasir", "settings": {"receipt_no": "No Struk"}},
            headers=auth,
        )
    ).json()
    response = await client.post(
        f"/v1/sources/{source['id']}/imports",
        content=csv.encode(),
        headers={**auth, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 2


async def test_bad_imports_are_refused_and_store_nothing(
    client: Client,
    auth: dict[str, str],
    engine: AsyncEngine,
    other_tenant_id: str,
    make_token: TokenFactory,
) -> None:
    qasir = (
        await client.post("/v1/sources", json={"provider": "qasir", "name": "Q"}, headers=auth)
    ).json()
    gofood = (
        await client.post("/v1/sources", json={"provider": "gofood", "name": "G"}, headers=auth)
    ).json()
    csv_headers = {**auth, "content-type": "text/csv"}
    url = f"/v1/sources/{qasir['id']}/imports"
    bad = await client.post(url, content=b"receipt_no,date\nX,2025-13-45\n", headers=csv_headers)
    assert bad.status_code == 422
    json_body = await client.post(
        url, content=b"{}", headers={**auth, "content-type": "text/plain"}
    )
    assert json_body.status_code == 415
    wrong_kind = await client.post(
        f"/v1/sources/{gofood['id']}/imports", content=b"a,b\n", headers=csv_headers
    )
    assert wrong_kind.status_code == 409
    other = {"Authorization": f"Bearer {make_token(other_tenant_id)}", "content-type": "text/csv"}
    csv = (FIXTURES / "qasir_sales_export.csv").read_bytes()
    assert (await client.post(url, content=csv, headers=other)).status_code == 404
    bad_settings = await client.post(
        "/v1/sources",
        json={"provider": "qasir", "name": "Q", "settings": {"colour": "red"}},
        headers=auth,
    )
    assert bad_settings.status_code == 422
    assert await stored(engine) == []
