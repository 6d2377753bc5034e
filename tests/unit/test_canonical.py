"""Specifications for the canonical event model: data, publish bodies, envelope, catalogue."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from contracts.canonical import (
    DATA_TYPES,
    EXAMPLES,
    Envelope,
    EventSource,
    Money,
    OrderData,
    OrderStatusChangedData,
    PingData,
    PublishOrderCreated,
    event_type_catalog,
    publish_decoder,
)
from contracts.event_types import EVENT_TYPES

RECEIVED = datetime(2025, 5, 1, 5, 12, 3, 250000, tzinfo=UTC)


def order_body(**data: Any) -> bytes:
    """The order.created example with some data fields replaced."""
    body = copy.deepcopy(EXAMPLES["order.created"])
    body["data"].update(data)
    return msgspec.json.encode(body)


def refusal(raw: bytes) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        publish_decoder.decode(raw)
    return str(caught.value)


def contains(whole: Any, part: Any) -> bool:
    """Every key and value of `part` is in `whole` (extra keys in `whole` are defaults)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and contains(whole[k], v) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(whole) == len(part)
            and all(contains(w, p) for w, p in zip(whole, part, strict=True))
        )
    if isinstance(part, str) and isinstance(whole, str) and part != whole:
        # Times come back in msgspec's spelling; compare the instants, not the text.
        try:
            return datetime.fromisoformat(part) == datetime.fromisoformat(whole)
        except ValueError:
            return False
    return bool(whole == part)


