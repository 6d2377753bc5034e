"""Specifications for the GrabFood adapter: the shared fixtures field by field, each state, menu
sync and integration status, missing and null fields, refusals, redelivery, mutated payloads."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.canonical import (
    DATA_TYPES,
    Charge,
    Customer,
    Discount,
    Fulfillment,
    IntegrationStatus,
    IntegrationStatusChangedData,
    Line,
    MenuSyncError,
    MenuSyncResultData,
    Modifier,
    Money,
    OrderCancelledData,
    OrderData,
    OrderPayment,
    OrderStatusChangedData,
    PaymentMethod,
    StoreRef,
    Totals,
)
from contracts.providers.base import NormalizedEvent, PayloadRejected
from contracts.providers.grabfood import (
    INTEGRATION_STATUSES,
    ORDER_STATES,
    ORDER_TYPES,
    normalize_integration_status,
    normalize_menu_sync_state,
    normalize_order_state,
    normalize_submit_order,
)
from tests.fixtures import PROVIDER_FIXTURES

Normalizer = Callable[[bytes], list[NormalizedEvent]]


FIXTURES = PROVIDER_FIXTURES
SECRET = "S3CRET-VALUE"
ORDER_ID = "grabfood:123-CYNKLPCVRN5"
GRAB_STORE = StoreRef(external_id="1-CYNGRUNGSBCCC", partner_store_id="outlet-01")


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


SUBMIT = fixture("grabfood_submit_order.json")
DRIVER_ALLOCATED = fixture("grabfood_order_state_driver_allocated.json")
CANCELLED = fixture("grabfood_order_state_cancelled.json")


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def idr(amount: int) -> Money:
    return Money(amount=amount, currency="IDR")


def submit(**fields: Any) -> dict[str, Any]:
    """The Submit Order fixture with top-level fields replaced."""
    payload = copy.deepcopy(SUBMIT)
    payload.update(fields)
    return payload


def with_price(**fields: Any) -> dict[str, Any]:
    """The Submit Order fixture with price-block fields replaced."""
    payload = copy.deepcopy(SUBMIT)
    payload["price"].update(fields)
    return payload


def created(payload: dict[str, Any]) -> OrderData:
    """The OrderData of the single order.created a Submit Order payload gives."""
    [event] = normalize_submit_order(encode(payload))
    assert event.type == "order.created"
    assert isinstance(event.data, OrderData)
    return event.data


def state(name: str, **fields: Any) -> dict[str, Any]:
    return {"orderID": "123-CYNKLPCVRN5", "state": name, **fields}


def menu_sync(**fields: Any) -> dict[str, Any]:
    """A Menu Sync State body as Grab's SDK documents it."""
    return {
        "requestID": "5b0a7d1e-3c2f-4e8a-9f61-2d4c8b7a1e90",
        "merchantID": "1-CYNGRUNGSBCCC",
        "partnerMerchantID": "outlet-01",
        "jobID": "0f0e4b5c-1d2e-4f60-8a9b-0c1d2e3f4a5b",
        "updatedAt": "2025-05-01T06:00:00Z",
        "status": "SUCCESS",
        "errors": [],
        **fields,
    }


def integration(**fields: Any) -> dict[str, Any]:
    """A Push Integration Status body as Grab's SDK documents it."""
    return {
        "partnerMerchantID": "outlet-01",
        "grabMerchantID": "1-CYNGRUNGSBCCC",
        "integrationStatus": "ACTIVE",
        **fields,
    }


