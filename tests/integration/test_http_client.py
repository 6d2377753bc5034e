"""The guarded webhook client against real loopback receivers, with fake resolvers for names."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.delivery.http_client import (
    BODY_HEAD_BYTES,
    GuardedResolver,
    TargetRefused,
    WebhookClient,
)
from app.security.ssrf import AddressPolicy, IPAddress

LOOPBACK_ALLOWED = AddressPolicy(allow_cidrs=(ipaddress.ip_network("127.0.0.0/8"),))
NO_ALLOW_LIST = AddressPolicy()
PARTNER_HOST = "hooks.partner.test"
BIG_BODY = b"x" * 1_000_000


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback webhook receiver that records every request it gets."""

    port: int = 0
    seen: list[SeenRequest] = field(default_factory=list)
    # Set at teardown so handlers that hang on purpose end before the server shuts down.
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class FakeResolver:
    """Stands in for DNS: known names map to fixed addresses, anything else fails like NXDOMAIN."""

    def __init__(self, records: dict[str, list[str]] | None = None) -> None:
        self.records = records or {}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(address) for address in self.records[host]]


def _receiver_app(receiver: Receiver) -> web.Application:
    async def record(request: web.Request) -> None:
        receiver.seen.append(SeenRequest(request.path, dict(request.headers), await request.read()))

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="accepted")

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=BIG_BODY)

    async def endless(request: web.Request) -> web.StreamResponse:
        # More than the head, then nothing: a client that reads past the head would hang here.
        await record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"y" * (4 * BODY_HEAD_BYTES))
        await receiver.stop.wait()
        return response

    async def stalled_body(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial")
        await receiver.stop.wait()
        return response

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(location=receiver.url("/redirect-target"))

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await receiver.stop.wait()
        return web.Response(text="too late")

    async def busy(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=503, text="busy", headers={"Retry-After": "120"})

    app = web.Application()
    app.router.add_post("/hook", ok)
    app.router.add_post("/big", big)
    app.router.add_post("/endless", endless)
    app.router.add_post("/stalled-body", stalled_body)
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/redirect-target", ok)
    app.router.add_post("/slow", slow)
    app.router.add_post("/busy", busy)
    return app


async def _serve(
    receiver: Receiver, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    runner = web.AppRunner(_receiver_app(receiver), handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        receiver.stop.set()
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for serving in _serve(Receiver()):
        yield serving


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    async with WebhookClient(LOOPBACK_ALLOWED, resolver=FakeResolver()) as webhook_client:
        yield webhook_client


@pytest.fixture
async def guarded_client() -> AsyncIterator[WebhookClient]:
    """The production policy: no allow-list, so loopback is refused."""
    resolver = FakeResolver({"webhook.example": ["127.0.0.1"], "localhost": ["127.0.0.1", "::1"]})
    async with WebhookClient(NO_ALLOW_LIST, resolver=resolver) as webhook_client:
        yield webhook_client


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- responses ------------------------------------------------------------------------------


async def test_200_records_status_body_and_sends_headers_as_given(
    client: WebhookClient, receiver: Receiver
) -> None:
    headers = {"Content-Type": "application/json", "webhook-id": "msg_1", "User-Agent": "pwbi/1"}

    result = await client.post(receiver.url(), b'{"a":1}', headers, timeout_s=5)

    assert result.status_code == 200
    assert result.body_head == "accepted"
    assert result.error is None
    assert result.error_detail is None
    assert result.retry_after is None
    assert result.duration_ms >= 0
    [seen] = receiver.seen
    assert seen.body == b'{"a":1}'
    for name, value in headers.items():
        assert seen.headers[name] == value
    assert seen.headers["Host"] == f"127.0.0.1:{receiver.port}"
    # The body head is a diagnostic; asking for identity keeps it readable with decompression off.
    assert seen.headers["Accept-Encoding"] == "identity"
    assert "Cookie" not in seen.headers


async def test_1_mb_response_records_only_the_first_4_kib(
    client: WebhookClient, receiver: Receiver
) -> None:
    result = await client.post(receiver.url("/big"), b"{}", {}, timeout_s=5)

    assert result.status_code == 200
    assert result.body_head == "x" * BODY_HEAD_BYTES
    assert result.duration_ms < 2000
    # The connection holding the unread rest is dropped, and the pool keeps working.
    again = await client.post(receiver.url(), b"{}", {}, timeout_s=5)
    assert again.status_code == 200


async def test_body_beyond_the_head_is_never_waited_for(
    client: WebhookClient, receiver: Receiver
) -> None:
    result = await client.post(receiver.url("/endless"), b"{}", {}, timeout_s=5)

    assert result.status_code == 200
    assert result.body_head == "y" * BODY_HEAD_BYTES
    assert result.error is None
    assert result.duration_ms < 2000


async def test_status_counts_when_the_body_head_stalls(
    client: WebhookClient, receiver: Receiver
) -> None:
    result = await client.post(receiver.url("/stalled-body"), b"{}", {}, timeout_s=0.5)

    assert result.status_code == 200
    assert result.body_head == "partial"
    assert result.error is None
    assert result.error_detail == "response body not received within 0.5 s"
    assert 400 <= result.duration_ms < 2000


async def test_302_is_recorded_and_not_followed(client: WebhookClient, receiver: Receiver) -> None:
    result = await client.post(receiver.url("/redirect"), b"{}", {}, timeout_s=5)

    assert result.status_code == 302
    assert result.error is None
    assert [seen.path for seen in receiver.seen] == ["/redirect"]


async def test_503_with_retry_after_is_reported(client: WebhookClient, receiver: Receiver) -> None:
    result = await client.post(receiver.url("/busy"), b"{}", {}, timeout_s=5)

    assert result.status_code == 503
    assert result.retry_after == "120"
    assert result.body_head == "busy"


async def test_50_concurrent_posts_all_succeed(client: WebhookClient, receiver: Receiver) -> None:
    results = await asyncio.gather(
        *(client.post(receiver.url(), f'{{"n":{n}}}'.encode(), {}, timeout_s=10) for n in range(50))
    )

    assert [result.status_code for result in results] == [200] * 50
    assert len(receiver.seen) == 50


# --- network failures -----------------------------------------------------------------------


async def test_slow_receiver_times_out_near_the_timeout(
    client: WebhookClient, receiver: Receiver
) -> None:
    result = await client.post(receiver.url("/slow"), b"{}", {}, timeout_s=0.5)

    assert result.status_code is None
    assert result.error == "timeout"
    assert result.error_detail == f"no response from 127.0.0.1:{receiver.port} within 0.5 s"
    assert 450 <= result.duration_ms < 1500


async def test_closed_port_is_connection_refused(client: WebhookClient) -> None:
    port = _closed_port()

    result = await client.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout_s=5)

    assert result.status_code is None
    assert result.error == "connection_refused"
    assert result.error_detail == f"127.0.0.1:{port} refused the connection"


async def test_unknown_host_is_a_dns_error(client: WebhookClient) -> None:
    result = await client.post("http://nowhere.partner.test/hook", b"{}", {}, timeout_s=5)

    assert result.error == "dns"
    assert result.error_detail is not None
    assert result.error_detail.startswith("DNS lookup for nowhere.partner.test failed")


async def test_error_details_carry_no_url_path_query_or_header_values(
    client: WebhookClient,
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook/tok_s3cret?key=k3y"

    result = await client.post(url, b"{}", {"Authorization": "Bearer b34rer"}, timeout_s=5)

    assert result.error == "connection_refused"
    assert result.error_detail is not None
    for secret in ("s3cret", "k3y", "b34rer", "/hook"):
        assert secret not in result.error_detail


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/hook", "file:///etc/passwd", "http:///no-host", "not a url"]
)
async def test_non_http_or_hostless_urls_are_invalid(client: WebhookClient, url: str) -> None:
    result = await client.post(url, b"{}", {}, timeout_s=5)

    assert result.status_code is None
    assert result.error == "invalid_url"


async def test_non_positive_timeout_is_a_programming_error(client: WebhookClient) -> None:
    # aiohttp would read total=0 as "no timeout at all".
    with pytest.raises(ValueError, match="timeout_s"):
        await client.post("http://127.0.0.1:1/hook", b"{}", {}, timeout_s=0)


# --- SSRF guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "detail"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1 is an IPv4-mapped IPv6 of a loopback address"),
        # Legacy numeric forms that inet_aton reads as 127.0.0.1.
        ("2130706433", "2130706433 is a loopback address"),
        ("127.1", "127.1 is a loopback address"),
        ("0x7f.0.0.1", "0x7f.0.0.1 is a loopback address"),
    ],
)
async def test_ip_literal_hosts_are_refused_without_allow_list(
    guarded_client: WebhookClient, receiver: Receiver, host: str, detail: str
) -> None:
    result = await guarded_client.post(receiver.url(host=host), b"{}", {}, timeout_s=5)

    assert result.status_code is None
    assert result.error == "ssrf_refused"
    assert result.error_detail == detail
    assert receiver.seen == []


