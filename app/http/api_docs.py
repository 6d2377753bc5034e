"""The API reference at /schema: Scalar's viewer, served from the package itself.

The viewer's script and stylesheet are files of this package at a pinned version (see
static/scalar-api-reference-*/README.md), so the page renders without internet access and
never runs code that another host changed since the release.
"""

from __future__ import annotations

from pathlib import Path

from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"
# The version is in the folder name and so in the URL: an upgrade is never served stale.
SCALAR_DIR = "scalar-api-reference-1.76.4"
# Under /schema, which is already outside bearer auth (anyone may read the reference).
ASSETS_PATH = "/schema/assets"


def api_reference_plugin() -> ScalarRenderPlugin:
    return ScalarRenderPlugin(
        js_url=f"{ASSETS_PATH}/{SCALAR_DIR}/standalone.js",
        css_url=f"{ASSETS_PATH}/api-reference.css",
        # Litestar's default icon is fetched from another host; an empty data URL also stops
        # the browser from asking for /favicon.ico.
        favicon="<link rel='icon' href='data:,'>",
        # Scalar's default web fonts come from its own host: use the system's fonts instead.
        options={"withDefaultFonts": False},
    )


def api_reference_assets() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[STATIC_DIR], name="api-reference-assets"
    )
