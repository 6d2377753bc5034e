"""The canonical event model: Money, event data per type, publish bodies and the envelope."""

from __future__ import annotations

import inspect
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from contracts.event_types import EVENT_TYPES

# --- Scalars -------------------------------------------------------------------------------

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["IDR"])]
# Decimal strings, because weighed items exist and floats would round them.
Quantity = Annotated[str, Meta(pattern=r"^-?\d+(\.\d+)?$", examples=["1", "1.5"])]
# A time without an offset is ambiguous (Pawoon sends local device time): adapters attach the
# outlet's zone before building canonical data, so the contract refuses naive times.
Timestamp = Annotated[datetime, Meta(tz=True)]
# Open sets (new channels and POS brands arrive without a contract change), but one spelling.
Slug = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$", examples=["grabfood", "gofood", "pos"])]

OrderStatus = Literal[
    "awaiting_acceptance",
    "accepted",
    "preparing",
    "ready",
    "driver_assigned",
    "driver_arrived",
    "picked_up",
    "delivered",
    "completed",
    "cancelled",
    "rejected",
    "failed",
    "refunded",
]
FulfillmentType = Literal["platform_delivery", "self_delivery", "pickup", "dine_in"]
FundedBy = Literal["platform", "merchant", "shared"]
PaymentMethod = Literal["cash", "cashless", "card", "qris", "wallet"]
CancelledBy = Literal["customer", "merchant", "platform", "driver", "system"]
MenuSyncStatus = Literal["success", "failed", "partial"]
StoreStatus = Literal["open", "closed", "paused"]
IntegrationStatus = Literal["active", "inactive", "pending", "error"]
SourceMethod = Literal["webhook", "poll", "csv", "api"]


class Money(msgspec.Struct, frozen=True):
    """An amount in integer minor units of its currency (IDR has exponent 2: Rp 35.000 is
    3500000). Never a float, so sums stay exact."""

    amount: int
    currency: Currency = "IDR"


# --- Shared pieces of event data -----------------------------------------------------------


