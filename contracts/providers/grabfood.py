"""GrabFood webhooks: Grab's four wire shapes and their normalization to canonical events.

Grab calls us with four bodies (Submit Order, Push Order State, Menu Sync State, Push Integration
Status), each handled by one pure function over the raw bytes:
`normalize_submit_order`, `normalize_order_state`, `normalize_menu_sync_state` and
`normalize_integration_status`. Only identities are required (`orderID`; `orderID` and `state`
for state pushes; `requestID` for menu sync; `grabMerchantID`/`merchantID` for integration
status); every other field may be missing or null, an empty string means absent, and unknown
fields are ignored. A body that is not a JSON object, lacks an identity or has a field of a type
that cannot be read is refused with PayloadRejected, whose message names the JSON path and never
echoes a value.

Field meanings are from Grab's generated SDKs (partner API 1.1.3) and providers.md. Decisions:
- Ids: the canonical order id is `grabfood:{orderID}` (channel-prefixed, so ids from different
  channels never collide); it is also the order key. display_id is `shortOrderNumber` with a
  "GF-" prefix added unless already there, as Grab's merchant app shows it (canonical_display_id).
- Amounts are integers in minor units at `currency.exponent`, read from each payload (0 for VND,
  2 elsewhere) and scaled to canonical minor units with base.money. They are decoded as Decimal,
  straight from the JSON text, never through float: an integral JSON float (`4100000.0`) or
  numeric string is read exactly; a fractional number of minor units, a non-finite value or one
  of 10^15 minor units or more is refused (a half sen is a malformed payload, and rounding it away
  would change money silently). A missing currency code is taken as IDR; a missing exponent as
  the currency's ISO exponent (i.e. no scaling).
- Item `price` is per unit, tax- and modifier-inclusive: unit_price = price, line_total = price *
  quantity (one exact product, rounded half-even only if the quantity is fractional). Modifier
  prices are per modifier and already inside the item price.
- Totals: subtotal = `subtotal`, tax_total = `tax` (included in prices), total = Grab's `total`
  (what the order is worth to the merchant before commission: subtotal + merchantChargeFee -
  merchantFundPromo), merchant_net = `merchantEarning` (an integer, or the object form's
  `netEarning`). The charges and discounts lists say what the customer was charged and saved:
  charges are the non-zero merchantChargeFee (merchant_charge), serviceChargeFee (service_charge),
  deliveryFee (delivery_fee) and smallOrderFee (small_order_fee); discounts are grabFundPromo
  (platform) and merchantFundPromo (merchant). charges_total and discount_total are the sums of
  those fields. So total is not subtotal - discount_total + charges_total when Grab funds a
  promo or a delivery fee applies: Grab pays the one and keeps the other. See _price_parts.
- `basketPromo` is grabFundPromo + merchantFundPromo (Grab's formula), so it is never a discount
  of its own; only when neither split is present does it become one discount with funded_by
  unset (the split is unknown).
- Submit Order status: orderAcceptedType AUTO is `accepted` (Grab accepted it for the merchant);
  MANUAL or absent is `awaiting_acceptance` (submitted_order_status). provider_status is left
  unset: Submit Order carries no state word, and inventing one would pass for Grab's vocabulary.
- Customer: the receiver's name, and the phone as "****" + its last 4 digits (fixed width, so the
  mask does not reveal the number's length); the address is not published. campaigns and promos
  are not read (their amounts are already in the price block).
- Times are RFC 3339; one without an offset is UTC (Grab documents UTC). An unreadable time is
  refused like any other unreadable field.
- State pushes: ORDER_STATES maps the state (case-insensitively). A known state gives
  order.status_changed (`from` unset: the adapter is stateless), followed by order.cancelled,
  order.completed or order.refunded for those statuses (FOLLOW_UP_EVENT_TYPES). driver_eta_s is
  read for DRIVER_ALLOCATED only; an ETA that is negative or absurd is dropped, not refused. The
  reason is `message`, with the free-text sub-state `code` in front when both are given.
- Unknown state: OrderStatusChangedData.to is required and the canonical status must stay
  unchanged, so an unknown state gives one order.updated (status unset, the word kept as
  provider_status and reported as unknown_status) and never fails the request. ShopeeFood does
  the same.
- Dedupe keys: `grabfood:{orderID}:submitted`; `grabfood:{orderID}:state:{STATE}` for the state
  event, plus `:{event type}` for a follow-up; `grabfood:menu_sync:{requestID}:{STATUS}`;
  `grabfood:integration:{merchant}:{STATUS}:{updatedAt}`.

Details not confirmed by Grab documentation (unverified), each isolated in one place:
- BILL_PAID, COMPLETED and REFUNDED states (in providers.md, not in the SDK's enum): ORDER_STATES.
- `cancelledBy` on a CANCELLED push and its words: GrabOrderState, CANCELLED_BY.
- Item and modifier `name`, and modifiers nested in modifiers: GrabItem, GrabModifier.
- Menu sync: SUCCESS with errors is `partial`; QUEUEING, PROCESSING and unknown statuses produce
  no event (a sync result is an outcome); errors given as objects ({id, code, message}) and a
  top-level `message`: menu_sync_outcome, GrabMenuSyncState. request_id is `jobID` (the id of the
  sync job the partner started) when present, else `requestID` (the id of this webhook call).
- Integration status: the SDK's body is {partnerMerchantID, grabMerchantID, integrationStatus
  ACTIVE|INACTIVE|SYNCING|FAILED}; `merchantID`, `status`, `reason`/`message` and `updatedAt` are
  also read. SYNCING is `pending`, FAILED is `error`; an unknown status produces no event:
  INTEGRATION_STATUSES. Without `updatedAt`, a store returning to an earlier status (ACTIVE,
  INACTIVE, ACTIVE) has the same dedupe key as its first visit there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, TypeVar

import msgspec

from contracts.canonical import (
    CancelledBy,
    Charge,
    Customer,
    Discount,
    Fulfillment,
    FulfillmentType,
    FundedBy,
    IntegrationStatus,
    IntegrationStatusChangedData,
    Line,
    MenuSyncError,
    MenuSyncResultData,
    MenuSyncStatus,
    Modifier,
    Money,
    OrderCancelledData,
    OrderData,
    OrderPayment,
    OrderStatus,
    OrderStatusChangedData,
    PaymentMethod,
    StoreRef,
    Totals,
)
from contracts.providers.base import NormalizedEvent, PayloadRejected, money

CHANNEL: Final = "grabfood"

# provider_event_name per webhook: Grab sends no event name, so these are its webhook names.
SUBMIT_ORDER: Final = "submit_order"
PUSH_ORDER_STATE: Final = "push_order_state"
MENU_SYNC_STATE: Final = "menu_sync_state"
PUSH_INTEGRATION_STATUS: Final = "push_integration_status"

ORDER_STATES: Final[dict[str, OrderStatus]] = {
    "ACCEPTED": "accepted",
    "DRIVER_ALLOCATED": "driver_assigned",
    "DRIVER_ARRIVED": "driver_arrived",
    "COLLECTED": "picked_up",
    "DELIVERED": "delivered",
    "BILL_PAID": "completed",  # unverified (providers.md, not the SDK enum)
    "COMPLETED": "completed",  # unverified (providers.md, not the SDK enum)
    "REFUNDED": "refunded",  # unverified (providers.md, not the SDK enum)
    "FAILED": "failed",
    "CANCELLED": "cancelled",
}

# Statuses that are facts of their own besides the status move (Deliverect: cancellations are
# their own event), and the event type each adds.
FOLLOW_UP_EVENT_TYPES: Final[dict[OrderStatus, str]] = {
    "cancelled": "order.cancelled",
    "completed": "order.completed",
    "refunded": "order.refunded",
}

ORDER_TYPES: Final[dict[str, FulfillmentType]] = {
    "DeliveredByGrab": "platform_delivery",
    "DeliveredByRestaurant": "self_delivery",
    "TakeAway": "pickup",
    "TakeAwayOrder": "pickup",
    "PosDineOutOrder": "pickup",
    "DineIn": "dine_in",
    "ScanToOrder": "dine_in",
}
# Looked up case-insensitively: a change in Grab's capitalisation must not drop fulfillment.
_ORDER_TYPES_FOLDED: Final = {word.casefold(): kind for word, kind in ORDER_TYPES.items()}

PAYMENT_TYPES: Final[dict[str, PaymentMethod]] = {"CASH": "cash", "CASHLESS": "cashless"}

# unverified: Grab documents no `cancelledBy`; these are the words we would expect.
CANCELLED_BY: Final[dict[str, CancelledBy]] = {
    "CUSTOMER": "customer",
    "EATER": "customer",
    "MERCHANT": "merchant",
    "GRAB": "platform",
    "PLATFORM": "platform",
    "DRIVER": "driver",
    "SYSTEM": "system",
}

# None: a known status that is not an outcome (the job is still running): no event.
MENU_SYNC_STATUSES: Final[dict[str, MenuSyncStatus | None]] = {
    "SUCCESS": "success",
    "FAILED": "failed",
    "QUEUEING": None,
    "PROCESSING": None,
}

INTEGRATION_STATUSES: Final[dict[str, IntegrationStatus]] = {
    "ACTIVE": "active",
    "INACTIVE": "inactive",
    "SYNCING": "pending",
    "FAILED": "error",
}

# Identities and status words go into dedupe keys (VARCHAR(300) with the prefixes added).
MAX_IDENTITY_LENGTH: Final = 200
MAX_STATUS_LENGTH: Final = 40
# Below 10^15 minor units (Rp 10 trillion): larger is malformed, not a big order, and keeps
# scaled amounts and sums far inside 64 bits. Bounds are decimal exponents.
MAX_AMOUNT_DIGITS: Final = 15
MAX_EXPONENT: Final = 6
MAX_QUANTITY_DIGITS: Final = 6
QUANTITY_STEP: Final = Decimal("0.000001")
# An ETA of ten million seconds (four months) or more is noise, not a driver on the way.
MAX_DRIVER_ETA_S: Final = 10_000_000
PHONE_DIGITS_KEPT: Final = 4


# --- Wire shapes (camelCase, as Grab spells them) -------------------------------------------


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the Grab wire shapes: unknown fields are ignored and every field is optional;
    identities are checked in code so the refusal names the field plainly."""


