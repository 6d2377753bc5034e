"""Process-wide resources (engine, queue connection, verifier), built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.publisher import EventPublisher
from app.http.tenant_cache import TenantCache
from app.security.jwt_auth import KeyRing, TokenVerifier
from app.security.secret_box import SecretBox
from app.security.ssrf import AddressPolicy
from app.settings import Settings


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    redis: ArqRedis
    verifier: TokenVerifier
    keyring: KeyRing
    secret_box: SecretBox
    address_policy: AddressPolicy
    tenants: TenantCache
    publisher: EventPublisher


def resources_of(state: State) -> Resources:
    resources = state.get("resources")
    assert isinstance(resources, Resources), "app lifespan has not started"
    return resources
