"""Specifications for the Moka adapter: the shared page field by field, event types and dedupe
keys, exact fractional amounts, missing and null fields, refusals, and mutated pages."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.canonical import (
    DATA_TYPES,
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
from contracts.providers.base import NormalizedEvent, PayloadRejected
from contracts.providers.moka import MokaPage, parse_moka_page
from tests.fixtures import PROVIDER_FIXTURES

FIXTURES = PROVIDER_FIXTURES
PAGE_RAW = (FIXTURES / "moka_latest_transactions_page1.json").read_bytes()
PAGE: dict[str, Any] = json.loads(PAGE_RAW)
WIB = timezone(timedelta(hours=7))
SECRET = "S3CRET-VALUE"


def idr(amount: int) -> Money:
    return Money(amount=amount, currency="IDR")


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def page_with(*payments: dict[str, Any], **data: Any) -> bytes:
    return encode(
        {"data": {"completed": True, "next_url": None, "payments": list(payments), **data}}
    )


def payment(**fields: Any) -> dict[str, Any]:
    """The fixture's first payment (PAY-0001) with fields replaced."""
    chosen: dict[str, Any] = copy.deepcopy(PAGE["data"]["payments"][0])
    chosen.update(fields)
    return chosen


def only_sale(raw: bytes, outlet_id: str | None = None) -> SaleData:
    events = parse_moka_page(raw, outlet_id=outlet_id).events
    assert len(events) == 1
    data = events[0].data
    assert isinstance(data, SaleData)
    return data


def totals(data: SaleData) -> Totals:
    assert data.totals is not None
    return data.totals


def refusal(raw: bytes) -> str:
    with pytest.raises(PayloadRejected) as caught:
        parse_moka_page(raw)
    return str(caught.value)


def roundtrips(event: NormalizedEvent) -> bool:
    decoded = msgspec.json.decode(msgspec.json.encode(event.data), type=DATA_TYPES[event.type])
    return bool(decoded == event.data)


# --- The shared page, field by field --------------------------------------------------------


def test_fixture_page_passes_next_url_and_completed_through() -> None:
    page = parse_moka_page(PAGE_RAW)

    assert isinstance(page, MokaPage)
    assert page.completed is False
    assert page.next_url == (
        "/v3/outlets/1001/reports/get_latest_transactions?since=1746072000&per_page=2&page=2"
    )


def test_fixture_payments_become_one_event_each_with_dedupe_keys_per_type() -> None:
    events = parse_moka_page(PAGE_RAW).events

    assert [e.type for e in events] == ["sale.completed", "sale.refunded"]
    assert [e.dedupe_key for e in events] == [
        "moka:PAY-0001:sale.completed",
        "moka:PAY-0002:sale.refunded",
    ]
    assert all(e.order_key is None and e.order_status is None for e in events)


def test_pay_0001_is_a_completed_sale_field_by_field() -> None:
    event = parse_moka_page(PAGE_RAW).events[0]
    data = event.data

    assert isinstance(data, SaleData)
    assert data.sale_id == "moka:PAY-0001"
    assert data.external_sale_id == "9001"
    assert data.receipt_number == "PAY-0001"
    assert data.channel == "pos"
    assert data.store is None
    assert data.closed_at == datetime(2025, 5, 1, 9, 15, tzinfo=WIB)
    assert event.occurred_at == data.closed_at
    assert data.lines == [
        Line(
            external_item_id="311",
            name="Kopi Susu",
            quantity="2",
            unit_price=idr(2750000),
            line_total=idr(5500000),
            modifiers=[Modifier(external_id="7", name="Less Sugar", unit_price=idr(0))],
        )
    ]
    assert data.taxes == [Tax(name="PB1", rate="10", amount=idr(550000))]
    assert data.charges == []
    assert data.discounts == []
    assert totals(data) == Totals(
        subtotal=idr(5500000),
        discount_total=idr(0),
        tax_total=idr(550000),
        charges_total=idr(0),
        total=idr(6050000),
    )
    assert data.payments == [
        SalePayment(method="qris", provider_method="QRIS", amount=idr(6050000))
    ]


def test_rp_60500_total_collected_is_6050000_minor_units_with_rp_5500_tax_as_550000() -> None:
    data = only_sale(page_with(payment()))

    assert msgspec.json.encode(totals(data).total) == b'{"amount":6050000,"currency":"IDR"}'
    assert totals(data).tax_total == idr(550000)


