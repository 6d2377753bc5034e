"""`run`'s local mode accepts receivers on this machine; `serve`'s defaults refuse them."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from app.http.app import create_app
from app.local_run import LOCAL_MODE
from app.settings import load_settings

LOCAL_RECEIVERS = [
    "http://127.0.0.1:4000/webhooks",
    "http://localhost:4000/webhooks",
    "http://[::1]:4000/webhooks",
]


@pytest.mark.parametrize("url", LOCAL_RECEIVERS)
async def test_serve_defaults_refuse_a_local_receiver_naming_the_setting(
    gateway_env: dict[str, str], auth: dict[str, str], url: str
) -> None:
    https_url = url.replace("http://", "https://")
    async with AsyncTestClient(app=create_app(load_settings(gateway_env))) as client:
        refused = await client.post(
            "/v1/subscriptions", json={"url": https_url, "event_types": ["*"]}, headers=auth
        )
        plain = await client.post(
            "/v1/subscriptions",
            json={"url": "http://hooks.example.com/x", "event_types": ["*"]},
            headers=auth,
        )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "loopback" in refused.json()["detail"]
    assert "GATEWAY_SSRF_ALLOW_CIDRS" in refused.json()["detail"]
    assert plain.status_code == 422
    assert "GATEWAY_ALLOW_HTTP" in plain.json()["detail"]


@pytest.mark.parametrize("url", LOCAL_RECEIVERS)
async def test_local_mode_accepts_a_plain_http_loopback_receiver(
    gateway_env: dict[str, str], auth: dict[str, str], url: str
) -> None:
    settings = load_settings({**gateway_env, **LOCAL_MODE})
    async with AsyncTestClient(app=create_app(settings)) as client:
        created = await client.post(
            "/v1/subscriptions", json={"url": url, "event_types": ["*"]}, headers=auth
        )
    assert created.status_code == 201, created.text
    assert created.json()["url"] == url


async def test_local_mode_still_refuses_private_networks_and_metadata(
    gateway_env: dict[str, str], auth: dict[str, str]
) -> None:
    settings = load_settings({**gateway_env, **LOCAL_MODE})
    async with AsyncTestClient(app=create_app(settings)) as client:
        for url in ("http://10.0.0.5/hook", "http://169.254.169.254/latest"):
            refused = await client.post(
                "/v1/subscriptions", json={"url": url, "event_types": ["*"]}, headers=auth
            )
            assert refused.status_code == 422, url
    assert "GATEWAY_SSRF_ALLOW_CIDRS" not in refused.json()["detail"]  # no hint for metadata
