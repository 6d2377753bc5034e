"""`pwbi-gateway listen`: a webhook receiver on this machine, subscribed while it runs.

It is a client of the gateway like any partner: it registers a subscription through the
HTTP API with the caller's token, prints each delivery it receives with whether its
signature verified (with the secret the create response returned, checked by the same
code as `pwbi-gateway verify`), answers 200, and deletes the subscription when stopped.
It needs a gateway that accepts loopback, plain-http receivers: `pwbi-gateway run` does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
from aiohttp import web

from app.delivery.signing import SignatureMismatch, verify

LISTEN_HOST = "127.0.0.1"
RECEIVER_PATH = "/webhooks"


class ListenFailed(Exception):
    """The receiver could not be set up; the message says why (never the token)."""


@dataclass
class Listener:
    gateway: str
    token: str
    events: list[str]
    port: int = 0
    out: TextIO = sys.stdout
    secret: str = ""

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            verify(self.secret, headers, body)
            verdict = "signature verified"
        except SignatureMismatch as exc:
            verdict = f"signature NOT verified: {exc.reason}"
        event_type, event_id = _type_and_id(body, headers)
        stamp = time.strftime("%H:%M:%S")
        self._print(f"{stamp}  {event_type:<28} {event_id}  {verdict}")
        return web.Response(status=200, text="ok")

    async def run(self, stop: asyncio.Event) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, LISTEN_HOST, self.port)
            try:
                await site.start()
            except OSError as exc:
                raise ListenFailed(
                    f"cannot listen on {LISTEN_HOST}:{self.port}: {exc.strerror}"
                ) from None
            self.port = _bound_port(runner)
            url = f"http://{LISTEN_HOST}:{self.port}{RECEIVER_PATH}"
            async with httpx.AsyncClient(
                base_url=self.gateway,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            ) as api:
                subscription_id = await self._subscribe(api, url)
                try:
                    self._print(
                        f"listening on {url} for {', '.join(self.events)}\n"
                        f"subscription {subscription_id} (secret {self.secret})\n"
                        "each delivery is printed below; Ctrl-C deletes the subscription"
                    )
                    await stop.wait()
                finally:
                    await self._unsubscribe(api, subscription_id)
        finally:
            await runner.cleanup()

    async def _subscribe(self, api: httpx.AsyncClient, url: str) -> str:
        body = {"url": url, "event_types": self.events, "description": "pwbi-gateway listen"}
        try:
            response = await api.post("/v1/subscriptions", json=body)
        except httpx.HTTPError as exc:
            raise ListenFailed(
                f"cannot reach the gateway at {self.gateway} ({type(exc).__name__}); "
                "is it running (`make run`)? --gateway sets its URL"
            ) from None
        if response.status_code != 201:
            raise ListenFailed(
                f"the gateway refused the subscription ({response.status_code}): "
                f"{_problem_detail(response)}"
            )
        created: dict[str, Any] = response.json()
        self.secret = str(created["secret"])
        return str(created["id"])

    async def _unsubscribe(self, api: httpx.AsyncClient, subscription_id: str) -> None:
        try:
            response = await api.delete(f"/v1/subscriptions/{subscription_id}")
        except httpx.HTTPError as exc:
            self._print(
                f"could not delete subscription {subscription_id} ({type(exc).__name__}); "
                "delete it with DELETE /v1/subscriptions/{id}"
            )
            return
        if response.status_code in (204, 404):
            self._print(f"deleted subscription {subscription_id}")
        else:
            self._print(
                f"could not delete subscription {subscription_id} ({response.status_code}): "
                f"{_problem_detail(response)}"
            )


def _type_and_id(body: bytes, headers: dict[str, str]) -> tuple[str, str]:
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        return "(not a JSON object)", headers.get("webhook-id", "-")
    return str(envelope.get("type", "?")), str(envelope.get("id", headers.get("webhook-id", "-")))


def _problem_detail(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(problem, dict) and "detail" in problem:
        return str(problem["detail"])
    return response.text[:200]


def _bound_port(runner: web.AppRunner) -> int:
    server = runner.addresses[0]
    return int(server[1])


async def _listen(listener: Listener) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await listener.run(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run_listen(*, gateway: str, token: str, events: list[str], port: int) -> None:
    """Block until SIGINT or SIGTERM; raise ListenFailed when it cannot start."""
    asyncio.run(
        _listen(Listener(gateway=gateway.rstrip("/"), token=token, events=events, port=port))
    )
