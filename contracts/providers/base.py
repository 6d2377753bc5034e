"""What every provider adapter returns: canonical events plus what ingest needs to file them."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final

import msgspec

from contracts.canonical import Money, OrderStatus

# Bounds on amounts in major units (Rupiah) and on quantities, as decimal exponents: Rp 10^15
# is far beyond any order or sale, so larger values are malformed, not big. Floats serialised
# by a POS can carry 17 significant digits (0.30000000000000004), hence 20 decimals.
MAX_AMOUNT_DIGITS: Final = 15
MAX_AMOUNT_DECIMALS: Final = 20
MAX_QUANTITY_DIGITS: Final = 6
MAX_QUANTITY_DECIMALS: Final = 6
# Bounded amounts have at most 35 significant digits, so sums and products of them are exact
# at this precision and only the final conversion to minor units rounds (half-even).
EXACT: Final = Context(prec=100)


def decimal_places(value: Decimal) -> int:
    """Decimal places, ignoring trailing zeros ("1.500" has 1)."""
    if value.is_zero():
        return 0
    parts = value.as_tuple()
    digits, exponent = parts.digits, parts.exponent
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(int(exponent) + trailing))


# ISO 4217 minor-unit exponents of the currencies these providers use.
CURRENCY_EXPONENTS: dict[str, int] = {"IDR": 2, "MYR": 2, "SGD": 2, "THB": 2, "PHP": 2, "VND": 0}

# How far along an order is: a status with a lower rank arriving after a higher one is stale.
# Terminal states share the top rank so none of them marks another stale.
ORDER_STATUS_RANK: dict[str, int] = {
    "awaiting_acceptance": 0,
    "accepted": 1,
    "preparing": 2,
    "ready": 3,
    "driver_assigned": 4,
    "driver_arrived": 5,
    "picked_up": 6,
    "delivered": 7,
    "completed": 8,
    "cancelled": 8,
    "rejected": 8,
    "failed": 8,
    "refunded": 9,
}


class PayloadRejected(ValueError):
    """The payload cannot be read at all (not JSON, wrong shape, no identity): HTTP 422.

    The message names what is wrong and never echoes payload values.
    """


class NormalizedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One canonical event produced from a provider payload."""

    type: str  # a canonical event type from contracts.event_types.EVENT_TYPES
    data: Any  # the canonical data Struct for that type (contracts.canonical)
    occurred_at: datetime | None = None  # provider time, offset kept as given
    provider_event_id: str | None = None
    provider_event_name: str | None = None
    # Stable across redeliveries of the same provider event and unique per event produced:
    # a redelivery is recognised by it and creates no second canonical event.
    dedupe_key: str
    # The order this event belongs to (sequence numbers and staleness are per order).
    order_key: str | None = None
    # The canonical status this event moves the order to, for staleness; None if it does not.
    order_status: OrderStatus | None = None
    # A provider status with no canonical mapping (kept as provider_status; counted).
    unknown_status: str | None = None


def money(amount_minor: int | Decimal, currency: str | None, exponent: int | None) -> Money:
    """Provider minor units at `exponent` to canonical minor units, exactly (half-even)."""
    code = (currency or "IDR").upper()
    target = CURRENCY_EXPONENTS.get(code, 2)
    source = target if exponent is None else exponent
    scaled = Decimal(amount_minor).scaleb(target - source)
    return Money(amount=int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN)), currency=code)


def money_from_major(amount: int | str | Decimal | None, currency: str | None) -> Money | None:
    """Whole currency units (GoFood rupiah, POS decimals) to canonical minor units."""
    if amount is None:
        return None
    code = (currency or "IDR").upper()
    value = Decimal(str(amount)).scaleb(CURRENCY_EXPONENTS.get(code, 2))
    return Money(amount=int(value.to_integral_value(rounding=ROUND_HALF_EVEN)), currency=code)
