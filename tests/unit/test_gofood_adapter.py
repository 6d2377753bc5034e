"""Specifications for the GoFood adapter: the shared fixtures field by field, each event name,
missing and null fields, refusals, redelivery, and mutated payloads."""

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
    Customer,
    Fulfillment,
    Line,
    MenuUpdatedData,
    Modifier,
    Money,
    OrderCancelledData,
    OrderData,
    OrderStatusChangedData,
    PaymentSettledData,
    StoreRef,
)
from contracts.providers.base import NormalizedEvent, PayloadRejected
from contracts.providers.gofood import GOFOOD_ORDER_STATUSES, normalize_gofood
from tests.fixtures import PROVIDER_FIXTURES

FIXTURES = PROVIDER_FIXTURES
WIB = timezone(timedelta(hours=7))
SECRET = "S3CRET-VALUE"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


AWAITING = fixture("gofood_order_awaiting_merchant_acceptance.json")
COMPLETED = fixture("gofood_order_completed.json")


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def order_event(word: str, **order: Any) -> dict[str, Any]:
    """The awaiting-acceptance fixture renamed to `gofood.order.<word>`, order fields replaced."""
    payload = copy.deepcopy(AWAITING)
    payload["header"]["event_name"] = f"gofood.order.{word}"
    payload["header"]["event_id"] = f"evt-{word}"
    payload["body"]["order"]["status"] = word.upper()
    payload["body"]["order"].update(order)
    return payload


def menu_mapping_event() -> dict[str, Any]:
    return {
        "header": {
            "version": 1,
            "event_id": "0b7e4c55-0000-4000-8000-00000000aaaa",
            "event_name": "gofood.catalog.menu_mapping_updated",
            "timestamp": "2025-05-01T09:00:00.000+07:00",
        },
        "body": {"outlet": {"id": "G1898453S", "external_outlet_id": "outlet-01"}},
    }


def settlement_event() -> dict[str, Any]:
    """The assumed (unverified) payment.transaction.settlement shape."""
    return {
        "header": {
            "version": 1,
            "event_id": "9c1d2e3f-0000-4000-8000-00000000bbbb",
            "event_name": "payment.transaction.settlement",
            "timestamp": "2025-05-02T10:00:00.000+07:00",
        },
        "body": {
            "outlet": {"id": "G1898453S", "external_outlet_id": "outlet-01"},
            "transaction": {
                "id": "GP-STL-20250502-000123",
                "order_id": "POS-000123",
                "status": "settlement",
                "gross_amount": 110000,
                "currency": "IDR",
                "payment_type": "qris",
            },
        },
    }


EVERY_EVENT = [
    AWAITING,
    COMPLETED,
    *(order_event(word) for word in GOFOOD_ORDER_STATUSES),
    menu_mapping_event(),
    settlement_event(),
]


def roundtrips(event: NormalizedEvent) -> bool:
    """The data encodes and decodes back, unchanged, through its canonical data type."""
    decoded = msgspec.json.decode(msgspec.json.encode(event.data), type=DATA_TYPES[event.type])
    return bool(decoded == event.data)


def events_or_refusal(raw: bytes) -> list[NormalizedEvent] | str:
    """The events, or the refusal's message."""
    try:
        return normalize_gofood(raw)
    except PayloadRejected as rejected:
        return str(rejected)