def refusal(normalize: Normalizer, payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    with pytest.raises(PayloadRejected) as rejected:
        normalize(raw)
    return str(rejected.value)


def roundtrips(event: NormalizedEvent) -> bool:
    """The data encodes and decodes back, unchanged, through its canonical data type."""
    decoded = msgspec.json.decode(msgspec.json.encode(event.data), type=DATA_TYPES[event.type])
    return bool(decoded == event.data)


EVERY_PAYLOAD: list[tuple[Normalizer, dict[str, Any]]] = [
    (normalize_submit_order, SUBMIT),
    (normalize_order_state, DRIVER_ALLOCATED),
    (normalize_order_state, CANCELLED),
    *((normalize_order_state, state(name)) for name in ORDER_STATES),
    (normalize_order_state, state("SOMETHING_NEW")),
    (normalize_menu_sync_state, menu_sync()),
    (normalize_menu_sync_state, menu_sync(status="FAILED", errors=["bad price"])),
    (normalize_integration_status, integration()),
]
EVERY_PAYLOAD_IDS = [f"{n.__name__}-{i}" for i, (n, _) in enumerate(EVERY_PAYLOAD)]


# --- Submit Order: the fixture field by field -----------------------------------------------


def test_submit_order_fixture_becomes_one_order_created() -> None:
    [event] = normalize_submit_order(encode(SUBMIT))
    assert event.type == "order.created"
    assert event.dedupe_key == f"{ORDER_ID}:submitted"
    assert event.order_key == ORDER_ID
    assert event.order_status == "accepted"
    assert event.unknown_status is None
    assert event.occurred_at == datetime(2025, 5, 1, 5, 12, tzinfo=UTC)


def test_submit_order_ids_channel_and_store() -> None:
    order = created(SUBMIT)
    assert order.order_id == ORDER_ID
    assert order.external_order_id == "123-CYNKLPCVRN5"
    assert order.display_id == "GF-102"
    assert order.channel == "grabfood"
    assert order.store == GRAB_STORE


def test_order_time_is_placed_at_in_utc() -> None:
    order = created(SUBMIT)
    assert order.placed_at == datetime(2025, 5, 1, 5, 12, tzinfo=UTC)
    assert order.placed_at is not None
    assert order.placed_at.utcoffset() == timedelta(0)


def test_delivered_by_grab_unscheduled_is_platform_delivery_without_scheduled_for() -> None:
    assert created(SUBMIT).fulfillment == Fulfillment(type="platform_delivery")


def test_iced_latte_line_field_by_field() -> None:
    latte = created(SUBMIT).lines[0]
    assert latte == Line(
        external_item_id="SKU-ICEDLATTE",
        platform_item_id="IDITE2024000001",
        quantity="2",
        unit_price=idr(4100000),
        line_total=idr(8200000),
        notes="less ice",
        modifiers=[Modifier(external_id="MOD-OAT", quantity="1", unit_price=idr(600000))],
    )


def test_croissant_line_has_no_notes_and_no_modifiers() -> None:
    croissant = created(SUBMIT).lines[1]
    assert croissant.external_item_id == "SKU-CROISSANT"
    assert croissant.platform_item_id == "IDITE2024000002"
    assert croissant.unit_price == idr(2800000)
    assert croissant.line_total == idr(2800000)
    assert croissant.notes is None
    assert croissant.modifiers == []


def test_price_block_becomes_totals() -> None:
    assert created(SUBMIT).totals == Totals(
        subtotal=idr(11000000),
        discount_total=idr(0),
        tax_total=idr(0),
        charges_total=idr(1000000),
        total=idr(11000000),
        merchant_net=idr(8800000),
    )


def test_delivery_fee_is_a_charge_and_zero_fees_and_promos_are_not_listed() -> None:
    order = created(SUBMIT)
    assert order.charges == [Charge(type="delivery_fee", amount=idr(1000000))]
    assert order.discounts == []


def test_fixture_customer_cashless_payment_and_auto_acceptance() -> None:
    order = created(SUBMIT)
    assert order.customer == Customer(name="Budi", phone_masked="****0000")
    assert order.payment == OrderPayment(method="cashless")
    assert order.status == "accepted"
    assert order.provider_status is None


# --- Submit Order: other shapes ----------------------------------------------------------------


@pytest.mark.parametrize(("order_type", "kind"), [*ORDER_TYPES.items(), ("takeaway", "pickup")])
def test_order_type_maps_to_fulfillment(order_type: str, kind: str) -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["featureFlags"]["orderType"] = order_type
    fulfillment = created(payload).fulfillment
    assert fulfillment is not None
    assert fulfillment.type == kind


@pytest.mark.parametrize("order_type", ["Teleport", "", None])
def test_unknown_order_type_leaves_fulfillment_unset(order_type: str | None) -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["featureFlags"]["orderType"] = order_type
    assert created(payload).fulfillment is None


def test_scheduled_time_becomes_scheduled_for_with_its_offset() -> None:
    fulfillment = created(submit(scheduledTime="2025-05-01T19:30:00+07:00")).fulfillment
    assert fulfillment is not None
    assert fulfillment.scheduled_for == datetime(
        2025, 5, 1, 19, 30, tzinfo=timezone(timedelta(hours=7))
    )


def test_time_without_offset_is_utc() -> None:
    assert created(submit(orderTime="2025-05-01T05:12:00")).placed_at == datetime(
        2025, 5, 1, 5, 12, tzinfo=UTC
    )


def test_dine_in_table_becomes_fulfillment_table() -> None:
    payload = submit(dineIn={"tableID": "T12", "eaterCount": 3})
    payload["featureFlags"]["orderType"] = "DineIn"
    assert created(payload).fulfillment == Fulfillment(type="dine_in", table="T12")


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        ({"orderAcceptedType": "AUTO"}, "accepted"),
        ({"orderAcceptedType": "MANUAL"}, "awaiting_acceptance"),
        ({}, "awaiting_acceptance"),
        (None, "awaiting_acceptance"),
    ],
)
def test_auto_acceptance_is_accepted_otherwise_awaiting_acceptance(
    flags: dict[str, Any] | None, status: str
) -> None:
    [event] = normalize_submit_order(encode(submit(featureFlags=flags)))
    assert event.data.status == status
    assert event.order_status == status