class _Data(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every event data shape.

    Unknown fields are ignored, not refused: a publisher on a newer revision of this contract
    must not be rejected by an older gateway. They are dropped, not passed through, so
    subscribers only ever receive fields this contract defines and validates. Optional fields
    are always encoded (null or [] when unknown) so subscribers see one stable shape.
    Subclasses repeat kw_only/frozen because type checkers do not inherit Struct options.
    """


class StoreRef(_Data, kw_only=True, frozen=True):
    """The store: its id on the channel and the merchant's own id for it."""

    external_id: str | None = None
    partner_store_id: str | None = None
    # CSV exports (Qasir) name the outlet but carry no id.
    name: str | None = None


class Fulfillment(_Data, kw_only=True, frozen=True):
    type: FulfillmentType
    scheduled_for: Timestamp | None = None
    table: str | None = None


class Customer(_Data, kw_only=True, frozen=True):
    name: str | None = None
    phone_masked: str | None = None


class Modifier(_Data, kw_only=True, frozen=True):
    """A chosen option; options can carry options of their own (a sauce on an add-on)."""

    external_id: str | None = None
    name: str | None = None
    quantity: Quantity | None = None
    unit_price: Money | None = None
    modifiers: list[Modifier] = msgspec.field(default_factory=list)


class Line(_Data, kw_only=True, frozen=True):
    """One item line. external_item_id is optional: Qasir CSV exports and GoFood items not
    mapped to the merchant's menu carry no merchant item id, and losing the whole order over
    one unmapped line is worse than a line identified only by name."""

    external_item_id: str | None = None
    platform_item_id: str | None = None
    name: str | None = None
    quantity: Quantity | None = None
    unit_price: Money | None = None
    line_total: Money | None = None
    notes: str | None = None
    modifiers: list[Modifier] = msgspec.field(default_factory=list)


class Charge(_Data, kw_only=True, frozen=True):
    """A fee on top of the items, e.g. delivery_fee, service_charge, packaging."""

    type: Slug
    amount: Money


class Discount(_Data, kw_only=True, frozen=True):
    funded_by: FundedBy | None = None
    code: str | None = None
    amount: Money


class Tax(_Data, kw_only=True, frozen=True):
    """A tax on a sale, e.g. PB1 at rate "10" (percent, decimal string)."""

    name: str | None = None
    rate: Quantity | None = None
    amount: Money
    included: bool | None = None


class Totals(_Data, kw_only=True, frozen=True):
    """merchant_net is what the merchant receives after the channel's commission."""

    subtotal: Money | None = None
    discount_total: Money | None = None
    tax_total: Money | None = None
    charges_total: Money | None = None
    total: Money | None = None
    merchant_net: Money | None = None


class OrderPayment(_Data, kw_only=True, frozen=True):
    method: PaymentMethod
    status: str | None = None


# --- Orders --------------------------------------------------------------------------------


class OrderData(_Data, kw_only=True, frozen=True):
    """A marketplace or POS order (order.created, .updated, .completed, .refunded).

    Only order_id is required: real provider payloads omit anything else (Grab orders have
    been seen without names or a price block). order_id is the order's stable id across all
    its events; external_order_id is the channel's unique id and display_id the short number
    staff read out. status is canonical; the channel's own word for it is provider_status.
    """

    order_id: str
    external_order_id: str | None = None
    display_id: str | None = None
    channel: Slug | None = None
    store: StoreRef | None = None
    fulfillment: Fulfillment | None = None
    placed_at: Timestamp | None = None
    customer: Customer | None = None
    lines: list[Line] = msgspec.field(default_factory=list)
    charges: list[Charge] = msgspec.field(default_factory=list)
    discounts: list[Discount] = msgspec.field(default_factory=list)
    totals: Totals | None = None
    payment: OrderPayment | None = None
    status: OrderStatus | None = None
    provider_status: str | None = None


class OrderStatusChangedData(_Data, kw_only=True, frozen=True):
    """An order moved to canonical status `to`; driver_eta_s is seconds until the driver
    reaches the store."""

    order_id: str
    external_order_id: str | None = None
    # `from` is a Python keyword; the wire name stays `from`.
    from_: OrderStatus | None = msgspec.field(default=None, name="from")
    to: OrderStatus
    provider_status: str | None = None
    driver_eta_s: Annotated[int, Meta(ge=0)] | None = None
    reason: str | None = None


class OrderCancelledData(_Data, kw_only=True, frozen=True):
    order_id: str
    external_order_id: str | None = None
    cancelled_by: CancelledBy | None = None
    reason: str | None = None


# --- Menu and stock ------------------------------------------------------------------------


class MenuItem(_Data, kw_only=True, frozen=True):
    external_item_id: str
    platform_item_id: str | None = None
    name: str | None = None
    category: str | None = None
    price: Money | None = None
    available: bool | None = None


class MenuUpdatedData(_Data, kw_only=True, frozen=True):
    """A channel's menu (or its mapping to the merchant's items) changed."""

    channel: Slug | None = None
    store: StoreRef | None = None
    menu_id: str | None = None
    items: list[MenuItem] = msgspec.field(default_factory=list)


class MenuSyncError(_Data, kw_only=True, frozen=True):
    external_item_id: str | None = None
    code: str | None = None
    message: str


class MenuSyncResultData(_Data, kw_only=True, frozen=True):
    """The outcome of a menu push to a channel; request_id is the channel's id for the push."""

    request_id: str
    status: MenuSyncStatus
    channel: Slug | None = None
    store: StoreRef | None = None
    errors: list[MenuSyncError] = msgspec.field(default_factory=list)


class ItemAvailabilityChangedData(_Data, kw_only=True, frozen=True):
    external_item_id: str
    available: bool
    platform_item_id: str | None = None
    channel: Slug | None = None
    store: StoreRef | None = None
    available_again_at: Timestamp | None = None
    reason: str | None = None


class InventoryAdjustedData(_Data, kw_only=True, frozen=True):
    """Stock moved by delta_qty (negative when it went down), e.g. reason sale, waste,
    restock, count."""

    external_item_id: str
    delta_qty: Quantity
    on_hand_after: Quantity | None = None
    unit: str | None = None
    reason: str
    store: StoreRef | None = None


# --- Sales ---------------------------------------------------------------------------------


class SalePayment(_Data, kw_only=True, frozen=True):
    """provider_method keeps the POS's own payment type beside the canonical method."""

    method: PaymentMethod | None = None
    provider_method: str | None = None
    amount: Money
    reference: str | None = None


class SaleData(_Data, kw_only=True, frozen=True):
    """A closed POS sale (sale.completed, .refunded, .voided). sale_id is its stable id;
    external_sale_id is the POS's id and receipt_number what the receipt shows."""

    sale_id: str
    external_sale_id: str | None = None
    receipt_number: str | None = None
    channel: Slug | None = None
    store: StoreRef | None = None
    closed_at: Timestamp | None = None
    lines: list[Line] = msgspec.field(default_factory=list)
    charges: list[Charge] = msgspec.field(default_factory=list)
    discounts: list[Discount] = msgspec.field(default_factory=list)
    taxes: list[Tax] = msgspec.field(default_factory=list)
    totals: Totals | None = None
    payments: list[SalePayment] = msgspec.field(default_factory=list)


class PaymentSettledData(_Data, kw_only=True, frozen=True):
    """A channel paid out for an order; settlement_id is the channel's transaction id."""

    settlement_id: str
    order_id: str | None = None
    external_order_id: str | None = None
    channel: Slug | None = None
    store: StoreRef | None = None
    method: PaymentMethod | None = None
    amount: Money | None = None
    fee: Money | None = None
    net_amount: Money | None = None
    settled_at: Timestamp | None = None


# --- Platform ------------------------------------------------------------------------------


class StoreStatusChangedData(_Data, kw_only=True, frozen=True):
    store: StoreRef
    status: StoreStatus
    channel: Slug | None = None
    provider_status: str | None = None
    reason: str | None = None
    reopens_at: Timestamp | None = None


class IntegrationStatusChangedData(_Data, kw_only=True, frozen=True):
    """The link between a channel and the merchant's store went up or down."""

    status: IntegrationStatus
    channel: Slug | None = None
    store: StoreRef | None = None
    provider_status: str | None = None
    reason: str | None = None


class SubscriptionDisabledData(_Data, kw_only=True, frozen=True):
    """The gateway stopped delivering to a subscription (e.g. its endpoint answered 410)."""

    subscription_id: str
    reason: str
    disabled_at: Timestamp


class AccountingExportCompletedData(_Data, kw_only=True, frozen=True):
    """A store's business day (Asia/Jakarta) was exported to an accounting system."""

    export_id: str
    target: Slug
    business_date: date
    store: StoreRef | None = None
    document_numbers: list[str] = msgspec.field(default_factory=list)
    total: Money | None = None
    completed_at: Timestamp | None = None


class AccountingExportFailedData(_Data, kw_only=True, frozen=True):
    """retryable says whether running the export again may succeed without a fix."""

    export_id: str
    target: Slug
    business_date: date
    store: StoreRef | None = None
    error: str
    retryable: bool | None = None
    failed_at: Timestamp | None = None


class PingData(_Data, kw_only=True, frozen=True):
    message: str | None = None


# --- Publish bodies (POST /v1/events) ------------------------------------------------------


class _Publish(
    msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, tag_field="type"
):
    """`{type, data, occurred_at?, source_id?}`. Unknown top-level fields are refused: at this
    level an unknown name is a typo (`ocurred_at`) that would otherwise silently lose data."""

    occurred_at: Timestamp | None = None
    source_id: str | None = None

    @property
    def type(self) -> str:
        # The tag is the single spelling of the type name; it is not a field of its own.
        return str(self.__struct_config__.tag)


class PublishOrderCreated(_Publish, tag="order.created", kw_only=True, frozen=True):
    data: OrderData


class PublishOrderUpdated(_Publish, tag="order.updated", kw_only=True, frozen=True):
    data: OrderData


class PublishOrderStatusChanged(_Publish, tag="order.status_changed", kw_only=True, frozen=True):
    data: OrderStatusChangedData


class PublishOrderCancelled(_Publish, tag="order.cancelled", kw_only=True, frozen=True):
    data: OrderCancelledData


class PublishOrderCompleted(_Publish, tag="order.completed", kw_only=True, frozen=True):
    data: OrderData


class PublishOrderRefunded(_Publish, tag="order.refunded", kw_only=True, frozen=True):
    data: OrderData


class PublishMenuUpdated(_Publish, tag="menu.updated", kw_only=True, frozen=True):
    data: MenuUpdatedData


class PublishMenuSyncResult(_Publish, tag="menu.sync_result", kw_only=True, frozen=True):
    data: MenuSyncResultData


class PublishItemAvailabilityChanged(
    _Publish, tag="item.availability_changed", kw_only=True, frozen=True
):
    data: ItemAvailabilityChangedData


class PublishInventoryAdjusted(_Publish, tag="inventory.adjusted", kw_only=True, frozen=True):
    data: InventoryAdjustedData


class PublishSaleCompleted(_Publish, tag="sale.completed", kw_only=True, frozen=True):
    data: SaleData


class PublishSaleRefunded(_Publish, tag="sale.refunded", kw_only=True, frozen=True):
    data: SaleData


class PublishSaleVoided(_Publish, tag="sale.voided", kw_only=True, frozen=True):
    data: SaleData


class PublishPaymentSettled(_Publish, tag="payment.settled", kw_only=True, frozen=True):
    data: PaymentSettledData


class PublishStoreStatusChanged(_Publish, tag="store.status_changed", kw_only=True, frozen=True):
    data: StoreStatusChangedData


class PublishIntegrationStatusChanged(
    _Publish, tag="integration.status_changed", kw_only=True, frozen=True
):
    data: IntegrationStatusChangedData


class PublishSubscriptionDisabled(_Publish, tag="subscription.disabled", kw_only=True, frozen=True):
    data: SubscriptionDisabledData


class PublishAccountingExportCompleted(
    _Publish, tag="accounting.export_completed", kw_only=True, frozen=True
):
    data: AccountingExportCompletedData


class PublishAccountingExportFailed(
    _Publish, tag="accounting.export_failed", kw_only=True, frozen=True
):
    data: AccountingExportFailedData


class PublishPing(_Publish, tag="ping", kw_only=True, frozen=True):
    data: PingData


PublishEvent = (
    PublishOrderCreated
    | PublishOrderUpdated
    | PublishOrderStatusChanged
    | PublishOrderCancelled
    | PublishOrderCompleted
    | PublishOrderRefunded
    | PublishMenuUpdated
    | PublishMenuSyncResult
    | PublishItemAvailabilityChanged
    | PublishInventoryAdjusted
    | PublishSaleCompleted
    | PublishSaleRefunded
    | PublishSaleVoided
    | PublishPaymentSettled
    | PublishStoreStatusChanged
    | PublishIntegrationStatusChanged
    | PublishSubscriptionDisabled
    | PublishAccountingExportCompleted
    | PublishAccountingExportFailed
    | PublishPing
)

# Decode request bodies with this strict decoder: a lax convert (Litestar's default for typed
# bodies) would accept "35000" or 35000.0 as a Money amount.
publish_decoder: msgspec.json.Decoder[PublishEvent] = msgspec.json.Decoder(PublishEvent)

# Derived from the publish bodies so the tag and its data shape are written down once.
DATA_TYPES: dict[str, type[msgspec.Struct]] = {
    str(body.__struct_config__.tag): field.type
    for body in get_args(PublishEvent)
    for field in msgspec.structs.fields(body)
    if field.name == "data"
}


# --- Envelope delivered to subscribers -----------------------------------------------------


class EventSource(msgspec.Struct, kw_only=True, frozen=True):
    """Where an event came from. Every key is always present (null when not applicable)."""

    source_id: str | None
    provider: str | None
    method: SourceMethod
    provider_event_id: str | None = None
    provider_event_name: str | None = None


def _spec_version() -> str:
    return "1"


class Envelope(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The body of every webhook delivery. sequence and stale are left out when unknown.

    data is typed Any because callers hand over either a data Struct or a plain dict
    (events re-read from storage); both encode to the same JSON.
    """

    id: str
    type: str
    # A default_factory (not a plain default) because omit_defaults would drop a field equal
    # to its default, and spec_version must always be sent.
    spec_version: str = msgspec.field(default_factory=_spec_version)
    tenant_id: str
    occurred_at: datetime
    received_at: datetime
    source: EventSource
    sequence: int | None = None
    stale: bool | None = None
    data: Any


# --- Catalogue (GET /v1/event-types) -------------------------------------------------------

_GRAB_STORE: dict[str, Any] = {"external_id": "1-CYNGRUNGSBCCC", "partner_store_id": "outlet-01"}
_GOFOOD_STORE: dict[str, Any] = {"external_id": "G1898453S", "partner_store_id": "outlet-01"}
_POS_STORE: dict[str, Any] = {"partner_store_id": "outlet-01", "name": "Kopi Nusantara Senayan"}

EXAMPLES: dict[str, dict[str, Any]] = {
    "order.created": {
        "type": "order.created",
        "data": {
            "order_id": "grabfood:123-CYNKLPCVRN5",
            "external_order_id": "123-CYNKLPCVRN5",
            "display_id": "GF-102",
            "channel": "grabfood",
            "store": _GRAB_STORE,
            "fulfillment": {"type": "platform_delivery"},
            "placed_at": "2025-05-01T05:12:00Z",
            "customer": {"name": "Budi", "phone_masked": "+62812****0000"},
            "lines": [
                {
                    "external_item_id": "SKU-KOPSU-AREN",
                    "platform_item_id": "IDITE2024000001",
                    "name": "Es Kopi Susu Gula Aren",
                    "quantity": "2",
                    "unit_price": {"amount": 3000000, "currency": "IDR"},
                    "line_total": {"amount": 6000000, "currency": "IDR"},
                    "notes": "less ice",
                    "modifiers": [
                        {
                            "external_id": "MOD-OAT",
                            "name": "Oat Milk",
                            "quantity": "1",
                            "unit_price": {"amount": 500000, "currency": "IDR"},
                        }
                    ],
                },
                {
                    "external_item_id": "SKU-NASGOR-KAMPUNG",
                    "platform_item_id": "IDITE2024000002",
                    "name": "Nasi Goreng Kampung",
                    "quantity": "1",
                    "unit_price": {"amount": 3500000, "currency": "IDR"},
                    "line_total": {"amount": 3500000, "currency": "IDR"},
                    "notes": "tidak pedas",
                },
            ],
            "charges": [{"type": "packaging", "amount": {"amount": 200000, "currency": "IDR"}}],
            "discounts": [
                {
                    "funded_by": "merchant",
                    "code": "HEMAT10",
                    "amount": {"amount": 950000, "currency": "IDR"},
                }
            ],
            "totals": {
                "subtotal": {"amount": 9500000, "currency": "IDR"},
                "discount_total": {"amount": 950000, "currency": "IDR"},
                "tax_total": {"amount": 0, "currency": "IDR"},
                "charges_total": {"amount": 200000, "currency": "IDR"},
                "total": {"amount": 8750000, "currency": "IDR"},
                "merchant_net": {"amount": 7000000, "currency": "IDR"},
            },
            "payment": {"method": "cashless", "status": "paid"},
            "status": "accepted",
        },
    },
    "order.updated": {
        "type": "order.updated",
        "data": {
            "order_id": "gofood:F-460335259",
            "external_order_id": "F-460335259",
            "display_id": "5178",
            "channel": "gofood",
            "store": _GOFOOD_STORE,
            "fulfillment": {"type": "pickup"},
            "placed_at": "2025-05-01T12:10:01.446+07:00",
            "customer": {"name": "GoFood Customer"},
            "lines": [
                {
                    "external_item_id": "menu-item-1",
                    "platform_item_id": "7b42c0de-0000-4000-8000-000000000001",
                    "name": "Salmon Pizza",
                    "quantity": "1",
                    "unit_price": {"amount": 11000000, "currency": "IDR"},
                    "line_total": {"amount": 11000000, "currency": "IDR"},
                    "modifiers": [{"external_id": "variant-1", "name": "Tambah Keju"}],
                }
            ],
            "totals": {"total": {"amount": 11000000, "currency": "IDR"}},
            "payment": {"method": "wallet"},
            "status": "accepted",
            "provider_status": "MERCHANT_ACCEPTED",
        },
    },
    "order.status_changed": {
        "type": "order.status_changed",
        "data": {
            "order_id": "grabfood:123-CYNKLPCVRN5",
            "external_order_id": "123-CYNKLPCVRN5",
            "from": "accepted",
            "to": "driver_assigned",
            "provider_status": "DRIVER_ALLOCATED",
            "driver_eta_s": 420,
        },
    },
    "order.cancelled": {
        "type": "order.cancelled",
        "data": {
            "order_id": "gofood:F-460335260",
            "external_order_id": "F-460335260",
            "cancelled_by": "customer",
            "reason": "Pelanggan membatalkan pesanan",
        },
    },
    "order.completed": {
        "type": "order.completed",
        "data": {
            "order_id": "gofood:F-460335259",
            "external_order_id": "F-460335259",
            "channel": "gofood",
            "store": _GOFOOD_STORE,
            "totals": {"total": {"amount": 11000000, "currency": "IDR"}},
            "status": "completed",
            "provider_status": "COMPLETED",
        },
    },
    "order.refunded": {
        "type": "order.refunded",
        "data": {
            "order_id": "grabfood:123-CYNKLPCVRN5",
            "external_order_id": "123-CYNKLPCVRN5",
            "channel": "grabfood",
            "store": _GRAB_STORE,
            "totals": {"total": {"amount": 8750000, "currency": "IDR"}},
            "status": "refunded",
            "provider_status": "REFUNDED",
        },
    },
    "menu.updated": {
        "type": "menu.updated",
        "data": {
            "channel": "gofood",
            "store": _GOFOOD_STORE,
            "items": [
                {
                    "external_item_id": "SKU-NASGOR-KAMPUNG",
                    "platform_item_id": "7b42c0de-0000-4000-8000-000000000003",
                    "name": "Nasi Goreng Kampung",
                    "category": "Makanan",
                    "price": {"amount": 3500000, "currency": "IDR"},
                    "available": True,
                },
                {
                    "external_item_id": "SKU-ES-TEH",
                    "name": "Es Teh Manis",
                    "category": "Minuman",
                    "price": {"amount": 800000, "currency": "IDR"},
                    "available": True,
                },
            ],
        },
    },
    "menu.sync_result": {
        "type": "menu.sync_result",
        "data": {
            "request_id": "5b0a7d1e-3c2f-4e8a-9f61-2d4c8b7a1e90",
            "status": "partial",
            "channel": "grabfood",
            "store": _GRAB_STORE,
            "errors": [
                {
                    "external_item_id": "SKU-ES-TEH",
                    "code": "invalid_price",
                    "message": "price must be greater than zero",
                }
            ],
        },
    },
    "item.availability_changed": {
        "type": "item.availability_changed",
        "data": {
            "external_item_id": "SKU-NASGOR-KAMPUNG",
            "available": False,
            "channel": "grabfood",
            "store": _GRAB_STORE,
            "available_again_at": "2025-05-02T08:00:00+07:00",
            "reason": "habis",
        },
    },
    "inventory.adjusted": {
        "type": "inventory.adjusted",
        "data": {
            "external_item_id": "RAW-BERAS-PANDAN",
            "delta_qty": "-2.5",
            "on_hand_after": "47.5",
            "unit": "kg",
            "reason": "waste",
            "store": _POS_STORE,
        },
    },
    "sale.completed": {
        "type": "sale.completed",
        "data": {
            "sale_id": "moka:9001",
            "external_sale_id": "9001",
            "receipt_number": "PAY-0001",
            "channel": "pos",
            "store": _POS_STORE,
            "closed_at": "2025-05-01T09:15:00+07:00",
            "lines": [
                {
                    "external_item_id": "311",
                    "name": "Kopi Susu",
                    "quantity": "2",
                    "unit_price": {"amount": 2750000, "currency": "IDR"},
                    "line_total": {"amount": 5500000, "currency": "IDR"},
                    "modifiers": [
                        {
                            "external_id": "7",
                            "name": "Less Sugar",
                            "unit_price": {"amount": 0, "currency": "IDR"},
                        }
                    ],
                }
            ],
            "taxes": [
                {"name": "PB1", "rate": "10", "amount": {"amount": 550000, "currency": "IDR"}}
            ],
            "totals": {
                "subtotal": {"amount": 5500000, "currency": "IDR"},
                "tax_total": {"amount": 550000, "currency": "IDR"},
                "total": {"amount": 6050000, "currency": "IDR"},
            },
            "payments": [
                {
                    "method": "qris",
                    "provider_method": "QRIS",
                    "amount": {"amount": 6050000, "currency": "IDR"},
                }
            ],
        },
    },
    "sale.refunded": {
        "type": "sale.refunded",
        "data": {
            "sale_id": "moka:9002",
            "external_sale_id": "9002",
            "receipt_number": "PAY-0002",
            "channel": "pos",
            "store": _POS_STORE,
            "closed_at": "2025-05-01T09:40:00+07:00",
            "lines": [
                {
                    "external_item_id": "321",
                    "name": "Roti Bakar",
                    "quantity": "1",
                    "unit_price": {"amount": 1850050, "currency": "IDR"},
                    "line_total": {"amount": 1850050, "currency": "IDR"},
                }
            ],
            "totals": {"total": {"amount": 1850050, "currency": "IDR"}},
            "payments": [
                {
                    "method": "cash",
                    "provider_method": "Cash",
                    "amount": {"amount": 1850050, "currency": "IDR"},
                }
            ],
        },
    },
    "sale.voided": {
        "type": "sale.voided",
        "data": {
            "sale_id": "qasir:QS-2025-0002",
            "external_sale_id": "QS-2025-0002",
            "receipt_number": "QS-2025-0002",
            "channel": "pos",
            "store": {"name": "Outlet Senayan"},
            "closed_at": "2025-05-01T10:15:40+07:00",
            "lines": [
                {
                    "name": "Kopi Hitam",
                    "quantity": "1",
                    "unit_price": {"amount": 1200000, "currency": "IDR"},
                    "line_total": {"amount": 1200000, "currency": "IDR"},
                }
            ],
            "totals": {"total": {"amount": 1200000, "currency": "IDR"}},
        },
    },
    "payment.settled": {
        "type": "payment.settled",
        "data": {
            "settlement_id": "GP-STL-20250502-000123",
            "order_id": "gofood:F-460335259",
            "external_order_id": "F-460335259",
            "channel": "gofood",
            "store": _GOFOOD_STORE,
            "method": "wallet",
            "amount": {"amount": 11000000, "currency": "IDR"},
            "fee": {"amount": 2200000, "currency": "IDR"},
            "net_amount": {"amount": 8800000, "currency": "IDR"},
            "settled_at": "2025-05-02T10:00:00+07:00",
        },
    },
    "store.status_changed": {
        "type": "store.status_changed",
        "data": {
            "store": _GOFOOD_STORE,
            "status": "paused",
            "channel": "gofood",
            "reason": "Dapur sedang penuh",
            "reopens_at": "2025-05-01T13:30:00+07:00",
        },
    },
    "integration.status_changed": {
        "type": "integration.status_changed",
        "data": {
            "status": "active",
            "channel": "grabfood",
            "store": _GRAB_STORE,
            "provider_status": "ACTIVE",
        },
    },
    "subscription.disabled": {
        "type": "subscription.disabled",
        "data": {
            "subscription_id": "sub_01JT3K8Q6V9Y2C4M7N1P5R8S0W",
            "reason": "endpoint answered 410 Gone",
            "disabled_at": "2025-05-01T06:00:00Z",
        },
    },
    "accounting.export_completed": {
        "type": "accounting.export_completed",
        "data": {
            "export_id": "accurate:outlet-01:2025-05-01",
            "target": "accurate",
            "business_date": "2025-05-01",
            "store": _POS_STORE,
            "document_numbers": ["SI.2025.05.00001"],
            "total": {"amount": 1234560000, "currency": "IDR"},
            "completed_at": "2025-05-02T01:05:00+07:00",
        },
    },
    "accounting.export_failed": {
        "type": "accounting.export_failed",
        "data": {
            "export_id": "jurnal:outlet-01:2025-05-01",
            "target": "jurnal",
            "business_date": "2025-05-01",
            "store": _POS_STORE,
            "error": "Jurnal answered 422: account 4-40000 not found",
            "retryable": False,
            "failed_at": "2025-05-02T01:05:00+07:00",
        },
    },
    "ping": {"type": "ping", "data": {"message": "Test event from pwbi-gateway"}},
}


def _self_contained_schema(data_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The data Struct's schema at the top level (msgspec gives only a $ref there), with the
    nested shapes in $defs so one catalogue entry needs nothing else to resolve."""
    generated = msgspec.json.schema(data_type)
    defs: dict[str, Any] = dict(generated.get("$defs", {}))
    name = str(generated["$ref"]).rsplit("/", 1)[-1]
    for shape in defs.values():
        if "description" in shape:
            # Docstrings keep their source indentation; partners read these in the catalogue.
            shape["description"] = inspect.cleandoc(shape["description"])
    root: dict[str, Any] = defs[name]
    if f'"#/$defs/{name}"' not in msgspec.json.encode(defs).decode():
        del defs[name]
    schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}
    if defs:
        schema["$defs"] = defs
    return schema


def event_type_catalog() -> list[dict[str, Any]]:
    """One entry per event type, in EVENT_TYPES order: its name, data schema and an example."""
    return [
        {
            "type": name,
            "schema": _self_contained_schema(DATA_TYPES[name]),
            "example": EXAMPLES[name],
        }
        for name in EVENT_TYPES
    ]