def refusal(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    with pytest.raises(PayloadRejected) as caught:
        normalize_gofood(raw)
    return str(caught.value)


# --- The shared fixtures, field by field ----------------------------------------------------


def test_awaiting_merchant_acceptance_fixture_becomes_one_order_created() -> None:
    events = normalize_gofood(encode(AWAITING))

    assert [e.type for e in events] == ["order.created"]
    event = events[0]
    assert event.provider_event_id == "6f1c2a0e-8d3b-4b7e-9a51-0c2d6e7f8a90"
    assert event.provider_event_name == "gofood.order.awaiting_merchant_acceptance"
    assert event.dedupe_key == "gofood:6f1c2a0e-8d3b-4b7e-9a51-0c2d6e7f8a90:order.created"
    assert event.order_key == "gofood:F-460335259"
    assert event.order_status == "awaiting_acceptance"
    assert event.unknown_status is None
    assert event.occurred_at == datetime(2025, 5, 1, 12, 10, 3, 120000, tzinfo=WIB)


def test_awaiting_merchant_acceptance_order_data_field_by_field() -> None:
    data = normalize_gofood(encode(AWAITING))[0].data

    assert isinstance(data, OrderData)
    assert data.order_id == "gofood:F-460335259"
    assert data.external_order_id == "F-460335259"
    assert data.display_id == "F-460335259"
    assert data.channel == "gofood"
    assert data.store == StoreRef(external_id="G1898453S", partner_store_id="outlet-01")
    assert data.fulfillment == Fulfillment(type="platform_delivery")
    assert data.customer == Customer(name="GoFood Customer")
    assert data.status == "awaiting_acceptance"
    assert data.provider_status == "AWAITING_MERCHANT_ACCEPTANCE"
    assert data.discounts == []
    assert data.payment is None


def test_rp_110000_is_11000000_idr_minor_units() -> None:
    data = normalize_gofood(encode(AWAITING))[0].data

    assert data.totals.total == Money(amount=11000000, currency="IDR")
    assert msgspec.json.encode(data.totals.total) == b'{"amount":11000000,"currency":"IDR"}'


def test_zero_takeaway_charges_add_no_charge_line_but_are_in_totals() -> None:
    data = normalize_gofood(encode(AWAITING))[0].data

    assert data.charges == []
    assert data.totals.charges_total == Money(amount=0, currency="IDR")


def test_order_items_become_lines_with_variants_as_modifiers() -> None:
    data = normalize_gofood(encode(AWAITING))[0].data

    assert data.lines == [
        Line(
            external_item_id="menu-item-1",
            platform_item_id="7b42c0de-0000-4000-8000-000000000001",
            name="Salmon Pizza",
            quantity="1",
            unit_price=Money(amount=11000000, currency="IDR"),
            line_total=Money(amount=11000000, currency="IDR"),
            notes=None,  # "" on the wire says nothing
            modifiers=[Modifier(external_id="variant-1", name="Tambah Keju")],
        )
    ]


def test_created_at_keeps_its_plus_0700_offset() -> None:
    placed_at = normalize_gofood(encode(AWAITING))[0].data.placed_at

    assert placed_at == datetime(2025, 5, 1, 12, 10, 1, 446000, tzinfo=WIB)
    assert placed_at.utcoffset() == timedelta(hours=7)
    assert b'"placed_at":"2025-05-01T12:10:01.446000+07:00"' in msgspec.json.encode(
        normalize_gofood(encode(AWAITING))[0].data
    )


def test_completed_fixture_gives_status_changed_then_order_completed() -> None:
    events = normalize_gofood(encode(COMPLETED))

    assert [e.type for e in events] == ["order.status_changed", "order.completed"]
    changed, completed = events
    assert changed.data == OrderStatusChangedData(
        order_id="gofood:F-460335259",
        external_order_id="F-460335259",
        to="completed",
        provider_status="COMPLETED",
    )
    assert changed.data.from_ is None  # GoFood does not say; the adapter does not guess
    assert isinstance(completed.data, OrderData)
    assert completed.data.status == "completed"
    assert completed.data.totals is not None
    assert completed.data.totals.total == Money(amount=11000000, currency="IDR")
    # external_outlet_id is null in this fixture
    assert completed.data.store == StoreRef(external_id="G1898453S", partner_store_id=None)
    assert {e.order_status for e in events} == {"completed"}
    assert {e.order_key for e in events} == {"gofood:F-460335259"}
    assert {e.occurred_at for e in events} == {datetime(2025, 5, 1, 12, 46, 56, 446000, tzinfo=WIB)}


# --- Each event name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status", "types"),
    [
        ("awaiting_merchant_acceptance", "awaiting_acceptance", ["order.created"]),
        ("merchant_accepted", "accepted", ["order.status_changed"]),
        ("driver_otw_pickup", "driver_assigned", ["order.status_changed"]),
        ("driver_arrived", "driver_arrived", ["order.status_changed"]),
        ("placed", "picked_up", ["order.status_changed"]),  # unverified meaning
        ("completed", "completed", ["order.status_changed", "order.completed"]),
        ("cancelled", "cancelled", ["order.status_changed", "order.cancelled"]),
    ],
)
def test_order_event_name_maps_to_canonical_status(
    word: str, status: str, types: list[str]
) -> None:
    events = normalize_gofood(encode(order_event(word)))

    assert [e.type for e in events] == types
    assert all(e.order_status == status for e in events)
    assert all(e.provider_event_name == f"gofood.order.{word}" for e in events)
    if types[0] == "order.status_changed":
        assert events[0].data.to == status
        assert events[0].data.provider_status == word.upper()