def refs_in(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
        return own + [r for v in schema.values() for r in refs_in(v)]
    if isinstance(schema, list):
        return [r for v in schema for r in refs_in(v)]
    return []


# --- Coverage of the catalogue -------------------------------------------------------------


def test_every_event_type_has_a_data_struct_a_schema_and_an_example() -> None:
    catalog = event_type_catalog()
    assert set(DATA_TYPES) == set(EVENT_TYPES)
    assert set(EXAMPLES) == set(EVENT_TYPES)
    assert {entry["type"] for entry in catalog} == set(EVENT_TYPES)
    assert all(issubclass(t, msgspec.Struct) for t in DATA_TYPES.values())


def test_the_catalogue_follows_event_types_order_and_carries_the_examples() -> None:
    catalog = event_type_catalog()
    assert [entry["type"] for entry in catalog] == list(EVENT_TYPES)
    assert all(entry["example"] == EXAMPLES[entry["type"]] for entry in catalog)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_schema_is_self_contained_json_with_properties(event_type: str) -> None:
    (entry,) = [e for e in event_type_catalog() if e["type"] == event_type]
    schema = json.loads(json.dumps(entry["schema"]))
    assert schema["type"] == "object"
    assert "properties" in schema
    assert schema["title"] == DATA_TYPES[event_type].__name__
    defined = set(schema.get("$defs", {}))
    for ref in refs_in(schema):
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in defined, ref


def test_schema_descriptions_have_no_source_indentation() -> None:
    schema = next(e["schema"] for e in event_type_catalog() if e["type"] == "order.created")
    assert "\n    " not in schema["description"]


# --- Publish bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_example_decodes_and_reencodes_unchanged(event_type: str) -> None:
    example = EXAMPLES[event_type]
    event = publish_decoder.decode(msgspec.json.encode(example))
    assert event.type == event_type
    assert isinstance(event.data, DATA_TYPES[event_type])

    reencoded = msgspec.json.encode(event)
    assert publish_decoder.decode(reencoded) == event
    assert contains(msgspec.json.decode(reencoded), example)


def test_a_wrong_data_field_type_is_refused_naming_its_path() -> None:
    message = refusal(order_body(totals={"total": {"amount": "35000"}}))
    assert "$.data.totals.total.amount" in message

    message = refusal(order_body(totals={"total": 3500000}))
    assert "$.data.totals.total" in message


def test_an_unknown_top_level_field_is_refused() -> None:
    body = {**EXAMPLES["order.created"], "ocurred_at": "2025-05-01T05:12:00Z"}
    assert "ocurred_at" in refusal(msgspec.json.encode(body))


def test_an_unknown_event_type_is_refused() -> None:
    assert "order.teleported" in refusal(b'{"type": "order.teleported", "data": {}}')


def test_unknown_data_fields_are_ignored_and_not_passed_on() -> None:
    raw = order_body(grab_feature_flags={"isMexEditOrder": False})
    line = {"external_item_id": "SKU-1", "quantity": "1", "tax": 0}
    event = publish_decoder.decode(order_body(grab_feature_flags={"a": 1}, lines=[line]))
    assert isinstance(event.data, OrderData)
    assert b"grab_feature_flags" not in msgspec.json.encode(publish_decoder.decode(raw))
    assert b'"tax"' not in msgspec.json.encode(event)


def test_the_order_id_is_required_and_everything_else_may_be_missing() -> None:
    assert "order_id" in refusal(b'{"type": "order.created", "data": {}}')
    event = publish_decoder.decode(b'{"type": "order.created", "data": {"order_id": "o-1"}}')
    assert event.data == OrderData(order_id="o-1")


def test_publish_times_must_carry_an_offset() -> None:
    body = {**EXAMPLES["ping"], "occurred_at": "2025-05-01T12:00:00"}
    assert "$.occurred_at" in refusal(msgspec.json.encode(body))
    assert "$.data.placed_at" in refusal(order_body(placed_at="2025-05-01T12:00:00"))


def test_a_gofood_time_keeps_its_offset() -> None:
    event = publish_decoder.decode(order_body(placed_at="2025-05-01T12:10:01+07:00"))
    assert isinstance(event.data, OrderData)
    assert event.data.placed_at is not None
    assert event.data.placed_at.utcoffset() is not None
    assert event.data.placed_at.isoformat() == "2025-05-01T12:10:01+07:00"


def test_a_non_canonical_order_status_is_refused() -> None:
    assert "$.data.status" in refusal(order_body(status="DRIVER_ALLOCATED"))


def test_status_change_from_is_spelled_from_on_the_wire() -> None:
    event = publish_decoder.decode(msgspec.json.encode(EXAMPLES["order.status_changed"]))
    assert isinstance(event.data, OrderStatusChangedData)
    assert event.data.from_ == "accepted"
    encoded = msgspec.json.decode(msgspec.json.encode(event.data))
    assert encoded["from"] == "accepted"
    assert "from_" not in encoded


def test_the_publish_type_is_the_tag() -> None:
    event = PublishOrderCreated(data=OrderData(order_id="o-1"))
    assert event.type == "order.created"
    assert msgspec.json.decode(msgspec.json.encode(event))["type"] == "order.created"


# --- Money and quantities ------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"amount": 35000.5}', b'{"amount": 3500000.0}'])
def test_money_refuses_floats(raw: bytes) -> None:
    with pytest.raises(msgspec.ValidationError, match="Expected `int`, got `float`"):
        msgspec.json.decode(raw, type=Money)


@pytest.mark.parametrize("currency", ["idr", "Idr", "RUPIAH", "ID"])
def test_money_refuses_anything_but_an_upper_case_iso_code(currency: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="currency"):
        msgspec.json.decode(msgspec.json.encode({"amount": 1, "currency": currency}), type=Money)


def test_money_defaults_to_rupiah_in_minor_units() -> None:
    assert msgspec.json.decode(b'{"amount": 3500000}', type=Money) == Money(3500000, "IDR")
    assert msgspec.json.encode(Money(3500000)) == b'{"amount":3500000,"currency":"IDR"}'


@pytest.mark.parametrize("quantity", ["1", "1.5", "0.250", "-2.5", "12"])
def test_decimal_string_quantities_are_accepted(quantity: str) -> None:
    event = publish_decoder.decode(order_body(lines=[{"name": "Beras", "quantity": quantity}]))
    assert isinstance(event.data, OrderData)
    assert event.data.lines[0].quantity == quantity


@pytest.mark.parametrize("quantity", ["abc", "1,5", "1e3", ".5", "", " 1"])
def test_malformed_quantities_are_refused(quantity: str) -> None:
    message = refusal(order_body(lines=[{"name": "Beras", "quantity": quantity}]))
    assert "$.data.lines[0].quantity" in message


def test_a_numeric_quantity_is_refused() -> None:
    assert "$.data.lines[0].quantity" in refusal(order_body(lines=[{"quantity": 1.5}]))


# --- Nesting -------------------------------------------------------------------------------


def test_modifiers_nest_two_levels_deep() -> None:
    sauce = {"name": "Sambal Matah", "quantity": "1", "unit_price": {"amount": 300000}}
    topping = {"external_id": "MOD-AYAM", "name": "Ayam Suwir", "modifiers": [sauce]}
    line = {"external_item_id": "SKU-NASGOR", "quantity": "1", "modifiers": [topping]}
    event = publish_decoder.decode(order_body(lines=[line]))
    assert isinstance(event.data, OrderData)
    inner = event.data.lines[0].modifiers[0].modifiers[0]
    assert inner.name == "Sambal Matah"
    assert inner.unit_price == Money(300000)

    sauce_bad = {**sauce, "unit_price": {"amount": 3000.5}}
    bad_line = {**line, "modifiers": [{**topping, "modifiers": [sauce_bad]}]}
    message = refusal(order_body(lines=[bad_line]))
    assert "$.data.lines[0].modifiers[0].modifiers[0].unit_price.amount" in message


# --- Envelope ------------------------------------------------------------------------------


def envelope(**extra: Any) -> Envelope:
    return Envelope(
        id="evt_01JT3K8Q6V9Y2C4M7N1P5R8S0W",
        type="ping",
        tenant_id="ten_01JT3K8Q6V9Y2C4M7N1P5R8S0X",
        occurred_at=datetime(2025, 5, 1, 5, 12, tzinfo=UTC),
        received_at=RECEIVED,
        source=EventSource(source_id=None, provider=None, method="api"),
        data=PingData(message="hello"),
        **extra,
    )


def test_the_envelope_leaves_out_unknown_optional_fields() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(envelope()))
    assert list(encoded) == [
        "id",
        "type",
        "spec_version",
        "tenant_id",
        "occurred_at",
        "received_at",
        "source",
        "data",
    ]
    assert encoded["spec_version"] == "1"
    assert encoded["data"] == {"message": "hello"}


def test_the_envelope_source_always_has_every_key() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(envelope()))
    assert encoded["source"] == {
        "source_id": None,
        "provider": None,
        "method": "api",
        "provider_event_id": None,
        "provider_event_name": None,
    }


def test_the_envelope_carries_sequence_and_stale_when_known() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(envelope(sequence=3, stale=False)))
    assert encoded["sequence"] == 3
    assert encoded["stale"] is False


def test_envelope_times_are_rfc3339_utc_ending_in_z() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(envelope()))
    rfc3339_utc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    assert rfc3339_utc.match(encoded["occurred_at"]), encoded["occurred_at"]
    assert rfc3339_utc.match(encoded["received_at"]), encoded["received_at"]
    assert encoded["received_at"] == "2025-05-01T05:12:03.250000Z"


def test_envelope_data_may_be_a_struct_or_a_plain_dict() -> None:
    as_struct = msgspec.json.encode(envelope())
    as_dict = msgspec.json.encode(msgspec.structs.replace(envelope(), data={"message": "hello"}))
    assert as_struct == as_dict