@pytest.mark.parametrize(
    ("payment_type", "method"), [("CASH", "cash"), ("CASHLESS", "cashless"), ("cash", "cash")]
)
def test_payment_type_maps_to_method(payment_type: str, method: PaymentMethod) -> None:
    assert created(submit(paymentType=payment_type)).payment == OrderPayment(method=method)


def test_unknown_payment_type_leaves_payment_unset() -> None:
    assert created(submit(paymentType="BARTER")).payment is None


@pytest.mark.parametrize(
    ("short", "display"), [("102", "GF-102"), ("GF-102", "GF-102"), ("gf-7", "gf-7"), (55, "GF-55")]
)
def test_display_id_carries_the_gf_prefix_once(short: Any, display: str) -> None:
    assert created(submit(shortOrderNumber=short)).display_id == display


def test_customer_phone_keeps_only_its_last_four_digits() -> None:
    customer = created(submit(receiver={"name": "Sari", "phones": "+62 812-3456-7890"})).customer
    assert customer == Customer(name="Sari", phone_masked="****7890")
    assert "812" not in str(customer)


def test_a_phone_too_short_to_mask_is_not_published() -> None:
    assert created(submit(receiver={"phones": "1234"})).customer is None


def test_receiver_address_is_never_published() -> None:
    assert b"Sudirman" not in msgspec.json.encode(created(SUBMIT))


def test_exponent_0_payload_scales_by_100() -> None:
    payload = submit(currency={"code": "IDR", "symbol": "Rp", "exponent": 0})
    payload["items"][0].update(price=41000)
    payload["items"][0]["modifiers"][0].update(price=6000)
    payload["price"].update(total=110000, merchantEarning=88000)
    order = created(payload)
    latte = order.lines[0]
    assert latte.unit_price == idr(4100000)
    assert latte.line_total == idr(8200000)
    assert latte.modifiers[0].unit_price == idr(600000)
    assert order.totals is not None
    assert order.totals.total == idr(11000000)
    assert order.totals.merchant_net == idr(8800000)


def test_currency_and_exponent_are_read_from_each_payload() -> None:
    vnd = created(submit(currency={"code": "VND", "symbol": "₫", "exponent": 0}))
    assert vnd.lines[0].unit_price == Money(amount=4100000, currency="VND")
    myr = created(submit(currency={"code": "myr", "exponent": 2}))
    assert myr.lines[0].unit_price == Money(amount=4100000, currency="MYR")


def test_missing_currency_is_idr_at_its_iso_exponent() -> None:
    assert created(submit(currency=None)).lines[0].unit_price == idr(4100000)


def test_promos_become_discounts_with_who_funded_them() -> None:
    order = created(with_price(grabFundPromo=300000, merchantFundPromo=475000, basketPromo=775000))
    assert order.discounts == [
        Discount(funded_by="platform", amount=idr(300000)),
        Discount(funded_by="merchant", amount=idr(475000)),
    ]
    assert order.totals is not None
    assert order.totals.discount_total == idr(775000)


def test_basket_promo_alone_is_one_discount_of_unknown_funding() -> None:
    payload = copy.deepcopy(SUBMIT)
    del payload["price"]["grabFundPromo"], payload["price"]["merchantFundPromo"]
    payload["price"]["basketPromo"] = 500000
    order = created(payload)
    assert order.discounts == [Discount(amount=idr(500000))]
    assert order.totals is not None
    assert order.totals.discount_total == idr(500000)


def test_merchant_fees_are_charges_by_type() -> None:
    order = created(with_price(merchantChargeFee=200000, serviceChargeFee=100000, deliveryFee=0))
    assert order.charges == [
        Charge(type="merchant_charge", amount=idr(200000)),
        Charge(type="service_charge", amount=idr(100000)),
    ]
    assert order.totals is not None
    assert order.totals.charges_total == idr(300000)


def test_merchant_earning_object_form_gives_merchant_net() -> None:
    earning = {"revenue": 11000000, "netEarning": 8700000, "commission": 2300000}
    totals = created(with_price(merchantEarning=earning)).totals
    assert totals is not None
    assert totals.merchant_net == idr(8700000)


def test_missing_price_block_leaves_totals_unset_and_is_not_an_error() -> None:
    payload = copy.deepcopy(SUBMIT)
    del payload["price"]
    order = created(payload)
    assert order.totals is None
    assert order.charges == []
    assert order.discounts == []
    assert order.lines[0].unit_price == idr(4100000)


def test_empty_item_names_and_notes_are_absent_not_errors() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"][0].update(name="", specifications="")
    latte = created(payload).lines[0]
    assert latte.name is None
    assert latte.notes is None


def test_item_and_modifier_names_are_kept_when_sent() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"][0]["name"] = "Iced Latte"
    payload["items"][0]["modifiers"][0]["name"] = "Oat Milk"
    latte = created(payload).lines[0]
    assert latte.name == "Iced Latte"
    assert latte.modifiers[0].name == "Oat Milk"