async def test_loopback_literal_goes_through_with_allow_list(
    client: WebhookClient, receiver: Receiver
) -> None:
    result = await client.post(receiver.url(), b"{}", {}, timeout_s=5)

    assert result.status_code == 200
    assert len(receiver.seen) == 1


@pytest.mark.parametrize("name", ["webhook.example", "localhost"])
async def test_hostname_resolving_to_loopback_at_connect_time_is_refused(
    guarded_client: WebhookClient, receiver: Receiver, name: str
) -> None:
    result = await guarded_client.post(receiver.url(host=name), b"{}", {}, timeout_s=5)

    assert result.status_code is None
    assert result.error == "ssrf_refused"
    assert result.error_detail == f"{name} resolves only to a loopback address"
    assert receiver.seen == []


async def test_allow_listed_hostname_reaches_its_ip_with_host_header_kept(
    receiver: Receiver,
) -> None:
    resolver = FakeResolver({PARTNER_HOST: ["127.0.0.1"]})
    async with WebhookClient(LOOPBACK_ALLOWED, resolver=resolver) as webhook_client:
        result = await webhook_client.post(receiver.url(host=PARTNER_HOST), b"{}", {}, timeout_s=5)

    assert result.status_code == 200
    [seen] = receiver.seen
    assert seen.headers["Host"] == f"{PARTNER_HOST}:{receiver.port}"
    assert resolver.calls == [PARTNER_HOST]


