"""HTTP request metrics: every response the API sends, counted with the status it sent."""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import REQUEST_DURATION, REQUEST_ERRORS, REQUESTS, REQUESTS_IN_PROGRESS

APP_NAME = "pwbi-gateway"
# Requests that match no route have no template; their raw paths must not become labels.
UNMATCHED_PATH = "<unmatched>"
_SERVER_ERROR = 500
_NOT_COUNTED_METHODS = frozenset({"OPTIONS"})


class RequestMetrics:
    """Outer ASGI layer around Litestar's whole handler (inside the request-id layer).

    Counting here rather than in a route middleware is what makes the status true: errors
    raised by authentication (401, 403) or by another middleware become responses in
    Litestar's outermost exception handler, which a route middleware never sees, so it
    counted them as 200. A request whose response never started (an error escaping even
    that handler) counts as 500, as the server answers it. Paths are the route templates,
    never the raw path (ids would make a series per resource).

    The labelled children are looked up once per (method, path, status): building them per
    request was a measurable share of the publish path.
    """

    def __init__(self, app: ASGIApp, *, excluded_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self._excluded = excluded_prefixes
        self._finished: dict[tuple[str, str, int], tuple[Any, Any, Any | None]] = {}

    def _finished_children(self, method: str, path: str, status: int) -> tuple[Any, Any, Any]:
        key = (method, path, status)
        children = self._finished.get(key)
        if children is None:
            values = (method, path, str(status), APP_NAME)
            errors = REQUEST_ERRORS.labels(*values) if status >= _SERVER_ERROR else None
            children = (REQUESTS.labels(*values), REQUEST_DURATION.labels(*values), errors)
            self._finished[key] = children
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        raw_path: str = scope["path"]
        if method in _NOT_COUNTED_METHODS or raw_path.startswith(self._excluded):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = _SERVER_ERROR
        duration: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                duration = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # The router puts the route's template on the scope before it dispatches.
            path = scope.get("path_template") or UNMATCHED_PATH
            count, timing, errors = self._finished_children(method, path, status)
            if errors is not None:
                errors.inc()
            count.inc()
            timing.observe(time.perf_counter() - started if duration is None else duration)


class RequestsInProgress:
    """Route middleware (the outermost one) keeping gateway_requests_in_progress.

    A route middleware because the gauge is labelled by route template, which the outer
    layer only learns after routing; being outside authentication, it sees every request
    of the route, and it holds no status label: an unfinished request has none.
    """

    def __init__(self, app: ASGIApp, *, excluded_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self._excluded = excluded_prefixes
        self._children: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["method"] in _NOT_COUNTED_METHODS
            or scope["path"].startswith(self._excluded)
        ):
            await self.app(scope, receive, send)
            return
        key = (scope["method"], scope["path_template"])
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = REQUESTS_IN_PROGRESS.labels(*key, APP_NAME)
        child.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            child.dec()