def test_modifiers_nest() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"][0]["modifiers"][0]["modifiers"] = [{"id": "MOD-SYRUP", "price": 0}]
    [inner] = created(payload).lines[0].modifiers[0].modifiers
    assert inner == Modifier(external_id="MOD-SYRUP", unit_price=idr(0))


def test_integral_json_float_amount_is_read_exactly() -> None:
    raw = encode(SUBMIT).replace(b'"price": 4100000', b'"price": 4100000.00')
    [event] = normalize_submit_order(raw)
    assert event.data.lines[0].unit_price == idr(4100000)


def test_fractional_minor_units_are_refused_not_rounded() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"][0]["price"] = 4100000.5
    assert "$.items[0].price" in refusal(normalize_submit_order, payload)


def test_long_fraction_is_not_lost_to_float_precision() -> None:
    raw = encode(SUBMIT).replace(b'"price": 4100000', b'"price": 4100000.0000000000000001')
    assert "whole number" in refusal(normalize_submit_order, raw)


@pytest.mark.parametrize("amount", [10**15, -(10**20), 10**40, 1e300])
def test_absurd_amounts_are_refused(amount: Any) -> None:
    assert "$.price.total" in refusal(normalize_submit_order, with_price(total=amount))


def test_fractional_quantity_is_a_decimal_string() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"][1]["quantity"] = 1.5
    croissant = created(payload).lines[1]
    assert croissant.quantity == "1.5"
    assert croissant.line_total == idr(4200000)


@pytest.mark.parametrize("code", ["RP", "rupiah", "12$"])
def test_currency_that_is_not_a_code_is_refused(code: str) -> None:
    message = refusal(normalize_submit_order, submit(currency={"code": code, "exponent": 2}))
    assert message.startswith("$.currency.code")


@pytest.mark.parametrize("exponent", [-1, 7, 10**6])
def test_unusable_exponent_is_refused(exponent: int) -> None:
    message = refusal(
        normalize_submit_order, submit(currency={"code": "IDR", "exponent": exponent})
    )
    assert message.startswith("$.currency.exponent")


def test_unreadable_time_is_refused_naming_the_field_not_the_value() -> None:
    message = refusal(normalize_submit_order, submit(orderTime=SECRET))
    assert message.startswith("$.orderTime")
    assert SECRET not in message


def test_wrong_type_is_refused_naming_the_path_and_not_the_value() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"][0]["quantity"] = SECRET
    message = refusal(normalize_submit_order, payload)
    assert "$.items[0].quantity" in message
    assert SECRET not in message


# --- Submit Order: missing, null and unknown fields --------------------------------------------


def test_submit_order_of_the_identity_alone_normalizes() -> None:
    order = created({"orderID": "123-CYNKLPCVRN5"})
    assert order == OrderData(
        order_id=ORDER_ID,
        external_order_id="123-CYNKLPCVRN5",
        channel="grabfood",
        status="awaiting_acceptance",
    )


def test_null_everywhere_but_the_identity_still_normalizes() -> None:
    payload = dict.fromkeys(SUBMIT) | {"orderID": "123-CYNKLPCVRN5"}
    assert created(payload).order_id == ORDER_ID


def test_null_fields_inside_items_price_and_flags_still_normalize() -> None:
    payload = copy.deepcopy(SUBMIT)
    payload["items"] = [dict.fromkeys(payload["items"][0])]
    payload["price"] = dict.fromkeys(payload["price"])
    payload["featureFlags"] = dict.fromkeys(payload["featureFlags"])
    payload["currency"] = dict.fromkeys(payload["currency"])
    payload["receiver"] = dict.fromkeys(payload["receiver"])
    order = created(payload)
    assert order.lines == [Line()]
    assert order.totals == Totals()
    assert order.customer is None


def test_empty_strings_mean_absent() -> None:
    payload = submit(
        shortOrderNumber="", merchantID="", partnerMerchantID="", orderTime="", paymentType=""
    )
    order = created(payload)
    assert order.display_id is None
    assert order.store is None
    assert order.placed_at is None
    assert order.payment is None


def test_unknown_fields_are_ignored_at_every_level() -> None:
    payload = submit(brandNewField={"x": 1}, membershipID="M-1")
    payload["items"][0]["surprise"] = [1, 2]
    payload["price"]["platformFee"] = 12345
    payload["currency"]["newThing"] = True
    assert created(payload) == created(SUBMIT)


# --- Push Order State --------------------------------------------------------------------------


def test_driver_allocated_fixture_is_driver_assigned_with_eta() -> None:
    [event] = normalize_order_state(encode(DRIVER_ALLOCATED))
    assert event.type == "order.status_changed"
    assert event.data == OrderStatusChangedData(
        order_id=ORDER_ID,
        external_order_id="123-CYNKLPCVRN5",
        to="driver_assigned",
        provider_status="DRIVER_ALLOCATED",
        driver_eta_s=420,
    )
    assert event.dedupe_key == f"{ORDER_ID}:state:DRIVER_ALLOCATED"
    assert event.order_key == ORDER_ID
    assert event.order_status == "driver_assigned"
    assert event.unknown_status is None


