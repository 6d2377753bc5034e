"""Decides whether an outbound webhook target (URL or resolved IP) may be contacted: SSRF policy."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Instance-metadata endpoints hand out cloud credentials, so they get their own, louder reason.
# 169.254.169.254: AWS/GCP/Azure/OCI/DigitalOcean; fd00:ec2::254: AWS over IPv6;
# 100.100.100.200: Alibaba Cloud; 168.63.129.16: Azure wireserver (a *public* address, so only an
# explicit entry catches it).
_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),
        ipaddress.IPv4Address("100.100.100.200"),
        ipaddress.IPv4Address("168.63.129.16"),
        ipaddress.IPv6Address("fd00:ec2::254"),
    }
)

# Explicit tables (IANA special-purpose registries) rather than is_private/is_global alone: those
# properties changed between Python patch releases, and the tables give each refusal a clear reason.
# First match wins, so narrower entries come before the ranges that contain them.
_IPV4_SPECIAL: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified address"),
    (_V4("0.0.0.0/8"), "reserved 'this network' address"),
    (_V4("10.0.0.0/8"), "private address"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback address"),
    (_V4("169.254.0.0/16"), "link-local address"),
    (_V4("172.16.0.0/12"), "private address"),
    (_V4("192.0.0.0/24"), "IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), "documentation address"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast address"),
    (_V4("192.168.0.0/16"), "private address"),
    (_V4("198.18.0.0/15"), "benchmarking address"),
    (_V4("198.51.100.0/24"), "documentation address"),
    (_V4("203.0.113.0/24"), "documentation address"),
    (_V4("224.0.0.0/4"), "multicast address"),
    (_V4("255.255.255.255/32"), "broadcast address"),
    (_V4("240.0.0.0/4"), "reserved address"),
)

_IPV6_SPECIAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("64:ff9b:1::/48"), "local-use NAT64 address"),
    (_V6("100::/64"), "discard-only address"),
    (_V6("2001::/32"), "Teredo address"),
    (_V6("2001:db8::/32"), "documentation address"),
    (_V6("2001::/23"), "IETF protocol assignment address"),
    (_V6("3fff::/20"), "documentation address"),
    (_V6("fc00::/7"), "private address (unique local)"),
    (_V6("fe80::/10"), "link-local address"),
    (_V6("fec0::/10"), "site-local address"),
    (_V6("ff00::/8"), "multicast address"),
    # After the embedded-IPv4 forms below were unwrapped: the rest of ::/8 is IANA-reserved.
    (_V6("::/8"), "reserved address"),
)

# Only 2000::/3 is allocated for global unicast; NAT64 (in ::/8) is exempted before this applies.
_IPV6_GLOBAL_UNICAST = _V6("2000::/3")

_IPV4_MAPPED = _V6("::ffff:0:0/96")
_IPV4_COMPATIBLE = _V6("::/96")
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")
_NAT64_WELL_KNOWN = _V6("64:ff9b::/96")

_FORM_MAPPED = "IPv4-mapped IPv6"
_FORM_NAT64 = "NAT64 IPv6"
# Forms that reach exactly the embedded IPv4 address, so the IPv4 verdict is the whole verdict.
_SAME_DESTINATION_FORMS = frozenset({_FORM_MAPPED, _FORM_NAT64})

# Forms of one IPv4 number that inet_aton (and so getaddrinfo, curl and browsers) accepts.
_DECIMAL_PART = re.compile(r"[1-9][0-9]*|0")
_OCTAL_PART = re.compile(r"0[0-7]+")
_HEX_PART = re.compile(r"0[xX][0-9a-fA-F]*")
# WHATWG "ends in a number": such a host is an IPv4 address or invalid, never a DNS name.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")

# WHATWG "forbidden host code points" plus '%': none can appear in a real DNS name, and some
# (whitespace, NUL) make C resolvers stop reading early and look up a different name.
_FORBIDDEN_HOST_CHARS = frozenset("\x00\t\n\r #%/:<>?@[\\]^|\x7f")


# The settings that widen the policy, named in refusals so a refused URL says how to allow it
# where that is wanted (a local receiver, a private deployment); app.settings reads them.
ALLOW_CIDRS_SETTING = "GATEWAY_SSRF_ALLOW_CIDRS"
ALLOW_HTTP_SETTING = "GATEWAY_ALLOW_HTTP"


def _how_to_allow(reason: str) -> str:
    if "metadata" in reason:
        return ""  # never a hint towards cloud credentials
    hint = f" (allowed only for networks listed in {ALLOW_CIDRS_SETTING}"
    if "loopback" in reason:
        hint += "; `pwbi-gateway run` allows loopback"
    return hint + ")"


class UrlRejected(ValueError):
    """A webhook URL is refused; the message is safe to return to API clients (no secrets)."""


def parse_allow_cidrs(raw: str) -> tuple[IPNetwork, ...]:
    """Parse a comma-separated CIDR allow-list such as "10.0.0.0/8, 127.0.0.1/32"."""
    networks: list[IPNetwork] = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue  # tolerate "a, b," and blank settings
        try:
            # strict=True: "10.0.0.1/8" is more likely a typo than a wish to allow all of 10/8.
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as exc:
            raise ValueError(f"invalid CIDR {entry!r} in SSRF allow-list: {exc}") from None
    return tuple(networks)


@dataclass(frozen=True)
class AddressPolicy:
    """Which IP addresses outbound webhook connections may reach: public ones plus allow_cidrs."""

    allow_cidrs: tuple[IPNetwork, ...] = ()

    def refusal_reason(self, address: IPAddress) -> str | None:
        """None when the address may be contacted, else a short reason such as "private address"."""
        address = _without_scope(address)
        if self._allow_listed(address):
            return None
        return _non_public_reason(address)

    def permits(self, address: IPAddress) -> bool:
        return self.refusal_reason(address) is None

    def _allow_listed(self, address: IPAddress) -> bool:
        # A v4-mapped v6 address *is* its IPv4 address on a dual-stack socket, so an allow-listed
        # 127.0.0.1/32 also covers ::ffff:127.0.0.1.
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self.allow_cidrs)


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP a URL host denotes, read as resolvers and browsers read it; None for a host name.

    Besides dotted IPv4 and IPv6 (with or without zone id), accepts the legacy inet_aton forms:
    "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.1", "10.1.2", "127.0.0.1.".
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            # The zone id ("%eth0", or "%25eth0" as written in URLs) does not change which
            # address is meant, and the policy applies to the address.
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    return _parse_inet_aton(host)


def _parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    # Resolvers treat "127.0.0.1." as the absolute form of "127.0.0.1"; one trailing dot only.
    host = host.removesuffix(".")
    parts = host.split(".")
    if not host or len(parts) > 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _parse_inet_aton_number(part)
        if number is None:
            return None  # any non-number part ("cafe.be") makes it a DNS name
        numbers.append(number)
    # a.b.c.d; a.b.cd (c: 16 bits); a.bcd (24 bits); abcd (32 bits): the last part fills the rest.
    *leading, last = numbers
    if any(number > 0xFF for number in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_inet_aton_number(part: str) -> int | None:
    # Explicit ASCII patterns because int() would also accept "+1", "1_0" and non-ASCII digits.
    if _HEX_PART.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL_PART.fullmatch(part):
        return int(part, 8)
    if _DECIMAL_PART.fullmatch(part):
        return int(part)
    return None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver returns for host, deduplicated, in resolver order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: dict[IPAddress, None] = {}
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(sockaddr[0], str):
            continue
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        addresses[address] = None
    return list(addresses)


async def vet_webhook_url(
    url: str,
    *,
    policy: AddressPolicy,
    allow_http: bool,
    resolver: Resolver = resolve_host,
    resolve_timeout_s: float = 2.0,
) -> str:
    """Return the URL (whitespace-stripped) if it may be registered, else raise UrlRejected.

    Messages name the host at most, never the whole URL: paths and queries may carry tokens.
    """
    url = url.strip()
    if not url:
        raise UrlRejected("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise UrlRejected("URL is malformed") from None

    allowed_schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed_schemes:
        wanted = "http or https" if allow_http else f"https ({ALLOW_HTTP_SETTING}=true allows http)"
        raise UrlRejected(f"URL scheme must be {wanted}")
    if "@" in parts.netloc:
        raise UrlRejected("URL must not contain credentials (user:password@); they end up in logs")
    if "#" in url:
        raise UrlRejected("URL must not contain a fragment")
    host = parts.hostname
    if not host:
        raise UrlRejected("URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise UrlRejected("URL port must be a number from 1 to 65535") from None
    if port == 0:
        raise UrlRejected("URL port must be a number from 1 to 65535")
    if port is None:
        port = DEFAULT_PORTS[parts.scheme]

    bracketed = "[" in parts.netloc
    address = parse_ip_host(host)
    if bracketed and not isinstance(address, ipaddress.IPv6Address):
        raise UrlRejected("URL host in brackets must be an IPv6 address")
    if address is not None:
        reason = policy.refusal_reason(address)
        if reason is not None:
            raise UrlRejected(f"URL host {host} is {_with_article(reason)}{_how_to_allow(reason)}")
        return url

    _check_host_name(host, policy)
    for address in await _resolve_or_empty(resolver, host, port, resolve_timeout_s):
        reason = policy.refusal_reason(address)
        if reason is not None:
            # The resolved address stays out of the message: echoing it would let API clients
            # map our internal DNS one registration attempt at a time.
            raise UrlRejected(
                f"URL host {host} resolves to {_with_article(reason)}{_how_to_allow(reason)}"
            )
    return url


def _check_host_name(host: str, policy: AddressPolicy) -> None:
    if any(char in _FORBIDDEN_HOST_CHARS for char in host):
        raise UrlRejected("URL host contains characters not allowed in a host name")
    bare = host.removesuffix(".")
    if _NUMERIC_LABEL.fullmatch(bare.rsplit(".", 1)[-1]):
        # e.g. "256.0.0.1" or "1.2.3.4.5": resolvers disagree on these, so refuse rather than guess.
        raise UrlRejected(f"URL host {host} is neither a valid IP address nor a host name")
    # RFC 6761: "localhost" and "*.localhost" are loopback by definition, whatever DNS says.
    # Allowed exactly when both loopback addresses are, whatever the name resolves to here.
    if bare == "localhost" or bare.endswith(".localhost"):
        loopback = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
        if not all(policy.permits(address) for address in loopback):
            reason = "loopback address"
            raise UrlRejected(f"URL host {host} is {_with_article(reason)}{_how_to_allow(reason)}")
        return
    try:
        host.encode("idna")
    except UnicodeError:
        raise UrlRejected("URL host is not a valid domain name") from None


async def _resolve_or_empty(
    resolver: Resolver, host: str, port: int, timeout_s: float
) -> list[IPAddress]:
    # Resolution failure or timeout accepts the URL on purpose: DNS may be briefly unavailable,
    # or the record may be created after the subscription. Nothing is lost by accepting, because
    # the delivery client applies the same AddressPolicy to every address it resolves at connect
    # time, and that check is the one that actually stops a request.
    try:
        async with asyncio.timeout(timeout_s):
            return await resolver(host, port)
    except (OSError, TimeoutError):
        return []


def _without_scope(address: IPAddress) -> IPAddress:
    # A zone id only picks the interface; equality and the tables must see the bare address.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return ipaddress.IPv6Address(int(address))
    return address


def _non_public_reason(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv4Address):
        return _ipv4_reason(address)
    return _ipv6_reason(address)


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    if address in _METADATA_ADDRESSES:
        return "cloud metadata address"
    for network, reason in _IPV4_SPECIAL:
        if address in network:
            return reason
    # Defence in depth for ranges the table may lack (e.g. ones IANA designates later).
    if not address.is_global:
        return "non-global address"
    return None


def _ipv6_reason(address: ipaddress.IPv6Address) -> str | None:
    if address in _METADATA_ADDRESSES:
        return "cloud metadata address"
    # Before the embedded-IPv4 forms: :: and ::1 are also IPv4-compatible-shaped.
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, ipv4 = embedded
        reason = _ipv4_reason(ipv4)
        if reason is not None:
            return f"{form} of {_with_article(reason)}"
        if form in _SAME_DESTINATION_FORMS:
            return None
    for network, reason in _IPV6_SPECIAL:
        if address in network:
            return reason
    if address not in _IPV6_GLOBAL_UNICAST:
        return "reserved address"
    if not address.is_global:
        return "non-global address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries and will reach, with the name of the form."""
    low_32_bits = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # Unwrapped by hand: is_private/is_global on mapped addresses differ across Python versions.
    if address in _IPV4_MAPPED:
        return _FORM_MAPPED, low_32_bits
    if address in _NAT64_WELL_KNOWN:
        return _FORM_NAT64, low_32_bits
    if address in _IPV4_TRANSLATED:
        return "IPv4-translated IPv6", low_32_bits
    if address in _IPV4_COMPATIBLE:
        return "IPv4-compatible IPv6", low_32_bits
    if address.sixtofour is not None:
        return "6to4 IPv6", address.sixtofour
    if address.teredo is not None:
        # The relay delivers to the client (second) address; the server only brokers setup.
        return "Teredo IPv6", address.teredo[1]
    return None


def _with_article(reason: str) -> str:
    return ("an " if reason[0].lower() in "aeiou" else "a ") + reason
