"""RFC 9457 problem details for every 4xx/5xx, mapped from exceptions in one place."""

from __future__ import annotations

import logging
import re
from enum import Enum
from http import HTTPStatus
from typing import Any, Literal, get_args

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import InterfaceError, OperationalError

from app.log_config import request_id_var

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://docs.pwbi.id/gateway/problems/"

logger = logging.getLogger(__name__)


# Where the offending value was: a query, header or path parameter, or the request body.
FieldSource = Literal["query", "header", "path", "cookie", "body"]


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):
    field: str
    message: str
    source: FieldSource | None = None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ApiError(Exception):
    """Raised by handlers and services; becomes one problem-details response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = errors
        self.headers = headers or {}


def not_found(kind: str) -> ApiError:
    # Same answer for "missing" and "another tenant's": existence is never revealed.
    return ApiError(404, f"{kind} not found", slug="not-found")


def invalid_field(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f"{field}: {message}",
        slug="validation-error",
        errors=[FieldError(field=field, message=message, source="body")],
    )


_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "not-ready",
}


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = Problem(
        type=TYPE_BASE + (slug or _SLUGS.get(status, "error")),
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_var.get(),
        errors=errors or None,
    )
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Problem]:
    return problem_response(
        request, exc.status, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers
    )


_SOURCES: dict[str, FieldSource] = {s: s for s in get_args(FieldSource)}
_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`")


def _field_error(item: dict[str, Any]) -> FieldError:
    """Turn msgspec's "Expected `int`, got `str` - at `$.timeout_s`" into field + message."""
    key = str(item.get("key") or "body")
    message = str(item.get("message", "invalid value"))
    raw_source = item.get("source")
    # The framework names sources with an enum whose str() is "ParamType.QUERY".
    source = _SOURCES.get(raw_source.value if isinstance(raw_source, Enum) else str(raw_source))
    if key == "data":
        key = "body"
        if match := _AT_PATH.match(message):
            message = match["message"]
            key = match["path"].lstrip(".") or "body"
        if match := _UNKNOWN_FIELD.match(message):
            key = (key + "." if key != "body" else "") + match["field"]
            message = "unknown field"
        elif message.startswith("Object missing required field"):
            missing = message.split("`")[1] if "`" in message else ""
            key = (key + "." if key != "body" else "") + missing
            message = "required field is missing"
    return FieldError(field=key, message=message, source=source)


def _validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Problem]:
    items = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field_error(item) for item in items if isinstance(item, dict)]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or exc.detail
    return problem_response(request, 422, detail, errors=errors)


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    detail = exc.detail
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        # An unparsable body is an invalid body in our contract (api.md: 422).
        return problem_response(request, 422, f"request body is not valid JSON: {detail}")
    if status == 413:
        detail = "request body is larger than the gateway accepts"
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="pwbi-gateway"')
    if status >= 500:
        detail = "internal error"
    return problem_response(request, status, detail, headers=headers)


def _store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Nothing was accepted: the transaction did not commit. Safe for the client to retry.
    logger.warning("store unavailable", extra={"error": type(exc).__name__})
    return problem_response(
        request, 503, "the store is unavailable; nothing was accepted", headers={"Retry-After": "5"}
    )


NESTED_TOO_DEEPLY = "its JSON nests deeper than the gateway reads"


def is_decoding_recursion(exc: BaseException) -> bool:
    """Whether a RecursionError came from decoding JSON (msgspec or the json module).

    Decoders recurse once per nesting level, so a body of a few hundred brackets exhausts
    the interpreter's limit before any type check can refuse it; msgspec does not report
    that as a DecodeError.
    """
    message = str(exc)
    return isinstance(exc, RecursionError) and ("deserializ" in message or "decoding" in message)


def _recursion(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    if is_decoding_recursion(exc):
        return problem_response(request, 422, f"request body refused: {NESTED_TOO_DEEPLY}")
    return _unexpected(request, exc)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(request, 500, "internal error; the request id identifies it in logs")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    ValidationException: _validation_error,
    HTTPException: _http_exception,
    OperationalError: _store_unavailable,
    InterfaceError: _store_unavailable,
    ConnectionError: _store_unavailable,
    # The same failures on the driver's own connections (app.store.driver_sql).
    asyncpg.InterfaceError: _store_unavailable,
    asyncpg.PostgresConnectionError: _store_unavailable,
    # Wherever a body is decoded (Litestar's data parameters, the publish decoder, provider
    # adapters), too deep a nesting is the client's invalid body, not a server fault.
    RecursionError: _recursion,
    Exception: _unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "ApiError", "FieldError", "Problem"]