def test_cancelled_carries_the_cancellation_reason() -> None:
    payload = order_event("cancelled", cancellation_detail={"reason": "Toko tutup"})

    changed, cancelled = normalize_gofood(encode(payload))

    assert changed.data.reason == "Toko tutup"
    assert cancelled.data == OrderCancelledData(
        order_id="gofood:F-460335259", external_order_id="F-460335259", reason="Toko tutup"
    )


def test_menu_mapping_updated_becomes_menu_updated() -> None:
    (event,) = normalize_gofood(encode(menu_mapping_event()))

    assert event.type == "menu.updated"
    assert event.data == MenuUpdatedData(
        channel="gofood", store=StoreRef(external_id="G1898453S", partner_store_id="outlet-01")
    )
    assert event.dedupe_key == "gofood:0b7e4c55-0000-4000-8000-00000000aaaa:menu.updated"
    assert event.order_key is None
    assert event.order_status is None


def test_payment_settlement_becomes_payment_settled() -> None:
    (event,) = normalize_gofood(encode(settlement_event()))

    assert event.type == "payment.settled"
    assert event.data == PaymentSettledData(
        settlement_id="GP-STL-20250502-000123",
        external_order_id="POS-000123",
        channel="gofood",
        store=StoreRef(external_id="G1898453S", partner_store_id="outlet-01"),
        method="qris",
        amount=Money(amount=11000000, currency="IDR"),
        settled_at=datetime(2025, 5, 2, 10, 0, tzinfo=WIB),
    )
    assert event.order_key is None


def test_payment_settlement_without_a_transaction_id_is_rejected() -> None:
    payload = settlement_event()
    del payload["body"]["transaction"]["id"]

    assert refusal(payload).startswith("$.body.transaction.id:")


@pytest.mark.parametrize(
    "event_name",
    ["gofood.order.created", "gofood.order.webhook_error", "gofood.outlet.paused", "other"],
)
def test_unknown_event_name_is_acknowledged_with_no_events(event_name: str) -> None:
    payload = copy.deepcopy(AWAITING)
    payload["header"]["event_name"] = event_name

    assert normalize_gofood(encode(payload)) == []


def test_unknown_event_name_with_an_unreadable_body_is_still_acknowledged() -> None:
    payload = {"header": {"event_id": "e1", "event_name": "gofood.new.thing"}, "body": [1, "x"]}

    assert normalize_gofood(encode(payload)) == []


# --- Missing and null fields ----------------------------------------------------------------

IDENTITIES = {("header", "event_id"), ("header", "event_name"), ("order", "order_number")}


def nulled(node: Any, parent: str = "") -> Any:
    """Every value null except the identities (objects keep their identity keys)."""
    if isinstance(node, dict):
        return {
            key: nulled(value, key)
            if (parent, key) in IDENTITIES or isinstance(value, dict)
            else None
            for key, value in node.items()
        }
    return node


def identities_only(payload: dict[str, Any]) -> dict[str, Any]:
    header = payload["header"]
    stripped: dict[str, Any] = {
        "header": {"event_id": header["event_id"], "event_name": header["event_name"]}
    }
    if header["event_name"].startswith("gofood.order."):
        stripped["body"] = {"order": {"order_number": payload["body"]["order"]["order_number"]}}
    return stripped


@pytest.mark.parametrize("payload", [p for p in EVERY_EVENT if "order" in p["body"]])
def test_null_fields_everywhere_but_identities_still_normalize(payload: dict[str, Any]) -> None:
    events = normalize_gofood(encode(nulled(payload)))

    assert events
    assert all(roundtrips(e) for e in events)
    for event in events:
        assert event.occurred_at is None
        if isinstance(event.data, OrderData):
            assert event.data.lines == []
            assert event.data.totals is None
            assert event.data.store is None
            assert event.data.provider_status is None


@pytest.mark.parametrize("payload", [p for p in EVERY_EVENT if "order" in p["body"]])
def test_a_payload_of_identities_alone_normalizes(payload: dict[str, Any]) -> None:
    events = normalize_gofood(encode(identities_only(payload)))

    assert events
    assert all(e.order_key == "gofood:F-460335259" for e in events)
    assert all(roundtrips(e) for e in events)


def test_menu_mapping_with_null_body_has_no_store() -> None:
    payload = menu_mapping_event()
    payload["body"] = None

    (event,) = normalize_gofood(encode(payload))

    assert event.data == MenuUpdatedData(channel="gofood")


