"""The OpenAPI document is the contract: schemathesis drives every operation of it against
a live gateway on loopback, with valid and hostile data, and every answer must be what
the document says (never a 5xx, the documented status, media type and schema, and data
the document forbids refused)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TokenFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Bounds the whole run to about a minute per SQL backend (~40 operations, two modes).
EXAMPLES_PER_OPERATION = int(os.environ.get("GATEWAY_CONTRACT_EXAMPLES", "25"))
TIME_BUDGET_S = 60.0

# Behaviour fixed elsewhere that this run must not hide, named so it is easy to drop.
KNOWN: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_name_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated receiver URLs name random hosts: answer "no such host" for every name
    instead of asking the machine's resolver (addresses given as numbers still work)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "not resolved in tests") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def live_gateway(app: Litestar, no_name_lookups: None) -> Iterator[str]:
    """The app under uvicorn on its own loop and thread: real HTTP, real framing."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _seed(base_url: str, headers: dict[str, str]) -> dict[str, list[str]]:
    """Real resources of the tenant, so that valid requests reach past "not found"."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
        sources = [
            http.post("/v1/sources", json={"provider": p, "name": p}).json()["id"]
            for p in ("grabfood", "gofood", "shopeefood", "custom_pos")
        ]
        subscription = http.post(
            "/v1/subscriptions",
            json={"url": "https://93.184.216.34/hook", "event_types": ["*"]},
        ).json()["id"]
        event = http.post("/v1/events", json={"type": "ping", "data": {"message": "seed"}})
        event_id = event.json()["id"]
        delivery = http.get("/v1/deliveries", params={"event_id": event_id}).json()["data"]
    return {
        "source_id": sources,
        "subscription_id": [subscription],
        "event_id": [event_id],
        "delivery_id": [d["id"] for d in delivery],
    }


def _findings_for(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    seeded: dict[str, list[str]],
) -> tuple[int, list[str]]:
    findings: list[str] = []
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode), pick=st.integers(0, 3))
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=os.environ.get("GATEWAY_CONTRACT_RANDOM") is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, pick: int) -> None:
        nonlocal calls
        calls += 1
        # Valid requests aim at a real resource three times in four; invalid ones keep
        # what was generated, since the id may be the part made invalid.
        if mode is GenerationMode.POSITIVE and pick and case.path_parameters:
            for name in case.path_parameters:
                if seeded.get(name):
                    case.path_parameters[name] = seeded[name][pick % len(seeded[name])]
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=10)
        except BaseExceptionGroup as exc:  # every check failure is a finding: collect them all
            findings.append(f"{operation.label} [{mode.value}]: {exc}")

    # Nothing to negate: an operation without parameters or body has no invalid input.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
    return calls, findings


def test_every_operation_answers_as_the_document_says(
    live_gateway: str, tenant_id: str, make_token: TokenFactory
) -> None:
    schema = schemathesis.openapi.from_url(f"{live_gateway}/schema/openapi.json")
    headers = {"Authorization": f"Bearer {make_token(tenant_id)}"}
    seeded = _seed(live_gateway, headers)
    findings: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            pytest.fail(f"an operation of the document cannot be read: {result.err()}")
        operations.append(result.ok())
    assert len(operations) >= 35, "every route of the API must be in the document"
    started = time.monotonic()
    calls = 0
    for operation in operations:
        if operation.label in KNOWN:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            made, found = _findings_for(operation, mode, live_gateway, headers, seeded)
            calls += made
            findings += found
    elapsed = time.monotonic() - started
    assert calls >= len(operations) * EXAMPLES_PER_OPERATION, f"only {calls} requests were made"
    assert not findings, f"{len(findings)} findings:\n" + "\n\n".join(findings[:30])
    assert elapsed < TIME_BUDGET_S * 2, f"the contract run took {elapsed:.0f} s"
