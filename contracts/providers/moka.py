"""Moka POS sales polling: the get_latest_transactions page and its normalization to sale events.

The poller calls `GET /v3/outlets/{outlet_id}/reports/get_latest_transactions?since=&until=
&per_page=` and follows `data.next_url` until `data.completed` is true; parse_moka_page reads
one page. The page is `{data: {completed, next_url, payments: [...]}}`. Only each payment's
identities (`id`, `payment_no`) are required; every other field may be missing or null and
unknown fields are ignored. Amounts may be fractional (18500.5): JSON numbers are decoded
straight to Decimal from their text (never through float) and converted exactly, half-even.

Details not confirmed by Moka documentation (field names come from public integration code),
each kept in one place so it is one edit:
- items[].price is per unit and excludes its modifiers, whose prices are per unit too, so a
  line's total is (price + modifier prices) * quantity: _line_total.
- items[].variant_id is the merchant's item id (external_item_id); items[].id is not published
  because it is unclear whether it names the item or the receipt line: _line.
- payment_gratuities `[{name?, rate?, amount}]` are service charges (Charge type
  "service_charge"); payment_discounts `[{name?, amount}]` are merchant-funded discounts and
  their amounts are taken as given (positive): MokaGratuity, MokaDiscount, _sale_data.
- a created_at without an offset is outlet local time, +07:00: _local_time.
- payment_type labels: MOKA_PAYMENT_TYPES (case-insensitive; unknown labels are kept as
  provider_method with method null).

Decisions:
- One event per payment: `sale.voided` when is_deleted, else `sale.refunded` when is_refunded,
  else `sale.completed`. When both flags are set the payment is voided: a deleted transaction
  never stood as a sale, so publishing its refund too would subtract it from sales twice.
- sale_id is `moka:<payment_no>`; external_sale_id is Moka's `id`, receipt_number payment_no.
- dedupe_key is `moka:<payment_no>:<event type>`: polling an overlapping window again creates no
  second event, while a payment later seen refunded or deleted gets its own event.
- store is None unless the poller passes the outlet it polled (StoreRef.external_id).
- tax_total, discount_total and charges_total are sums of their lists, present only when the
  list is present ([] gives 0); total is total_collected, and the payment's amount is it too.
- `completed` missing or null is read as "no next page" (next_url is null).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Final

import msgspec

from contracts.canonical import (
    Charge,
    Discount,
    Line,
    Modifier,
    Money,
    PaymentMethod,
    SaleData,
    SalePayment,
    StoreRef,
    Tax,
    Totals,
)
from contracts.providers.base import (
    EXACT,
    MAX_AMOUNT_DECIMALS,
    MAX_AMOUNT_DIGITS,
    MAX_QUANTITY_DECIMALS,
    MAX_QUANTITY_DIGITS,
    NormalizedEvent,
    PayloadRejected,
    decimal_places,
    money_from_major,
)

PROVIDER: Final = "moka"
CHANNEL: Final = "pos"
CURRENCY: Final = "IDR"  # Moka reports carry no currency; its outlets are Indonesian.

# Moka payment_type (lower-cased) → canonical method.
MOKA_PAYMENT_TYPES: Final[dict[str, PaymentMethod]] = {
    "cash": "cash",
    "qris": "qris",
    "card": "card",
    "debit": "card",
    "credit": "card",
    "debit card": "card",
    "credit card": "card",
    "edc": "card",
    "ovo": "wallet",
    "gopay": "wallet",
    "dana": "wallet",
    "shopeepay": "wallet",
    "linkaja": "wallet",
    "bank transfer": "cashless",
    "transfer": "cashless",
}

MOKA_LOCAL_TIME: Final = timezone(timedelta(hours=7))
# Identities become sale ids and dedupe keys (VARCHAR(300) with the prefixes added).
MAX_IDENTITY_LENGTH: Final = 200


# --- Wire shapes ----------------------------------------------------------------------------


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the Moka wire shapes: unknown fields are ignored."""


class MokaModifier(_Wire, frozen=True, kw_only=True):
    option_id: int | str | None = None
    option_name: str | None = None
    price: Decimal | None = None


class MokaItem(_Wire, frozen=True, kw_only=True):
    id: int | str | None = None  # not published (see the module docstring)
    item_name: str | None = None
    variant_id: int | str | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    modifiers: list[MokaModifier] | None = None


class MokaTax(_Wire, frozen=True, kw_only=True):
    name: str | None = None
    rate: Decimal | None = None  # percent
    amount: Decimal | None = None


class MokaGratuity(_Wire, frozen=True, kw_only=True):
    """Assumed shape (unverified)."""

    name: str | None = None
    rate: Decimal | None = None
    amount: Decimal | None = None


class MokaDiscount(_Wire, frozen=True, kw_only=True):
    """Assumed shape (unverified)."""

    name: str | None = None
    amount: Decimal | None = None


