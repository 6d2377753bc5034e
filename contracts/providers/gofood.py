"""GoFood (GoBiz) webhooks: the wire shapes and their normalization to canonical events.

GoBiz posts `{header: {version, event_id, event_name, timestamp}, body: {...}}`. Only the
identities are required (`header.event_id`, `header.event_name`, and `body.order.order_number`
for order events); every other field may be missing or null and unknown fields are ignored.
Amounts are whole rupiah, decoded exactly as Decimal (never float) and scaled to minor units.

Details not confirmed by GoBiz documentation, each kept in one place so it is one edit:
- `gofood.order.placed` → `picked_up` (unverified meaning; GoBiz's event list says "the driver
  received the food and transaction status is settled"): GOFOOD_ORDER_STATUSES.
- service_type `gofood_pickup` → `pickup` (unverified): GOFOOD_SERVICE_TYPES.
- item `price` is per unit (unverified; consistent with the documented sample, where
  2 * 15000 + 1 * 10000 equals order_total 40000): _line.
- `takeaway_charges` is a packaging fee, charge type "packaging" (unverified): _order_snapshot.
- `order.cancellation_detail.reason` carries the cancellation reason (seen in public
  integration code, not in our fixtures): GoFoodOrder.
- a timestamp without an offset is GoFood local time, +07:00 (GoBiz documents +07:00): _local_time.
- `gofood.catalog.menu_mapping_updated`: only `body.outlet` is read; the menu itself is not in
  the notification, so menu.updated carries no items: _menu_events.
- `payment.transaction.settlement`: body `{outlet?, transaction: {id, order_id?, gross_amount?,
  currency?, payment_type?}}` is an assumption (the GoBiz payment API is Midtrans-like; no
  sample seen): GoFoodSettlementBody and _settlement_events.

Decisions:
- awaiting_merchant_acceptance produces order.created only (its status is awaiting_acceptance);
  no order.status_changed with it, because there is no earlier status to change from and
  subscribers would receive the same fact twice.
- The canonical status of an order event comes from the event name. `body.order.status` is kept
  as provider_status; when it is a word GoFood is not known to send, it is also reported as
  unknown_status (on the first produced event only, so one payload counts once).
- An event name outside the map (e.g. `gofood.order.created`, `gofood.order.webhook_error`)
  produces no events: the payload is acknowledged and nothing is filed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec

from contracts.canonical import (
    Charge,
    Customer,
    Fulfillment,
    FulfillmentType,
    Line,
    MenuUpdatedData,
    Modifier,
    Money,
    OrderCancelledData,
    OrderData,
    OrderStatus,
    OrderStatusChangedData,
    PaymentMethod,
    PaymentSettledData,
    StoreRef,
    Totals,
)
from contracts.providers.base import (
    MAX_AMOUNT_DIGITS,
    MAX_QUANTITY_DECIMALS,
    MAX_QUANTITY_DIGITS,
    NormalizedEvent,
    PayloadRejected,
    money_from_major,
)

CHANNEL: Final = "gofood"
ORDER_EVENT_PREFIX: Final = "gofood.order."
MENU_MAPPING_UPDATED: Final = "gofood.catalog.menu_mapping_updated"
PAYMENT_SETTLEMENT: Final = "payment.transaction.settlement"

# GoFood's word for each order state: the suffix of `gofood.order.<word>` event names and,
# upper-cased, the value of body.order.status.
GOFOOD_ORDER_STATUSES: Final[dict[str, OrderStatus]] = {
    "awaiting_merchant_acceptance": "awaiting_acceptance",
    "merchant_accepted": "accepted",
    "driver_otw_pickup": "driver_assigned",
    "driver_arrived": "driver_arrived",
    "placed": "picked_up",  # unverified meaning (see the module docstring)
    "completed": "completed",
    "cancelled": "cancelled",
}

GOFOOD_SERVICE_TYPES: Final[dict[str, FulfillmentType]] = {
    "gofood": "platform_delivery",
    "gofood_pickup": "pickup",  # unverified
}

# payment.transaction.settlement `payment_type` (unverified, as is the whole settlement shape).
GOFOOD_PAYMENT_TYPES: Final[dict[str, PaymentMethod]] = {
    "qris": "qris",
    "gopay": "wallet",
    "card": "card",
    "credit_card": "card",
}

GOFOOD_LOCAL_TIME: Final = timezone(timedelta(hours=7))
# Identities become dedupe and order keys (VARCHAR(300) with the prefixes added).
MAX_IDENTITY_LENGTH: Final = 200


# --- Wire shapes ----------------------------------------------------------------------------


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the GoFood wire shapes: unknown fields are ignored, every field is optional."""


