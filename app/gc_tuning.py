"""Garbage-collector settings for the long-running processes (gateway and workers)."""

from __future__ import annotations

import gc

# CPython's default first-generation threshold (700 allocations) runs a collection every few
# requests on these allocation-heavy paths (each request and attempt makes thousands of
# short-lived objects, nearly all freed by reference counting). A larger threshold keeps
# cycle collection for the few real cycles at a fraction of the cost.
GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Call once after start-up imports: objects alive by then (modules, the app, settings)
    are moved out of the collector's view, and collections run less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