def test_pay_0002_is_refunded_with_rp_18500_5_as_exactly_1850050_minor_units() -> None:
    event = parse_moka_page(PAGE_RAW).events[1]
    data = event.data

    assert event.type == "sale.refunded"
    assert isinstance(data, SaleData)
    assert data.sale_id == "moka:PAY-0002"
    assert data.closed_at == datetime(2025, 5, 1, 9, 40, tzinfo=WIB)
    assert data.lines == [
        Line(
            external_item_id="321",
            name="Roti Bakar",
            quantity="1",
            unit_price=idr(1850050),
            line_total=idr(1850050),
        )
    ]
    assert totals(data).subtotal == idr(1850050)
    assert totals(data).total == idr(1850050)
    assert data.payments == [
        SalePayment(method="cash", provider_method="Cash", amount=idr(1850050))
    ]


def test_created_at_keeps_its_plus_0700_offset() -> None:
    data = only_sale(page_with(payment()))

    assert data.closed_at is not None
    assert data.closed_at.utcoffset() == timedelta(hours=7)
    assert b'"closed_at":"2025-05-01T09:15:00+07:00"' in msgspec.json.encode(data)


def test_every_produced_data_reencodes_and_decodes_with_its_data_type() -> None:
    for event in parse_moka_page(PAGE_RAW).events:
        assert isinstance(event.data, DATA_TYPES[event.type])
        assert roundtrips(event)


# --- Event types and re-polling -------------------------------------------------------------


@pytest.mark.parametrize(
    ("is_deleted", "is_refunded", "type_"),
    [
        (False, False, "sale.completed"),
        (None, None, "sale.completed"),
        (False, True, "sale.refunded"),
        (True, False, "sale.voided"),
        # A deleted payment never stood as a sale: its refund is not published as well.
        (True, True, "sale.voided"),
    ],
)
def test_flags_choose_the_event_type_and_voided_wins_over_refunded(
    is_deleted: bool | None, is_refunded: bool | None, type_: str
) -> None:
    raw = page_with(payment(is_deleted=is_deleted, is_refunded=is_refunded))

    [event] = parse_moka_page(raw).events

    assert event.type == type_
    assert event.dedupe_key == f"moka:PAY-0001:{type_}"
    assert event.data.sale_id == "moka:PAY-0001"


def test_repolling_the_same_window_gives_the_same_dedupe_keys() -> None:
    first = parse_moka_page(PAGE_RAW)
    again = parse_moka_page(PAGE_RAW)

    assert [e.dedupe_key for e in again.events] == [e.dedupe_key for e in first.events]
    assert again == first


def test_a_later_refund_of_a_completed_payment_gets_its_own_event() -> None:
    completed = parse_moka_page(page_with(payment())).events[0]
    refunded = parse_moka_page(page_with(payment(is_refunded=True))).events[0]

    assert completed.dedupe_key != refunded.dedupe_key
    assert completed.data.sale_id == refunded.data.sale_id


def test_outlet_id_given_by_the_poller_becomes_the_store() -> None:
    data = only_sale(page_with(payment()), outlet_id="1001")

    assert data.store == StoreRef(external_id="1001")


@pytest.mark.parametrize(
    ("data", "completed"),
    [
        ({"completed": None, "next_url": None}, True),
        ({"completed": None, "next_url": "/v3/next"}, False),
        ({"completed": True, "next_url": None}, True),
    ],
)
def test_missing_completed_means_no_next_page_only_when_next_url_is_null(
    data: dict[str, Any], completed: bool
) -> None:
    page = parse_moka_page(page_with(payment(), **data))

    assert page.completed is completed
    assert page.next_url == data["next_url"]


@pytest.mark.parametrize("data", [{}, {"payments": None}, {"payments": []}])
def test_a_page_without_payments_gives_no_events(data: dict[str, Any]) -> None:
    page = parse_moka_page(encode({"data": data}))

    assert page.events == []
    assert page.completed is True


# --- Amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "minor"),
    [
        ("18500.5", 1850050),
        ("0.005", 0),  # half-even: 0.5 minor units round to 0
        ("0.015", 2),  # as float this is 0.01499...: decoded from text it is 1.5 minor units
        ("0.025", 2),
        ("0.30000000000000004", 30),
        ("12345678901234.56", 1234567890123456),
        ('"18500.5"', 1850050),  # amounts sent as strings are read too
    ],
)
def test_fractional_amounts_convert_exactly_from_their_json_text_half_even(
    wire: str, minor: int
) -> None:
    raw = page_with(payment()).replace(
        b'"total_collected": 60500.0', f'"total_collected": {wire}'.encode()
    )

    assert totals(only_sale(raw)).total == idr(minor)


