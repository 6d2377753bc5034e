"""Qasir sales-export CSV: a configurable column mapping and its normalization to sale events.

Qasir publishes no API; merchants export their sales as CSV, one row per item line. The layout
here follows an example export (the shared fixture) and is an assumption, so every column name,
the date and time formats, the outlet's time zone, the currency and the delimiter are settings
(QasirColumns, built from a source's settings by columns_from_settings).

Reading the file:
- UTF-8, with or without a byte-order mark. Header cells are matched to the configured names
  ignoring surrounding spaces and letter case. Columns not configured are ignored; a configured
  column absent from the header refuses the file. Blank rows are skipped; an empty file, or one
  with only a header, gives no events.
- Row numbers in refusals count records as a spreadsheet shows them: the header is row 1.
  Refusals name the row and the column, never the cell's value.
- Numbers are plain decimals ("25000", "18500.5", "-1"): no thousands separators, no exponent.
  Amounts are whole currency units converted exactly (Decimal, half-even) to minor units.

Decisions:
- One `sale.completed` per receipt number, in the order receipts first appear in the file. The
  receipt's time, outlet and payment method come from its first row (the export repeats them on
  every item row). sale_id and dedupe_key are `qasir:<receipt_no>`, so importing the same file
  again creates no second event.
- `total` is the row's amount after its discount. A line's line_total is the amount before the
  discount (total + discount), so subtotal - discount_total = total holds for every receipt.
  The canonical Line has no discount of its own: each discounted row becomes a sale-level
  Discount funded by the merchant.
- The payment method label maps through QASIR_PAYMENT_METHODS (case-insensitive); a label not
  listed is kept as provider_method with method null rather than guessed. A receipt with no
  payment label has no payment entry.
- closed_at is the row's date and time in the configured zone, published with its UTC offset.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from contracts.canonical import (
    Discount,
    Line,
    Money,
    PaymentMethod,
    SaleData,
    SalePayment,
    StoreRef,
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

PROVIDER: Final = "qasir"
CHANNEL: Final = "pos"

# Payment labels seen in Indonesian POS exports (lower-cased) → canonical method.
QASIR_PAYMENT_METHODS: Final[dict[str, PaymentMethod]] = {
    "cash": "cash",
    "tunai": "cash",
    "qris": "qris",
    "debit": "card",
    "credit": "card",
    "card": "card",
    "kartu debit": "card",
    "kartu kredit": "card",
    "debit card": "card",
    "credit card": "card",
    "edc": "card",
    "ovo": "wallet",
    "gopay": "wallet",
    "dana": "wallet",
    "shopeepay": "wallet",
    "linkaja": "wallet",
    "transfer": "cashless",
    "bank transfer": "cashless",
}

# Receipt numbers go into dedupe keys (VARCHAR(300) with the prefix added).
MAX_IDENTITY_LENGTH: Final = 200
_PLAIN_DECIMAL: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)
_FORMAT_PROBE: Final = datetime(2025, 12, 31, 23, 59, 58)


def _zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("timezone: not a known IANA time zone such as Asia/Jakarta") from None


class QasirColumns(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where each field is in a Qasir sales export, and how to read it.

    Each column field names a header cell; defaults are the example export's headers.
    receipt_no, date and total are required; the others may be None when an export has no such
    column (time None means the date column holds date and time, read with date_format).
    """

    receipt_no: str = "receipt_no"
    date: str = "date"
    time: str | None = "time"
    outlet: str | None = "outlet"
    item: str | None = "item"
    quantity: str | None = "quantity"
    unit_price: str | None = "unit_price"
    discount: str | None = "discount"
    total: str = "total"
    payment_method: str | None = "payment_method"
    # strptime formats.
    date_format: str = "%Y-%m-%d"
    time_format: str = "%H:%M:%S"
    # The export has local times without a zone: the outlet's IANA zone.
    timezone: str = "Asia/Jakarta"
    currency: str = "IDR"
    delimiter: str = ","

    def __post_init__(self) -> None:
        for field, name in self.column_names().items():
            if not name.strip():
                raise ValueError(f"{field}: the column name must not be blank")
        for field, fmt in (("date_format", self.date_format), ("time_format", self.time_format)):
            try:
                datetime.strptime(_FORMAT_PROBE.strftime(fmt), fmt)
            except ValueError:
                raise ValueError(f"{field}: not a usable strptime format") from None
        _zone(self.timezone)
        if not re.fullmatch(r"[A-Z]{3}", self.currency, re.ASCII):
            raise ValueError("currency: must be an ISO 4217 code such as IDR")
        delimiter = self.delimiter
        if len(delimiter) != 1 or delimiter in '"\r\n' or delimiter.isalnum():
            raise ValueError("delimiter: must be one character, not a quote, newline or letter")

    def column_names(self) -> dict[str, str]:
        """Field → configured header name, for the columns this export has."""
        names = {
            "receipt_no": self.receipt_no,
            "date": self.date,
            "time": self.time,
            "outlet": self.outlet,
            "item": self.item,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "discount": self.discount,
            "total": self.total,
            "payment_method": self.payment_method,
        }
        return {field: name for field, name in names.items() if name is not None}