class MokaPayment(_Wire, frozen=True, kw_only=True):
    id: int | str
    payment_no: str
    created_at: datetime | None = None
    subtotal: Decimal | None = None
    total_collected: Decimal | None = None
    # Known, with no canonical home: read so a wrong type is noticed, not published.
    total_gross_sales: Decimal | None = None
    total_net_sales: Decimal | None = None
    is_deleted: bool | None = None
    is_refunded: bool | None = None
    items: list[MokaItem] | None = None
    payment_taxes: list[MokaTax] | None = None
    payment_gratuities: list[MokaGratuity] | None = None
    payment_discounts: list[MokaDiscount] | None = None
    payment_type: str | None = None


class MokaPageData(_Wire, frozen=True, kw_only=True):
    completed: bool | None = None
    next_url: str | None = None
    payments: list[MokaPayment] | None = None


class MokaLatestTransactions(_Wire, frozen=True, kw_only=True):
    data: MokaPageData


class MokaPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page, normalized: its events, and where the poller goes next."""

    events: list[NormalizedEvent]
    next_url: str | None = None
    # True when this is the last page of the window.
    completed: bool


_PAGE = msgspec.json.Decoder(MokaLatestTransactions)


# --- Normalization --------------------------------------------------------------------------


def parse_moka_page(raw: bytes, *, outlet_id: str | None = None) -> MokaPage:
    """A get_latest_transactions response body as canonical sale events plus paging.

    outlet_id is the outlet the poller asked about; it becomes each sale's store.external_id.
    Raises PayloadRejected when the body is not JSON, has the wrong shape, or a value cannot be
    read; the message names the JSON path and never echoes a value.
    """
    try:
        page = _PAGE.decode(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        if not message:
            message, where = str(exc), "$`"
        raise PayloadRejected(f"{where.rstrip('`')}: {message}") from None
    except msgspec.DecodeError as exc:
        raise PayloadRejected(f"$: not valid JSON ({exc})") from None
    store = StoreRef(external_id=outlet_id) if outlet_id is not None else None
    with localcontext(EXACT):
        events = [
            _sale_event(payment, store, f"$.data.payments[{i}]")
            for i, payment in enumerate(page.data.payments or ())
        ]
    next_url = page.data.next_url
    completed = page.data.completed if page.data.completed is not None else next_url is None
    return MokaPage(events=events, next_url=next_url, completed=completed)


def sale_event_type(payment: MokaPayment) -> str:
    """The canonical event a payment produces: voided wins over refunded (module docstring)."""
    if payment.is_deleted:
        return "sale.voided"
    if payment.is_refunded:
        return "sale.refunded"
    return "sale.completed"


def payment_method(payment_type: str) -> PaymentMethod | None:
    """The canonical method for a Moka payment_type (`QRIS`), or None when not known."""
    return MOKA_PAYMENT_TYPES.get(" ".join(payment_type.lower().split()))


def _sale_event(payment: MokaPayment, store: StoreRef | None, path: str) -> NormalizedEvent:
    payment_no = _identity(payment.payment_no, f"{path}.payment_no")
    external_id = _identity(str(payment.id), f"{path}.id")
    type_ = sale_event_type(payment)
    closed_at = _local_time(payment.created_at)
    return NormalizedEvent(
        type=type_,
        data=_sale_data(payment, payment_no, external_id, store, closed_at, path),
        occurred_at=closed_at,
        dedupe_key=f"{PROVIDER}:{payment_no}:{type_}",
    )


def _sale_data(
    payment: MokaPayment,
    payment_no: str,
    external_id: str,
    store: StoreRef | None,
    closed_at: datetime | None,
    path: str,
) -> SaleData:
    taxes = [
        Tax(
            name=tax.name,
            rate=_decimal_string(tax.rate, f"{path}.payment_taxes[{i}].rate"),
            amount=_money(tax.amount, f"{path}.payment_taxes[{i}].amount"),
        )
        for i, tax in enumerate(payment.payment_taxes or ())
        if tax.amount is not None
    ]
    charges = [
        Charge(
            type="service_charge",
            amount=_money(gratuity.amount, f"{path}.payment_gratuities[{i}].amount"),
        )
        for i, gratuity in enumerate(payment.payment_gratuities or ())
        if gratuity.amount is not None
    ]
    discounts = [
        Discount(
            funded_by="merchant",
            amount=_money(discount.amount, f"{path}.payment_discounts[{i}].amount"),
        )
        for i, discount in enumerate(payment.payment_discounts or ())
        if discount.amount is not None
    ]
    total = _optional_money(payment.total_collected, f"{path}.total_collected")
    payment_type = payment.payment_type
    payments = []
    if total is not None:
        payments.append(
            SalePayment(
                method=payment_method(payment_type) if payment_type else None,
                provider_method=payment_type or None,
                amount=total,
            )
        )
    return SaleData(
        sale_id=f"{PROVIDER}:{payment_no}",
        external_sale_id=external_id,
        receipt_number=payment_no,
        channel=CHANNEL,
        store=store,
        closed_at=closed_at,
        lines=[_line(item, f"{path}.items[{i}]") for i, item in enumerate(payment.items or ())],
        charges=charges,
        discounts=discounts,
        taxes=taxes,
        totals=Totals(
            subtotal=_optional_money(payment.subtotal, f"{path}.subtotal"),
            discount_total=_total(payment.payment_discounts, f"{path}.payment_discounts"),
            tax_total=_total(payment.payment_taxes, f"{path}.payment_taxes"),
            charges_total=_total(payment.payment_gratuities, f"{path}.payment_gratuities"),
            total=total,
        ),
        payments=payments,
    )


def _line(item: MokaItem, path: str) -> Line:
    modifiers = item.modifiers or []
    return Line(
        external_item_id=_optional_id(item.variant_id, f"{path}.variant_id"),
        name=item.item_name,
        quantity=_quantity(item.quantity, f"{path}.quantity"),
        unit_price=_optional_money(item.price, f"{path}.price"),
        line_total=_line_total(item, path),
        modifiers=[
            Modifier(
                external_id=_optional_id(modifier.option_id, f"{path}.modifiers[{i}].option_id"),
                name=modifier.option_name,
                unit_price=_optional_money(modifier.price, f"{path}.modifiers[{i}].price"),
            )
            for i, modifier in enumerate(modifiers)
        ],
    )


def _line_total(item: MokaItem, path: str) -> Money | None:
    """(price + modifier prices) * quantity: both per unit, modifiers extra (unverified)."""
    if item.price is None or item.quantity is None:
        return None
    _quantity(item.quantity, f"{path}.quantity")
    unit = _amount(item.price, f"{path}.price")
    for i, modifier in enumerate(item.modifiers or ()):
        if modifier.price is not None:
            unit += _amount(modifier.price, f"{path}.modifiers[{i}].price")
    return _money(unit * item.quantity, f"{path}: (price + modifier prices) * quantity")


def _total(
    entries: Iterable[MokaTax | MokaGratuity | MokaDiscount] | None, path: str
) -> Money | None:
    if entries is None:
        return None
    amounts = [
        _amount(entry.amount, f"{path}[{i}].amount")
        for i, entry in enumerate(entries)
        if entry.amount is not None
    ]
    return _money(sum(amounts, Decimal(0)), f"{path}: the sum of the amounts")


# --- Field conversions ----------------------------------------------------------------------


def _identity(value: str, path: str) -> str:
    if not 0 < len(value) <= MAX_IDENTITY_LENGTH or not value.isprintable():
        raise PayloadRejected(f"{path}: must be 1-{MAX_IDENTITY_LENGTH} printable characters")
    return value


def _optional_id(value: int | str | None, path: str) -> str | None:
    if value is None or value == "":
        return None
    return _identity(str(value), path)


def _local_time(moment: datetime | None) -> datetime | None:
    """Moka's time with its offset as given; a naive time is outlet local (+07:00)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=MOKA_LOCAL_TIME)