class GrabCurrency(_Wire, frozen=True, kw_only=True):
    code: str | None = None
    symbol: Any = None  # display only
    exponent: int | None = None


class GrabFeatureFlags(_Wire, frozen=True, kw_only=True):
    orderAcceptedType: str | None = None
    orderType: str | None = None
    isMexEditOrder: Any = None  # not read


class GrabModifier(_Wire, frozen=True, kw_only=True):
    id: str | None = None
    name: str | None = None  # unverified: not in Grab's SDK
    price: Decimal | None = None
    tax: Decimal | None = None  # included in price
    quantity: Decimal | None = None
    modifiers: list[GrabModifier] | None = None  # unverified: Grab's modifiers are flat today


class GrabItem(_Wire, frozen=True, kw_only=True):
    id: str | None = None  # the merchant's item id
    grabItemID: str | None = None
    name: str | None = None  # unverified: seen empty in real payloads, not in Grab's SDK
    quantity: Decimal | None = None
    price: Decimal | None = None
    tax: Decimal | None = None  # included in price
    specifications: str | None = None
    modifiers: list[GrabModifier] | None = None
    outOfStockInstruction: Any = None  # not read


class GrabMerchantEarning(_Wire, frozen=True, kw_only=True):
    """The object form of `price.merchantEarning` (SDK 1.1.3, dine-out scan-to-order)."""

    revenue: Decimal | None = None
    netEarning: Decimal | None = None
    mexFundDiscount: Decimal | None = None
    commission: Decimal | None = None


