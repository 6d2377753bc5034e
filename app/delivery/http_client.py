"""Outbound client for webhook POSTs: one pooled aiohttp session, SSRF-checked at every connect."""

from __future__ import annotations

import errno
import socket
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from app.security.ssrf import AddressPolicy, Resolver, parse_ip_host

BODY_HEAD_BYTES: Final = 4096  # delivery.md: record the first 4 KiB of the response body
CONNECT_TIMEOUT_S: Final = 5.0  # delivery.md: connect timeout 5 s
DEFAULT_POOL_LIMIT: Final = 256
# Short, so a record that changes is re-resolved (and re-vetted) soon. What the cache holds is
# the *filtered* resolver output, so a cached entry can never point at a refused address.
DNS_CACHE_TTL_S: Final = 10
_DETAIL_MAX_CHARS: Final = 200
# Parsed and vetted URLs kept per client: a subscription's URL is checked once, not per POST.
VETTED_URLS_KEPT: Final = 4096

# aiohttp only needs its closed-SSL-transport sweeper on Pythons with the cpython#118960 leak,
# and warns (DeprecationWarning) when asked for it on fixed ones.
_NEEDS_CLEANUP_CLOSED: Final = sys.version_info < (3, 12, 8) or (
    (3, 13, 0) <= sys.version_info < (3, 13, 1)
)