DEFAULT_QASIR_COLUMNS: Final = QasirColumns()


def columns_from_settings(settings: Mapping[str, Any]) -> QasirColumns:
    """A source's settings dict as QasirColumns; ValueError names an unknown or invalid key.

    Keys are QasirColumns' field names; missing keys keep their defaults.
    """
    if not isinstance(settings, Mapping):
        raise ValueError("Qasir settings: expected a mapping of setting names to values")
    try:
        return msgspec.convert(dict(settings), QasirColumns)
    except msgspec.ValidationError as exc:
        raise ValueError(f"Qasir settings: {exc}") from None


def normalize_qasir_csv(
    raw: bytes, *, columns: QasirColumns = DEFAULT_QASIR_COLUMNS
) -> list[NormalizedEvent]:
    """A Qasir sales export as one `sale.completed` per receipt, in file order.

    Raises PayloadRejected when the file is not UTF-8 CSV, a configured column is missing from
    the header, or a cell cannot be read; the message names the row and column, never a value.
    """
    with localcontext(EXACT):
        receipts: dict[str, list[_Row]] = {}
        for row in _rows(raw, columns):
            receipts.setdefault(row.receipt_no, []).append(row)
        return [_sale_event(rows, columns.currency) for rows in receipts.values()]


def payment_method(label: str) -> PaymentMethod | None:
    """The canonical method for a Qasir payment label (`QRIS`), or None when not known."""
    return QASIR_PAYMENT_METHODS.get(" ".join(label.lower().split()))


# --- Reading rows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    receipt_no: str
    closed_at: datetime
    outlet: str | None
    item: str | None
    quantity: str | None
    unit_price: Decimal | None
    discount: Decimal | None
    total: Decimal
    payment_label: str | None