class GrabPrice(_Wire, frozen=True, kw_only=True):
    subtotal: Decimal | None = None
    tax: Decimal | None = None
    merchantChargeFee: Decimal | None = None
    serviceChargeFee: Decimal | None = None
    grabFundPromo: Decimal | None = None
    merchantFundPromo: Decimal | None = None
    basketPromo: Decimal | None = None
    deliveryFee: Decimal | None = None
    smallOrderFee: Decimal | None = None
    eaterPayment: Decimal | None = None  # not published: no canonical field
    total: Decimal | None = None
    # An integer in older payloads (and our fixture), an object in SDK 1.1.3.
    merchantEarning: Decimal | GrabMerchantEarning | None = None


class GrabReceiver(_Wire, frozen=True, kw_only=True):
    name: str | None = None
    phones: str | None = None
    address: Any = None  # personal data with no canonical field: never published


class GrabDineIn(_Wire, frozen=True, kw_only=True):
    tableID: str | None = None
    eaterCount: Any = None  # not read


class GrabSubmitOrder(_Wire, frozen=True, kw_only=True):
    orderID: str | None = None
    shortOrderNumber: str | int | None = None
    merchantID: str | None = None
    partnerMerchantID: str | None = None
    paymentType: str | None = None
    cutlery: Any = None  # not read
    # Strings, not datetimes: Grab sends "" for "not scheduled", which a datetime refuses.
    orderTime: str | None = None
    scheduledTime: str | None = None
    currency: GrabCurrency | None = None
    featureFlags: GrabFeatureFlags | None = None
    items: list[GrabItem] | None = None
    campaigns: Any = None  # not read: amounts are in the price block
    promos: Any = None  # not read: amounts are in the price block
    price: GrabPrice | None = None
    receiver: GrabReceiver | None = None
    dineIn: GrabDineIn | None = None