def test_modifier_prices_add_to_the_unit_price_in_the_line_total() -> None:
    item = {
        "id": 40,
        "item_name": "Latte",
        "variant_id": 401,
        "price": 20000,
        "quantity": 2,
        "modifiers": [
            {"option_id": 8, "option_name": "Extra Shot", "price": 5000},
            {"option_id": 9, "option_name": "Oat Milk", "price": 2500.5},
        ],
    }

    [line] = only_sale(page_with(payment(items=[item]))).lines

    assert line.unit_price == idr(2000000)
    assert line.line_total == idr(5500100)
    assert [m.unit_price for m in line.modifiers] == [idr(500000), idr(250050)]


def test_fractional_quantity_is_kept_as_a_decimal_string() -> None:
    item = {"item_name": "Beras", "price": 15000, "quantity": 1.5}

    [line] = only_sale(page_with(payment(items=[item]))).lines

    assert line.quantity == "1.5"
    assert line.line_total == idr(2250000)
    assert line.external_item_id is None


def test_gratuities_are_service_charges_and_discounts_are_merchant_funded() -> None:
    raw = page_with(
        payment(
            payment_gratuities=[{"name": "Service", "rate": 5.0, "amount": 2750.0}],
            payment_discounts=[{"name": "Happy Hour", "amount": 5500.0}, {"amount": None}],
        )
    )

    data = only_sale(raw)

    assert data.charges == [Charge(type="service_charge", amount=idr(275000))]
    assert data.discounts == [Discount(funded_by="merchant", amount=idr(550000))]
    assert totals(data).charges_total == idr(275000)
    assert totals(data).discount_total == idr(550000)


@pytest.mark.parametrize(
    ("label", "method"),
    [
        ("Cash", "cash"),
        ("QRIS", "qris"),
        ("Debit Card", "card"),
        ("Credit", "card"),
        ("OVO", "wallet"),
        ("GoPay", "wallet"),
        ("Bank Transfer", "cashless"),
        ("Voucher", None),
    ],
)
def test_payment_types_map_to_canonical_methods_and_unknown_ones_are_kept(
    label: str, method: PaymentMethod | None
) -> None:
    data = only_sale(page_with(payment(payment_type=label)))

    assert data.payments == [SalePayment(method=method, provider_method=label, amount=idr(6050000))]


# --- Missing and null fields ----------------------------------------------------------------


def bare_payment(value: Any) -> dict[str, Any]:
    """A payment whose every field but the identities is `value`."""
    return {
        key: (value if key not in ("id", "payment_no") else payment()[key]) for key in payment()
    }


@pytest.mark.parametrize(
    "raw", [page_with(bare_payment(None)), page_with({"id": 9001, "payment_no": "PAY-0001"})]
)
def test_nulls_or_absence_everywhere_but_the_identities_give_a_bare_completed_sale(
    raw: bytes,
) -> None:
    [event] = parse_moka_page(raw).events

    assert event.type == "sale.completed"
    assert event.occurred_at is None
    assert event.data == SaleData(
        sale_id="moka:PAY-0001",
        external_sale_id="9001",
        receipt_number="PAY-0001",
        channel="pos",
        totals=Totals(),
    )
    assert roundtrips(event)


def test_null_fields_inside_items_modifiers_and_taxes_are_tolerated() -> None:
    raw = page_with(
        payment(
            items=[
                {
                    "id": None,
                    "item_name": None,
                    "variant_id": None,
                    "price": None,
                    "quantity": None,
                    "modifiers": [{"option_id": None, "option_name": None, "price": None}],
                }
            ],
            payment_taxes=[{"name": None, "rate": None, "amount": None}],
        )
    )

    data = only_sale(raw)

    assert data.lines == [Line(modifiers=[Modifier()])]
    assert data.taxes == []
    assert totals(data).tax_total == idr(0)


def test_string_ids_are_read_like_numeric_ones() -> None:
    data = only_sale(page_with(payment(id="abc-9001", items=[{"variant_id": "v-311"}])))

    assert data.external_sale_id == "abc-9001"
    assert data.lines[0].external_item_id == "v-311"


def test_created_at_without_an_offset_is_outlet_local_time() -> None:
    data = only_sale(page_with(payment(created_at="2025-05-01T09:15:00")))

    assert data.closed_at == datetime(2025, 5, 1, 9, 15, tzinfo=WIB)