class TargetRefused(OSError):
    """The SSRF policy refuses every address of a webhook host (the message names the host only)."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(f"{host} {why}")
        self.host = host


@dataclass(frozen=True, slots=True)
class PostResult:
    """What one webhook POST produced; never carries header values or the URL's path/query.

    error is None whenever a status line arrived: the status is the answer, even when the body
    head then could not be read in time (error_detail says so, body_head holds what arrived).
    """

    status_code: int | None
    body_head: str | None
    retry_after: str | None
    error: str | None
    error_detail: str | None
    duration_ms: int


class GuardedResolver(AbstractResolver):
    """Resolves with an inner resolver and drops every address the AddressPolicy refuses.

    aiohttp connects only to what its resolver returns, so this is the check that holds at connect
    time, whatever DNS said when the URL was registered (DNS rebinding included).
    """

    def __init__(
        self, policy: AddressPolicy, inner: AbstractResolver | Resolver | None = None
    ) -> None:
        self._policy = policy
        # ThreadedResolver needs a running loop, hence built here and not as a default argument.
        self._inner: AbstractResolver | Resolver = (
            inner if inner is not None else aiohttp.ThreadedResolver()
        )

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        candidates = await self._resolve_inner(host, port, family)
        if not candidates:
            # aiohttp trips an assertion on an empty list; an OSError becomes its DNS error.
            raise OSError(f"{host} has no usable addresses")
        permitted: list[ResolveResult] = []
        reasons: dict[str, None] = {}
        for candidate in candidates:
            address = parse_ip_host(candidate["host"])
            reason = (
                "unreadable address" if address is None else self._policy.refusal_reason(address)
            )
            if reason is None:
                permitted.append(candidate)
            else:
                reasons[reason] = None
        if not permitted:
            raise TargetRefused(host, f"resolves only to {_describe_reasons(list(reasons))}")
        return permitted

    async def close(self) -> None:
        if isinstance(self._inner, AbstractResolver):
            await self._inner.close()

    async def _resolve_inner(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[ResolveResult]:
        if isinstance(self._inner, AbstractResolver):
            return await self._inner.resolve(host, port, family)
        results: list[ResolveResult] = []
        for address in await self._inner(host, port):
            address_family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,  # informational; Host and SNI come from the request URL
                    host=str(address),
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        return results


class WebhookClient:
    """One per worker process: a pooled aiohttp session whose every connection is SSRF-checked."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: AbstractResolver | Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        pool_limit: int = DEFAULT_POOL_LIMIT,
    ) -> None:
        self._policy = policy
        self._inner_resolver = resolver
        # Only for private deployments (a private CA) and tests; None means the system trust store.
        self._ssl_context = ssl_context
        self._pool_limit = pool_limit
        self._resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._vetted: dict[str, tuple[URL | None, tuple[str, str] | None]] = {}

    async def start(self) -> None:
        if self._session is not None:
            return
        self._resolver = GuardedResolver(self._policy, self._inner_resolver)
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            limit=self._pool_limit,
            # Per-subscriber fairness is the isolation module's job (max_in_flight), not the pool's.
            limit_per_host=0,
            ttl_dns_cache=DNS_CACHE_TTL_S,
            enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED,
            ssl=self._ssl_context if self._ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Receivers must not be able to plant state that a later delivery would send back.
            cookie_jar=aiohttp.DummyCookieJar(),
            # HTTP(S)_PROXY from the environment would route around the address guard.
            trust_env=False,
            # The body head is only a diagnostic: no decompression work (or bombs) for it.
            auto_decompress=False,
        )

    async def close(self) -> None:
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            # The connector does not close a resolver it was handed.
            await resolver.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _vet(self, url: str) -> tuple[URL | None, tuple[str, str] | None]:
        """The parsed URL, or why it is refused before any connection: (error, detail)."""
        try:
            target = URL(url)
        except (ValueError, TypeError):
            return None, ("invalid_url", "URL is malformed")
        host = target.raw_host
        if target.scheme not in ("http", "https"):
            return None, ("invalid_url", "URL scheme must be http or https")
        if not host:
            return None, ("invalid_url", "URL has no host")
        # aiohttp skips the resolver for IP-literal hosts (connector.py _resolve_host), so they
        # are vetted here. parse_ip_host also reads "0x7f.1"-style forms some resolvers accept.
        literal = parse_ip_host(host)
        if literal is not None:
            reason = self._policy.refusal_reason(literal)
            if reason is not None:
                return None, ("ssrf_refused", f"{host} is {_with_article(reason)}")
        return target, None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float
    ) -> PostResult:
        """POST body to url; whatever keeps it from being answered comes back as
        PostResult.error (a request that cannot be built too), never as an exception."""
        if timeout_s <= 0:
            # aiohttp reads a zero total timeout as "no timeout": a bug here must not hang a worker.
            raise ValueError("timeout_s must be positive")
        session = self._session
        if session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        started = time.monotonic()
        status, body_head, retry_after, error, detail = await self._attempt(
            session, url, body, headers, timeout_s
        )
        return PostResult(
            status_code=status,
            body_head=body_head,
            retry_after=retry_after,
            error=error,
            error_detail=_clip(detail),
            duration_ms=round((time.monotonic() - started) * 1000),
        )

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> tuple[int | None, str | None, str | None, str | None, str | None]:
        vetted = self._vetted.get(url)
        if vetted is None:
            if len(self._vetted) >= VETTED_URLS_KEPT:
                self._vetted.clear()
            vetted = self._vetted[url] = self._vet(url)
        target, refusal = vetted
        if refusal is not None:
            return None, None, None, *refusal
        assert target is not None
        host = target.raw_host or ""
        where = f"{host}:{target.port}"

        timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=min(CONNECT_TIMEOUT_S, timeout_s)
        )
        try:
            request_headers = CIMultiDict(headers)
            # Without it aiohttp advertises gzip/deflate, and with auto_decompress off the
            # recorded body head would be compressed bytes.
            request_headers.setdefault("Accept-Encoding", "identity")
            async with session.post(
                target,
                data=body,
                headers=request_headers,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                retry_after = response.headers.get("Retry-After")
                head, head_problem = await _read_body_head(response, timeout_s)
                if not response.content.at_eof():
                    # Drop the connection rather than drain an unbounded rest of the body; a
                    # connection with unread bytes must not go back to the pool anyway.
                    response.close()
                return response.status, head, retry_after, None, head_problem
        except Exception as exc:
            return None, None, None, *_classify(exc, host, where, timeout_s)


async def _read_body_head(
    response: aiohttp.ClientResponse, timeout_s: float
) -> tuple[str, str | None]:
    head = bytearray()
    problem: str | None = None
    try:
        # read(n) returns what is buffered (possibly less than n), hence the loop.
        while len(head) < BODY_HEAD_BYTES:
            chunk = await response.content.read(BODY_HEAD_BYTES - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        problem = f"response body not received within {timeout_s:g} s"
    except (aiohttp.ClientError, OSError) as exc:
        problem = f"response body cut short ({type(exc).__name__})"
    # SQL text cannot hold NUL (PostgreSQL refuses it): a binary body is recorded readable.
    return head.decode("utf-8", errors="replace").replace("\x00", "\ufffd"), problem


def _classify(exc: Exception, host: str, where: str, timeout_s: float) -> tuple[str, str]:
    """(error, detail) for a failed POST, whatever failed.

    Details are built from parts, never str(exc): aiohttp puts the full URL (which may carry
    tokens) into several exception messages.
    """
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        cause = exc.os_error
        if isinstance(cause, TargetRefused):
            return "ssrf_refused", str(cause)
        return "dns", f"DNS lookup for {host} failed: {_os_reason(cause)}"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls", f"TLS with {where} failed: {_tls_reason(exc)}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timeout", f"no connection to {where} within {min(CONNECT_TIMEOUT_S, timeout_s):g} s"
    if isinstance(exc, TimeoutError):
        return "timeout", f"no response from {where} within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return "connection_refused", f"{where} refused the connection"
        return "connection_error", f"cannot connect to {where}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.InvalidURL):
        # e.g. aiohttp's refusal of non-canonical IPv4 forms such as "127.1"
        return "invalid_url", "URL host is not a valid host name or IP address"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection_error", f"{where} closed the connection without a response"
    if isinstance(exc, aiohttp.ClientResponseError):
        # A malformed status line or headers; .message is the parser's text, not the URL.
        return "connection_error", f"invalid HTTP response from {where}: {exc.message}"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection_error", f"{type(exc).__name__} talking to {where}"
    # Anything else means the request could not even be written, e.g. aiohttp refusing a
    # header value with a control character: raised, it would fail the attempt again at
    # every retry without ever recording one. The exception's text stays out: it may quote
    # a header value.
    return "request_error", (
        f"the request to {where} could not be built ({type(exc).__name__}); "
        "check the subscription's url and headers"
    )


def _os_reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _tls_reason(exc: Exception) -> str:
    cause: BaseException = exc
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
    elif isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
    if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        return str(cause.verify_message)
    if isinstance(cause, ssl.SSLError) and cause.reason:
        return str(cause.reason)
    return type(cause).__name__


def _describe_reasons(reasons: list[str]) -> str:
    if len(reasons) == 1:
        return _with_article(reasons[0])
    return "refused addresses (" + ", ".join(_with_article(reason) for reason in reasons) + ")"


def _with_article(reason: str) -> str:
    return ("an " if reason[0].lower() in "aeiou" else "a ") + reason


def _clip(detail: str | None) -> str | None:
    if detail is None or len(detail) <= _DETAIL_MAX_CHARS:
        return detail
    return detail[: _DETAIL_MAX_CHARS - 1] + "…"
