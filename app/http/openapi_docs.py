"""What each operation documents beyond its success: the problem responses it can send and
whether it takes the bearer token. One helper, so every route says it the same way."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import msgspec
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from app.http.problems import PROBLEM_JSON, FieldError, Problem
from contracts import api
from contracts.canonical import PublishEvent

_REF = "#/components/schemas/{name}"

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

# Why each status is sent, for the response's description in the document.
_WHY = {
    400: "The request is malformed",
    401: "Missing, malformed or rejected credentials",
    403: "The token lacks the scope, or the resource is disabled",
    404: "No such resource for this tenant",
    409: "The resource's state does not allow this",
    413: "The request body is larger than the gateway accepts",
    415: "The request body is not of a media type this route takes",
    422: "A parameter or the body is invalid; errors[] names each field",
    503: "The store is unavailable; nothing was accepted, retry after Retry-After",
}


@dataclass
class ContractOperation(Operation):
    """Drops the framework's generic 400 schema: its validation errors are answered as a
    422 problem (app.http.problems), so that 400 is never sent in that shape."""

    def __post_init__(self) -> None:
        generic = self.responses.get("400") if self.responses else None
        content = getattr(generic, "content", None) or {}
        if self.responses is not None and "application/json" in content:
            del self.responses["400"]


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_WHY.get(status, HTTPStatus(status).phrase),
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in sorted(set(statuses))
    }


def documented(
    *statuses: int,
    authenticated: bool = True,
    has_body: bool = False,
    returns: tuple[int, type[Any]] | None = None,
) -> dict[str, Any]:
    """Route decorator keywords: the problems the operation can answer with.

    Every authenticated route can answer 401 and 503 (the tenant lookup), every POST,
    PUT and PATCH 413 and 415 (size and media type are checked before the handler);
    callers add what their handler raises."""
    extra = {401, 503} if authenticated else set()
    if has_body:
        extra |= {413, 415}
    responses = problem_responses(*statuses, *extra)
    if returns is not None:
        # For a handler that encodes its own body: the schema of what it sends.
        status, body = returns
        responses[status] = ResponseSpec(
            data_container=body, description=HTTPStatus(status).phrase, generate_examples=False
        )
    keywords: dict[str, Any] = {
        "responses": responses,
        "operation_class": ContractOperation,
    }
    if authenticated:
        keywords["security"] = BEARER
    return keywords


def _contract_structs() -> list[type[msgspec.Struct]]:
    structs: list[type[msgspec.Struct]] = [Problem, FieldError]
    for value in vars(api).values():
        if (
            isinstance(value, type)
            and issubclass(value, msgspec.Struct)
            and value.__module__ == api.__name__
        ):
            structs.append(value)
    return structs


def make_exact(openapi: OpenAPI) -> OpenAPI:
    """Replace the framework's schemas of the contract bodies with msgspec's own.

    The framework's rendering of a Struct drops what the decoder enforces (unknown fields
    refused, the length and range of list items and map values); msgspec writes the
    schema from the same types the decoder uses, so the document says exactly what is
    refused. POST /v1/events reads its body raw (a tagged union, decoded once), so its
    body and Idempotency-Key header are written here too."""
    types: list[Any] = [*_contract_structs(), PublishEvent]
    refs, schemas = msgspec.json.schema_components(types, ref_template=_REF)
    publish = refs[-1]
    components = openapi.components
    existing = dict(components.schemas or {}) if components else {}
    existing.update(cast("dict[str, Schema]", schemas))
    if components is not None:
        components.schemas = existing
    path = openapi.paths.get("/v1/events") if openapi.paths else None
    operation = path.post if path else None
    if operation is not None:
        operation.request_body = RequestBody(
            required=True,
            description="A canonical event; GET /v1/event-types has each type's example.",
            content={"application/json": OpenAPIMediaType(schema=cast("Schema", publish))},
        )
        operation.parameters = [
            *(operation.parameters or []),
            Parameter(
                name="Idempotency-Key",
                param_in=ParamType.HEADER,
                required=False,
                description="Repeats with the same key within 24 h get the first response.",
                schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
            ),
        ]
    _document_metrics(openapi)
    _document_raw_bodies(openapi)
    return openapi


def _document_metrics(openapi: OpenAPI) -> None:
    path = openapi.paths.get("/metrics") if openapi.paths else None
    if path is None or path.get is None:
        return
    path.get.summary = "Prometheus metrics"
    text = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
    path.get.responses = {
        "200": OpenAPIResponse(
            description="The Prometheus text exposition format",
            content={"text/plain": text, "application/openmetrics-text": text},
        )
    }


_ANY_OBJECT = Schema(type=OpenAPIType.OBJECT)
_TOKEN_REQUEST = Schema(
    type=OpenAPIType.OBJECT,
    required=["grant_type"],
    properties={
        "grant_type": Schema(type=OpenAPIType.STRING, enum=["client_credentials"]),
        "client_id": Schema(type=OpenAPIType.STRING),
        "client_secret": Schema(type=OpenAPIType.STRING),
    },
)


def _document_raw_bodies(openapi: OpenAPI) -> None:
    """Bodies of routes that read them raw: each provider's own payload (authenticated
    and parsed the provider's way), the OAuth token form, and a CSV export."""
    for path, item in (openapi.paths or {}).items():
        if path.endswith("/oauth/token") and item.post is not None:
            item.post.request_body = RequestBody(
                required=True,
                content={
                    "application/x-www-form-urlencoded": OpenAPIMediaType(schema=_TOKEN_REQUEST),
                    "application/json": OpenAPIMediaType(schema=_TOKEN_REQUEST),
                },
            )
        elif path.startswith("/v1/ingest/"):
            for operation in (item.post, item.put):
                if operation is not None:
                    operation.request_body = RequestBody(
                        required=True,
                        description="The provider's own payload, as it sends it",
                        content={"application/json": OpenAPIMediaType(schema=_ANY_OBJECT)},
                    )
        elif path.endswith("/imports") and item.post is not None:
            item.post.request_body = RequestBody(
                required=True,
                description="The sales export, columns as configured in the source's settings",
                content={"text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            )