def _amount(value: Decimal, path: str) -> Decimal:
    """A finite amount below 10^15 with at most 20 decimal places (trailing zeros ignored)."""
    if (
        not value.is_finite()
        or value.adjusted() >= MAX_AMOUNT_DIGITS
        or decimal_places(value) > MAX_AMOUNT_DECIMALS
    ):
        raise PayloadRejected(
            f"{path}: amount is not a finite number below 10^{MAX_AMOUNT_DIGITS} "
            f"with at most {MAX_AMOUNT_DECIMALS} decimal places"
        )
    return value


def _money(value: Decimal, path: str) -> Money:
    """Whole rupiah to canonical minor units, exactly (half-even)."""
    converted = money_from_major(_amount(value, path), CURRENCY)
    assert converted is not None
    return converted


def _optional_money(value: Decimal | None, path: str) -> Money | None:
    return _money(value, path) if value is not None else None


def _quantity(value: Decimal | None, path: str) -> str | None:
    """A canonical decimal-string quantity ("2", "1.5")."""
    return _bounded_decimal_string(value, path, "quantity is not")


def _decimal_string(value: Decimal | None, path: str) -> str | None:
    """A rate (percent) as a canonical decimal string ("10" for 10.0)."""
    return _bounded_decimal_string(value, path, "not")


def _bounded_decimal_string(value: Decimal | None, path: str, refusal: str) -> str | None:
    if value is None:
        return None
    if (
        not value.is_finite()
        or value.adjusted() >= MAX_QUANTITY_DIGITS
        or decimal_places(value) > MAX_QUANTITY_DECIMALS
    ):
        raise PayloadRejected(
            f"{path}: {refusal} a finite number below 10^{MAX_QUANTITY_DIGITS} "
            f"with at most {MAX_QUANTITY_DECIMALS} decimal places"
        )
    return _plain(value)


def _plain(value: Decimal) -> str:
    if value.is_zero():
        return "0"
    # "f" never uses exponent notation: Decimal("1E+2") is "100".
    return format(value.normalize(), "f")