def test_cancelled_fixture_gives_status_changed_then_order_cancelled() -> None:
    changed, cancelled = normalize_order_state(encode(CANCELLED))
    assert changed.type == "order.status_changed"
    assert changed.data == OrderStatusChangedData(
        order_id=ORDER_ID,
        external_order_id="123-CYNKLPCVRN5",
        to="cancelled",
        provider_status="CANCELLED",
        reason="Customer cancelled",
    )
    assert cancelled.type == "order.cancelled"
    assert cancelled.data == OrderCancelledData(
        order_id=ORDER_ID, external_order_id="123-CYNKLPCVRN5", reason="Customer cancelled"
    )
    assert cancelled.order_key == ORDER_ID
    assert cancelled.order_status == "cancelled"


def test_cancelled_by_is_read_when_grab_sends_it() -> None:
    _, cancelled = normalize_order_state(encode(state("CANCELLED", cancelledBy="MERCHANT")))
    assert cancelled.data.cancelled_by == "merchant"


@pytest.mark.parametrize(("grab_state", "status"), ORDER_STATES.items())
def test_state_maps_to_canonical_status(grab_state: str, status: str) -> None:
    first = normalize_order_state(encode(state(grab_state)))[0]
    assert first.type == "order.status_changed"
    assert first.data.to == status
    assert first.data.provider_status == grab_state
    assert first.order_status == status


@pytest.mark.parametrize("grab_state", ["COMPLETED", "BILL_PAID"])
def test_completed_and_bill_paid_give_order_completed(grab_state: str) -> None:
    changed, completed = normalize_order_state(encode(CANCELLED | {"state": grab_state}))
    assert changed.data.to == "completed"
    assert completed.type == "order.completed"
    assert completed.data == OrderData(
        order_id=ORDER_ID,
        external_order_id="123-CYNKLPCVRN5",
        channel="grabfood",
        store=GRAB_STORE,
        status="completed",
        provider_status=grab_state,
    )


def test_refunded_gives_order_refunded() -> None:
    changed, refunded = normalize_order_state(encode(state("REFUNDED")))
    assert changed.data.to == "refunded"
    assert refunded.type == "order.refunded"
    assert refunded.data.status == "refunded"
    assert refunded.data.provider_status == "REFUNDED"


@pytest.mark.parametrize(
    "grab_state", ["ACCEPTED", "DRIVER_ARRIVED", "COLLECTED", "DELIVERED", "FAILED"]
)
def test_other_states_give_only_a_status_change(grab_state: str) -> None:
    assert [e.type for e in normalize_order_state(encode(state(grab_state)))] == [
        "order.status_changed"
    ]


def test_driver_eta_is_only_read_for_driver_allocated() -> None:
    [event] = normalize_order_state(encode(state("DRIVER_ARRIVED", driverETA=60)))
    assert event.data.driver_eta_s is None


@pytest.mark.parametrize(("eta", "seconds"), [(-5, None), (10**12, None), (90.4, 90), (0, 0)])
def test_unbelievable_driver_eta_is_dropped_not_refused(eta: Any, seconds: int | None) -> None:
    [event] = normalize_order_state(encode(state("DRIVER_ALLOCATED", driverETA=eta)))
    assert event.data.driver_eta_s == seconds


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        ("", "", None),
        ("MEX_CANCELLED", "", "MEX_CANCELLED"),
        ("", "Out of stock", "Out of stock"),
        ("MEX_CANCELLED", "Out of stock", "MEX_CANCELLED: Out of stock"),
        (None, None, None),
    ],
)
def test_reason_comes_from_code_and_message(
    code: str | None, message: str | None, reason: str | None
) -> None:
    [event, _] = normalize_order_state(encode(state("CANCELLED", code=code, message=message)))
    assert event.data.reason == reason


def test_state_is_matched_in_any_case_but_kept_as_sent() -> None:
    [event] = normalize_order_state(encode(state("delivered")))
    assert event.data.to == "delivered"
    assert event.data.provider_status == "delivered"
    assert event.unknown_status is None


def test_unknown_state_is_kept_and_reported_without_failing() -> None:
    [event] = normalize_order_state(encode(state("DRIVER_TELEPORTED")))
    assert event.type == "order.updated"
    assert event.unknown_status == "DRIVER_TELEPORTED"
    assert event.order_status is None
    assert event.order_key == ORDER_ID
    assert event.data == OrderData(
        order_id=ORDER_ID,
        external_order_id="123-CYNKLPCVRN5",
        channel="grabfood",
        provider_status="DRIVER_TELEPORTED",
    )


def test_state_push_of_identities_alone_normalizes() -> None:
    [event] = normalize_order_state(encode(state("ACCEPTED")))
    assert event.data == OrderStatusChangedData(
        order_id=ORDER_ID,
        external_order_id="123-CYNKLPCVRN5",
        to="accepted",
        provider_status="ACCEPTED",
    )