class GoFoodHeader(_Wire, frozen=True, kw_only=True):
    event_id: str
    event_name: str
    version: Any = None  # not read
    timestamp: datetime | None = None


class GoFoodEnvelope(_Wire, frozen=True, kw_only=True):
    header: GoFoodHeader
    # Decoded once the event name is known, so the body of an event we do not handle can
    # never refuse the envelope.
    body: msgspec.Raw = msgspec.Raw(b"null")


class GoFoodOutlet(_Wire, frozen=True, kw_only=True):
    id: str | None = None
    external_outlet_id: str | None = None


class GoFoodVariant(_Wire, frozen=True, kw_only=True):
    id: str | None = None
    external_id: str | None = None
    name: str | None = None


class GoFoodItem(_Wire, frozen=True, kw_only=True):
    id: str | None = None
    external_id: str | None = None
    name: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    notes: str | None = None
    variants: list[GoFoodVariant] | None = None


class GoFoodCancellation(_Wire, frozen=True, kw_only=True):
    reason: str | None = None


class GoFoodOrder(_Wire, frozen=True, kw_only=True):
    order_number: str | None = None
    status: str | None = None
    currency: str | None = None
    order_total: Decimal | None = None
    takeaway_charges: Decimal | None = None
    created_at: datetime | None = None
    order_items: list[GoFoodItem] | None = None
    cancellation_detail: GoFoodCancellation | None = None
    # Known fields with no canonical home: loosely typed so a change in their shape never
    # refuses an order. `pin` (the driver's handover code) is deliberately not published.
    pin: Any = None
    cutlery_requested: Any = None
    applied_promotions: Any = None


class GoFoodCustomer(_Wire, frozen=True, kw_only=True):
    id: Any = None  # GoFood's customer id: not published
    name: str | None = None


class GoFoodOrderBody(_Wire, frozen=True, kw_only=True):
    outlet: GoFoodOutlet | None = None
    service_type: str | None = None
    order: GoFoodOrder | None = None
    driver: Any = None  # {name}: not published
    customer: GoFoodCustomer | None = None


class GoFoodMenuMappingBody(_Wire, frozen=True, kw_only=True):
    outlet: GoFoodOutlet | None = None


class GoFoodSettlementTransaction(_Wire, frozen=True, kw_only=True):
    """Assumed shape (unverified)."""

    id: str | None = None
    order_id: str | None = None
    status: str | None = None
    gross_amount: Decimal | None = None
    currency: str | None = None
    payment_type: str | None = None


class GoFoodSettlementBody(_Wire, frozen=True, kw_only=True):
    """Assumed shape (unverified)."""

    outlet: GoFoodOutlet | None = None
    transaction: GoFoodSettlementTransaction | None = None


_ENVELOPE = msgspec.json.Decoder(GoFoodEnvelope)
_ORDER_BODY = msgspec.json.Decoder(GoFoodOrderBody | None)
_MENU_MAPPING_BODY = msgspec.json.Decoder(GoFoodMenuMappingBody | None)
_SETTLEMENT_BODY = msgspec.json.Decoder(GoFoodSettlementBody | None)


# --- Normalization --------------------------------------------------------------------------


def normalize_gofood(raw: bytes) -> list[NormalizedEvent]:
    """A GoBiz notification (raw body) as canonical events; [] for an event name we do not map.

    Raises PayloadRejected when the body is not JSON, an identity is missing, or a field has a
    type that cannot be read; the message names the JSON path and never echoes a value.
    """
    envelope = _decode(_ENVELOPE, raw, "$")
    header = envelope.header
    _check_identity(header.event_id, "$.header.event_id")
    name = header.event_name
    status = order_event_status(name)
    if status is not None:
        return _order_events(header, status, _decode(_ORDER_BODY, envelope.body, "$.body"))
    if name == MENU_MAPPING_UPDATED:
        return _menu_events(header, _decode(_MENU_MAPPING_BODY, envelope.body, "$.body"))
    if name == PAYMENT_SETTLEMENT:
        return _settlement_events(header, _decode(_SETTLEMENT_BODY, envelope.body, "$.body"))
    return []


def order_event_status(event_name: str) -> OrderStatus | None:
    """The canonical status a `gofood.order.<word>` event moves the order to, or None."""
    if not event_name.startswith(ORDER_EVENT_PREFIX):
        return None
    return GOFOOD_ORDER_STATUSES.get(event_name.removeprefix(ORDER_EVENT_PREFIX))


