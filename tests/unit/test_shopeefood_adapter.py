"""Specifications for the PROVISIONAL ShopeeFood adapter: the assumed status-push shape, the
status map, unknown statuses, refusals, redelivery, the signature base and mutated payloads."""

from __future__ import annotations

import copy
import hmac
import inspect
import json
from datetime import UTC, datetime, timedelta, timezone
from hashlib import sha256
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.canonical import (
    DATA_TYPES,
    Money,
    OrderCancelledData,
    OrderData,
    OrderStatusChangedData,
    StoreRef,
    Totals,
)
from contracts.providers import shopeefood
from contracts.providers.base import NormalizedEvent, PayloadRejected
from contracts.providers.shopeefood import (
    SHOPEEFOOD_ORDER_STATUSES,
    normalize_shopeefood,
    signature_base,
)

SECRET = "S3CRET-VALUE"


def push(status: str = "ACCEPTED", **fields: Any) -> dict[str, Any]:
    """A sample status push in the assumed shape."""
    payload: dict[str, Any] = {
        "event_id": f"sf-evt-{status.lower()}",
        "event_type": "order_status_update",
        "order_id": "2505010001234",
        "status": status,
        "store_id": "SF-STORE-77",
        "timestamp": 1746076203,  # 2025-05-01T05:10:03Z
        "total_amount": 110000,
        "currency": "IDR",
    }
    payload.update(fields)
    return payload


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def roundtrips(event: NormalizedEvent) -> bool:
    decoded = msgspec.json.decode(msgspec.json.encode(event.data), type=DATA_TYPES[event.type])
    return bool(decoded == event.data)


def events_or_refusal(raw: bytes) -> list[NormalizedEvent] | str:
    """The events, or the refusal's message."""
    try:
        return normalize_shopeefood(raw)
    except PayloadRejected as rejected:
        return str(rejected)


