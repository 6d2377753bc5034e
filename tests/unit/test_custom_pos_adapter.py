"""Specifications for the custom POS adapter: canonical publish bodies become events keyed by
the sender's webhook-id; invalid bodies are refused with a JSON path and no values."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import msgspec
import pytest

from contracts.canonical import DATA_TYPES, EXAMPLES, publish_decoder
from contracts.providers.base import PayloadRejected
from contracts.providers.custom_pos import normalize_custom_pos

WEBHOOK_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
SECRET = "S3CRET-VALUE"


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def refusal(payload: Any, webhook_id: str = WEBHOOK_ID) -> str:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    with pytest.raises(PayloadRejected) as caught:
        normalize_custom_pos(raw, webhook_id=webhook_id)
    return str(caught.value)


def example(event_type: str, **data: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[event_type])
    body["data"].update(data)
    return body


# --- Every catalogue example ----------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_catalogue_example_normalizes_keyed_by_webhook_id(event_type: str) -> None:
    raw = encode(EXAMPLES[event_type])

    (event,) = normalize_custom_pos(raw, webhook_id=WEBHOOK_ID)

    assert event.type == event_type
    assert event.data == publish_decoder.decode(raw).data
    assert isinstance(event.data, DATA_TYPES[event_type])
    assert event.dedupe_key == f"pos:{WEBHOOK_ID}"
    assert event.provider_event_id == WEBHOOK_ID
    assert event.provider_event_name == event_type
    assert event.unknown_status is None


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_produced_data_reencodes_and_decodes_with_its_data_type(event_type: str) -> None:
    (event,) = normalize_custom_pos(encode(EXAMPLES[event_type]), webhook_id=WEBHOOK_ID)

    encoded = msgspec.json.encode(event.data)
    assert msgspec.json.decode(encoded, type=DATA_TYPES[event_type]) == event.data


@pytest.mark.parametrize("event_type", sorted(t for t in EXAMPLES if t.startswith("order.")))
def test_order_events_carry_their_order_key(event_type: str) -> None:
    (event,) = normalize_custom_pos(encode(EXAMPLES[event_type]), webhook_id=WEBHOOK_ID)

    assert event.order_key == EXAMPLES[event_type]["data"]["order_id"]


@pytest.mark.parametrize("event_type", sorted(t for t in EXAMPLES if not t.startswith("order.")))
def test_other_events_have_no_order_key_or_status(event_type: str) -> None:
    (event,) = normalize_custom_pos(encode(EXAMPLES[event_type]), webhook_id=WEBHOOK_ID)

    assert event.order_key is None
    assert event.order_status is None


def test_order_status_comes_from_the_data_status() -> None:
    (event,) = normalize_custom_pos(
        encode(example("order.created", status="accepted")), webhook_id=WEBHOOK_ID
    )

    assert event.order_status == "accepted"


def test_order_without_a_status_moves_no_status() -> None:
    body = example("order.updated")
    del body["data"]["status"]

    (event,) = normalize_custom_pos(encode(body), webhook_id=WEBHOOK_ID)

    assert event.order_status is None
    assert event.order_key == body["data"]["order_id"]


def test_status_change_order_status_is_its_to() -> None:
    body = example("order.status_changed", to="driver_arrived")

    (event,) = normalize_custom_pos(encode(body), webhook_id=WEBHOOK_ID)

    assert event.order_status == "driver_arrived"


def test_order_cancelled_moves_the_order_to_cancelled() -> None:
    (event,) = normalize_custom_pos(encode(EXAMPLES["order.cancelled"]), webhook_id=WEBHOOK_ID)

    assert event.order_status == "cancelled"


def test_occurred_at_is_passed_through_with_its_offset() -> None:
    body = copy.deepcopy(EXAMPLES["sale.completed"]) | {"occurred_at": "2025-05-01T09:15:00+07:00"}

    (event,) = normalize_custom_pos(encode(body), webhook_id=WEBHOOK_ID)

    assert event.occurred_at == datetime.fromisoformat("2025-05-01T09:15:00+07:00")
    assert event.occurred_at is not None
    assert event.occurred_at.utcoffset() is not None


def test_redelivery_with_the_same_webhook_id_has_the_same_key() -> None:
    raw = encode(EXAMPLES["order.created"])

    first = normalize_custom_pos(raw, webhook_id=WEBHOOK_ID)
    again = normalize_custom_pos(raw, webhook_id=WEBHOOK_ID)

    assert first == again


def test_different_webhook_ids_are_different_events() -> None:
    raw = encode(EXAMPLES["order.created"])

    first = normalize_custom_pos(raw, webhook_id="msg_a")
    second = normalize_custom_pos(raw, webhook_id="msg_b")

    assert first[0].dedupe_key != second[0].dedupe_key


# --- Refusals -------------------------------------------------------------------------------


def test_invalid_data_is_rejected_naming_the_json_path() -> None:
    body = example("order.created")
    body["data"]["totals"]["total"]["amount"] = "11000000"

    assert refusal(body) == "$.data.totals.total.amount: Expected `int`, got `str`"


def test_float_money_is_rejected() -> None:
    body = example("order.created")
    body["data"]["totals"]["total"]["amount"] = 110000.0

    assert refusal(body) == "$.data.totals.total.amount: Expected `int`, got `float`"


def test_missing_required_field_is_rejected_naming_where() -> None:
    body = example("order.created")
    del body["data"]["order_id"]

    assert refusal(body) == "$.data: Object missing required field `order_id`"


def test_invalid_enum_value_is_rejected_without_echoing_it() -> None:
    message = refusal(example("order.created", status=SECRET))

    assert message.startswith("$.data.status: Invalid enum value")
    assert SECRET not in message


def test_pattern_mismatch_is_rejected_without_echoing_the_value() -> None:
    body = example("order.created")
    body["data"]["totals"]["total"]["currency"] = SECRET

    message = refusal(body)

    assert message.startswith("$.data.totals.total.currency:")
    assert SECRET not in message


def test_unknown_type_is_rejected_without_echoing_it() -> None:
    message = refusal({"type": SECRET, "data": {}})

    assert message.startswith("$.type: Invalid value")
    assert SECRET not in message


def test_missing_type_is_rejected() -> None:
    assert refusal({"data": {}}) == "$: Object missing required field `type`"


def test_unknown_top_level_field_is_rejected() -> None:
    body = copy.deepcopy(EXAMPLES["ping"]) | {"ocurred_at": "2025-05-01T09:15:00+07:00"}

    assert refusal(body) == "$: Object contains unknown field `ocurred_at`"


def test_huge_unknown_field_name_does_not_make_a_huge_refusal() -> None:
    body = copy.deepcopy(EXAMPLES["ping"]) | {"x" * 10_000: 1}

    assert len(refusal(body)) < 300


def test_naive_occurred_at_is_rejected() -> None:
    body = copy.deepcopy(EXAMPLES["ping"]) | {"occurred_at": "2025-05-01T09:15:00"}

    assert refusal(body).startswith("$.occurred_at:")


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff", b'{"type": "ping"'])
def test_not_json_is_rejected(raw: bytes) -> None:
    assert refusal(raw).startswith("$: not valid JSON")


@pytest.mark.parametrize("webhook_id", ["", "x" * 201, "line\nbreak"])
def test_unusable_webhook_id_is_rejected(webhook_id: str) -> None:
    assert refusal(EXAMPLES["ping"], webhook_id=webhook_id).startswith("webhook-id header:")


def test_order_id_too_long_for_an_order_key_is_rejected() -> None:
    message = refusal(example("order.created", order_id="o" * 301))

    assert message == "$.data.order_id: must be 1-300 characters"
