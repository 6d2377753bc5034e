"""Specification of the SSRF policy: which webhook URLs and addresses the gateway may contact."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from app.security.ssrf import (
    AddressPolicy,
    IPAddress,
    Resolver,
    UrlRejected,
    parse_allow_cidrs,
    parse_ip_host,
    vet_webhook_url,
)

DEFAULT_POLICY = AddressPolicy()
# Named once so the linter's bind-to-all-interfaces check (S104) has one place to be told:
# here it is an address under test, nothing binds to it.
UNSPECIFIED_IPV4 = "0.0.0.0"  # noqa: S104


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


class FixedResolver:
    """A fake resolver with fixed answers that records each (host, port) it is asked about."""

    def __init__(self, *addresses: str) -> None:
        self.answers = [ip(address) for address in addresses]
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        return list(self.answers)


async def resolver_failing(host: str, port: int) -> list[IPAddress]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def resolver_hanging(host: str, port: int) -> list[IPAddress]:
    await asyncio.sleep(30)
    return [ip("10.0.0.1")]


async def resolver_must_not_be_called(host: str, port: int) -> list[IPAddress]:
    raise AssertionError(f"resolver called for {host!r}; IP literals and localhost must not be")


async def vet(
    url: str,
    *,
    policy: AddressPolicy = DEFAULT_POLICY,
    allow_http: bool = False,
    resolver: Resolver = resolver_must_not_be_called,
) -> str:
    return await vet_webhook_url(url, policy=policy, allow_http=allow_http, resolver=resolver)


# --- parse_ip_host ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", UNSPECIFIED_IPV4),
        (UNSPECIFIED_IPV4, UNSPECIFIED_IPV4),
        ("8.8.8.8", "8.8.8.8"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("2606:4700::1111", "2606:4700::1111"),
    ],
)
def test_parse_ip_host_reads_every_form_resolvers_accept(host: str, expected: str) -> None:
    assert parse_ip_host(host) == ip(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "cafe.be",
        "deadbeef.example",
        "face.example",
        "0xcafe.be",
        "1.2.3.4.5",
        "256.0.0.1",
        "127.0.0.1..",
        "08.0.0.1",
        "1.16777216",
        "١٢٧.0.0.1",
        "+1.0.0.1",
        "",
        "::notanaddress",
    ],
)
def test_parse_ip_host_returns_none_for_names_and_non_numbers(host: str) -> None:
    assert parse_ip_host(host) is None


# --- parse_allow_cidrs --------------------------------------------------------------------


def test_parse_allow_cidrs_reads_a_comma_separated_list() -> None:
    assert parse_allow_cidrs("10.0.0.0/8, 127.0.0.1/32 ,fd00::/8") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("fd00::/8"),
    )


@pytest.mark.parametrize("raw", ["", "   ", ","])
def test_parse_allow_cidrs_of_a_blank_setting_is_empty(raw: str) -> None:
    assert parse_allow_cidrs(raw) == ()


@pytest.mark.parametrize("bad_entry", ["10.0.0.0/33", "nonsense", "10.0.0.1/8"])
def test_parse_allow_cidrs_names_the_bad_entry(bad_entry: str) -> None:
    with pytest.raises(ValueError, match=bad_entry.replace(".", r"\.")):
        parse_allow_cidrs(f"192.168.0.0/16, {bad_entry}")


# --- AddressPolicy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("127.255.0.9", "loopback address"),
        (UNSPECIFIED_IPV4, "unspecified address"),
        ("0.1.2.3", "reserved 'this network' address"),
        ("10.0.0.5", "private address"),
        ("172.16.0.1", "private address"),
        ("172.31.255.255", "private address"),
        ("192.168.1.1", "private address"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("169.254.0.1", "link-local address"),
        ("169.254.169.254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("168.63.129.16", "cloud metadata address"),
        ("224.0.0.1", "multicast address"),
        ("239.255.255.250", "multicast address"),
        ("240.0.0.1", "reserved address"),
        ("255.255.255.255", "broadcast address"),
        ("192.0.2.10", "documentation address"),
        ("198.18.0.1", "benchmarking address"),
        ("::", "unspecified address"),
        ("::1", "loopback address"),
        ("fe80::1", "link-local address"),
        ("fc00::1", "private address (unique local)"),
        ("fd12:3456::1", "private address (unique local)"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("ff02::1", "multicast address"),
        ("fec0::1", "site-local address"),
        ("2001:db8::1", "documentation address"),
        ("::ffff:127.0.0.1", "IPv4-mapped IPv6 of a loopback address"),
        ("::ffff:10.0.0.1", "IPv4-mapped IPv6 of a private address"),
        ("::ffff:169.254.169.254", "IPv4-mapped IPv6 of a cloud metadata address"),
        ("::ffff:0.0.0.0", "IPv4-mapped IPv6 of an unspecified address"),
        ("64:ff9b::7f00:1", "NAT64 IPv6 of a loopback address"),
        ("64:ff9b::a9fe:a9fe", "NAT64 IPv6 of a cloud metadata address"),
        ("64:ff9b:1::1", "local-use NAT64 address"),
        ("2002:7f00:1::", "6to4 IPv6 of a loopback address"),
        ("2002:c0a8:101::1", "6to4 IPv6 of a private address"),
        # Teredo stores the client address bit-inverted: ~127.0.0.1 == 128.255.255.254.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo IPv6 of a loopback address"),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo address"),
        ("::7f00:1", "IPv4-compatible IPv6 of a loopback address"),
        ("::808:808", "reserved address"),
        ("::ffff:0:7f00:1", "IPv4-translated IPv6 of a loopback address"),
        ("100::1", "discard-only address"),
        ("4000::1", "reserved address"),
    ],
)
def test_policy_refuses_non_public_addresses_with_a_reason(address: str, reason: str) -> None:
    assert DEFAULT_POLICY.refusal_reason(ip(address)) == reason
    assert not DEFAULT_POLICY.permits(ip(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_policy_permits_public_addresses(address: str) -> None:
    assert DEFAULT_POLICY.refusal_reason(ip(address)) is None
    assert DEFAULT_POLICY.permits(ip(address))


def test_policy_ignores_the_zone_id_of_an_ipv6_address() -> None:
    assert DEFAULT_POLICY.refusal_reason(ip("fe80::1%eth0")) == "link-local address"


def test_policy_permits_allow_listed_addresses_including_their_ipv4_mapped_form() -> None:
    policy = AddressPolicy(allow_cidrs=parse_allow_cidrs("127.0.0.1/32, 10.0.0.0/8"))
    assert policy.permits(ip("127.0.0.1"))
    assert policy.permits(ip("::ffff:127.0.0.1"))
    assert policy.permits(ip("10.20.30.40"))
    assert not policy.permits(ip("127.0.0.2"))
    assert not policy.permits(ip("::1"))
    assert not policy.permits(ip("192.168.0.1"))


# --- vet_webhook_url: IP literals ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "loopback address"),
        ("https://127.1/hook", "loopback address"),
        ("https://2130706433/hook", "loopback address"),
        ("https://0x7f000001/hook", "loopback address"),
        ("https://0x7f.0.0.1/hook", "loopback address"),
        ("https://0177.0.0.1/hook", "loopback address"),
        ("https://127.0.0.1./hook", "loopback address"),
        ("https://0.0.0.0/hook", "unspecified address"),
        ("https://10.1.2.3/hook", "private address"),
        ("https://172.16.5.4/hook", "private address"),
        ("https://192.168.0.10:8443/hook", "private address"),
        ("https://100.64.0.1/hook", "shared address space (CGNAT)"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("https://[::1]/hook", "loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped IPv6 of a loopback address"),
        ("https://[::ffff:7f00:1]/hook", "IPv4-mapped IPv6 of a loopback address"),
        ("https://[64:ff9b::7f00:1]/hook", "NAT64 IPv6 of a loopback address"),
        ("https://[2002:7f00:1::]/hook", "6to4 IPv6 of a loopback address"),
        ("https://[fe80::1]/hook", "link-local address"),
        ("https://[fe80::1%25eth0]/hook", "link-local address"),
        ("https://[fc00::1]/hook", "private address"),
        ("https://[::]/hook", "unspecified address"),
        ("https://224.0.0.1/hook", "multicast address"),
        ("https://[ff02::1]/hook", "multicast address"),
    ],
)
async def test_refuses_ip_literal_hosts_that_are_not_public(url: str, reason: str) -> None:
    with pytest.raises(UrlRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        await vet(url)


@pytest.mark.parametrize(
    "url",
    ["https://8.8.8.8/hook", "https://[2606:4700::1111]/hook", "https://[::ffff:8.8.8.8]:8443/"],
)
async def test_accepts_public_ip_literal_hosts_without_resolving(url: str) -> None:
    assert await vet(url) == url


async def test_allow_listed_cidr_lets_a_local_http_receiver_through() -> None:
    policy = AddressPolicy(allow_cidrs=parse_allow_cidrs("127.0.0.1/32"))
    url = "http://127.0.0.1:8080/hook"
    assert await vet(url, policy=policy, allow_http=True) == url


async def test_allow_list_does_not_widen_beyond_its_networks() -> None:
    policy = AddressPolicy(allow_cidrs=parse_allow_cidrs("127.0.0.1/32"))
    with pytest.raises(UrlRejected, match="loopback"):
        await vet("https://127.0.0.2/hook", policy=policy)


# --- vet_webhook_url: host names ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/hook",
        "https://LOCALHOST:8443/hook",
        "https://localhost./hook",
        "https://foo.localhost/hook",
        "https://Foo.LocalHost./hook",
    ],
)
async def test_refuses_localhost_names_without_resolving(url: str) -> None:
    with pytest.raises(UrlRejected, match="loopback address"):
        await vet(url)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (("10.0.0.5",), "resolves to a private address"),
        (("93.184.216.34", "192.168.1.20"), "resolves to a private address"),
        (("2606:4700::1111", "::1"), "resolves to a loopback address"),
        (("169.254.169.254",), "resolves to a cloud metadata address"),
        (("::ffff:10.0.0.1",), "resolves to an IPv4-mapped IPv6 of a private address"),
    ],
)
async def test_refuses_host_names_when_any_resolved_address_is_not_public(
    answers: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(UrlRejected, match=reason) as rejected:
        await vet("https://rebind.example/hook", resolver=FixedResolver(*answers))
    # The internal address itself is not echoed back to the API client.
    assert all(answer not in str(rejected.value) for answer in answers)


async def test_accepts_host_names_that_resolve_only_to_public_addresses() -> None:
    resolver = FixedResolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    url = "https://example.com/hook"
    assert await vet(url, resolver=resolver) == url


@pytest.mark.parametrize(
    ("url", "allow_http", "expected_call"),
    [
        ("https://example.com/hook", False, ("example.com", 443)),
        ("http://example.com/hook", True, ("example.com", 80)),
        ("https://Example.COM:8443/hook", False, ("example.com", 8443)),
    ],
)
async def test_resolves_the_host_on_the_port_that_will_be_used(
    url: str, allow_http: bool, expected_call: tuple[str, int]
) -> None:
    resolver = FixedResolver("93.184.216.34")
    await vet(url, allow_http=allow_http, resolver=resolver)
    assert resolver.calls == [expected_call]


async def test_accepts_when_dns_fails_because_delivery_rechecks_at_connect_time() -> None:
    url = "https://not-yet-created.example/hook"
    assert await vet(url, resolver=resolver_failing) == url


async def test_accepts_when_dns_times_out_because_delivery_rechecks_at_connect_time() -> None:
    url = "https://slow-dns.example/hook"
    accepted = await vet_webhook_url(
        url,
        policy=DEFAULT_POLICY,
        allow_http=False,
        resolver=resolver_hanging,
        resolve_timeout_s=0.01,
    )
    assert accepted == url


async def test_allow_list_also_applies_to_resolved_addresses() -> None:
    policy = AddressPolicy(allow_cidrs=parse_allow_cidrs("10.0.0.0/8"))
    url = "https://internal-receiver.corp/hook"
    assert await vet(url, policy=policy, resolver=FixedResolver("10.0.0.5")) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://256.0.0.1/hook",
        "https://1.2.3.4.5/hook",
        "https://example.123/hook",
        "https://exa mple.com/hook",
        "https://a..b.example/hook",
    ],
)
async def test_refuses_hosts_that_are_neither_an_ip_nor_a_valid_name(url: str) -> None:
    with pytest.raises(UrlRejected):
        await vet(url)


# --- vet_webhook_url: URL shape -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("http://example.com/hook", False, "scheme must be https"),
        ("HTTP://example.com/hook", False, "scheme must be https"),
        ("ftp://example.com/hook", True, "scheme must be http or https"),
        ("file:///etc/passwd", True, "scheme"),
        ("gopher://example.com:70/_", True, "scheme"),
        ("javascript:alert(1)", True, "scheme"),
        ("//example.com/hook", False, "scheme"),
        ("example.com/hook", False, "scheme"),
        ("", False, "empty"),
        ("   ", False, "empty"),
        ("https:///hook", False, "no host"),
        ("https://example.com/hook#frag", False, "fragment"),
        ("https://example.com/hook#", False, "fragment"),
        ("https://x.example:99999/", False, "port"),
        ("https://x.example:0/", False, "port"),
        ("https://x.example:abc/", False, "port"),
        ("https://[::1/hook", False, "malformed"),
        ("https://[not-ipv6.example]/hook", False, "malformed|IPv6"),
        ("https://example.com/" + "a" * 2048, False, "longer than 2048"),
    ],
)
async def test_refuses_malformed_or_disallowed_urls(
    url: str, allow_http: bool, message: str
) -> None:
    with pytest.raises(UrlRejected, match=message):
        await vet(url, allow_http=allow_http, resolver=FixedResolver("93.184.216.34"))


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t-pass@example.com/hook",
        "https://s3cr3t-token@example.com/hook",
        "https://:s3cr3t-pass@example.com/hook",
        "https://@example.com/hook",
    ],
)
async def test_refuses_credentials_in_the_url_without_echoing_them(url: str) -> None:
    with pytest.raises(UrlRejected, match="credentials") as rejected:
        await vet(url, resolver=FixedResolver("93.184.216.34"))
    assert "s3cr3t" not in str(rejected.value)


async def test_http_is_accepted_only_when_allowed() -> None:
    url = "http://example.com/hook"
    resolver = FixedResolver("93.184.216.34")
    with pytest.raises(UrlRejected, match="https"):
        await vet(url, allow_http=False, resolver=resolver)
    assert await vet(url, allow_http=True, resolver=resolver) == url


async def test_returns_the_url_stripped_of_surrounding_whitespace() -> None:
    resolver = FixedResolver("93.184.216.34")
    assert await vet("  https://example.com/hook?a=1\n", resolver=resolver) == (
        "https://example.com/hook?a=1"
    )


async def test_accepts_a_url_of_exactly_the_maximum_length() -> None:
    prefix = "https://example.com/"
    url = prefix + "a" * (2048 - len(prefix))
    assert await vet(url, resolver=FixedResolver("93.184.216.34")) == url


def test_url_rejected_is_a_value_error() -> None:
    assert issubclass(UrlRejected, ValueError)
