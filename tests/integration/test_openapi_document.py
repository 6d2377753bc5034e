"""What the OpenAPI document promises, point by point, checked against what the API does."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]
UNAUTHENTICATED = ("/healthz", "/readyz", "/metrics", "/v1/ingest/")


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


async def test_publish_documents_its_body_idempotency_key_and_typed_202(
    document: dict[str, Any],
) -> None:
    publish = document["paths"]["/v1/events"]["post"]
    body = publish["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "type"
    assert "order.created" in body["discriminator"]["mapping"]
    header = next(p for p in publish["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert header["schema"]["maxLength"] == 255
    accepted = resolve(
        document, publish["responses"]["202"]["content"]["application/json"]["schema"]
    )
    assert set(accepted["properties"]) == {"id", "deliveries"}
    assert accepted["properties"]["deliveries"]["type"] == "integer"


async def test_every_operation_documents_its_problems_and_never_the_unsent_400(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        for status, response in responses.items():
            if status.startswith(("4", "5")) and not path.endswith("/oauth/token"):
                assert list(response["content"]) == ["application/problem+json"], (path, status)
        assert "400" not in responses or path.endswith("/oauth/token"), (method, path)
        if not path.startswith(UNAUTHENTICATED):
            assert {"401", "503"} <= set(responses), (method, path)
        if method in ("post", "put", "patch"):
            assert {"413", "415"} <= set(responses), (method, path)
        if "{" in path:
            assert "422" in responses, (method, path)
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    field_error = document["components"]["schemas"]["FieldError"]
    assert "body" in field_error["properties"]["source"]["anyOf"][0]["enum"]


async def test_bearer_security_only_where_the_bearer_token_is_checked(
    document: dict[str, Any],
) -> None:
    assert "security" not in document
    assert "/metrics" in document["paths"]
    for path, method, operation in operations(document):
        if path.startswith(UNAUTHENTICATED):
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{"bearer": []}], (method, path)


async def test_validation_rules_are_in_the_request_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    create = schemas["SubscriptionCreate"]
    assert create["additionalProperties"] is False
    assert create["properties"]["event_types"]["items"]["maxLength"] == 64
    assert create["properties"]["headers"]["maxProperties"] == 20
    assert create["properties"]["url"]["pattern"].startswith("^")
    assert set(schemas["SourceCreate"]["properties"]["provider"]["enum"]) >= {"grabfood", "moka"}
    assert schemas["Recover"]["properties"]["since"]["format"] == "date-time"


async def test_an_unknown_body_field_is_refused_as_the_schema_says(
    client: Client, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/subscriptions",
        json={"url": "https://example.com/hook", "event_types": ["*"], "colour": "red"},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "colour"


async def test_a_query_error_names_its_source_plainly(client: Client, auth: dict[str, str]) -> None:
    response = await client.get("/v1/events", params={"limit": "many"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"] == "query"
    for params in ("limti=5", "limit=5&limit=6", "since=1700000000", "source_id=a%00b"):
        refused = await client.get("/v1/events", params=params, headers=auth)
        assert refused.status_code == 422, params
        assert refused.headers["content-type"].startswith("application/problem+json")


async def test_options_allows_every_method_of_the_path(client: Client) -> None:
    for path, methods in (
        ("/v1/subscriptions", {"GET", "POST"}),
        ("/v1/subscriptions/sub_x", {"GET", "PATCH", "DELETE"}),
        ("/v1/events", {"GET", "POST"}),
    ):
        response = await client.options(path)
        assert response.status_code == 204
        assert set(response.headers["allow"].split(", ")) == methods | {"OPTIONS"}, path


async def test_grab_token_errors_are_rfc6749_json(client: Client, auth: dict[str, str]) -> None:
    created = await client.post(
        "/v1/sources", json={"provider": "grabfood", "name": "Grab"}, headers=auth
    )
    token_path = "/v1/ingest/" + created.json()["id"] + "/oauth/token"
    for path, form, status, error in (
        (token_path, {"grant_type": "password"}, 400, "unsupported_grant_type"),
        (token_path, {"grant_type": "client_credentials", "client_id": "x"}, 401, "invalid_client"),
        (
            "/v1/ingest/src_unknown/oauth/token",
            {"grant_type": "client_credentials"},
            401,
            "invalid_client",
        ),
    ):
        response = await client.post(path, data=form)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["error"] == error