class GrabOrderState(_Wire, frozen=True, kw_only=True):
    orderID: str | None = None
    state: str | None = None
    merchantID: str | None = None
    partnerMerchantID: str | None = None
    # Any JSON number: seconds are not money, and a fractional ETA is still an ETA.
    driverETA: Decimal | None = None
    code: str | None = None
    message: str | None = None
    cancelledBy: str | None = None  # unverified


class GrabMenuSyncErrorDetail(_Wire, frozen=True, kw_only=True):
    """unverified: Grab documents errors as strings; an object form is read just in case."""

    id: str | None = None
    code: str | None = None
    message: str | None = None


class GrabMenuSyncState(_Wire, frozen=True, kw_only=True):
    requestID: str | None = None
    merchantID: str | None = None
    partnerMerchantID: str | None = None
    jobID: str | None = None
    updatedAt: str | None = None
    status: str | None = None
    errors: list[str | GrabMenuSyncErrorDetail] | None = None
    message: str | None = None  # unverified


class GrabIntegrationStatus(_Wire, frozen=True, kw_only=True):
    grabMerchantID: str | None = None
    merchantID: str | None = None  # unverified alias of grabMerchantID
    partnerMerchantID: str | None = None
    integrationStatus: str | None = None
    status: str | None = None  # unverified alias of integrationStatus
    reason: str | None = None  # unverified
    message: str | None = None  # unverified
    updatedAt: str | None = None  # unverified


_SUBMIT_ORDER = msgspec.json.Decoder(GrabSubmitOrder)
_ORDER_STATE = msgspec.json.Decoder(GrabOrderState)
_MENU_SYNC_STATE = msgspec.json.Decoder(GrabMenuSyncState)
_INTEGRATION_STATUS = msgspec.json.Decoder(GrabIntegrationStatus)


# --- Submit Order ----------------------------------------------------------------------------


def normalize_submit_order(raw: bytes) -> list[NormalizedEvent]:
    """A Submit Order body as one order.created. Raises PayloadRejected (see module docstring)."""
    order = _decode(_SUBMIT_ORDER, raw)
    external_id = _identity(order.orderID, "$.orderID", MAX_IDENTITY_LENGTH)
    order_id = canonical_order_id(external_id)
    currency = _currency(order.currency)
    flags = order.featureFlags
    status = submitted_order_status(flags.orderAcceptedType if flags is not None else None)
    placed_at = _time(order.orderTime, "$.orderTime")
    charges, discounts, totals = _price_parts(order.price, currency)
    data = OrderData(
        order_id=order_id,
        external_order_id=external_id,
        display_id=canonical_display_id(order.shortOrderNumber),
        channel=CHANNEL,
        store=_store(order.merchantID, order.partnerMerchantID),
        fulfillment=_fulfillment(order),
        placed_at=placed_at,
        customer=_customer(order.receiver),
        lines=[_line(item, currency, f"$.items[{i}]") for i, item in enumerate(order.items or ())],
        charges=charges,
        discounts=discounts,
        totals=totals,
        payment=_payment(order.paymentType),
        status=status,
    )
    return [
        NormalizedEvent(
            type="order.created",
            data=data,
            occurred_at=placed_at,
            provider_event_name=SUBMIT_ORDER,
            dedupe_key=f"{order_id}:submitted",
            order_key=order_id,
            order_status=status,
        )
    ]


def canonical_order_id(order_id: str) -> str:
    """The canonical id of Grab order `order_id`: channel-prefixed so channels never collide."""
    return f"{CHANNEL}:{order_id}"


