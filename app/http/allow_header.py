"""OPTIONS answers with every method of the path.

The framework builds a path's route one handler at a time and keeps the OPTIONS handler
made for the first, whose Allow then lists only that handler's methods (e.g. "OPTIONS,
POST" for a path that also takes GET). Pointing each generated OPTIONS handler at its
finished route makes Allow complete."""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute


def complete_allow_headers(app: Litestar) -> None:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        entry = route.route_handler_map.get("OPTIONS")
        handler = entry[0] if isinstance(entry, tuple) else entry
        fn = getattr(handler, "fn", None)
        if getattr(fn, "__name__", "") != "options_handler":
            continue  # an OPTIONS handler of our own says what it says
        for cell in getattr(fn, "__closure__", None) or ():
            if isinstance(cell.cell_contents, HTTPRoute):
                cell.cell_contents = route
