"""The API reference at /schema renders from the gateway alone, with no other host reachable."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.child_process import stop_with_parent
from app.embedded_redis import free_port
from app.http.app import create_app
from app.settings import load_settings
from tests import backends
from tests.conftest import HS_KID, HS_SECRET

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ASSET_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".json": ("application/json", "application/vnd.oai.openapi+json"),
}


@pytest.fixture
def docs_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    # The reference reads neither SQL nor Redis: an unmigrated SQLite file is enough, and the
    # test runs once rather than once per SQL backend.
    return {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_JWT_SECRETS": f"{HS_KID}={HS_SECRET}",
    }


@pytest.fixture
async def docs_client(docs_env: dict[str, str]) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(load_settings(docs_env))) as client:
        yield client


class _References(HTMLParser):
    """Every URL the page makes the browser load: src, href and Scalar's data-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "data-url") and value:
                self.urls.append(value)


async def test_schema_page_loads_only_its_own_assets(
    docs_client: AsyncTestClient[Litestar],
) -> None:
    page = await docs_client.get("/schema")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), "the page names another host"
    parser = _References()
    parser.feed(page.text)
    assets = [url for url in parser.urls if not url.startswith("data:")]
    assert {Path(urlsplit(url).path).suffix for url in assets} == set(ASSET_TYPES)
    for url in assets:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
        response = await docs_client.get(url)
        assert response.status_code == 200, url
        content_type = response.headers["content-type"].split(";")[0]
        assert content_type in ASSET_TYPES[Path(parts.path).suffix], (url, content_type)
        assert response.content, url


async def test_viewer_assets_need_no_token_and_are_not_operations(
    docs_client: AsyncTestClient[Litestar],
) -> None:
    page = await docs_client.get("/schema")
    parser = _References()
    parser.feed(page.text)
    scripts = [url for url in parser.urls if url.endswith(".js")]
    assert scripts, parser.urls
    script = scripts[0]
    # A browser opening the docs sends no bearer token.
    assert (await docs_client.get(script)).status_code == 200
    document = (await docs_client.get("/schema/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/schema")]


def test_viewer_assets_are_package_data() -> None:
    """`pip install .` (and so the Docker image) ships every file the viewer serves."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["app.http"]
    package = ROOT / "app" / "http"
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    served = {path for path in (package / "static").rglob("*") if path.is_file()}
    assert served, "no viewer assets in app/http/static"
    assert served <= shipped, sorted(str(p.relative_to(ROOT)) for p in served - shipped)


# --- a real browser with every other host out of reach --------------------------------------


@pytest.fixture
def chromium() -> str:
    """The browser's path; skip (or fail, when GATEWAY_TEST_REQUIRE names it) without one."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            backends.report.used["chromium"] = path
            return path
    reason = "no Chromium binary on PATH (Debian: apt-get install chromium)"
    backends.report.skipped["chromium"] = reason
    if "chromium" in backends.REQUIRED:
        pytest.fail(f"chromium required (GATEWAY_TEST_REQUIRE) but missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def served_gateway(docs_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`uvicorn` serving the app on loopback: the browser needs a real socket."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (tmp_path / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "app.http.app:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            ],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **docs_env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=stop_with_parent,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "gateway.log").read_text()
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=20)


class _Text(HTMLParser):
    """The text a reader sees: everything outside <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def text(self) -> str:
        return re.sub(r"\s+", " ", html.unescape(" ".join(self.parts))).lower()


def _render_offline(chromium: str, url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran, in a browser that can reach only 127.0.0.1."""
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    command = [
        chromium,
        "--headless",
        # CI runs as root, where Chromium's sandbox refuses to start; the page is our own.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # No name resolves and every other host goes through a proxy nothing listens on.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server={dead_proxy}",
        "--proxy-bypass-list=127.0.0.1",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode()


def test_schema_renders_its_operations_without_internet(
    chromium: str, served_gateway: str, tmp_path: Path
) -> None:
    document = httpx.get(f"{served_gateway}/schema/openapi.json", timeout=10).json()
    tag = document["paths"]["/v1/subscriptions"]["post"]["tags"][0]
    expected = [
        f"{method} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and tag in operation.get("tags", [])
    ]
    assert "post /v1/subscriptions" in expected
    # The fragment opens the tag's section, so its operations are in the DOM.
    dom = _render_offline(chromium, f"{served_gateway}/schema#tag/{tag}", tmp_path / "profile")
    reader = _Text()
    reader.feed(dom)
    text = reader.text()
    missing = [operation for operation in expected if operation not in text]
    assert not missing, f"not rendered: {missing}\npage text: {text[:2000]}"