def canonical_display_id(short_order_number: str | int | None) -> str | None:
    """`shortOrderNumber` as staff read it in Grab's merchant app: "GF-102"."""
    text = _text(str(short_order_number) if short_order_number is not None else None)
    if text is None:
        return None
    return text if text.upper().startswith("GF-") else f"GF-{text}"


def submitted_order_status(order_accepted_type: str | None) -> OrderStatus:
    """An AUTO order was accepted by Grab for the merchant; any other waits for the merchant."""
    if order_accepted_type is not None and order_accepted_type.strip().upper() == "AUTO":
        return "accepted"
    return "awaiting_acceptance"


def fulfillment_type(order_type: str | None) -> FulfillmentType | None:
    """The canonical fulfillment for a Grab `featureFlags.orderType`, or None if unknown."""
    return _ORDER_TYPES_FOLDED.get(order_type.strip().casefold()) if order_type else None


def mask_phone(phones: str | None) -> str | None:
    """The phone as "****" and its last 4 digits; None when too short to hide anything."""
    digits = [c for c in phones or "" if c in "0123456789"]
    if len(digits) <= PHONE_DIGITS_KEPT:
        return None
    return "****" + "".join(digits[-PHONE_DIGITS_KEPT:])


class _Currency(msgspec.Struct, frozen=True):
    code: str
    exponent: int | None


def _currency(currency: GrabCurrency | None) -> _Currency:
    code = _text(currency.code if currency is not None else None)
    exponent = currency.exponent if currency is not None else None
    if code is not None:
        code = code.strip().upper()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise PayloadRejected("$.currency.code: not an ISO 4217 currency code")
    if exponent is not None and not 0 <= exponent <= MAX_EXPONENT:
        raise PayloadRejected(f"$.currency.exponent: not between 0 and {MAX_EXPONENT}")
    return _Currency(code or "IDR", exponent)


def _fulfillment(order: GrabSubmitOrder) -> Fulfillment | None:
    # Read before the type is known, so an unreadable time is refused whatever the order type.
    scheduled_for = _time(order.scheduledTime, "$.scheduledTime")
    flags = order.featureFlags
    kind = fulfillment_type(flags.orderType if flags is not None else None)
    if kind is None:
        return None
    table = _text(order.dineIn.tableID) if order.dineIn is not None else None
    return Fulfillment(type=kind, scheduled_for=scheduled_for, table=table)


def _customer(receiver: GrabReceiver | None) -> Customer | None:
    if receiver is None:
        return None
    name, phone = _text(receiver.name), mask_phone(receiver.phones)
    return Customer(name=name, phone_masked=phone) if name or phone else None


def _payment(payment_type: str | None) -> OrderPayment | None:
    method = PAYMENT_TYPES.get(payment_type.strip().upper()) if payment_type else None
    return OrderPayment(method=method) if method is not None else None


def _line(item: GrabItem, currency: _Currency, path: str) -> Line:
    quantity = _quantity(item.quantity, f"{path}.quantity")
    line_total = None
    if item.price is not None and item.quantity is not None:
        _check_amount(item.price, f"{path}.price")
        # Per-unit price (tax and modifiers included) times quantity, in one exact product.
        product = item.price * item.quantity
        _check_bounds(product, f"{path}.price * quantity")
        line_total = money(product, currency.code, currency.exponent)
    return Line(
        external_item_id=_text(item.id),
        platform_item_id=_text(item.grabItemID),
        name=_text(item.name),
        quantity=quantity,
        unit_price=_money(item.price, currency, f"{path}.price"),
        line_total=line_total,
        notes=_text(item.specifications),
        modifiers=_modifiers(item.modifiers, currency, f"{path}.modifiers"),
    )


def _modifiers(
    modifiers: list[GrabModifier] | None, currency: _Currency, path: str
) -> list[Modifier]:
    return [
        Modifier(
            external_id=_text(modifier.id),
            name=_text(modifier.name),
            quantity=_quantity(modifier.quantity, f"{path}[{i}].quantity"),
            unit_price=_money(modifier.price, currency, f"{path}[{i}].price"),
            modifiers=_modifiers(modifier.modifiers, currency, f"{path}[{i}].modifiers"),
        )
        for i, modifier in enumerate(modifiers or ())
    ]


