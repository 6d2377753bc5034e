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
# https; plain http only where the gateway is configured to allow it (GATEWAY_ALLOW_HTTP).
Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2048,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
        description="Receiver URL: https (http only where the gateway allows it)",
    ),
]
Description = Annotated[str, Meta(max_length=500)]
RateLimit = Annotated[int, Meta(ge=1, le=10_000)]
MaxInFlight = Annotated[int, Meta(ge=1, le=100)]
TimeoutS = Annotated[int, Meta(ge=1, le=30)]
GracePeriodS = Annotated[int, Meta(ge=0, le=7 * 86400)]
SubscriptionStatus = Literal["enabled", "disabled"]
AwareDatetime = Annotated[datetime, Meta(tz=True)]


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


DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


class Attempt(msgspec.Struct, kw_only=True):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None


class Delivery(msgspec.Struct, kw_only=True):
    id: str
    event_id: str
    event_type: str
    subscription_id: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    replay_id: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryDetail(Delivery, kw_only=True):
    attempts: list[Attempt]


class DeliveryList(msgspec.Struct, kw_only=True):
    data: list[Delivery]
    next_cursor: str | None


class DeliveryRetried(msgspec.Struct, kw_only=True):
    id: str
    attempt: int
    status: DeliveryStatus


class ReplayEvent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    subscription_ids: (
        Annotated[list[Annotated[str, Meta(max_length=40)]], Meta(max_length=100)] | None
    ) = None


class EventReplayed(msgspec.Struct, kw_only=True):
    event_id: str
    deliveries: list[str]


RecoverStatus = Literal["failed", "cancelled", "succeeded"]


class Recover(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    since: AwareDatetime
    until: AwareDatetime | None = None
    status: RecoverStatus = "failed"


class RecoverAccepted(msgspec.Struct, kw_only=True):
    replay_id: str


class EnableSubscription(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Re-enable; with recover_since, failed and cancelled deliveries since then go again."""

    recover_since: AwareDatetime | None = None


class SubscriptionEnabled(Subscription, kw_only=True):
    replay_id: str | None = None


class ReplayProgress(msgspec.Struct, kw_only=True):
    id: str
    subscription_id: str
    status: Literal["running", "completed"]
    since: datetime
    until: datetime | None
    delivery_status: str
    total: int
    enqueued: int
    succeeded: int
    failed: int
    created_at: datetime
    updated_at: datetime


class AuditEntry(msgspec.Struct, kw_only=True):
    id: str
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None
    created_at: datetime


class AuditLog(msgspec.Struct, kw_only=True):
    data: list[AuditEntry]
    next_cursor: str | None


Provider = Literal["grabfood", "gofood", "shopeefood", "custom_pos", "moka", "qasir"]
SourceStatus = Literal["enabled", "disabled"]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
StoreId = Annotated[str, Meta(min_length=1, max_length=200)]


class MokaCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the tenant's Moka OAuth authorization produced; the gateway refreshes it."""

    access_token: Annotated[str, Meta(min_length=1, max_length=4000)]
    refresh_token: Annotated[str, Meta(min_length=1, max_length=4000)]
    outlet_id: Annotated[str, Meta(min_length=1, max_length=100)]


class SourceCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    provider: Provider
    name: Name
    external_store_id: StoreId | None = None
    # Polled providers (Moka) bring their own credentials; webhook providers get ours.
    credentials: MokaCredentials | None = None
    # Provider options, e.g. a Qasir export's column names (see the README).
    settings: Annotated[dict[str, Any], Meta(max_length=50)] | None = None


class SourceUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    external_store_id: StoreId | UnsetType | None = UNSET
    status: SourceStatus | UnsetType = UNSET


class Source(msgspec.Struct, kw_only=True):
    id: str
    provider: Provider
    name: str
    external_store_id: str | None
    status: SourceStatus
    ingest_url: str
    # Every URL the provider must be configured with (GrabFood has several).
    endpoints: dict[str, str]
    created_at: datetime
    updated_at: datetime


class SourceWithCredentials(Source, kw_only=True):
    """Only the create and rotate responses carry what the provider must be given."""

    credentials: dict[str, str]


class SourceList(msgspec.Struct, kw_only=True):
    data: list[Source]
    next_cursor: str | None