def test_state_push_with_nulls_but_identities_normalizes() -> None:
    payload = dict.fromkeys(CANCELLED) | {"orderID": "X-1", "state": "CANCELLED"}
    changed, cancelled = normalize_order_state(encode(payload))
    assert changed.data.reason is None
    assert cancelled.data == OrderCancelledData(order_id="grabfood:X-1", external_order_id="X-1")


def test_state_push_ignores_unknown_fields() -> None:
    payload = DRIVER_ALLOCATED | {"driver": {"name": "Joko"}, "newField": 1}
    assert normalize_order_state(encode(payload)) == normalize_order_state(encode(DRIVER_ALLOCATED))


@pytest.mark.parametrize("missing", ["orderID", "state"])
def test_state_push_without_an_identity_is_refused(missing: str) -> None:
    payload = {k: v for k, v in CANCELLED.items() if k != missing}
    assert refusal(normalize_order_state, payload) == f"$.{missing}: required, but missing"
    assert refusal(normalize_order_state, CANCELLED | {missing: ""}).startswith(f"$.{missing}")
    assert refusal(normalize_order_state, CANCELLED | {missing: None}).startswith(f"$.{missing}")


def test_overlong_or_unprintable_state_is_refused() -> None:
    assert refusal(normalize_order_state, state("X" * 41)).startswith("$.state")
    assert refusal(normalize_order_state, state("CANCEL\nLED")).startswith("$.state")


# --- Menu Sync State ---------------------------------------------------------------------------


def test_menu_sync_success_becomes_menu_sync_result() -> None:
    [event] = normalize_menu_sync_state(encode(menu_sync()))
    assert event.type == "menu.sync_result"
    assert event.data == MenuSyncResultData(
        request_id="0f0e4b5c-1d2e-4f60-8a9b-0c1d2e3f4a5b",
        status="success",
        channel="grabfood",
        store=GRAB_STORE,
    )
    assert event.occurred_at == datetime(2025, 5, 1, 6, 0, tzinfo=UTC)
    assert event.provider_event_id == "5b0a7d1e-3c2f-4e8a-9f61-2d4c8b7a1e90"
    assert event.dedupe_key == "grabfood:menu_sync:5b0a7d1e-3c2f-4e8a-9f61-2d4c8b7a1e90:SUCCESS"
    assert event.order_key is None


def test_menu_sync_failure_carries_its_errors() -> None:
    [event] = normalize_menu_sync_state(
        encode(menu_sync(status="FAILED", errors=["item SKU-1: price must be > 0", ""]))
    )
    assert event.data.status == "failed"
    assert event.data.errors == [MenuSyncError(message="item SKU-1: price must be > 0")]


def test_menu_sync_failure_with_only_a_message_carries_it_as_the_error() -> None:
    [event] = normalize_menu_sync_state(
        encode(menu_sync(status="FAILED", errors=None, message="menu too large"))
    )
    assert event.data.errors == [MenuSyncError(message="menu too large")]


def test_menu_sync_errors_as_objects_are_read() -> None:
    errors = [{"id": "SKU-ES-TEH", "code": "invalid_price", "message": "price must be > 0"}]
    [event] = normalize_menu_sync_state(encode(menu_sync(status="FAILED", errors=errors)))
    assert event.data.errors == [
        MenuSyncError(
            external_item_id="SKU-ES-TEH", code="invalid_price", message="price must be > 0"
        )
    ]


def test_menu_sync_success_with_errors_is_partial() -> None:
    [event] = normalize_menu_sync_state(encode(menu_sync(errors=["photo rejected"])))
    assert event.data.status == "partial"


@pytest.mark.parametrize("status", ["QUEUEING", "PROCESSING", "SOMETHING_NEW", "", None])
def test_menu_sync_still_running_or_unknown_produces_nothing(status: str | None) -> None:
    assert normalize_menu_sync_state(encode(menu_sync(status=status))) == []


def test_menu_sync_without_a_job_id_uses_the_request_id() -> None:
    [event] = normalize_menu_sync_state(encode(menu_sync(jobID="")))
    assert event.data.request_id == "5b0a7d1e-3c2f-4e8a-9f61-2d4c8b7a1e90"


def test_menu_sync_of_identity_and_status_alone_normalizes() -> None:
    [event] = normalize_menu_sync_state(encode({"requestID": "r-1", "status": "FAILED"}))
    assert event.data == MenuSyncResultData(request_id="r-1", status="failed", channel="grabfood")


def test_menu_sync_without_a_request_id_is_refused() -> None:
    message = refusal(normalize_menu_sync_state, menu_sync(requestID=None))
    assert message == "$.requestID: required, but missing"


# --- Push Integration Status -------------------------------------------------------------------