def test_null_items_variants_and_customer_are_empty_not_errors() -> None:
    payload = order_event("awaiting_merchant_acceptance")
    payload["body"]["customer"] = None
    payload["body"]["order"]["order_items"] = [
        {"id": None, "name": None, "quantity": None, "price": None, "variants": None}
    ]

    data = normalize_gofood(encode(payload))[0].data

    assert data.customer is None
    assert data.lines == [Line()]


# --- Unknown statuses -----------------------------------------------------------------------


def test_unknown_order_status_is_kept_and_reported_without_failing() -> None:
    payload = order_event("merchant_accepted", status="MERCHANT_PREPARING")

    (event,) = normalize_gofood(encode(payload))

    assert event.data.to == "accepted"  # the event name decides
    assert event.data.provider_status == "MERCHANT_PREPARING"
    assert event.unknown_status == "MERCHANT_PREPARING"


def test_unknown_order_status_is_reported_once_per_payload() -> None:
    payload = order_event("completed", status="DONE_DONE")

    events = normalize_gofood(encode(payload))

    assert [e.unknown_status for e in events] == ["DONE_DONE", None]


def test_known_order_status_in_any_case_is_not_unknown() -> None:
    (event,) = normalize_gofood(encode(order_event("driver_arrived", status="driver_arrived")))

    assert event.unknown_status is None


# --- Values -----------------------------------------------------------------------------------


def test_line_total_is_unit_price_times_quantity_exactly() -> None:
    payload = order_event("awaiting_merchant_acceptance")
    payload["body"]["order"]["order_items"][0].update(quantity=3, price=12345.675)

    (line,) = normalize_gofood(encode(payload))[0].data.lines

    assert line.quantity == "3"
    assert line.unit_price == Money(amount=1234568, currency="IDR")  # half-even of .5
    assert line.line_total == Money(amount=3703702, currency="IDR")  # 37037.025 → .02|5 even


def test_fractional_quantity_is_a_decimal_string() -> None:
    payload = order_event("awaiting_merchant_acceptance")
    payload["body"]["order"]["order_items"][0].update(quantity=1.50, price=20000)

    (line,) = normalize_gofood(encode(payload))[0].data.lines

    assert line.quantity == "1.5"
    assert line.line_total == Money(amount=3000000, currency="IDR")


def test_non_zero_takeaway_charges_become_a_packaging_charge() -> None:
    payload = order_event("awaiting_merchant_acceptance", takeaway_charges=2000)

    data = normalize_gofood(encode(payload))[0].data

    assert [(c.type, c.amount) for c in data.charges] == [
        ("packaging", Money(amount=200000, currency="IDR"))
    ]
    assert data.totals.charges_total == Money(amount=200000, currency="IDR")


def test_gofood_pickup_service_is_pickup_fulfillment() -> None:
    payload = order_event("awaiting_merchant_acceptance")
    payload["body"]["service_type"] = "gofood_pickup"

    assert normalize_gofood(encode(payload))[0].data.fulfillment == Fulfillment(type="pickup")


def test_unknown_service_type_leaves_fulfillment_unset() -> None:
    payload = order_event("awaiting_merchant_acceptance")
    payload["body"]["service_type"] = "gofood_dine_in"

    assert normalize_gofood(encode(payload))[0].data.fulfillment is None


def test_time_without_offset_is_taken_as_gofood_local_time() -> None:
    payload = order_event("awaiting_merchant_acceptance", created_at="2025-05-01T12:10:01")
    payload["header"]["timestamp"] = "2025-05-01T12:10:03"

    (event,) = normalize_gofood(encode(payload))

    assert event.data.placed_at == datetime(2025, 5, 1, 12, 10, 1, tzinfo=WIB)
    assert event.occurred_at == datetime(2025, 5, 1, 12, 10, 3, tzinfo=WIB)


def test_utc_timestamp_keeps_its_own_offset() -> None:
    payload = order_event("merchant_accepted")
    payload["header"]["timestamp"] = "2025-05-01T05:10:03Z"

    (event,) = normalize_gofood(encode(payload))

    assert event.occurred_at is not None
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_currency_is_read_from_the_order() -> None:
    payload = order_event("awaiting_merchant_acceptance", currency="idr", order_total=5)

    assert normalize_gofood(encode(payload))[0].data.totals.total == Money(
        amount=500, currency="IDR"
    )


# --- Refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b'{"header": '])
def test_not_json_is_rejected(raw: bytes) -> None:
    assert refusal(raw).startswith("$: not valid JSON")


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"x"', b"1"])
def test_json_that_is_not_an_object_is_rejected(raw: bytes) -> None:
    assert refusal(raw).startswith("$: Expected `object`")