def refusal(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    with pytest.raises(PayloadRejected) as caught:
        normalize_shopeefood(raw)
    return str(caught.value)


SAMPLES = [push(status) for status in SHOPEEFOOD_ORDER_STATUSES] + [push("SOMETHING_NEW")]


# --- Sample payloads per status -------------------------------------------------------------


def test_accepted_push_becomes_status_changed_field_by_field() -> None:
    (event,) = normalize_shopeefood(encode(push("ACCEPTED")))

    assert event.type == "order.status_changed"
    assert event.data == OrderStatusChangedData(
        order_id="shopeefood:2505010001234",
        external_order_id="2505010001234",
        to="accepted",
        provider_status="ACCEPTED",
    )
    assert event.order_key == "shopeefood:2505010001234"
    assert event.order_status == "accepted"
    assert event.unknown_status is None
    assert event.provider_event_id == "sf-evt-accepted"
    assert event.provider_event_name == "order_status_update"
    assert event.occurred_at == datetime(2025, 5, 1, 5, 10, 3, tzinfo=UTC)
    assert event.dedupe_key == "shopeefood:2505010001234:ACCEPTED:order.status_changed"


@pytest.mark.parametrize(("word", "status"), sorted(SHOPEEFOOD_ORDER_STATUSES.items()))
def test_each_assumed_status_maps_to_its_canonical_status(word: str, status: str) -> None:
    events = normalize_shopeefood(encode(push(word)))

    assert events[0].type == "order.status_changed"
    assert events[0].data.to == status
    assert all(e.order_status == status for e in events)


def test_completed_push_also_gives_order_completed_with_the_total() -> None:
    events = normalize_shopeefood(encode(push("COMPLETED")))

    assert [e.type for e in events] == ["order.status_changed", "order.completed"]
    assert events[1].data == OrderData(
        order_id="shopeefood:2505010001234",
        external_order_id="2505010001234",
        channel="shopeefood",
        store=StoreRef(external_id="SF-STORE-77"),
        totals=Totals(total=Money(amount=11000000, currency="IDR")),
        status="completed",
        provider_status="COMPLETED",
    )


def test_cancelled_push_also_gives_order_cancelled() -> None:
    events = normalize_shopeefood(encode(push("CANCELLED")))

    assert [e.type for e in events] == ["order.status_changed", "order.cancelled"]
    assert events[1].data == OrderCancelledData(
        order_id="shopeefood:2505010001234", external_order_id="2505010001234"
    )


def test_status_words_are_case_insensitive() -> None:
    (event,) = normalize_shopeefood(encode(push("picked_up")))

    assert event.data.to == "picked_up"
    assert event.data.provider_status == "picked_up"  # kept as sent


def test_numeric_order_and_store_ids_are_read_as_strings() -> None:
    (event,) = normalize_shopeefood(encode(push(order_id=2505010001234, store_id=77)))

    assert event.data.external_order_id == "2505010001234"
    assert event.order_key == "shopeefood:2505010001234"


def test_identities_and_status_alone_normalize() -> None:
    (event,) = normalize_shopeefood(encode({"order_id": "A1", "status": "READY"}))

    assert event.data.to == "ready"
    assert event.occurred_at is None
    assert event.provider_event_id is None


def test_null_optional_fields_still_normalize() -> None:
    payload = dict.fromkeys(push()) | {"order_id": "A1", "status": "COMPLETED"}

    events = normalize_shopeefood(encode(payload))

    assert [e.type for e in events] == ["order.status_changed", "order.completed"]
    assert events[1].data.totals is None
    assert events[1].data.store is None


def test_rfc3339_timestamp_keeps_its_offset() -> None:
    (event,) = normalize_shopeefood(encode(push(timestamp="2025-05-01T12:10:03+07:00")))

    assert event.occurred_at == datetime(2025, 5, 1, 12, 10, 3, tzinfo=timezone(timedelta(hours=7)))
    assert event.occurred_at is not None
    assert event.occurred_at.utcoffset() == timedelta(hours=7)


def test_total_amount_is_converted_exactly() -> None:
    events = normalize_shopeefood(encode(push("COMPLETED", total_amount=35000.5)))

    assert events[1].data.totals.total == Money(amount=3500050, currency="IDR")


# --- Unknown statuses -----------------------------------------------------------------------


def test_unknown_status_gives_order_updated_reporting_it() -> None:
    (event,) = normalize_shopeefood(encode(push("SOMETHING_NEW")))

    assert event.type == "order.updated"
    assert event.data.status is None  # canonical status unchanged
    assert event.data.provider_status == "SOMETHING_NEW"
    assert event.unknown_status == "SOMETHING_NEW"
    assert event.order_status is None
    assert event.order_key == "shopeefood:2505010001234"


# --- Refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [lambda p: p.pop("order_id"), lambda p: p.update(order_id=None)],
)
def test_missing_order_id_is_rejected(mutate: Any) -> None:
    payload = push()
    mutate(payload)

    assert refusal(payload) == "$.order_id: required, but missing"


def test_missing_status_is_rejected() -> None:
    payload = push()
    del payload["status"]

    assert refusal(payload) == "$.status: required, but missing"


@pytest.mark.parametrize("order_id", ["", "   ", "x" * 201, "new\nline"])
def test_unusable_order_id_is_rejected(order_id: str) -> None:
    assert refusal(push(order_id=order_id)).startswith("$.order_id: must be")


def test_status_too_long_for_a_key_is_rejected() -> None:
    assert refusal(push("S" * 61)).startswith("$.status: must be")


@pytest.mark.parametrize("raw", [b"", b"nope", b"\xff"])
def test_not_json_is_rejected(raw: bytes) -> None:
    assert refusal(raw).startswith("$: not valid JSON")


def test_wrong_type_is_rejected_naming_the_path_and_not_the_value() -> None:
    message = refusal(push(total_amount=SECRET))

    assert message.startswith("$.total_amount:")
    assert SECRET not in message