@pytest.mark.parametrize(("grab_status", "status"), INTEGRATION_STATUSES.items())
def test_integration_status_maps_to_canonical(grab_status: str, status: IntegrationStatus) -> None:
    [event] = normalize_integration_status(encode(integration(integrationStatus=grab_status)))
    assert event.type == "integration.status_changed"
    assert event.data == IntegrationStatusChangedData(
        status=status,
        channel="grabfood",
        store=GRAB_STORE,
        provider_status=grab_status,
    )


def test_integration_status_reads_merchant_id_status_reason_and_updated_at() -> None:
    payload = {
        "merchantID": "1-CYNGRUNGSBCCC",
        "partnerMerchantID": "outlet-01",
        "status": "INACTIVE",
        "reason": "store offboarded",
        "updatedAt": "2025-05-01T06:00:00Z",
    }
    [event] = normalize_integration_status(encode(payload))
    assert event.data.status == "inactive"
    assert event.data.store == GRAB_STORE
    assert event.data.reason == "store offboarded"
    assert event.occurred_at == datetime(2025, 5, 1, 6, 0, tzinfo=UTC)
    assert event.dedupe_key == (
        "grabfood:integration:1-CYNGRUNGSBCCC:INACTIVE:2025-05-01T06:00:00+00:00"
    )


@pytest.mark.parametrize("grab_status", ["SUSPENDED", "", None])
def test_unknown_or_missing_integration_status_produces_nothing(grab_status: str | None) -> None:
    assert normalize_integration_status(encode(integration(integrationStatus=grab_status))) == []


def test_integration_status_without_a_merchant_is_refused() -> None:
    message = refusal(normalize_integration_status, integration(grabMerchantID=""))
    assert message.endswith("required, but missing")


def test_integration_status_changes_at_different_times_have_different_keys() -> None:
    first = normalize_integration_status(encode(integration(updatedAt="2025-05-01T06:00:00Z")))
    later = normalize_integration_status(encode(integration(updatedAt="2025-05-02T06:00:00Z")))
    assert first[0].dedupe_key != later[0].dedupe_key


# --- Refusals common to every body -------------------------------------------------------------

EVERY_NORMALIZER = [
    normalize_submit_order,
    normalize_order_state,
    normalize_menu_sync_state,
    normalize_integration_status,
]


@pytest.mark.parametrize("normalize", EVERY_NORMALIZER)
@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b'{"orderID": "x"', b"\xff\xfe"])
def test_not_json_is_refused(normalize: Normalizer, raw: bytes) -> None:
    assert refusal(normalize, raw).startswith("$: not valid JSON")


@pytest.mark.parametrize("normalize", EVERY_NORMALIZER)
@pytest.mark.parametrize("raw", [b"[]", b'[{"orderID": "x"}]', b"null", b"42", b'"x"'])
def test_json_that_is_not_an_object_is_refused(normalize: Normalizer, raw: bytes) -> None:
    assert "Expected `object`" in refusal(normalize, raw)


@pytest.mark.parametrize("normalize", [normalize_submit_order, normalize_order_state])
@pytest.mark.parametrize("order_id", [None, "", "   "])
def test_missing_order_id_is_refused(normalize: Normalizer, order_id: str | None) -> None:
    payload = submit(orderID=order_id) if normalize is normalize_submit_order else state("X")
    payload["orderID"] = order_id
    assert refusal(normalize, payload) == "$.orderID: required, but missing"


def test_absent_order_id_is_refused() -> None:
    payload = {k: v for k, v in SUBMIT.items() if k != "orderID"}
    assert refusal(normalize_submit_order, payload) == "$.orderID: required, but missing"


@pytest.mark.parametrize("order_id", [123, ["a"], {"id": "a"}, True])
def test_order_id_of_another_type_is_refused(order_id: Any) -> None:
    assert refusal(normalize_submit_order, submit(orderID=order_id)).startswith("$.orderID")


@pytest.mark.parametrize("order_id", ["x" * 201, "a\nb", "a\x00b"])
def test_unusable_order_id_is_refused(order_id: str) -> None:
    message = refusal(normalize_submit_order, submit(orderID=order_id))
    assert message == "$.orderID: must be 1-200 printable characters"


# --- Redelivery, keys and the canonical contract -----------------------------------------------


@pytest.mark.parametrize(("normalize", "payload"), EVERY_PAYLOAD, ids=EVERY_PAYLOAD_IDS)
def test_redelivered_payload_gives_identical_events_and_dedupe_keys(
    normalize: Normalizer, payload: dict[str, Any]
) -> None:
    first, again = normalize(encode(payload)), normalize(encode(payload))
    assert first
    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in again]
    assert first == again


def test_redelivery_with_reordered_keys_and_whitespace_has_the_same_keys() -> None:
    reordered = json.dumps(dict(reversed(list(SUBMIT.items()))), indent=2).encode()
    assert normalize_submit_order(reordered)[0].dedupe_key == f"{ORDER_ID}:submitted"


@pytest.mark.parametrize(("normalize", "payload"), EVERY_PAYLOAD, ids=EVERY_PAYLOAD_IDS)
def test_each_produced_event_has_its_own_dedupe_key(
    normalize: Normalizer, payload: dict[str, Any]
) -> None:
    keys = [e.dedupe_key for e in normalize(encode(payload))]
    assert len(keys) == len(set(keys))
    assert all(len(key) <= 300 for key in keys)


