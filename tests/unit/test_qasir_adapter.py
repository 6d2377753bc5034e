"""Specifications for the Qasir CSV adapter: the shared export field by field, configurable
columns, refusals that name a row and column, re-imports, and mutated files."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.canonical import (
    DATA_TYPES,
    Discount,
    Line,
    Money,
    PaymentMethod,
    SaleData,
    SalePayment,
    StoreRef,
    Totals,
)
from contracts.providers.base import NormalizedEvent, PayloadRejected
from contracts.providers.qasir import (
    DEFAULT_QASIR_COLUMNS,
    QasirColumns,
    columns_from_settings,
    normalize_qasir_csv,
)
from tests.fixtures import PROVIDER_FIXTURES

FIXTURES = PROVIDER_FIXTURES
EXPORT = (FIXTURES / "qasir_sales_export.csv").read_bytes()
WIB = timezone(timedelta(hours=7))
SECRET = "S3CRET-VALUE"
HEADER = "receipt_no,date,time,outlet,item,quantity,unit_price,discount,total,payment_method"


def idr(amount: int) -> Money:
    return Money(amount=amount, currency="IDR")


def export(*rows: str, header: str = HEADER) -> bytes:
    return "\n".join((header, *rows)).encode()


def row(
    receipt: str = "R-1",
    *,
    date: str = "2025-05-01",
    time: str = "10:00:00",
    item: str = "Kopi",
    quantity: str = "1",
    unit_price: str = "10000",
    discount: str = "0",
    total: str = "10000",
    payment: str = "Cash",
) -> str:
    return ",".join(
        [receipt, date, time, "Outlet", item, quantity, unit_price, discount, total, payment]
    )


def sale(raw: bytes, columns: QasirColumns = DEFAULT_QASIR_COLUMNS) -> SaleData:
    events = normalize_qasir_csv(raw, columns=columns)
    assert len(events) == 1
    data = events[0].data
    assert isinstance(data, SaleData)
    return data


def totals(data: SaleData) -> Totals:
    assert data.totals is not None
    return data.totals


def refusal(raw: bytes, columns: QasirColumns = DEFAULT_QASIR_COLUMNS) -> str:
    with pytest.raises(PayloadRejected) as caught:
        normalize_qasir_csv(raw, columns=columns)
    return str(caught.value)


def roundtrips(event: NormalizedEvent) -> bool:
    decoded = msgspec.json.decode(msgspec.json.encode(event.data), type=DATA_TYPES[event.type])
    return bool(decoded == event.data)


# --- The shared export, field by field ------------------------------------------------------


def test_fixture_export_becomes_one_sale_completed_per_receipt_in_file_order() -> None:
    events = normalize_qasir_csv(EXPORT)

    assert [e.type for e in events] == ["sale.completed", "sale.completed"]
    assert [e.data.sale_id for e in events] == ["qasir:QS-2025-0001", "qasir:QS-2025-0002"]
    assert [e.dedupe_key for e in events] == ["qasir:QS-2025-0001", "qasir:QS-2025-0002"]
    assert all(e.order_key is None and e.order_status is None for e in events)


def test_fixture_receipt_0001_field_by_field() -> None:
    event = normalize_qasir_csv(EXPORT)[0]
    data = event.data

    assert isinstance(data, SaleData)
    assert data.sale_id == "qasir:QS-2025-0001"
    assert data.external_sale_id == "QS-2025-0001"
    assert data.receipt_number == "QS-2025-0001"
    assert data.channel == "pos"
    assert data.store == StoreRef(name="Outlet Senayan")
    assert data.closed_at == datetime(2025, 5, 1, 10, 1, 22, tzinfo=WIB)
    assert event.occurred_at == data.closed_at
    assert data.lines == [
        Line(
            name="Es Teh Manis",
            quantity="2",
            unit_price=idr(800000),
            line_total=idr(1600000),
        ),
        Line(
            name="Nasi Goreng",
            quantity="1",
            unit_price=idr(2500000),
            # Before the row's discount: the discount is listed on the sale.
            line_total=idr(2500000),
        ),
    ]
    assert data.discounts == [Discount(funded_by="merchant", amount=idr(250000))]
    assert data.taxes == []
    assert data.charges == []
    assert data.totals is not None
    assert data.totals.subtotal == idr(4100000)
    assert data.totals.discount_total == idr(250000)
    assert data.totals.total == idr(3850000)
    assert data.totals.tax_total is None
    assert data.payments == [
        SalePayment(method="cash", provider_method="Cash", amount=idr(3850000))
    ]


def test_rp_38500_total_is_3850000_idr_minor_units_and_rp_2500_discount_is_250000() -> None:
    data = normalize_qasir_csv(EXPORT)[0].data

    assert msgspec.json.encode(data.totals.total) == b'{"amount":3850000,"currency":"IDR"}'
    assert data.totals.discount_total == idr(250000)


def test_closed_at_is_local_jakarta_time_published_with_plus_0700() -> None:
    data = normalize_qasir_csv(EXPORT)[0].data

    assert data.closed_at.utcoffset() == timedelta(hours=7)
    assert b'"closed_at":"2025-05-01T10:01:22+07:00"' in msgspec.json.encode(data)


def test_fixture_receipt_0002_is_paid_by_qris_rp_12000() -> None:
    data = normalize_qasir_csv(EXPORT)[1].data

    assert data.closed_at == datetime(2025, 5, 1, 10, 15, 40, tzinfo=WIB)
    assert data.lines == [
        Line(name="Kopi Hitam", quantity="1", unit_price=idr(1200000), line_total=idr(1200000))
    ]
    assert data.discounts == []
    assert data.totals.discount_total == idr(0)
    assert data.totals.total == idr(1200000)
    assert data.payments == [
        SalePayment(method="qris", provider_method="QRIS", amount=idr(1200000))
    ]


def test_every_produced_data_reencodes_and_decodes_with_its_data_type() -> None:
    for event in normalize_qasir_csv(EXPORT):
        assert isinstance(event.data, DATA_TYPES[event.type])
        assert roundtrips(event)


# --- Re-imports -----------------------------------------------------------------------------


def test_reimported_file_gives_the_same_dedupe_keys_so_creates_no_duplicates() -> None:
    first = normalize_qasir_csv(EXPORT)
    again = normalize_qasir_csv(EXPORT)

    assert [e.dedupe_key for e in again] == [e.dedupe_key for e in first]
    assert again == first


def test_a_later_export_overlapping_the_first_repeats_its_receipts_keys() -> None:
    later = EXPORT + row("QS-2025-0003").encode() + b"\n"

    keys = [e.dedupe_key for e in normalize_qasir_csv(later)]

    assert keys == ["qasir:QS-2025-0001", "qasir:QS-2025-0002", "qasir:QS-2025-0003"]


def test_rows_of_one_receipt_are_grouped_even_when_not_adjacent() -> None:
    raw = export(row("A", item="x"), row("B"), row("A", item="y"))

    events = normalize_qasir_csv(raw)

    assert [e.data.sale_id for e in events] == ["qasir:A", "qasir:B"]
    assert [line.name for line in events[0].data.lines] == ["x", "y"]


# --- Reading the file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", b"\xef\xbb\xbf", b"\n\n", HEADER.encode(), b"\r\n" + HEADER.encode() + b"\r\n"]
)
def test_empty_file_or_header_only_gives_no_events(raw: bytes) -> None:
    assert normalize_qasir_csv(raw) == []


def test_utf8_byte_order_mark_and_crlf_line_ends_are_read() -> None:
    raw = b"\xef\xbb\xbf" + EXPORT.replace(b"\n", b"\r\n")

    assert normalize_qasir_csv(raw) == normalize_qasir_csv(EXPORT)


def test_blank_rows_are_skipped() -> None:
    raw = export("", row("A"), ",,,,,,,,,", row("B"))

    assert [e.data.sale_id for e in normalize_qasir_csv(raw)] == ["qasir:A", "qasir:B"]


def test_header_matches_ignoring_case_and_surrounding_spaces() -> None:
    header = " Receipt_No ,DATE,Time,outlet,item,quantity,unit_price,discount,TOTAL,payment_method"

    assert sale(export(row("A"), header=header)).sale_id == "qasir:A"


def test_fractional_quantity_is_kept_as_a_decimal_string() -> None:
    data = sale(export(row(quantity="1.50", unit_price="20000", total="30000")))

    assert data.lines[0].quantity == "1.5"
    assert data.lines[0].line_total == idr(3000000)


def test_fractional_rupiah_converts_exactly_half_even() -> None:
    raw = export(
        row("A", unit_price="0.005", total="0.005"),
        row("B", unit_price="0.015", total="0.015"),
        row("C", unit_price="18500.5", total="18500.5"),
    )

    received = [e.data.totals.total for e in normalize_qasir_csv(raw)]

    assert received == [idr(0), idr(2), idr(1850050)]


def test_negative_rows_are_read_as_given() -> None:
    data = sale(export(row(quantity="-1", unit_price="10000", total="-10000")))

    assert data.lines[0].quantity == "-1"
    assert totals(data).total == idr(-1000000)


@pytest.mark.parametrize(
    ("label", "method"),
    [
        ("Cash", "cash"),
        ("TUNAI", "cash"),
        ("QRIS", "qris"),
        ("Debit", "card"),
        ("Credit", "card"),
        ("Card", "card"),
        ("Kartu Kredit", "card"),
        ("OVO", "wallet"),
        ("GoPay", "wallet"),
        ("DANA", "wallet"),
        ("ShopeePay", "wallet"),
        ("Bank Transfer", "cashless"),
        ("Voucher", None),
    ],
)
def test_payment_labels_map_to_canonical_methods_and_unknown_labels_are_kept(
    label: str, method: PaymentMethod | None
) -> None:
    data = sale(export(row(payment=label)))

    assert data.payments == [SalePayment(method=method, provider_method=label, amount=idr(1000000))]


def test_a_receipt_without_a_payment_label_has_no_payment() -> None:
    assert sale(export(row(payment=""))).payments == []


def test_receipt_fields_come_from_the_receipts_first_row() -> None:
    raw = export(
        row("A", time="10:00:00", payment="Cash"), row("A", time="11:00:00", payment="QRIS")
    )

    data = sale(raw)

    assert data.closed_at == datetime(2025, 5, 1, 10, 0, tzinfo=WIB)
    assert data.payments == [
        SalePayment(method="cash", provider_method="Cash", amount=idr(2000000))
    ]


# --- Configurable columns -------------------------------------------------------------------


RENAMED = (
    "No Struk;Tanggal;Jam;Nama Outlet;Produk;Jumlah;Harga Satuan;Diskon;Total Bayar;Metode\n"
    "QS-9;01/05/2025;10.01;Outlet Kemang;Es Teh Manis;2;8000,00;0;16000;OVO\n"
)
RENAMED_SETTINGS = {
    "receipt_no": "No Struk",
    "date": "Tanggal",
    "time": "Jam",
    "outlet": "Nama Outlet",
    "item": "Produk",
    "quantity": "Jumlah",
    "unit_price": "Harga Satuan",
    "discount": "Diskon",
    "total": "Total Bayar",
    "payment_method": "Metode",
    "date_format": "%d/%m/%Y",
    "time_format": "%H.%M",
    "delimiter": ";",
}


def test_custom_column_mapping_with_renamed_headers_and_a_semicolon_delimiter() -> None:
    columns = columns_from_settings({**RENAMED_SETTINGS, "unit_price": None})

    data = sale(RENAMED.encode(), columns)

    assert data.sale_id == "qasir:QS-9"
    assert data.store == StoreRef(name="Outlet Kemang")
    assert data.closed_at == datetime(2025, 5, 1, 10, 1, tzinfo=WIB)
    assert data.lines == [Line(name="Es Teh Manis", quantity="2", line_total=idr(1600000))]
    assert data.payments == [
        SalePayment(method="wallet", provider_method="OVO", amount=idr(1600000))
    ]


def test_custom_mapping_still_refuses_a_bad_number_naming_the_renamed_column() -> None:
    message = refusal(RENAMED.encode(), columns_from_settings(RENAMED_SETTINGS))

    assert message == "row 2, column 'Harga Satuan': amount is not a plain decimal number"


def test_minimal_export_with_date_and_time_in_one_column() -> None:
    columns = columns_from_settings(
        {
            "receipt_no": "Receipt",
            "date": "Closed",
            "time": None,
            "outlet": None,
            "item": None,
            "quantity": None,
            "unit_price": None,
            "discount": None,
            "total": "Amount",
            "payment_method": None,
            "date_format": "%Y-%m-%d %H:%M",
        }
    )

    data = sale(b"Receipt,Closed,Amount,Ignored\nR-7,2025-05-01 21:30,50000,x\n", columns)

    assert data.closed_at == datetime(2025, 5, 1, 21, 30, tzinfo=WIB)
    assert data.store is None
    assert data.lines == [Line(line_total=idr(5000000))]
    assert data.discounts == []
    assert totals(data).discount_total is None
    assert totals(data).total == idr(5000000)
    assert data.payments == []


def test_outlet_timezone_is_a_setting() -> None:
    columns = columns_from_settings({"timezone": "Asia/Makassar"})

    closed_at = sale(export(row()), columns).closed_at

    assert closed_at == datetime(2025, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def test_defaults_are_the_example_exports_headers_in_jakarta_rupiah_with_commas() -> None:
    columns = columns_from_settings({})

    assert columns == QasirColumns()
    assert columns.column_names() == {name: name for name in HEADER.split(",")}
    assert (columns.timezone, columns.currency, columns.delimiter) == ("Asia/Jakarta", "IDR", ",")


@pytest.mark.parametrize(
    ("settings_", "fragment"),
    [
        ({"reciept_no": "No"}, "unknown field `reciept_no`"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"delimiter": '"'}, "delimiter"),
        ({"timezone": "Asia/Nowhere"}, "timezone"),
        ({"timezone": "../etc/passwd"}, "timezone"),
        ({"currency": "rupiah"}, "currency"),
        ({"date_format": "%Q"}, "date_format"),
        ({"receipt_no": None}, "receipt_no"),
        ({"total": "  "}, "total"),
        ({"item": 5}, "item"),
    ],
)
def test_invalid_settings_raise_value_error_naming_the_setting(
    settings_: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match="Qasir settings") as caught:
        columns_from_settings(settings_)

    assert not isinstance(caught.value, PayloadRejected)
    assert fragment in str(caught.value)


def test_settings_that_are_not_a_mapping_raise_value_error() -> None:
    with pytest.raises(ValueError, match="mapping"):
        columns_from_settings(["receipt_no"])  # type: ignore[arg-type]


# --- Refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column", ["receipt_no", "date", "time", "item", "total", "payment_method"]
)
def test_missing_configured_column_is_refused_naming_it(column: str) -> None:
    header = ",".join(name if name != column else "other" for name in HEADER.split(","))

    message = refusal(export(row(), header=header))

    assert message == f"the header has no column {column!r} ({column})"


def test_a_configured_column_appearing_twice_is_refused() -> None:
    message = refusal(export(row() + ",1", header=HEADER + ",Total"))

    assert message == "the header has more than one column 'total' (total)"


@pytest.mark.parametrize(
    "bad", ["12.000,00", "Rp 12000", "NaN", "Infinity", "1e5", "abc", "١٢٣", "--1", SECRET]
)
def test_bad_number_is_refused_naming_row_and_column_never_the_value(bad: str) -> None:
    raw = export(row("A"), row("B", total=f'"{bad}"'))

    message = refusal(raw)

    assert message == "row 3, column 'total': amount is not a plain decimal number"
    assert bad not in message


def test_bad_quantity_is_refused_naming_row_and_column() -> None:
    assert refusal(export(row(quantity="two"))) == (
        "row 2, column 'quantity': quantity is not a plain decimal number"
    )


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"total": "1" + "0" * 15}, "row 2, column 'total': amount is not below 10^15"),
        ({"quantity": "1000000"}, "row 2, column 'quantity': quantity is not below 10^6"),
        ({"quantity": "0.0000001"}, "row 2, column 'quantity': quantity is not below 10^6"),
        ({"unit_price": "0." + "0" * 20 + "1"}, "row 2, column 'unit_price': amount is not"),
    ],
)
def test_absurd_sizes_are_refused(cells: dict[str, str], expected: str) -> None:
    assert refusal(export(row(**cells))).startswith(expected)


def test_receipt_total_beyond_the_amount_bound_is_refused() -> None:
    big = "9" * 15
    raw = export(*(row("A", unit_price=big, total=big) for _ in range(11)))

    assert refusal(raw) == "row 2: the receipt's total is not below 10^15"


@pytest.mark.parametrize(
    ("cells", "column", "what"),
    [
        ({"date": "2025-13-45"}, "date", "not a date in the configured format"),
        ({"date": "01/05/2025"}, "date", "not a date in the configured format"),
        ({"time": "25:61:00"}, "time", "not a time in the configured format"),
        ({"time": ""}, "time", "empty, but required"),
        ({"date": ""}, "date", "empty, but required"),
        ({"total": ""}, "total", "empty, but required"),
    ],
)
def test_bad_date_or_time_is_refused_naming_row_and_column(
    cells: dict[str, str], column: str, what: str
) -> None:
    assert refusal(export(row("A"), row("B", **cells))) == f"row 3, column {column!r}: {what}"


def test_empty_receipt_number_is_refused() -> None:
    assert refusal(export(row(""))) == "row 2, column 'receipt_no': empty, but required"


def test_a_short_row_missing_the_total_cell_is_refused() -> None:
    assert refusal(export("R-1,2025-05-01,10:00:00")) == (
        "row 2, column 'total': empty, but required"
    )


def test_receipt_number_too_long_for_a_dedupe_key_is_refused() -> None:
    message = refusal(export(row("R" * 201)))

    assert message == "row 2, column 'receipt_no': must be 1-200 printable characters"


def test_a_file_that_is_not_utf8_is_refused() -> None:
    assert refusal(EXPORT.replace(b"Senayan", b"Senay\xe1n")) == "the file is not UTF-8 text"


# --- Mutated files --------------------------------------------------------------------------

CELL_MUTANTS = [
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "NaN",
    "1e999999",
    "9" * 40,
    "0." + "0" * 40 + "1",
    "١٢٣",
    SECRET,
    '"',
    "a,b",
    "x\ny",
    "\x00",
    "\ufeff",
    "2025-02-30",
    "24:00:00",
    "QS-2025-0001",
]


def parsed_fixture() -> list[list[str]]:
    return list(csv.reader(io.StringIO(EXPORT.decode(), newline="")))


@st.composite
def mutated_exports(draw: st.DrawFn) -> bytes:
    """The fixture export with 1-4 cells replaced, cells or rows dropped or repeated, possibly
    written without quoting or cut short."""
    rows = parsed_fixture()
    for _ in range(draw(st.integers(1, 4))):
        # Mostly data rows: a broken header refuses the file before any row is read.
        r = draw(st.sampled_from([0, *list(range(1, len(rows))) * 4]))
        action = draw(st.sampled_from(["replace", "drop_cell", "drop_row", "repeat_row"]))
        if action == "replace" and rows[r]:
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(st.sampled_from(CELL_MUTANTS) | st.text(max_size=8))
        elif action == "drop_cell" and rows[r]:
            del rows[r][draw(st.integers(0, len(rows[r]) - 1))]
        elif action == "drop_row":
            del rows[r]
        else:
            rows.insert(r, list(rows[r]))
        if not rows:
            break
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        text = out.getvalue()
    else:
        text = "\n".join(",".join(cells) for cells in rows)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def events_or_refusal(raw: bytes) -> list[NormalizedEvent] | str:
    try:
        return normalize_qasir_csv(raw)
    except PayloadRejected as rejected:
        return str(rejected)


def check_outcome(outcome: list[NormalizedEvent] | str) -> None:
    if isinstance(outcome, str):
        assert SECRET not in outcome
        return
    for event in outcome:
        assert roundtrips(event)
        assert len(event.dedupe_key) <= 300


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_exports())
def test_mutated_exports_give_events_or_a_refusal_never_another_error(raw: bytes) -> None:
    check_outcome(events_or_refusal(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "replace")))
def test_arbitrary_bytes_give_events_or_a_refusal_never_another_error(raw: bytes) -> None:
    check_outcome(events_or_refusal(raw))