def _price_parts(
    price: GrabPrice | None, currency: _Currency
) -> tuple[list[Charge], list[Discount], Totals | None]:
    """Charges, discounts and totals from the price block (module docstring: Totals)."""
    if price is None:
        # Real payloads have been seen without a price block: unknown totals, not an error.
        return [], [], None
    path = "$.price"
    fees = [
        ("merchant_charge", price.merchantChargeFee, f"{path}.merchantChargeFee"),
        ("service_charge", price.serviceChargeFee, f"{path}.serviceChargeFee"),
        ("delivery_fee", price.deliveryFee, f"{path}.deliveryFee"),
        ("small_order_fee", price.smallOrderFee, f"{path}.smallOrderFee"),
    ]
    charges = [
        Charge(type=kind, amount=amount)
        for kind, value, where in fees
        if (amount := _money(value, currency, where)) is not None and amount.amount != 0
    ]
    promos: list[tuple[FundedBy | None, Decimal | None, str]] = [
        ("platform", price.grabFundPromo, f"{path}.grabFundPromo"),
        ("merchant", price.merchantFundPromo, f"{path}.merchantFundPromo"),
    ]
    if price.grabFundPromo is None and price.merchantFundPromo is None:
        # basketPromo is the sum of the two splits; alone, it is a discount of unknown funding.
        promos = [(None, price.basketPromo, f"{path}.basketPromo")]
    else:
        _money(price.basketPromo, currency, f"{path}.basketPromo")  # still must be readable
    discounts = [
        Discount(funded_by=funded_by, amount=amount)
        for funded_by, value, where in promos
        if (amount := _money(value, currency, where)) is not None and amount.amount != 0
    ]
    _money(price.eaterPayment, currency, f"{path}.eaterPayment")  # refused alike when unreadable
    totals = Totals(
        subtotal=_money(price.subtotal, currency, f"{path}.subtotal"),
        discount_total=_sum((value for _, value, _ in promos), currency),
        tax_total=_money(price.tax, currency, f"{path}.tax"),
        charges_total=_sum((value for _, value, _ in fees), currency),
        total=_money(price.total, currency, f"{path}.total"),
        merchant_net=_merchant_net(price.merchantEarning, currency),
    )
    return charges, discounts, totals


def _merchant_net(
    earning: Decimal | GrabMerchantEarning | None, currency: _Currency
) -> Money | None:
    path = "$.price.merchantEarning"
    if isinstance(earning, GrabMerchantEarning):
        for name, value in (
            ("revenue", earning.revenue),
            ("mexFundDiscount", earning.mexFundDiscount),
            ("commission", earning.commission),
        ):
            _money(value, currency, f"{path}.{name}")
        return _money(earning.netEarning, currency, f"{path}.netEarning")
    return _money(earning, currency, path)


# --- Push Order State ------------------------------------------------------------------------


def normalize_order_state(raw: bytes) -> list[NormalizedEvent]:
    """A Push Order State body as order.status_changed (plus order.cancelled, .completed or
    .refunded for those states), or one order.updated reporting an unknown state.

    Raises PayloadRejected (see the module docstring)."""
    push = _decode(_ORDER_STATE, raw)
    external_id = _identity(push.orderID, "$.orderID", MAX_IDENTITY_LENGTH)
    state = _identity(push.state, "$.state", MAX_STATUS_LENGTH)
    order_id = canonical_order_id(external_id)
    status = canonical_order_status(state)
    store = _store(push.merchantID, push.partnerMerchantID)
    state_key = f"{order_id}:state:{state.strip().upper()}"

    def produced(
        type_: str, data: msgspec.Struct, dedupe_key: str, unknown: str | None = None
    ) -> NormalizedEvent:
        return NormalizedEvent(
            type=type_,
            data=data,
            provider_event_name=PUSH_ORDER_STATE,
            dedupe_key=dedupe_key,
            order_key=order_id,
            order_status=status,
            unknown_status=unknown,
        )

    def snapshot() -> OrderData:
        return OrderData(
            order_id=order_id,
            external_order_id=external_id,
            channel=CHANNEL,
            store=store,
            status=status,
            provider_status=state,
        )

    if status is None:
        return [produced("order.updated", snapshot(), state_key, unknown=state)]
    reason = _reason(push.code, push.message)
    changed = OrderStatusChangedData(
        order_id=order_id,
        external_order_id=external_id,
        to=status,
        provider_status=state,
        driver_eta_s=_driver_eta(push.driverETA) if status == "driver_assigned" else None,
        reason=reason,
    )
    events = [produced("order.status_changed", changed, state_key)]
    follow_up = FOLLOW_UP_EVENT_TYPES.get(status)
    if follow_up is None:
        return events
    data: msgspec.Struct = snapshot()
    if follow_up == "order.cancelled":
        data = OrderCancelledData(
            order_id=order_id,
            external_order_id=external_id,
            cancelled_by=cancelled_by(push.cancelledBy),
            reason=reason,
        )
    events.append(produced(follow_up, data, f"{state_key}:{follow_up}"))
    return events