def test_every_order_event_of_one_order_has_a_distinct_key_and_one_order_key() -> None:
    events = [
        *normalize_submit_order(encode(SUBMIT)),
        *(e for name in ORDER_STATES for e in normalize_order_state(encode(state(name)))),
        *normalize_order_state(encode(state("SOMETHING_NEW"))),
    ]
    keys = [e.dedupe_key for e in events]
    assert len(keys) == len(set(keys))
    assert {e.order_key for e in events} == {ORDER_ID}


@pytest.mark.parametrize(("normalize", "payload"), EVERY_PAYLOAD, ids=EVERY_PAYLOAD_IDS)
def test_every_produced_data_reencodes_and_decodes_with_its_canonical_type(
    normalize: Normalizer, payload: dict[str, Any]
) -> None:
    for event in normalize(encode(payload)):
        assert event.type in DATA_TYPES
        assert isinstance(event.data, DATA_TYPES[event.type])
        assert roundtrips(event)


# --- Mutated payloads --------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every key and index path in a JSON value (the root excluded)."""
    children: Any = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


REPLACEMENTS: list[Any] = [
    SECRET,
    None,
    "",
    "x",
    "NaN",
    "1e999",
    "2025-13-45T99:00:00Z",
    0,
    -1,
    1.5,
    1e308,
    10**40,
    -(10**40),
    2**64,
    True,
    [],
    [None],
    {},
    {"unexpected": 1},
]

Mutation = tuple[Path_, bool, Any]  # (path, drop the key?, replacement)


def _mutate(payload: Any, mutations: list[Mutation]) -> Any:
    mutated = copy.deepcopy(payload)
    for path, drop, replacement in mutations:
        parent = mutated
        try:
            for step in path[:-1]:
                parent = parent[step]
            if drop and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                # A copy: shared list/dict replacements could make a later mutation cyclic.
                parent[path[-1]] = copy.deepcopy(replacement)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return mutated


def mutations_of(payload: dict[str, Any]) -> st.SearchStrategy[list[Mutation]]:
    paths = list(_paths(payload))
    return st.lists(
        st.tuples(st.sampled_from(paths), st.booleans(), st.sampled_from(REPLACEMENTS)),
        min_size=1,
        max_size=4,
    )


def _outcome(normalize: Normalizer, raw: bytes) -> list[NormalizedEvent] | str:
    """The events, or the refusal's message."""
    try:
        return normalize(raw)
    except PayloadRejected as rejected:
        return str(rejected)


def _events_or_refusal(normalize: Normalizer, payload: Any) -> None:
    """Events whose data honours the canonical contract, or a refusal that echoes no value:
    nothing else."""
    raw = payload if isinstance(payload, bytes) else encode(payload)
    events = _outcome(normalize, raw)
    if isinstance(events, str):
        assert SECRET not in events
        return
    for event in events:
        assert roundtrips(event)
    keys = [e.dedupe_key for e in events]
    assert len(keys) == len(set(keys))


MUTATION_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@MUTATION_SETTINGS
@given(mutations=mutations_of(SUBMIT))
def test_mutated_submit_orders_give_events_or_a_refusal_never_another_error(
    mutations: list[Mutation],
) -> None:
    _events_or_refusal(normalize_submit_order, _mutate(SUBMIT, mutations))


@MUTATION_SETTINGS
@given(
    payload=st.sampled_from([DRIVER_ALLOCATED, CANCELLED, state("COMPLETED")]),
    data=st.data(),
)
def test_mutated_state_pushes_give_events_or_a_refusal_never_another_error(
    payload: dict[str, Any], data: st.DataObject
) -> None:
    mutations = data.draw(mutations_of(payload))
    _events_or_refusal(normalize_order_state, _mutate(payload, mutations))


@MUTATION_SETTINGS
@given(mutations=mutations_of(menu_sync(errors=["a"], message="m")))
def test_mutated_menu_sync_states_give_events_or_a_refusal_never_another_error(
    mutations: list[Mutation],
) -> None:
    payload = _mutate(menu_sync(errors=["a"], message="m"), mutations)
    _events_or_refusal(normalize_menu_sync_state, payload)


@MUTATION_SETTINGS
@given(mutations=mutations_of(integration(reason="r", updatedAt="2025-05-01T06:00:00Z")))
def test_mutated_integration_statuses_give_events_or_a_refusal_never_another_error(
    mutations: list[Mutation],
) -> None:
    payload = _mutate(integration(reason="r", updatedAt="2025-05-01T06:00:00Z"), mutations)
    _events_or_refusal(normalize_integration_status, payload)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_give_events_or_a_refusal(raw: bytes) -> None:
    for normalize in EVERY_NORMALIZER:
        _events_or_refusal(normalize, raw)