def canonical_order_status(gofood_status: str) -> OrderStatus | None:
    """The canonical status for a body.order.status value (`COMPLETED`), or None."""
    return GOFOOD_ORDER_STATUSES.get(gofood_status.lower())


def _event(
    header: GoFoodHeader,
    type_: str,
    data: msgspec.Struct,
    *,
    order_key: str | None = None,
    order_status: OrderStatus | None = None,
    unknown_status: str | None = None,
) -> NormalizedEvent:
    return NormalizedEvent(
        type=type_,
        data=data,
        occurred_at=_local_time(header.timestamp),
        provider_event_id=header.event_id,
        provider_event_name=header.event_name,
        # One GoBiz event can produce several canonical events; each needs its own key.
        dedupe_key=f"gofood:{header.event_id}:{type_}",
        order_key=order_key,
        order_status=order_status,
        unknown_status=unknown_status,
    )


def _order_events(
    header: GoFoodHeader, status: OrderStatus, body: GoFoodOrderBody | None
) -> list[NormalizedEvent]:
    order = body.order if body is not None else None
    number = order.order_number if order is not None else None
    if body is None or order is None or number is None:
        raise PayloadRejected(
            "$.body.order.order_number: required for gofood.order.* events, but missing"
        )
    _check_identity(number, "$.body.order.order_number")
    order_id = f"gofood:{number}"
    provider_status = order.status
    unknown = (
        provider_status
        if provider_status is not None and canonical_order_status(provider_status) is None
        else None
    )
    reason = _cancellation_reason(order)

    def produced(type_: str, data: msgspec.Struct, first: bool) -> NormalizedEvent:
        return _event(
            header,
            type_,
            data,
            order_key=order_id,
            order_status=status,
            unknown_status=unknown if first else None,
        )

    if status == "awaiting_acceptance":
        snapshot = _order_snapshot(order_id, body, order, status)
        return [produced("order.created", snapshot, True)]
    changed = OrderStatusChangedData(
        order_id=order_id,
        external_order_id=number,
        to=status,
        provider_status=provider_status,
        reason=reason if status == "cancelled" else None,
    )
    events = [produced("order.status_changed", changed, True)]
    if status == "completed":
        snapshot = _order_snapshot(order_id, body, order, status)
        events.append(produced("order.completed", snapshot, False))
    elif status == "cancelled":
        cancelled = OrderCancelledData(order_id=order_id, external_order_id=number, reason=reason)
        events.append(produced("order.cancelled", cancelled, False))
    return events


def _order_snapshot(
    order_id: str, body: GoFoodOrderBody, order: GoFoodOrder, status: OrderStatus
) -> OrderData:
    currency = _currency(order.currency)
    path = "$.body.order"
    total = _money(order.order_total, currency, f"{path}.order_total")
    takeaway = _money(order.takeaway_charges, currency, f"{path}.takeaway_charges")
    charges = []
    if takeaway is not None and takeaway.amount != 0:
        charges.append(Charge(type="packaging", amount=takeaway))
    totals = (
        Totals(total=total, charges_total=takeaway)
        if total is not None or takeaway is not None
        else None
    )
    return OrderData(
        order_id=order_id,
        external_order_id=order.order_number,
        # GoFood has one order number, which is also what staff read out.
        display_id=order.order_number,
        channel=CHANNEL,
        store=_store(body.outlet),
        fulfillment=_fulfillment(body.service_type),
        placed_at=_local_time(order.created_at),
        customer=_customer(body.customer),
        lines=[
            _line(item, currency, f"{path}.order_items[{i}]")
            for i, item in enumerate(order.order_items or ())
        ],
        charges=charges,
        totals=totals,
        status=status,
        provider_status=order.status,
    )


def _line(item: GoFoodItem, currency: str, path: str) -> Line:
    quantity = _quantity(item.quantity, f"{path}.quantity")
    unit_price = _money(item.price, currency, f"{path}.price")
    line_total = None
    if item.price is not None and item.quantity is not None:
        # `price` is per unit (unverified; see the module docstring).
        line_total = _money(item.price * item.quantity, currency, f"{path}.price * quantity")
    return Line(
        external_item_id=item.external_id,
        platform_item_id=item.id,
        name=item.name,
        quantity=quantity,
        unit_price=unit_price,
        line_total=line_total,
        notes=item.notes or None,
        modifiers=[
            Modifier(external_id=variant.external_id, name=variant.name)
            for variant in item.variants or ()
        ],
    )


def _menu_events(header: GoFoodHeader, body: GoFoodMenuMappingBody | None) -> list[NormalizedEvent]:
    data = MenuUpdatedData(channel=CHANNEL, store=_store(body.outlet if body else None))
    return [_event(header, "menu.updated", data)]


