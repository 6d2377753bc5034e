"""Public request and response bodies of the partner API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

HeaderMap = Annotated[dict[str, Annotated[str, Meta(max_length=1000)]], Meta(max_length=20)]
EventTypePatterns = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(min_length=1, max_length=50)
]
SourceIds = Annotated[list[Annotated[str, Meta(max_length=40)]], Meta(max_length=100)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
Description = Annotated[str, Meta(max_length=500)]
RateLimit = Annotated[int, Meta(ge=1, le=10_000)]
MaxInFlight = Annotated[int, Meta(ge=1, le=100)]
TimeoutS = Annotated[int, Meta(ge=1, le=30)]
GracePeriodS = Annotated[int, Meta(ge=0, le=7 * 86400)]
SubscriptionStatus = Literal["enabled", "disabled"]


class SubscriptionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: EventTypePatterns
    description: Description | None = None
    source_ids: SourceIds | None = None
    headers: HeaderMap = msgspec.field(default_factory=dict)
    rate_limit_per_s: RateLimit | None = None
    max_in_flight: MaxInFlight = 10
    timeout_s: TimeoutS = 15


class SubscriptionUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields left out stay as they are; null clears the optional ones."""

    url: Url | UnsetType = UNSET
    event_types: EventTypePatterns | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    source_ids: SourceIds | UnsetType | None = UNSET
    headers: HeaderMap | UnsetType = UNSET
    rate_limit_per_s: RateLimit | UnsetType | None = UNSET
    max_in_flight: MaxInFlight | UnsetType = UNSET
    timeout_s: TimeoutS | UnsetType = UNSET


class RotateSecret(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    grace_period_s: GracePeriodS = 86400


class Subscription(msgspec.Struct, kw_only=True):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    source_ids: list[str] | None
    headers: dict[str, str]
    rate_limit_per_s: int | None
    max_in_flight: int
    timeout_s: int
    status: SubscriptionStatus
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(Subscription, kw_only=True):
    """Only the create and rotate responses carry the signing secret."""

    secret: str
    previous_secret_expires_at: datetime | None = None


class SubscriptionList(msgspec.Struct, kw_only=True):
    data: list[Subscription]
    next_cursor: str | None


class PublishAccepted(msgspec.Struct, kw_only=True):
    id: str
    deliveries: int


class EventList(msgspec.Struct, kw_only=True):
    data: list[dict[str, Any]]
    next_cursor: str | None


class EventTypeInfo(msgspec.Struct, kw_only=True):
    type: str
    schema: dict[str, Any]
    example: dict[str, Any]


class EventTypeList(msgspec.Struct, kw_only=True):
    data: list[EventTypeInfo]