def canonical_order_status(state: str) -> OrderStatus | None:
    """The canonical status for a Grab order state (any case), or None if unknown."""
    return ORDER_STATES.get(state.strip().upper())


def cancelled_by(who: str | None) -> CancelledBy | None:
    """unverified: who cancelled, from a `cancelledBy` word; None when absent or unknown."""
    return CANCELLED_BY.get(who.strip().upper()) if who else None


def _driver_eta(eta: Decimal | None) -> int | None:
    # Dropped, not refused: the state change matters more than a driver ETA we cannot believe.
    if eta is None or not eta.is_finite() or not 0 <= eta < MAX_DRIVER_ETA_S:
        return None
    return int(eta.to_integral_value(rounding=ROUND_HALF_EVEN))


def _reason(code: str | None, message: str | None) -> str | None:
    code, message = _text(code), _text(message)
    if code and message:
        return f"{code}: {message}"
    return message or code


# --- Menu Sync State -------------------------------------------------------------------------


def normalize_menu_sync_state(raw: bytes) -> list[NormalizedEvent]:
    """A Menu Sync State body as one menu.sync_result, or [] while the sync is still running
    or its status is unknown. Raises PayloadRejected (see the module docstring)."""
    state = _decode(_MENU_SYNC_STATE, raw)
    request_id = _identity(state.requestID, "$.requestID", MAX_IDENTITY_LENGTH)
    updated_at = _time(state.updatedAt, "$.updatedAt")
    errors = _menu_sync_errors(state)
    word = (state.status or "").strip().upper()
    outcome = menu_sync_outcome(word, has_errors=bool(errors))
    if outcome is None:
        return []
    data = MenuSyncResultData(
        request_id=_text(state.jobID) or request_id,
        status=outcome,
        channel=CHANNEL,
        store=_store(state.merchantID, state.partnerMerchantID),
        errors=errors,
    )
    return [
        NormalizedEvent(
            type="menu.sync_result",
            data=data,
            occurred_at=updated_at,
            provider_event_id=request_id,
            provider_event_name=MENU_SYNC_STATE,
            dedupe_key=f"{CHANNEL}:menu_sync:{request_id}:{word}",
        )
    ]


def menu_sync_outcome(status: str, *, has_errors: bool) -> MenuSyncStatus | None:
    """The canonical outcome of a Grab menu sync status word; None while running or unknown.

    SUCCESS with errors is `partial` (unverified): the menu landed with some parts refused."""
    outcome = MENU_SYNC_STATUSES.get(status.strip().upper())
    if outcome == "success" and has_errors:
        return "partial"
    return outcome


def _menu_sync_errors(state: GrabMenuSyncState) -> list[MenuSyncError]:
    errors = []
    for error in state.errors or ():
        if isinstance(error, str):
            if message := _text(error):
                errors.append(MenuSyncError(message=message))
        elif message := _text(error.message) or _text(error.code):
            errors.append(
                MenuSyncError(
                    external_item_id=_text(error.id), code=_text(error.code), message=message
                )
            )
    if not errors and (message := _text(state.message)):
        errors.append(MenuSyncError(message=message))
    return errors


# --- Push Integration Status -----------------------------------------------------------------


