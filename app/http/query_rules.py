"""Query strings are held to the document: a parameter the route does not declare, or
one given twice, is refused (422) rather than silently ignored or last-one-wins; and a
time parameter must be an RFC 3339 string, not a number read as a Unix timestamp."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg

from app.http.problems import ApiError, FieldError, FieldSource

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_DECLARED = "query_names"


def _query_names(handler: HTTPRouteHandler) -> frozenset[str]:
    names: set[str] = set()
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in RESERVED_KWARGS:
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.header or kwarg.cookie:
                continue
            # QueryParameter(name=...) renames without setting `query`.
            names.add(kwarg.query or getattr(kwarg, "name", None) or name)
        else:
            names.add(name)
    return frozenset(names)


def nul_refused(field: str, source: FieldSource) -> ApiError:
    # No stored text can hold NUL (PostgreSQL refuses it), so no id or filter has one.
    return ApiError(
        422,
        f"{field}: must not contain NUL",
        errors=[FieldError(field=field, message="must not contain NUL", source=source)],
    )


def refuse_unknown_query(request: Request[Any, Any, Any]) -> None:
    if "\x00" in request.scope["path"]:
        raise nul_refused("path", "path")
    if not request.scope.get("query_string"):
        return  # the common case costs one lookup
    handler = request.route_handler
    # Kept on the handler itself: a cache keyed by id() would hand a new app's handler the
    # names of a collected one that had the same id.
    declared = handler.opt.get(_DECLARED)
    if declared is None:
        declared = handler.opt[_DECLARED] = _query_names(handler)
    params = request.query_params
    for name, value in params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise nul_refused(name.replace("\x00", ""), "query")
    errors = [
        FieldError(field=name, message="not a parameter of this operation", source="query")
        for name in params
        if name not in declared or name in request.path_params
    ]
    errors += [
        FieldError(field=name, message="given more than once", source="query")
        for name in params
        if name in declared and len(params.getall(name)) > 1
    ]
    if errors:
        raise ApiError(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


def aware_time(
    request: Request[Any, Any, Any], name: str, value: datetime | None
) -> datetime | None:
    """A time query parameter as given: RFC 3339 with a time zone."""
    if value is None:
        return None
    raw = request.query_params.get(name, "")
    if not _RFC3339.match(raw) or value.tzinfo is None:
        raise ApiError(
            422,
            f"{name}: give an RFC 3339 time with a time zone, e.g. 2026-01-31T00:00:00Z",
            errors=[FieldError(field=name, message="not an RFC 3339 time", source="query")],
        )
    return value
