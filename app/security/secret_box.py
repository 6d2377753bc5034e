"""Seals stored secrets (webhook signing secrets, provider credentials) with GATEWAY_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_SEALED = "fernet:"
_PLAIN = "plain:"


class SecretUnreadable(Exception):
    """A stored secret cannot be opened with the configured keys (wrong or removed key)."""


def new_webhook_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the Standard Webhooks secret format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class SecretBox:
    """Encrypts with the first key, decrypts with any: rotate by prepending a new key."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in keys]) if keys else None

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def seal(self, plaintext: str) -> str:
        if self._fernet is None:
            return _PLAIN + plaintext
        return _SEALED + self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        if stored.startswith(_PLAIN):
            return stored.removeprefix(_PLAIN)
        if not stored.startswith(_SEALED):
            raise SecretUnreadable("stored secret has an unknown format")
        if self._fernet is None:
            raise SecretUnreadable("stored secret is encrypted but GATEWAY_SECRET_KEY is not set")
        try:
            return self._fernet.decrypt(stored.removeprefix(_SEALED).encode("ascii")).decode()
        except InvalidToken:
            raise SecretUnreadable("stored secret does not open with GATEWAY_SECRET_KEY") from None


def _fernet_key(passphrase: str) -> bytes:
    # Any long random string works as a key; derive the 32 bytes Fernet wants from it.
    return base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode("utf-8")).digest())
