"""`listen`'s receiver: one line per delivery, saying whether its signature verified."""

from __future__ import annotations

import io
import json
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.delivery.signing import webhook_headers
from app.listen_command import Listener
from app.security.secret_box import new_webhook_secret


async def _post(listener: Listener, body: bytes, headers: dict[str, str]) -> int:
    app = web.Application()
    app.router.add_post("/webhooks", listener.handle)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post("/webhooks", data=body, headers=headers)
        return response.status


def _signed(secret: str, body: bytes) -> dict[str, str]:
    return webhook_headers(
        msg_id="evt_1", timestamp=int(time.time()), body=body, secrets=[secret], user_agent="t"
    )


async def test_a_delivery_signed_with_the_secret_is_printed_as_verified() -> None:
    secret = new_webhook_secret()
    out = io.StringIO()
    listener = Listener(gateway="http://127.0.0.1:1", token="t", events=["*"], out=out)
    listener.secret = secret
    body = json.dumps({"id": "evt_1", "type": "order.created"}).encode()
    assert await _post(listener, body, _signed(secret, body)) == 200
    line = out.getvalue()
    assert "order.created" in line
    assert "evt_1" in line
    assert "signature verified" in line


async def test_another_secret_or_a_changed_body_is_printed_as_not_verified() -> None:
    out = io.StringIO()
    listener = Listener(gateway="http://127.0.0.1:1", token="t", events=["*"], out=out)
    listener.secret = new_webhook_secret()
    body = json.dumps({"id": "evt_1", "type": "ping"}).encode()
    assert await _post(listener, body, _signed(new_webhook_secret(), body)) == 200
    assert "signature NOT verified: no signature matches" in out.getvalue()