@pytest.mark.parametrize("timestamp", [-1, 10**13, 10**30])
def test_timestamp_out_of_range_is_rejected(timestamp: int) -> None:
    assert refusal(push(timestamp=timestamp)).startswith("$.timestamp:")


@pytest.mark.parametrize("amount", [10**15, 10**400, "NaN", "-Infinity"])
def test_absurd_total_amount_is_rejected(amount: Any) -> None:
    assert refusal(push(total_amount=amount)).startswith("$.total_amount:")


def test_currency_that_is_not_a_code_is_rejected() -> None:
    assert refusal(push(currency="rupiah")) == "$.currency: not an ISO 4217 currency code"


# --- Redelivery -----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", SAMPLES)
def test_redelivery_gives_the_same_dedupe_keys(payload: dict[str, Any]) -> None:
    assert normalize_shopeefood(encode(payload)) == normalize_shopeefood(encode(payload))


def test_redelivery_with_a_new_event_id_is_still_the_same_event() -> None:
    first = normalize_shopeefood(encode(push("READY", event_id="a")))
    again = normalize_shopeefood(encode(push("READY", event_id="b")))

    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in again]


@pytest.mark.parametrize("payload", SAMPLES)
def test_each_produced_event_has_its_own_dedupe_key(payload: dict[str, Any]) -> None:
    keys = [e.dedupe_key for e in normalize_shopeefood(encode(payload))]

    assert len(set(keys)) == len(keys)


def test_different_statuses_of_one_order_have_different_keys() -> None:
    accepted = normalize_shopeefood(encode(push("ACCEPTED")))
    ready = normalize_shopeefood(encode(push("READY")))

    assert accepted[0].dedupe_key != ready[0].dedupe_key


# --- Canonical contract ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", SAMPLES)
def test_every_produced_data_reencodes_and_decodes_with_its_data_type(
    payload: dict[str, Any],
) -> None:
    for event in normalize_shopeefood(encode(payload)):
        assert isinstance(event.data, DATA_TYPES[event.type])
        assert roundtrips(event)


# --- Signature base and provisional marking -------------------------------------------------


def test_signature_base_is_url_pipe_body() -> None:
    body = b'{"order_id":"A1","status":"READY"}'

    base = signature_base("https://gw.example/v1/ingest/src_1", body)

    assert base == b'https://gw.example/v1/ingest/src_1|{"order_id":"A1","status":"READY"}'


def test_signature_base_keeps_the_body_bytes_as_received() -> None:
    body = '{"nama": "Es Teh Manis", "catatan": "gula sedikit é"}\n'.encode()

    assert signature_base("https://gw.example/x?a=1", body).endswith(b"|" + body)


def test_signature_base_feeds_the_shopee_hmac_scheme() -> None:
    body = b"{}"
    expected = hmac.new(b"partner-key", b"https://gw.example/x|{}", sha256).hexdigest()

    base = signature_base("https://gw.example/x", body)

    assert hmac.new(b"partner-key", base, sha256).hexdigest() == expected


def test_module_and_every_function_say_they_are_provisional() -> None:
    assert "PROVISIONAL" in (shopeefood.__doc__ or "")
    functions = [
        obj
        for _, obj in inspect.getmembers(shopeefood, inspect.isfunction)
        if obj.__module__ == shopeefood.__name__
    ]
    assert functions
    for function in functions:
        assert "PROVISIONAL" in (function.__doc__ or ""), function.__name__
    assert "PROVISIONAL" in (shopeefood.ShopeeFoodStatusPush.__doc__ or "")


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


@st.composite
def mutated_pushes(draw: st.DrawFn) -> dict[str, Any]:
    """A sample push with 1-4 keys dropped or values replaced by nulls, wrong types or huge
    numbers."""
    payload: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        if not payload:
            break
        key = draw(st.sampled_from(sorted(payload)))
        if draw(st.booleans()):
            del payload[key]
        else:
            payload[key] = copy.deepcopy(draw(st.sampled_from(MUTANTS)))
    return payload


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pushes())
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
