"""Liveness and readiness: /healthz says the process runs, /readyz that SQL and Redis answer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import sqlalchemy as sa
from litestar import Request, Response, get

from app.http.openapi_docs import documented
from app.http.problems import problem_response
from app.http.resources import resources_of

logger = logging.getLogger(__name__)
_CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


@get(
    "/healthz",
    exclude_from_auth=True,
    tags=["operations"],
    summary="Liveness: the process runs",
    **documented(authenticated=False),
)
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    exclude_from_auth=True,
    tags=["operations"],
    summary="Readiness: SQL and Redis answer",
    **documented(503, authenticated=False, returns=(200, Readiness)),
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    resources = resources_of(request.app.state)

    async def sql() -> None:
        async with resources.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def redis() -> None:
        await resources.redis.ping()

    checks: dict[str, str] = {}
    for name, check in (("sql", sql), ("redis", redis)):
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT_S):
                await check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the class is enough to act on
            logger.warning(
                "readiness check failed", extra={"check": name, "error": type(exc).__name__}
            )
            checks[name] = "unavailable"
    if all(v == "ok" for v in checks.values()):
        return Response(Readiness(status="ready", checks=checks))
    down = ", ".join(k for k, v in checks.items() if v != "ok")
    return problem_response(request, 503, f"not ready: {down} unavailable")
