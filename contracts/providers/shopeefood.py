"""ShopeeFood order-status webhooks: PROVISIONAL shape, status map and signature base.

PROVISIONAL: ShopeeFood publishes no partner documentation. Everything here is an assumption
to be replaced when a real payload or partner documentation is seen:
- the payload shape (ShopeeFoodStatusPush), a flat order-status push;
- the status words (SHOPEEFOOD_ORDER_STATUSES), compared case-insensitively;
- amounts in whole currency units (like GoFood), decoded exactly as Decimal;
- `timestamp` as Unix epoch seconds (UTC) or an RFC 3339 string;
- the signature base: Shopee's marketplace open platform signs `url + "|" + body` with
  hex HMAC-SHA256(partner key) in `Authorization` (signature_base; the HMAC itself is computed
  and compared in the ingest layer).

`order_id` and `status` are required: when our guess of the shape is wrong the payload is
refused (422, counted) instead of being acknowledged while producing nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import msgspec

from contracts.canonical import (
    Money,
    OrderCancelledData,
    OrderData,
    OrderStatus,
    OrderStatusChangedData,
    StoreRef,
    Totals,
)
from contracts.providers.base import NormalizedEvent, PayloadRejected, money_from_major

CHANNEL: Final = "shopeefood"

# PROVISIONAL (unverified guesses): ShopeeFood's status word → canonical status. A word not
# listed here is kept as provider_status and reported as unknown_status.
SHOPEEFOOD_ORDER_STATUSES: Final[dict[str, OrderStatus]] = {
    "PENDING": "awaiting_acceptance",
    "WAITING_CONFIRMATION": "awaiting_acceptance",
    "ACCEPTED": "accepted",
    "CONFIRMED": "accepted",
    "PREPARING": "preparing",
    "READY": "ready",
    "READY_FOR_PICKUP": "ready",
    "DRIVER_ASSIGNED": "driver_assigned",
    "DRIVER_ARRIVED": "driver_arrived",
    "PICKED_UP": "picked_up",
    "DELIVERING": "picked_up",
    "DELIVERED": "delivered",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
    "CANCELED": "cancelled",
    "REJECTED": "rejected",
    "FAILED": "failed",
    "REFUNDED": "refunded",
}

# Identities and the status word go into dedupe keys (VARCHAR(300) with prefixes added).
MAX_ORDER_ID_LENGTH: Final = 200
MAX_STATUS_LENGTH: Final = 60
MAX_AMOUNT_DIGITS: Final = 15  # below 10^15 whole units; larger is malformed
LATEST_EPOCH_S: Final = 253_402_300_799  # 9999-12-31T23:59:59Z


class ShopeeFoodStatusPush(msgspec.Struct, frozen=True, kw_only=True):
    """PROVISIONAL, an assumed shape: `{event_id?, event_type?, order_id, status, store_id?,
    timestamp?, total_amount?, currency?}`. Unknown fields are ignored.

    order_id and store_id are taken as strings or integers (Shopee's other APIs use both).
    order_id and status are checked in code, so the refusal names the field plainly.
    """

    order_id: str | int | None = None
    status: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    store_id: str | int | None = None
    timestamp: int | datetime | None = None
    total_amount: Decimal | None = None
    currency: str | None = None


_STATUS_PUSH = msgspec.json.Decoder(ShopeeFoodStatusPush)


def normalize_shopeefood(raw: bytes) -> list[NormalizedEvent]:
    """PROVISIONAL: a ShopeeFood order-status push (raw body) as canonical events.

    A known status gives order.status_changed (plus order.completed or order.cancelled for
    those statuses); an unknown status gives order.updated with status left unset, the word
    kept as provider_status and reported as unknown_status. Raises PayloadRejected naming the
    JSON path (never a value) when the body is not JSON, lacks order_id or status, or has a
    field of an unreadable type.
    """
    push = _decode(raw)
    if push.order_id is None:
        raise PayloadRejected("$.order_id: required, but missing")
    if push.status is None:
        raise PayloadRejected("$.status: required, but missing")
    external_order_id = str(push.order_id)
    provider_status = push.status
    _check_text(external_order_id, "$.order_id", MAX_ORDER_ID_LENGTH)
    _check_text(provider_status, "$.status", MAX_STATUS_LENGTH)
    order_id = f"shopeefood:{external_order_id}"
    status = canonical_order_status(provider_status)
    occurred_at = _time(push.timestamp)
    store = StoreRef(external_id=str(push.store_id)) if push.store_id is not None else None
    total = _money(push.total_amount, push.currency)

    def produced(
        type_: str, data: msgspec.Struct, unknown_status: str | None = None
    ) -> NormalizedEvent:
        return NormalizedEvent(
            type=type_,
            data=data,
            occurred_at=occurred_at,
            provider_event_id=push.event_id,
            provider_event_name=push.event_type,
            dedupe_key=dedupe_key(external_order_id, provider_status, type_),
            order_key=order_id,
            order_status=status,
            unknown_status=unknown_status,
        )

    def snapshot(canonical: OrderStatus | None) -> OrderData:
        return OrderData(
            order_id=order_id,
            external_order_id=external_order_id,
            channel=CHANNEL,
            store=store,
            totals=Totals(total=total) if total is not None else None,
            status=canonical,
            provider_status=provider_status,
        )

    if status is None:
        return [produced("order.updated", snapshot(None), unknown_status=provider_status)]
    changed = OrderStatusChangedData(
        order_id=order_id,
        external_order_id=external_order_id,
        to=status,
        provider_status=provider_status,
    )
    events = [produced("order.status_changed", changed)]
    if status == "completed":
        events.append(produced("order.completed", snapshot(status)))
    elif status == "cancelled":
        cancelled = OrderCancelledData(order_id=order_id, external_order_id=external_order_id)
        events.append(produced("order.cancelled", cancelled))
    return events


def canonical_order_status(shopeefood_status: str) -> OrderStatus | None:
    """PROVISIONAL: the canonical status for a ShopeeFood status word, or None if unknown."""
    return SHOPEEFOOD_ORDER_STATUSES.get(shopeefood_status.strip().upper())


def dedupe_key(external_order_id: str, status: str, event_type: str) -> str:
    """PROVISIONAL: one canonical event per (order, status, produced type).

    Keyed like GrabFood state pushes rather than on `event_id`, which may or may not be stable
    across ShopeeFood's retries; an order does not reach the same status twice.
    """
    return f"shopeefood:{external_order_id}:{status.strip().upper()}:{event_type}"


def signature_base(url: str, body: bytes) -> bytes:
    """PROVISIONAL: the bytes ShopeeFood is assumed to sign, `url + "|" + body` (the Shopee
    marketplace open-platform scheme); the ingest layer computes and compares the HMAC."""
    return url.encode("utf-8") + b"|" + body


def _decode(raw: bytes) -> ShopeeFoodStatusPush:
    """PROVISIONAL shape: decode, with msgspec's path (never a value) in the refusal."""
    try:
        return _STATUS_PUSH.decode(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        if not message:
            message, where = str(exc), "$`"
        raise PayloadRejected(f"{where.rstrip('`')}: {message}") from None
    except msgspec.DecodeError as exc:
        raise PayloadRejected(f"$: not valid JSON ({exc})") from None


def _check_text(value: str, path: str, max_length: int) -> None:
    """PROVISIONAL payload: a value used in keys must be short and printable."""
    if not 0 < len(value.strip()) <= max_length or not value.isprintable():
        raise PayloadRejected(f"{path}: must be 1-{max_length} printable characters")


def _time(timestamp: int | datetime | None) -> datetime | None:
    """PROVISIONAL: epoch seconds are UTC; an RFC 3339 string keeps its offset (a naive one is
    taken as UTC, the only zone an epoch-based API implies)."""
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
    if not 0 <= timestamp <= LATEST_EPOCH_S:
        raise PayloadRejected("$.timestamp: not epoch seconds between 1970 and 9999")
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    """PROVISIONAL: total_amount in whole currency units, exactly, to minor units."""
    if amount is None:
        return None
    if not amount.is_finite() or amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise PayloadRejected("$.total_amount: not a finite number below 10^15")
    code = (currency or "IDR").upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise PayloadRejected("$.currency: not an ISO 4217 currency code")
    return money_from_major(amount, code)