def _rows(raw: bytes, columns: QasirColumns) -> Iterator[_Row]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PayloadRejected("the file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=columns.delimiter)
    zone = _zone(columns.timezone)
    positions: dict[str, int] | None = None
    number = 0
    while True:
        try:
            record = next(reader, None)
        except csv.Error:
            raise PayloadRejected(f"row {number + 1}: not readable as CSV") from None
        if record is None:
            return
        number += 1
        if not any(cell.strip() for cell in record):
            continue
        if positions is None:
            positions = _header_positions(record, columns)
            continue
        yield _row(number, record, positions, columns, zone)


def _header_positions(header: list[str], columns: QasirColumns) -> dict[str, int]:
    """Field → index of its column in the header."""
    found: dict[str, list[int]] = {}
    for index, cell in enumerate(header):
        found.setdefault(cell.strip().casefold(), []).append(index)
    positions: dict[str, int] = {}
    for field, name in columns.column_names().items():
        indexes = found.get(name.strip().casefold(), [])
        if not indexes:
            raise PayloadRejected(f"the header has no column {name!r} ({field})")
        if len(indexes) > 1:
            raise PayloadRejected(f"the header has more than one column {name!r} ({field})")
        positions[field] = indexes[0]
    return positions


def _row(
    number: int,
    record: list[str],
    positions: dict[str, int],
    columns: QasirColumns,
    zone: ZoneInfo,
) -> _Row:
    names = columns.column_names()

    def cell(field: str) -> str | None:
        index = positions.get(field)
        if index is None or index >= len(record):
            return None
        return record[index].strip() or None

    def where(field: str) -> str:
        return f"row {number}, column {names.get(field, field)!r}"

    def required(field: str) -> str:
        value = cell(field)
        if value is None:
            raise PayloadRejected(f"{where(field)}: empty, but required")
        return value

    receipt_no = required("receipt_no")
    if len(receipt_no) > MAX_IDENTITY_LENGTH or not receipt_no.isprintable():
        raise PayloadRejected(
            f"{where('receipt_no')}: must be 1-{MAX_IDENTITY_LENGTH} printable characters"
        )
    unit_price = cell("unit_price")
    discount = cell("discount")
    return _Row(
        number=number,
        receipt_no=receipt_no,
        closed_at=_closed_at(required("date"), cell("time"), columns, zone, where),
        outlet=cell("outlet"),
        item=cell("item"),
        quantity=_quantity(cell("quantity"), where("quantity")),
        unit_price=_amount(unit_price, where("unit_price")) if unit_price is not None else None,
        discount=_amount(discount, where("discount")) if discount is not None else None,
        total=_amount(required("total"), where("total")),
        payment_label=cell("payment_method"),
    )


def _closed_at(
    date_cell: str,
    time_cell: str | None,
    columns: QasirColumns,
    zone: ZoneInfo,
    where: Callable[[str], str],
) -> datetime:
    """The row's local date and time in the outlet's zone, as a fixed UTC offset."""
    try:
        moment = datetime.strptime(date_cell, columns.date_format)
    except ValueError:
        raise PayloadRejected(f"{where('date')}: not a date in the configured format") from None
    if columns.time is not None:
        if time_cell is None:
            raise PayloadRejected(f"{where('time')}: empty, but required")
        try:
            clock = datetime.strptime(time_cell, columns.time_format)
        except ValueError:
            raise PayloadRejected(f"{where('time')}: not a time in the configured format") from None
        moment = datetime.combine(moment.date(), clock.time())
    local = moment.replace(tzinfo=zone)
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always gives one
    return local.replace(tzinfo=timezone(offset))


def _amount(text: str, where: str) -> Decimal:
    """A plain decimal cell as an exact Decimal; refuses anything else and absurd sizes."""
    value = _plain_decimal(text, where, "amount")
    if value.adjusted() >= MAX_AMOUNT_DIGITS or decimal_places(value) > MAX_AMOUNT_DECIMALS:
        raise PayloadRejected(
            f"{where}: amount is not below 10^{MAX_AMOUNT_DIGITS} "
            f"with at most {MAX_AMOUNT_DECIMALS} decimal places"
        )
    return value


def _quantity(text: str | None, where: str) -> str | None:
    """A canonical decimal-string quantity ("2", "1.5")."""
    if text is None:
        return None
    value = _plain_decimal(text, where, "quantity")
    if value.adjusted() >= MAX_QUANTITY_DIGITS or decimal_places(value) > MAX_QUANTITY_DECIMALS:
        raise PayloadRejected(
            f"{where}: quantity is not below 10^{MAX_QUANTITY_DIGITS} "
            f"with at most {MAX_QUANTITY_DECIMALS} decimal places"
        )
    if value.is_zero():
        return "0"
    # "f" never uses exponent notation: Decimal("1E+2") is "100".
    return format(value.normalize(), "f")


def _plain_decimal(text: str, where: str, what: str) -> Decimal:
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise PayloadRejected(f"{where}: {what} is not a plain decimal number")
    try:
        return Decimal(text)
    except InvalidOperation:  # unreachable after the pattern; kept as a guard
        raise PayloadRejected(f"{where}: {what} is not a plain decimal number") from None


# --- Building sales -------------------------------------------------------------------------


def _sale_event(rows: list[_Row], currency: str) -> NormalizedEvent:
    first = rows[0]
    receipt_no = first.receipt_no
    sale_id = f"{PROVIDER}:{receipt_no}"
    has_discounts = any(row.discount is not None for row in rows)
    lines: list[Line] = []
    discounts: list[Discount] = []
    for row in rows:
        discount = row.discount if row.discount is not None else Decimal(0)
        lines.append(
            Line(
                name=row.item,
                quantity=row.quantity,
                unit_price=_money(row.unit_price, currency) if row.unit_price is not None else None,
                line_total=_money(row.total + discount, currency),
            )
        )
        if not discount.is_zero():
            discounts.append(Discount(funded_by="merchant", amount=_money(discount, currency)))
    total = _sum([row.total for row in rows], first, "total")
    discount_total = _sum([row.discount or Decimal(0) for row in rows], first, "discount")
    subtotal = _sum([row.total + (row.discount or Decimal(0)) for row in rows], first, "subtotal")
    payments: list[SalePayment] = []
    if first.payment_label is not None:
        payments.append(
            SalePayment(
                method=payment_method(first.payment_label),
                provider_method=first.payment_label,
                amount=_money(total, currency),
            )
        )
    data = SaleData(
        sale_id=sale_id,
        external_sale_id=receipt_no,
        receipt_number=receipt_no,
        channel=CHANNEL,
        store=StoreRef(name=first.outlet) if first.outlet is not None else None,
        closed_at=first.closed_at,
        lines=lines,
        discounts=discounts,
        totals=Totals(
            subtotal=_money(subtotal, currency),
            discount_total=_money(discount_total, currency) if has_discounts else None,
            total=_money(total, currency),
        ),
        payments=payments,
    )
    return NormalizedEvent(
        type="sale.completed",
        data=data,
        occurred_at=first.closed_at,
        dedupe_key=sale_id,
    )


def _sum(values: list[Decimal], first: _Row, what: str) -> Decimal:
    result = sum(values, Decimal(0))
    if result.adjusted() >= MAX_AMOUNT_DIGITS:
        raise PayloadRejected(
            f"row {first.number}: the receipt's {what} is not below 10^{MAX_AMOUNT_DIGITS}"
        )
    return result


def _money(amount: Decimal, currency: str) -> Money:
    converted = money_from_major(amount, currency)
    assert converted is not None
    return converted