def test_missing_event_id_is_rejected() -> None:
    payload = copy.deepcopy(AWAITING)
    del payload["header"]["event_id"]

    assert refusal(payload) == "$.header: Object missing required field `event_id`"


@pytest.mark.parametrize("event_id", [None, 42, "", "x" * 201, "tab\there"])
def test_unusable_event_id_is_rejected(event_id: Any) -> None:
    payload = copy.deepcopy(AWAITING)
    payload["header"]["event_id"] = event_id

    assert refusal(payload).startswith("$.header.event_id:")


def test_missing_event_name_is_rejected() -> None:
    payload = copy.deepcopy(AWAITING)
    del payload["header"]["event_name"]

    assert refusal(payload) == "$.header: Object missing required field `event_name`"


def test_missing_header_is_rejected() -> None:
    assert refusal({"body": AWAITING["body"]}) == "$: Object missing required field `header`"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["body"]["order"].pop("order_number"),
        lambda p: p["body"]["order"].update(order_number=None),
        lambda p: p["body"].update(order=None),
        lambda p: p.update(body=None),
        lambda p: p.pop("body"),
    ],
)
def test_order_event_without_order_number_is_rejected(mutate: Any) -> None:
    payload = copy.deepcopy(COMPLETED)
    mutate(payload)

    assert refusal(payload).startswith("$.body.order.order_number: required")


def test_wrong_type_is_rejected_naming_the_path_and_not_the_value() -> None:
    payload = copy.deepcopy(AWAITING)
    payload["body"]["order"]["order_items"][0]["price"] = SECRET

    message = refusal(payload)

    assert message.startswith("$.body.order.order_items[0].price:")
    assert SECRET not in message


@pytest.mark.parametrize("amount", [10**15, -(10**15), 10**400, "NaN", "Infinity", 1.5e308])
def test_absurd_amounts_are_rejected(amount: Any) -> None:
    payload = order_event("awaiting_merchant_acceptance", order_total=amount)

    assert refusal(payload).startswith("$.body.order.order_total:")


def test_currency_that_is_not_a_code_is_rejected() -> None:
    payload = order_event("awaiting_merchant_acceptance", currency="rupiah")

    assert refusal(payload) == "$.body.order.currency: not an ISO 4217 currency code"


# --- Redelivery -----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", EVERY_EVENT)
def test_redelivery_gives_the_same_dedupe_keys(payload: dict[str, Any]) -> None:
    first = normalize_gofood(encode(payload))
    again = normalize_gofood(encode(payload))

    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in again]
    assert first == again


@pytest.mark.parametrize("payload", EVERY_EVENT)
def test_each_produced_event_has_its_own_dedupe_key(payload: dict[str, Any]) -> None:
    events = normalize_gofood(encode(payload))

    keys = [e.dedupe_key for e in events]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith(f"gofood:{payload['header']['event_id']}:") for k in keys)


def test_two_gofood_events_for_one_order_have_different_keys() -> None:
    accepted = normalize_gofood(encode(order_event("merchant_accepted")))
    arrived = normalize_gofood(encode(order_event("driver_arrived")))

    assert accepted[0].dedupe_key != arrived[0].dedupe_key
    assert accepted[0].order_key == arrived[0].order_key


# --- Canonical contract ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", EVERY_EVENT)
def test_every_produced_data_reencodes_and_decodes_with_its_data_type(
    payload: dict[str, Any],
) -> None:
    events = normalize_gofood(encode(payload))

    assert events
    for event in events:
        assert isinstance(event.data, DATA_TYPES[event.type])
        assert roundtrips(event)


# --- Mutated payloads -----------------------------------------------------------------------

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
def mutated_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A GoFood payload with 1-4 keys dropped or values replaced by nulls, wrong types or huge
    numbers."""
    payload: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(EVERY_EVENT)))
    for _ in range(draw(st.integers(1, 4))):
        where = paths(payload)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(MUTANTS)))
    return payload


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_mutated_payloads_give_events_or_a_refusal_never_another_error(
    payload: dict[str, Any],
) -> None:
    outcome = events_or_refusal(encode(payload))
    if isinstance(outcome, str):
        assert SECRET not in outcome
        return
    for event in outcome:
        assert roundtrips(event)
        assert len(event.dedupe_key) <= 300
        assert event.order_key is None or len(event.order_key) <= 300
