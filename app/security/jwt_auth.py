"""Partner bearer-token (JWT) verification, and HS256 token issuance for the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

logger = logging.getLogger(__name__)

ALL_SCOPES: tuple[str, ...] = (
    "subscriptions:read",
    "subscriptions:write",
    "events:read",
    "events:write",
    "deliveries:read",
    "deliveries:replay",
    "sources:read",
    "sources:write",
)
_KNOWN_SCOPES: Final = frozenset(ALL_SCOPES)

_HS256: Final = "HS256"
_RS256: Final = "RS256"
_ES256: Final = "ES256"
_EDDSA: Final = "EdDSA"
_ASYMMETRIC_ALGORITHMS: Final = frozenset({_RS256, _ES256, _EDDSA})
_ALLOWED_ALGORITHMS: Final = _ASYMMETRIC_ALGORITHMS | {_HS256}

# RFC 7518 §3.2: an HS256 key must be at least as long as the SHA-256 output.
_MIN_HS256_SECRET_BYTES: Final = 32
# Below 2048 bits RSA signatures are forgeable with realistic effort (NIST SP 800-131A).
_MIN_RSA_KEY_BITS: Final = 2048
_JWKS_CACHE_TTL_S: Final = 300.0
_JWKS_REFETCH_INTERVAL_S: Final = 30.0
_JWKS_HTTP_TIMEOUT_S: Final = 5.0
# httpx timeouts are per network operation; this caps a server that drips bytes slowly.
_JWKS_FETCH_DEADLINE_S: Final = 10.0
_JWKS_MAX_BYTES: Final = 1024 * 1024
# Far above any legitimate bearer token; stops huge headers from costing decode work.
_MAX_TOKEN_CHARS: Final = 16 * 1024
# A verified token is remembered this long (never past its exp): partners send the same
# token with every request, and a signature check plus claim parsing on each is measurable.
# Only tokens signed by locally configured keys, which cannot change while the process runs.
_VERIFIED_CACHE_S: Final = 30.0
_VERIFIED_CACHE_MAX: Final = 10_000

_REQUIRED_CLAIMS: Final = ("exp", "iss", "aud", "sub")
# NumericDate claims outside 1970..9999 name no instant a clock can hold: PyJWT compares
# even a 500-digit integer happily, but it cannot become a float or a datetime.
_TIME_CLAIMS: Final = ("exp", "iat", "nbf")
_LATEST_NUMERIC_DATE: Final = 253_402_300_799  # 9999-12-31T23:59:59Z

_VerificationKey: TypeAlias = (
    bytes | rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
)
_KeyEntry: TypeAlias = tuple[_VerificationKey, str]


class TokenRejected(Exception):
    """A bearer token failed verification; ``str(exc)`` is safe to return to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token whose signature, issuer, audience and lifetime were checked."""

    subject: str
    scopes: frozenset[str]
    token_id: str | None


@dataclass(frozen=True)
class KeyConfig:
    """Where verification keys come from; see ``KeyRing.load``."""

    hs256_secrets: Mapping[str, str]
    public_key_files: Mapping[str, str]
    jwks_url: str | None = None


def _as_verification_key(key: object) -> _KeyEntry | None:
    """Pair a key with the only algorithm its type may verify, or None if unsupported.

    This mapping is the single place deciding algorithms, so a token header can never
    make an HMAC secret verify an RSA signature or a public key act as an HMAC secret.
    """
    if isinstance(key, bytes):
        return key, _HS256
    if isinstance(key, rsa.RSAPublicKey):
        return (key, _RS256) if key.key_size >= _MIN_RSA_KEY_BITS else None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return (key, _ES256) if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, _EDDSA
    return None


def _looks_like_public_key_text(secret: str) -> bool:
    text = secret.lstrip()
    return text.startswith("-----BEGIN") or text.startswith(("ssh-", "ecdsa-sha2-"))


def _load_hs256_secret(kid: str, secret: str) -> _KeyEntry:
    encoded = secret.encode("utf-8")
    if len(encoded) < _MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"HS256 secret for kid {kid!r} is shorter than {_MIN_HS256_SECRET_BYTES} bytes"
        )
    if _looks_like_public_key_text(secret):
        # PyJWT refuses such HMAC keys at verify time; failing at startup is clearer.
        raise ValueError(f"HS256 secret for kid {kid!r} looks like a PEM/SSH key, not a secret")
    return encoded, _HS256


def _load_public_key_file(kid: str, path: str) -> _KeyEntry:
    where = f"public key for kid {kid!r} at {path!r}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{where}: cannot read file ({reason})") from None
    if b"PRIVATE KEY" in data:
        # The gateway only verifies; keeping signing keys off its disk limits what a leak exposes.
        raise ValueError(f"{where}: file holds a private key; configure the public key only")
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # `from None`: the parser's error must not drag file contents into logs.
        raise ValueError(f"{where}: not a PEM public key") from None
    entry = _as_verification_key(loaded)
    if entry is None or entry[1] == _HS256:
        raise ValueError(
            f"{where}: unsupported key type; expected RSA (>= {_MIN_RSA_KEY_BITS} bits), "
            "EC P-256 or Ed25519"
        )
    return entry


@dataclass(frozen=True)
class _JwksSource:
    url: str | None
    path: Path | None
    # Safe to log: no userinfo or query string, either of which may carry credentials.
    label: str


def _parse_jwks_source(value: str) -> _JwksSource:
    parts = urllib.parse.urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError("JWKS URL has no host")
        port = f":{parts.port}" if parts.port is not None else ""
        label = f"{scheme}://{parts.hostname}{port}{parts.path}"
        if scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            logger.warning("JWKS URL %s uses plain http: keys can be swapped in transit", label)
        return _JwksSource(url=value, path=None, label=label)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("JWKS file:// URL must not name a remote host")
        path = Path(urllib.request.url2pathname(parts.path))
        return _JwksSource(url=None, path=path, label=str(path))
    if scheme == "":
        return _JwksSource(url=None, path=Path(value), label=value)
    raise ValueError(f"JWKS URL scheme {scheme!r} is not supported (use https, http or file)")


class _JwksUnavailable(Exception):
    """Internal: why a JWKS fetch failed, for the log only (never shown to clients)."""


def _parse_jwks(raw: bytes) -> dict[str, _KeyEntry]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise _JwksUnavailable("document is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _JwksUnavailable("document has no 'keys' list")

    keys: dict[str, _KeyEntry] = {}
    ambiguous: set[str] = set()
    for jwk_data in document["keys"]:
        if not isinstance(jwk_data, dict):
            continue
        kid = jwk_data.get("kid")
        if not isinstance(kid, str) or not kid:
            # Keys are selected by kid only, so a key without one can never be used.
            continue
        if jwk_data.get("use", "sig") != "sig":
            continue
        try:
            jwk = jwt.PyJWK.from_dict(jwk_data)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            logger.warning("JWKS key %r skipped: invalid or unsupported JWK", kid)
            continue
        entry = _as_verification_key(jwk.key)
        # The JWK's own `alg` (or PyJWT's kty/crv default) must agree with the key type;
        # symmetric `oct` keys are refused because a published JWKS must not hold secrets.
        if entry is None or entry[1] == _HS256 or jwk.algorithm_name != entry[1]:
            logger.warning("JWKS key %r skipped: not an RS256, ES256 or EdDSA public key", kid)
            continue
        if kid in keys or kid in ambiguous:
            # Two keys under one kid would make the choice order-dependent; use neither.
            logger.warning("JWKS key %r skipped: kid appears more than once", kid)
            keys.pop(kid, None)
            ambiguous.add(kid)
            continue
        keys[kid] = entry
    if not keys:
        raise _JwksUnavailable("document has no usable RS256, ES256 or EdDSA keys")
    return keys


class KeyRing:
    """Verification keys by kid: static HS256 secrets and PEM keys, plus an optional JWKS."""

    def __init__(
        self,
        static_keys: Mapping[str, _KeyEntry],
        *,
        sole_key: _KeyEntry | None,
        jwks_source: _JwksSource | None,
        http_client_factory: Callable[[], httpx.AsyncClient] | None,
        clock: Callable[[], float],
    ) -> None:
        """Use ``KeyRing.load``; this constructor trusts its already-validated arguments."""
        self._static_keys = dict(static_keys)
        self._sole_key = sole_key
        self._jwks_source = jwks_source
        self._http_client_factory = http_client_factory
        self._http_client: httpx.AsyncClient | None = None
        self._clock = clock
        self._jwks_keys: dict[str, _KeyEntry] | None = None
        self._jwks_fetched_at = 0.0
        self._last_fetch_at: float | None = None
        self._last_fetch_ok = False
        self._fetch_count = 0
        self._fetch_lock = asyncio.Lock()

    @classmethod
    def load(
        cls,
        config: KeyConfig,
        *,
        http_client_factory: Callable[[], httpx.AsyncClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> KeyRing:
        """Validate the configuration and read PEM files now; the JWKS is fetched on first use.

        Raises ValueError (never containing key material) on a bad or empty configuration.
        """
        static_keys: dict[str, _KeyEntry] = {}
        for kid, secret in config.hs256_secrets.items():
            if not kid:
                raise ValueError("HS256 secret configured with an empty kid")
            static_keys[kid] = _load_hs256_secret(kid, secret)
        for kid, path in config.public_key_files.items():
            if not kid:
                raise ValueError(f"public key {path!r} configured with an empty kid")
            if kid in static_keys:
                raise ValueError(f"kid {kid!r} is configured both as HS256 secret and public key")
            static_keys[kid] = _load_public_key_file(kid, path)

        jwks_url = (config.jwks_url or "").strip()
        jwks_source = _parse_jwks_source(jwks_url) if jwks_url else None
        if not static_keys and jwks_source is None:
            raise ValueError(
                "no JWT verification keys configured: set HS256 secrets, public key files "
                "or a JWKS URL"
            )

        # A token without kid is only unambiguous when exactly one key could have signed it.
        sole_key = None
        if len(config.hs256_secrets) == 1 and not config.public_key_files and jwks_source is None:
            sole_key = next(iter(static_keys.values()))
        return cls(
            static_keys,
            sole_key=sole_key,
            jwks_source=jwks_source,
            http_client_factory=http_client_factory,
            clock=clock,
        )

    async def key_for(self, kid: str | None, header_alg: str) -> tuple[object, str]:
        """Return (key, the one algorithm that key's type allows) for ``kid``.

        ``header_alg`` never selects the algorithm; it only avoids JWKS refetches that
        could not succeed. Raises TokenRejected.
        """
        if kid is None:
            if self._sole_key is not None:
                return self._sole_key
            raise TokenRejected("missing kid")
        # Static keys win over JWKS entries so a remote document cannot shadow local config.
        static = self._static_keys.get(kid)
        if static is not None:
            return static
        if self._jwks_source is None:
            raise TokenRejected("unknown signing key")
        return await self._jwks_key(kid, header_alg)

    def is_static(self, kid: str | None) -> bool:
        """Whether ``kid`` resolves to a key from local configuration (fixed for the process's
        life), as opposed to a JWKS entry that a later fetch may withdraw."""
        if kid is None:
            return self._sole_key is not None
        return kid in self._static_keys

    async def aclose(self) -> None:
        """Close the HTTP client used for JWKS fetches, if one was created."""
        client, self._http_client = self._http_client, None
        if client is not None:
            await client.aclose()

    def _fresh_jwks_keys(self, now: float) -> dict[str, _KeyEntry] | None:
        if self._jwks_keys is not None and now - self._jwks_fetched_at < _JWKS_CACHE_TTL_S:
            return self._jwks_keys
        return None

    def _may_fetch(self, now: float) -> bool:
        return self._last_fetch_at is None or now - self._last_fetch_at >= _JWKS_REFETCH_INTERVAL_S

    async def _jwks_key(self, kid: str, header_alg: str) -> _KeyEntry:
        now = self._clock()
        keys = self._fresh_jwks_keys(now)
        if keys is not None:
            found = keys.get(kid)
            if found is not None:
                return found
            # Unknown kids are attacker-controlled, so refetches are rate limited; and a JWKS
            # only holds asymmetric keys, so other algorithms never justify a refetch.
            if header_alg not in _ASYMMETRIC_ALGORITHMS or not self._may_fetch(now):
                raise TokenRejected("unknown signing key")
        elif not self._may_fetch(now):
            # The last fetch failed moments ago; retrying per request would pile onto an outage.
            raise TokenRejected("signing keys unavailable")

        await self._refresh_jwks(self._fetch_count)
        keys = self._fresh_jwks_keys(self._clock())
        if keys is None:
            raise TokenRejected("signing keys unavailable")
        found = keys.get(kid)
        if found is None:
            raise TokenRejected("unknown signing key")
        return found

    async def _refresh_jwks(self, seen_fetch_count: int) -> None:
        async with self._fetch_lock:
            # Requests that queued behind a fetch reuse its result instead of fetching again.
            if self._fetch_count == seen_fetch_count:
                await self._fetch_and_store()
            if not self._last_fetch_ok:
                raise TokenRejected("signing keys unavailable")

    async def _fetch_and_store(self) -> None:
        # Only a finished fetch is recorded: if the leading request is cancelled, that says
        # nothing about the key server, so queued requests fetch afresh instead.
        started = self._clock()
        source = self._jwks_source.label if self._jwks_source is not None else "?"
        try:
            keys = await self._fetch_jwks()
        except _JwksUnavailable as exc:
            logger.warning("JWKS fetch from %s failed: %s", source, exc)
            self._record_fetch(ok=False)
            return
        except Exception as exc:
            # Type only: an unexpected error's message or traceback could hold the URL's
            # credentials; recording the failure keeps the refetch rate limit in force.
            logger.error("JWKS fetch from %s failed unexpectedly (%s)", source, type(exc).__name__)
            self._record_fetch(ok=False)
            return
        shadowed = sorted(keys.keys() & self._static_keys.keys())
        if shadowed:
            logger.warning("JWKS kids %s ignored: the same kids are configured locally", shadowed)
        self._jwks_keys = keys
        self._jwks_fetched_at = started
        self._record_fetch(ok=True)

    def _record_fetch(self, *, ok: bool) -> None:
        self._fetch_count += 1
        self._last_fetch_ok = ok
        # Stamped on completion, so a fetch still in flight never looks like a recent failure.
        self._last_fetch_at = self._clock()

    async def _fetch_jwks(self) -> dict[str, _KeyEntry]:
        source = self._jwks_source
        if source is None:
            raise _JwksUnavailable("no JWKS source configured")
        if source.path is not None:
            try:
                raw = await asyncio.to_thread(source.path.read_bytes)
            except OSError as exc:
                raise _JwksUnavailable(
                    f"cannot read file ({exc.strerror or type(exc).__name__})"
                ) from None
            if len(raw) > _JWKS_MAX_BYTES:
                raise _JwksUnavailable("document too large")
        elif source.url is not None:
            raw = await self._download(source.url)
        else:
            raise _JwksUnavailable("no JWKS source configured")
        return _parse_jwks(raw)

    async def _download(self, url: str) -> bytes:
        if self._http_client is None:
            self._http_client = (
                self._http_client_factory()
                if self._http_client_factory is not None
                else httpx.AsyncClient(timeout=_JWKS_HTTP_TIMEOUT_S, follow_redirects=False)
            )
        body = bytearray()
        try:
            async with (
                asyncio.timeout(_JWKS_FETCH_DEADLINE_S),
                self._http_client.stream(
                    "GET", url, headers={"Accept": "application/json"}
                ) as response,
            ):
                if response.status_code != httpx.codes.OK:
                    raise _JwksUnavailable(f"HTTP status {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _JWKS_MAX_BYTES:
                        raise _JwksUnavailable("document too large")
        except httpx.HTTPError as exc:
            # Only the type: httpx messages can repeat the URL with its query string.
            raise _JwksUnavailable(f"request failed ({type(exc).__name__})") from None
        except TimeoutError:
            raise _JwksUnavailable("request timed out") from None
        return bytes(body)


class TokenVerifier:
    """Checks partner bearer tokens against a KeyRing, issuer, audience and clock."""

    def __init__(self, keyring: KeyRing, *, issuer: str, audience: str, leeway_s: int = 30) -> None:
        if not issuer:
            raise ValueError("issuer must not be empty")
        if not audience:
            raise ValueError("audience must not be empty")
        if leeway_s < 0:
            raise ValueError("leeway_s must not be negative")
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        # token -> (claims, accepted until (wall clock, from exp), remembered until (monotonic))
        self._verified: dict[str, tuple[VerifiedToken, float, float]] = {}

    async def verify(self, token: str) -> VerifiedToken:
        """Return the verified claims of ``token`` or raise TokenRejected."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise TokenRejected("malformed token")
        remembered = self._verified.get(token)
        if remembered is not None:
            verified, accepted_until, remembered_until = remembered
            if time.time() < accepted_until and time.monotonic() < remembered_until:
                return verified
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None

        header_alg = header.get("alg")
        # Checked before any key lookup so that junk algorithms cannot trigger JWKS fetches.
        if not isinstance(header_alg, str) or header_alg not in _ALLOWED_ALGORITHMS:
            raise TokenRejected("algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed token")

        key, key_alg = await self._keyring.key_for(kid, header_alg)
        # Re-derived from the key object itself, so even a faulty key source cannot pair
        # an HMAC secret with an asymmetric algorithm (or the reverse).
        entry = _as_verification_key(key)
        if entry is None or entry[1] != key_alg:
            raise TokenRejected("unknown signing key")
        verification_key, algorithm = entry
        if header_alg != algorithm:
            raise TokenRejected("algorithm not allowed")

        claims = self._decode(token, verification_key, algorithm)
        verified = self._to_verified(claims)
        if self._keyring.is_static(kid):
            # JWKS keys can be withdrawn by the next fetch, so only these are remembered.
            self._remember(token, verified, claims)
        return verified

    def _remember(self, token: str, verified: VerifiedToken, claims: dict[str, Any]) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return
        if len(self._verified) >= _VERIFIED_CACHE_MAX:
            self._verified.clear()  # rare (that many live tokens); simpler than LRU upkeep
        # PyJWT accepts while now < exp + leeway; the cache keeps exactly that bound.
        self._verified[token] = (
            verified,
            float(exp) + self._leeway_s,
            time.monotonic() + _VERIFIED_CACHE_S,
        )

    def _decode(self, token: str, key: _VerificationKey, algorithm: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": list(_REQUIRED_CLAIMS)},
            )
        # PyJWT messages may quote claim values, so each error becomes a fixed reason.
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("invalid issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("invalid audience") from None
        except jwt.MissingRequiredClaimError as exc:
            claim = exc.claim if exc.claim in _REQUIRED_CLAIMS else "required claim"
            raise TokenRejected(f"missing claim: {claim}") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("invalid signature") from None
        except jwt.InvalidAlgorithmError:
            raise TokenRejected("algorithm not allowed") from None
        except jwt.exceptions.InvalidSubjectError:
            raise TokenRejected("invalid subject") from None
        except jwt.InvalidKeyError:
            raise TokenRejected("unknown signing key") from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None

    @staticmethod
    def _to_verified(claims: dict[str, Any]) -> VerifiedToken:
        for name in _TIME_CLAIMS:
            value = claims.get(name)
            if value is None:
                continue
            # bool is an int to Python but no NumericDate; NaN fails both comparisons.
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= _LATEST_NUMERIC_DATE
            ):
                raise TokenRejected(f"invalid claim: {name}")
        subject = claims.get("sub")
        # PyJWT's `require` only checks for None, so an empty subject would slip through.
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("missing claim: sub")
        scope = claims.get("scope")
        if scope is None:
            scopes: frozenset[str] = frozenset()
        elif isinstance(scope, str):
            # Unknown scopes are dropped rather than rejected so issuers can add scopes
            # before every gateway knows them.
            scopes = frozenset(name for name in scope.split() if name in _KNOWN_SCOPES)
        else:
            raise TokenRejected("malformed scope")
        token_id = claims.get("jti")
        return VerifiedToken(
            subject=subject,
            scopes=scopes,
            token_id=token_id if isinstance(token_id, str) else None,
        )


def issue_token(
    *,
    kid: str,
    secret: str,
    subject: str,
    scopes: Iterable[str],
    ttl_s: int,
    issuer: str,
    audience: str,
    now: int | None = None,
) -> str:
    """Sign an HS256 partner token with ``kid`` in its header; raises ValueError on bad input."""
    if not kid:
        raise ValueError("kid must not be empty")
    if len(secret.encode("utf-8")) < _MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"HS256 secret for kid {kid!r} is shorter than {_MIN_HS256_SECRET_BYTES} bytes"
        )
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be greater than zero")
    if isinstance(scopes, str):
        # A bare string would be iterated character by character.
        raise TypeError("scopes must be an iterable of scope names, not a string")
    scope_names = set(scopes)
    unknown = scope_names - _KNOWN_SCOPES
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")

    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl_s,
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(sorted(scope_names)),
    }
    return jwt.encode(claims, secret, algorithm=_HS256, headers={"kid": kid})