async def test_guarded_resolver_drops_refused_addresses_and_keeps_public_ones() -> None:
    fake = FakeResolver(
        {
            "mixed.partner.test": [
                "10.0.0.5",
                "93.184.215.14",
                "127.0.0.1",
                "169.254.169.254",
                "::ffff:10.0.0.1",
                "2606:4700:4700::1111",
                "fd00::1",
            ]
        }
    )
    resolver = GuardedResolver(NO_ALLOW_LIST, fake)

    results = await resolver.resolve("mixed.partner.test", 443, socket.AF_UNSPEC)

    assert [result["host"] for result in results] == ["93.184.215.14", "2606:4700:4700::1111"]
    assert [result["family"] for result in results] == [socket.AF_INET, socket.AF_INET6]
    assert {result["hostname"] for result in results} == {"mixed.partner.test"}
    assert {result["port"] for result in results} == {443}


async def test_guarded_resolver_names_every_refusal_reason() -> None:
    fake = FakeResolver({"internal.partner.test": ["10.0.0.5", "127.0.0.1", "10.9.9.9"]})
    resolver = GuardedResolver(NO_ALLOW_LIST, fake)

    with pytest.raises(TargetRefused) as refused:
        await resolver.resolve("internal.partner.test", 443, socket.AF_UNSPEC)

    assert str(refused.value) == (
        "internal.partner.test resolves only to refused addresses "
        "(a private address, a loopback address)"
    )
    assert "10.0.0.5" not in str(refused.value)  # resolved addresses stay out of messages


class _StaticAiohttpResolver(AbstractResolver):
    """An aiohttp-style inner resolver, as ThreadedResolver or AsyncResolver would answer."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.hosts
        ]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver_filters_an_aiohttp_inner_resolver_and_closes_it() -> None:
    inner = _StaticAiohttpResolver(["192.168.1.10", "fe80::1%1", "93.184.215.14"])
    resolver = GuardedResolver(NO_ALLOW_LIST, inner)

    results = await resolver.resolve("partner.test", 80, socket.AF_UNSPEC)
    await resolver.close()

    assert [result["host"] for result in results] == ["93.184.215.14"]
    assert inner.closed


async def test_guarded_resolver_reports_no_addresses_as_a_dns_problem() -> None:
    resolver = GuardedResolver(NO_ALLOW_LIST, FakeResolver({"empty.partner.test": []}))

    with pytest.raises(OSError, match="no usable addresses") as failure:
        await resolver.resolve("empty.partner.test", 80, socket.AF_UNSPEC)

    assert not isinstance(failure.value, TargetRefused)


# --- TLS ------------------------------------------------------------------------------------


@dataclass
class TlsFixture:
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    sni_seen: list[str | None]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFixture:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PARTNER_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PARTNER_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)

    sni_seen: list[str | None] = []

    def record_sni(
        _connection: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext
    ) -> None:
        sni_seen.append(server_name)

    server_context.sni_callback = record_sni
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    return TlsFixture(server_context, client_context, sni_seen)


@pytest.fixture
async def tls_receiver(tls: TlsFixture) -> AsyncIterator[Receiver]:
    tls.sni_seen.clear()
    async for serving in _serve(Receiver(), tls.server_context):
        yield serving


async def test_tls_uses_hostname_for_sni_and_certificate_while_connecting_to_vetted_ip(
    tls: TlsFixture, tls_receiver: Receiver
) -> None:
    resolver = FakeResolver({PARTNER_HOST: ["127.0.0.1"]})
    async with WebhookClient(
        LOOPBACK_ALLOWED, resolver=resolver, ssl_context=tls.client_context
    ) as webhook_client:
        result = await webhook_client.post(
            f"https://{PARTNER_HOST}:{tls_receiver.port}/hook", b"{}", {}, timeout_s=5
        )

    assert result.error is None, result.error_detail
    assert result.status_code == 200
    assert tls.sni_seen == [PARTNER_HOST]
    [seen] = tls_receiver.seen
    assert seen.headers["Host"] == f"{PARTNER_HOST}:{tls_receiver.port}"


async def test_untrusted_certificate_is_a_tls_error(tls_receiver: Receiver) -> None:
    resolver = FakeResolver({PARTNER_HOST: ["127.0.0.1"]})
    async with WebhookClient(LOOPBACK_ALLOWED, resolver=resolver) as webhook_client:
        result = await webhook_client.post(
            f"https://{PARTNER_HOST}:{tls_receiver.port}/hook", b"{}", {}, timeout_s=5
        )

    assert result.status_code is None
    assert result.error == "tls"
    assert result.error_detail is not None
    assert result.error_detail.startswith(f"TLS with {PARTNER_HOST}:{tls_receiver.port} failed")
    assert tls_receiver.seen == []
