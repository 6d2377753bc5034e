"""The catalogue of canonical event type names and the subscription pattern rule."""

from __future__ import annotations

import re

EVENT_TYPES: tuple[str, ...] = (
    "order.created",
    "order.updated",
    "order.status_changed",
    "order.cancelled",
    "order.completed",
    "order.refunded",
    "menu.updated",
    "menu.sync_result",
    "item.availability_changed",
    "inventory.adjusted",
    "sale.completed",
    "sale.refunded",
    "sale.voided",
    "payment.settled",
    "store.status_changed",
    "integration.status_changed",
    "subscription.disabled",
    "accounting.export_completed",
    "accounting.export_failed",
    "ping",
)

_PATTERN_SHAPE = re.compile(r"^(\*|[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?)$")


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`*` matches all, `order.*` matches `order.created`, anything else matches exactly."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def pattern_problem(pattern: str) -> str | None:
    """Why a subscription pattern is unusable, or None when it selects at least one type."""
    if not _PATTERN_SHAPE.match(pattern):
        return f"{pattern!r} is not an event type pattern (use '*', 'order.*' or 'order.created')"
    if not any(pattern_matches(pattern, t) for t in EVENT_TYPES):
        return f"{pattern!r} matches no known event type"
    return None


def patterns_matching(event_type: str) -> list[str]:
    """Every pattern that selects `event_type`: '*', each 'prefix.*', and the type itself.

    Fan-out looks these up in an index, so its cost follows the subscriptions that match,
    not the tenant's total. Must agree with pattern_matches (a test checks both).
    """
    parts = event_type.split(".")
    return ["*", *(".".join(parts[:i]) + ".*" for i in range(1, len(parts))), event_type]
