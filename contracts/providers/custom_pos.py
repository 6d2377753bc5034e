"""Custom POS webhooks: canonical publish bodies posted by a merchant's own POS, as events.

A custom POS posts the body POST /v1/events takes (`{type, data, occurred_at?}`), signed with
Standard Webhooks headers; the signature is checked before this runs. The sender's
`webhook-id` is the dedupe key, so a retried delivery of the same message files nothing new.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from contracts.canonical import (
    OrderCancelledData,
    OrderData,
    OrderStatus,
    OrderStatusChangedData,
    PublishEvent,
    publish_decoder,
)
from contracts.providers.base import NormalizedEvent, PayloadRejected

# Keys become VARCHAR(300) columns: dedupe_key is "pos:" + webhook-id, order_key the order id.
MAX_WEBHOOK_ID_LENGTH: Final = 200
MAX_ORDER_ID_LENGTH: Final = 300
MAX_MESSAGE_LENGTH: Final = 200

# msgspec quotes the offending value in these messages; a refusal must not echo payload values.
_ECHOED_VALUE: Final = re.compile(r"^(Invalid (?:enum )?value) .*$", re.DOTALL)


def normalize_custom_pos(raw: bytes, *, webhook_id: str) -> list[NormalizedEvent]:
    """One canonical event from a custom POS's publish body; dedupe key `pos:<webhook-id>`.

    Raises PayloadRejected naming the JSON path (e.g. `$.data.totals.total.amount: Expected
    `int`, got `str``), never a value, when the body is not a valid publish body.
    """
    if not 0 < len(webhook_id) <= MAX_WEBHOOK_ID_LENGTH or not webhook_id.isprintable():
        raise PayloadRejected(
            f"webhook-id header: must be 1-{MAX_WEBHOOK_ID_LENGTH} printable characters"
        )
    published = _decode(raw)
    order_key, order_status = order_progress(published)
    return [
        NormalizedEvent(
            type=published.type,
            data=published.data,
            occurred_at=published.occurred_at,
            provider_event_id=webhook_id,
            provider_event_name=published.type,
            dedupe_key=f"pos:{webhook_id}",
            order_key=order_key,
            order_status=order_status,
        )
    ]


def order_progress(published: PublishEvent) -> tuple[str | None, OrderStatus | None]:
    """(order_key, order_status) for an order event, from data.order_id and the data's
    status (`to` for status changes; order.cancelled means cancelled); (None, None) otherwise.
    """
    data = published.data
    if isinstance(data, OrderData):
        return _order_key(data.order_id), data.status
    if isinstance(data, OrderStatusChangedData):
        return _order_key(data.order_id), data.to
    if isinstance(data, OrderCancelledData):
        return _order_key(data.order_id), "cancelled"
    return None, None


def _order_key(order_id: str) -> str:
    if not 0 < len(order_id) <= MAX_ORDER_ID_LENGTH:
        raise PayloadRejected(f"$.data.order_id: must be 1-{MAX_ORDER_ID_LENGTH} characters")
    return order_id


def _decode(raw: bytes) -> PublishEvent:
    try:
        return publish_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        if not message:
            message, where = str(exc), "$`"
        message = _ECHOED_VALUE.sub(r"\1 (not one of the allowed values)", message)
        # Unknown field names are echoed; a key of any length must not make the answer huge.
        message = message[:MAX_MESSAGE_LENGTH]
        raise PayloadRejected(f"{where.rstrip('`')}: {message}") from None
    except msgspec.DecodeError as exc:
        raise PayloadRejected(f"$: not valid JSON ({exc})") from None
