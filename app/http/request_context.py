"""Per-request id, access log line, and the JSON content-type rule for bodies."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.http.problems import ApiError
from app.http.query_rules import nul_refused, refuse_unknown_query
from app.ids import new_ulid
from app.log_config import request_id_var

logger = logging.getLogger("gateway.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A JSON string escape of U+0000 that is not itself an escaped backslash: no stored text can
# hold NUL (PostgreSQL refuses it), so a body with one is refused before anything is stored.
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class RequestContext:
    """Outermost ASGI layer: a request id on every response and one log line per request.

    It wraps Litestar's whole handler (not a route middleware) so that 404s from routing
    and 401s from authentication carry the id and are logged like everything else.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else new_ulid()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Appended as is: nothing else sets this header, and Litestar's header
                # wrapper cost more than the rest of this layer.
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path may hold ids (fine in logs, never metric labels); the query string and
            # headers are left out: they are where tokens would be.
            logger.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


async def check_request(request: Request[Any, Any, Any]) -> None:
    """before_request hook: the query string, then the body's media type."""
    refuse_unknown_query(request)
    await require_json_body(request)


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """before_request hook: a request that carries a body must say it is JSON (else 415),
    unless its route lists the media type in `opt["accepts_media"]`.

    Async although it awaits nothing: Litestar runs a sync hook in its thread pool."""
    if request.method not in _BODY_METHODS:
        return
    length = request.headers.get("content-length")
    has_body = (length is not None and length != "0") or "transfer-encoding" in request.headers
    if not has_body:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in request.route_handler.opt.get("accepts_media", ()):
        return  # e.g. an OAuth token endpoint (forms) or a CSV import
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(
            415,
            "request body must be application/json"
            + (f", not {media_type}" if media_type else " (no content-type given)"),
        )
    body = await request.body()
    if b"\\u0000" in body and _ESCAPED_NUL.search(body):
        raise nul_refused(_nul_path(body), "body")


def _nul_path(body: bytes) -> str:
    """The dotted path of the first key or string holding NUL ("body" if it cannot be told)."""
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return "body"
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return path or "body"
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                if "\x00" in key:
                    return child.replace("\x00", "")
                pending.append((child, item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return "body"