# --- Refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "$: not valid JSON"),
        (b"<html>502</html>", "$: not valid JSON"),
        (b"[]", "$: Expected `object`, got `array`"),
        (b"{}", "$: Object missing required field `data`"),
        (b'{"data": null}', "$.data: Expected `object`, got `null`"),
        (b'{"data": {"payments": {}}}', "$.data.payments: Expected `array | null`"),
        (b'{"data": {"completed": "yes"}}', "$.data.completed: Expected `bool | null`"),
    ],
)
def test_not_json_or_the_wrong_shape_is_refused(raw: bytes, expected: str) -> None:
    assert refusal(raw).startswith(expected)


@pytest.mark.parametrize("identity", ["id", "payment_no"])
def test_a_payment_without_an_identity_is_refused_naming_its_path(identity: str) -> None:
    broken = payment()
    del broken[identity]

    assert refusal(page_with(payment(payment_no="PAY-0000"), broken)) == (
        f"$.data.payments[1]: Object missing required field `{identity}`"
    )


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"payment_no": None}, "$.data.payments[0].payment_no: Expected `str`, got `null`"),
        ({"id": None}, "$.data.payments[0].id: Expected `int | str`, got `null`"),
        ({"payment_no": ""}, "$.data.payments[0].payment_no: must be 1-200 printable"),
        ({"payment_no": "P" * 201}, "$.data.payments[0].payment_no: must be 1-200 printable"),
        ({"id": 10**250}, "$.data.payments[0].id: must be 1-200 printable"),
    ],
)
def test_unusable_identities_are_refused(fields: dict[str, Any], path: str) -> None:
    assert refusal(page_with(payment(**fields))).startswith(path)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"total_collected": "NaN"}, "$.data.payments[0].total_collected: amount is not a finite"),
        ({"subtotal": 1e15}, "$.data.payments[0].subtotal: amount is not a finite"),
        (
            {"subtotal": "0." + "0" * 20 + "1"},
            "$.data.payments[0].subtotal: amount is not a finite",
        ),
        ({"total_collected": SECRET}, "$.data.payments[0].total_collected: Invalid decimal"),
        ({"is_refunded": "yes"}, "$.data.payments[0].is_refunded: Expected `bool | null`"),
        ({"created_at": SECRET}, "$.data.payments[0].created_at: Invalid RFC3339"),
    ],
)
def test_unreadable_values_are_refused_naming_the_path_never_the_value(
    fields: dict[str, Any], path: str
) -> None:
    message = refusal(page_with(payment(**fields)))

    assert message.startswith(path)
    assert SECRET not in message


def test_huge_quantity_is_refused() -> None:
    raw = page_with(payment(items=[{"price": 1, "quantity": 10**6}]))

    assert refusal(raw).startswith("$.data.payments[0].items[0].quantity: quantity is not")


def test_line_total_beyond_the_amount_bound_is_refused() -> None:
    raw = page_with(payment(items=[{"price": 10**14, "quantity": 10}]))

    assert refusal(raw).startswith("$.data.payments[0].items[0]: (price + modifier prices)")


# --- Mutated pages --------------------------------------------------------------------------

MUTANTS: list[Any] = [
    None,
    0,
    -1,
    1.5,
    10**30,
    -(10**30),
    10**400,
    1.5e308,
    SECRET,
    "",
    "NaN",
    "1e999999999",
    "2025-05-01T09:15:00",
    True,
    [],
    {},
    [SECRET],
    {"x": SECRET},
]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index below `node`, as paths from it."""
    found: list[tuple[Any, ...]] = []
    children: Any = ()
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


@st.composite
def mutated_pages(draw: st.DrawFn) -> dict[str, Any]:
    """The fixture page with 1-4 keys dropped or values replaced by nulls, wrong types or huge
    numbers."""
    page: dict[str, Any] = copy.deepcopy(PAGE)
    for _ in range(draw(st.integers(1, 4))):
        where = paths(page)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = page
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(MUTANTS)))
    return page


def page_or_refusal(raw: bytes) -> MokaPage | str:
    try:
        return parse_moka_page(raw, outlet_id="1001")
    except PayloadRejected as rejected:
        return str(rejected)


def check_outcome(outcome: MokaPage | str) -> None:
    if isinstance(outcome, str):
        assert SECRET not in outcome
        return
    for event in outcome.events:
        assert roundtrips(event)
        assert len(event.dedupe_key) <= 300


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pages())
def test_mutated_pages_give_events_or_a_refusal_never_another_error(
    page: dict[str, Any],
) -> None:
    check_outcome(page_or_refusal(encode(page)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_page_or_a_refusal_never_another_error(raw: bytes) -> None:
    check_outcome(page_or_refusal(raw))
