"""Bearer-token authentication (JWT -> tenant) and the scope each route requires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.http.resources import resources_of
from app.security.jwt_auth import TokenRejected
from app.store.tenants import get_tenant


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant the token names, and what it may do."""

    tenant_id: str
    scopes: frozenset[str]
    token_id: str | None

    @property
    def actor(self) -> str:
        # The audit log names the token subject (the tenant) as the actor.
        return self.tenant_id


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise NotAuthorizedException("missing bearer token")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("authorization header must be 'Bearer <token>'")
        resources = resources_of(connection.app.state)
        try:
            verified = await resources.verifier.verify(token.strip())
        except TokenRejected as exc:
            raise NotAuthorizedException(f"invalid token: {exc}") from None

        async def tenant_enabled(tenant_id: str) -> bool:
            async with resources.engine.connect() as conn:
                tenant = await get_tenant(conn, tenant_id)
            return tenant is not None and tenant.enabled

        if not await resources.tenants.is_enabled(verified.subject, tenant_enabled):
            # Unknown and disabled tenants look the same from outside.
            raise NotAuthorizedException("invalid token: tenant unknown or disabled")
        required = connection.route_handler.opt.get(REQUIRED_SCOPE)
        if required is not None and required not in verified.scopes:
            raise PermissionDeniedException(f"token lacks the scope {required!r}")
        principal = Principal(
            tenant_id=verified.subject, scopes=verified.scopes, token_id=verified.token_id
        )
        return AuthenticationResult(user=principal, auth=None)


REQUIRED_SCOPE = "required_scope"


def requires_scope(scope: str) -> dict[str, str]:
    """Route `opt` saying which scope the token needs; BearerAuthMiddleware checks it (403).

    Not a Litestar guard: Litestar copies the route handler for every guard call, a
    measurable share of a publish request.
    """
    return {REQUIRED_SCOPE: scope}


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.user
    assert isinstance(principal, Principal)
    return principal