def _settlement_events(
    header: GoFoodHeader, body: GoFoodSettlementBody | None
) -> list[NormalizedEvent]:
    """payment.transaction.settlement → payment.settled. The body shape is unverified."""
    transaction = body.transaction if body is not None else None
    if transaction is None or transaction.id is None:
        raise PayloadRejected(
            "$.body.transaction.id: required for payment.transaction.settlement, but missing"
        )
    _check_identity(transaction.id, "$.body.transaction.id")
    currency = _currency(transaction.currency, "$.body.transaction.currency")
    payment_type = transaction.payment_type
    data = PaymentSettledData(
        settlement_id=transaction.id,
        # The payment's order id is the merchant's own reference, not a GoFood order number,
        # so it is not turned into a canonical gofood order id.
        external_order_id=transaction.order_id,
        channel=CHANNEL,
        store=_store(body.outlet if body is not None else None),
        method=GOFOOD_PAYMENT_TYPES.get(payment_type.lower()) if payment_type else None,
        amount=_money(transaction.gross_amount, currency, "$.body.transaction.gross_amount"),
        settled_at=_local_time(header.timestamp),
    )
    return [_event(header, "payment.settled", data)]


# --- Field conversions ----------------------------------------------------------------------


def _store(outlet: GoFoodOutlet | None) -> StoreRef | None:
    if outlet is None or (outlet.id is None and outlet.external_outlet_id is None):
        return None
    return StoreRef(external_id=outlet.id, partner_store_id=outlet.external_outlet_id)


def _fulfillment(service_type: str | None) -> Fulfillment | None:
    kind = GOFOOD_SERVICE_TYPES.get(service_type.lower()) if service_type else None
    return Fulfillment(type=kind) if kind is not None else None


def _customer(customer: GoFoodCustomer | None) -> Customer | None:
    return Customer(name=customer.name) if customer is not None and customer.name else None


def _cancellation_reason(order: GoFoodOrder) -> str | None:
    detail = order.cancellation_detail
    return (detail.reason or None) if detail is not None else None


def _local_time(moment: datetime | None) -> datetime | None:
    """The provider's time with its offset as given; a naive time is GoFood local (+07:00)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=GOFOOD_LOCAL_TIME)


def _currency(code: str | None, path: str = "$.body.order.currency") -> str:
    if code is None:
        return "IDR"
    upper = code.upper()
    if len(upper) != 3 or not upper.isascii() or not upper.isalpha():
        raise PayloadRejected(f"{path}: not an ISO 4217 currency code")
    return upper


def _money(amount: Decimal | None, currency: str, path: str) -> Money | None:
    """Whole currency units to canonical minor units, exactly; refuses NaN and absurd sizes."""
    if amount is None:
        return None
    # adjusted() is the decimal exponent, read without arithmetic that could overflow.
    if not amount.is_finite() or amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise PayloadRejected(f"{path}: amount is not a finite number below 10^15")
    return money_from_major(amount, currency)


def _quantity(quantity: Decimal | None, path: str) -> str | None:
    """A canonical decimal-string quantity ("2", "1.5")."""
    if quantity is None:
        return None
    if not quantity.is_finite() or quantity.adjusted() >= MAX_QUANTITY_DIGITS:
        raise PayloadRejected(f"{path}: quantity is not a finite number below 10^6")
    if quantity.is_zero():
        return "0"
    if quantity.adjusted() < -MAX_QUANTITY_DECIMALS:
        raise PayloadRejected(f"{path}: quantity has more than 6 decimal places")
    normal = quantity.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_QUANTITY_DECIMALS:
        raise PayloadRejected(f"{path}: quantity has more than 6 decimal places")
    # "f" never uses exponent notation: Decimal("1E+2") is "100".
    return format(normal, "f")


def _check_identity(value: str, path: str) -> None:
    if not 0 < len(value) <= MAX_IDENTITY_LENGTH or not value.isprintable():
        raise PayloadRejected(f"{path}: must be 1-{MAX_IDENTITY_LENGTH} printable characters")


_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], raw: bytes | msgspec.Raw, root: str) -> _T:
    """Decode with msgspec, turning its errors into PayloadRejected with a rooted JSON path.

    These shapes have no enums or literals, so msgspec's messages name types and paths and
    never echo a payload value.
    """
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        if not message:
            message, where = str(exc), "$`"
        raise PayloadRejected(f"{root}{where.rstrip('`')[1:]}: {message}") from None
    except msgspec.DecodeError as exc:
        raise PayloadRejected(f"{root}: not valid JSON ({exc})") from None