def normalize_integration_status(raw: bytes) -> list[NormalizedEvent]:
    """A Push Integration Status body as one integration.status_changed, or [] when the status
    is missing or unknown. Raises PayloadRejected (see the module docstring)."""
    push = _decode(_INTEGRATION_STATUS, raw)
    merchant = _text(push.grabMerchantID) or _text(push.merchantID)
    merchant = _identity(merchant, "$.grabMerchantID (or $.merchantID)", MAX_IDENTITY_LENGTH)
    updated_at = _time(push.updatedAt, "$.updatedAt")
    provider_status = _text(push.integrationStatus) or _text(push.status)
    status = integration_status(provider_status)
    if provider_status is None or status is None:
        return []
    data = IntegrationStatusChangedData(
        status=status,
        channel=CHANNEL,
        store=_store(merchant, push.partnerMerchantID),
        provider_status=provider_status,
        reason=_text(push.reason) or _text(push.message),
    )
    word = provider_status.strip().upper()
    moment = updated_at.isoformat() if updated_at is not None else ""
    return [
        NormalizedEvent(
            type="integration.status_changed",
            data=data,
            occurred_at=updated_at,
            provider_event_name=PUSH_INTEGRATION_STATUS,
            dedupe_key=f"{CHANNEL}:integration:{merchant}:{word}:{moment}",
        )
    ]


def integration_status(status: str | None) -> IntegrationStatus | None:
    """The canonical integration status for a Grab `integrationStatus`, or None if unknown."""
    return INTEGRATION_STATUSES.get(status.strip().upper()) if status else None


# --- Field conversions -----------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    """A string, with empty or blank meaning absent (Grab sends "" for "none")."""
    return value if value is not None and value.strip() else None


def _store(merchant_id: str | None, partner_merchant_id: str | None) -> StoreRef | None:
    external_id, partner_id = _text(merchant_id), _text(partner_merchant_id)
    if external_id is None and partner_id is None:
        return None
    return StoreRef(external_id=external_id, partner_store_id=partner_id)


def _time(value: str | None, path: str) -> datetime | None:
    """An RFC 3339 time with its offset as given; one without an offset is UTC."""
    text = _text(value)
    if text is None:
        return None
    try:
        moment = msgspec.convert(text.strip(), datetime)
    except msgspec.ValidationError:
        raise PayloadRejected(f"{path}: not an RFC 3339 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_bounds(amount: Decimal, path: str) -> None:
    # adjusted() is the decimal exponent, read without arithmetic that could overflow.
    if not amount.is_finite() or amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise PayloadRejected(f"{path}: amount is not a finite number below 10^15")


def _check_amount(amount: Decimal, path: str) -> None:
    _check_bounds(amount, path)
    if amount != amount.to_integral_value():
        raise PayloadRejected(f"{path}: amount is not a whole number of minor units")


def _money(amount: Decimal | None, currency: _Currency, path: str) -> Money | None:
    """A Grab amount (minor units at the payload's exponent) as canonical Money, exactly."""
    if amount is None:
        return None
    _check_amount(amount, path)
    return money(amount, currency.code, currency.exponent)


def _sum(amounts: Iterable[Decimal | None], currency: _Currency) -> Money | None:
    """The sum of the amounts present (each already checked), or None if none is."""
    present = [amount for amount in amounts if amount is not None]
    if not present:
        return None
    return money(sum(present, Decimal(0)), currency.code, currency.exponent)


def _quantity(quantity: Decimal | None, path: str) -> str | None:
    """A canonical decimal-string quantity ("2", "1.5"), exact or refused."""
    if quantity is None:
        return None
    if not quantity.is_finite() or quantity.adjusted() >= MAX_QUANTITY_DIGITS:
        raise PayloadRejected(f"{path}: quantity is not a finite number below 10^6")
    # Compared exactly: normalize() alone would round a long fraction to context precision.
    if quantity != quantity.quantize(QUANTITY_STEP):
        raise PayloadRejected(f"{path}: quantity has more than 6 decimal places")
    if quantity.is_zero():
        return "0"
    # "f" never uses exponent notation: Decimal("1E+2") is "100".
    return format(quantity.normalize(), "f")


def _identity(value: str | None, path: str, max_length: int) -> str:
    if value is None or not value.strip():
        raise PayloadRejected(f"{path}: required, but missing")
    if len(value) > max_length or not value.isprintable():
        raise PayloadRejected(f"{path}: must be 1-{max_length} printable characters")
    return value


_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], raw: bytes) -> _T:
    """Decode with msgspec, turning its errors into PayloadRejected with the JSON path.

    These shapes have no enums or literals, so msgspec's messages name types and paths and
    never echo a payload value.
    """
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        if not message:
            message, where = str(exc), "$`"
        raise PayloadRejected(f"{where.rstrip('`')}: {message}") from None
    except msgspec.DecodeError as exc:
        raise PayloadRejected(f"$: not valid JSON ({exc})") from None
