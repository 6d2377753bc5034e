"""Specifications for webhook secret generation and sealing stored secrets at rest."""

from __future__ import annotations

import base64

import pytest

from app.security.secret_box import SecretBox, SecretUnreadable, new_webhook_secret

OLD_KEY = "old-key-0123456789-0123456789-0123456789"
NEW_KEY = "new-key-0123456789-0123456789-0123456789"
UNRELATED_KEY = "unrelated-key-0123456789-0123456789-0123"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3kPyDkcrfk0="


def test_a_webhook_secret_is_whsec_and_base64_of_32_bytes() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(raw) == 32


def test_webhook_secrets_are_distinct() -> None:
    secrets = {new_webhook_secret() for _ in range(200)}
    assert len(secrets) == 200


def test_a_webhook_secret_uses_standard_padded_base64() -> None:
    # 32 bytes always encode to 43 characters and one "=" in standard base64.
    body = new_webhook_secret().removeprefix("whsec_")
    assert len(body) == 44
    assert body.endswith("=")
    assert "-" not in body
    assert "_" not in body


def test_without_keys_secrets_are_stored_plain_and_open_back() -> None:
    box = SecretBox(())
    assert not box.encrypts
    stored = box.seal(SECRET)
    assert stored == "plain:" + SECRET
    assert box.open(stored) == SECRET


def test_with_a_key_the_stored_form_hides_the_secret_and_opens_back() -> None:
    box = SecretBox((NEW_KEY,))
    assert box.encrypts
    stored = box.seal(SECRET)
    assert stored.startswith("fernet:")
    assert SECRET not in stored
    assert SECRET.removeprefix("whsec_") not in stored
    assert NEW_KEY not in stored
    assert box.open(stored) == SECRET


def test_sealing_twice_gives_different_stored_forms() -> None:
    box = SecretBox((NEW_KEY,))
    first, second = box.seal(SECRET), box.seal(SECRET)
    assert first != second
    assert box.open(first) == box.open(second) == SECRET


def test_a_box_with_keys_still_opens_values_stored_plain() -> None:
    # Switching encryption on must not make secrets stored before that unreadable.
    assert SecretBox((NEW_KEY,)).open(SecretBox(()).seal(SECRET)) == SECRET


def test_rotation_opens_values_sealed_with_the_old_key() -> None:
    sealed_by_old = SecretBox((OLD_KEY,)).seal(SECRET)
    rotated = SecretBox((NEW_KEY, OLD_KEY))
    assert rotated.open(sealed_by_old) == SECRET
    sealed_by_new = rotated.seal(SECRET)
    assert SecretBox((NEW_KEY,)).open(sealed_by_new) == SECRET


def test_after_rotation_new_values_no_longer_open_with_only_the_old_key() -> None:
    sealed_by_new = SecretBox((NEW_KEY, OLD_KEY)).seal(SECRET)
    with pytest.raises(SecretUnreadable):
        SecretBox((OLD_KEY,)).open(sealed_by_new)


def test_an_unrelated_key_cannot_open_and_the_error_does_not_leak_the_secret() -> None:
    sealed = SecretBox((OLD_KEY,)).seal(SECRET)
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox((UNRELATED_KEY,)).open(sealed)
    message = str(caught.value)
    assert SECRET not in message
    assert sealed not in message
    assert OLD_KEY not in message
    assert UNRELATED_KEY not in message


def test_a_box_without_keys_refuses_a_sealed_value() -> None:
    sealed = SecretBox((OLD_KEY,)).seal(SECRET)
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox(()).open(sealed)
    assert "GATEWAY_SECRET_KEY" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("stored", [SECRET, "aes:abc", "", "fernet:not-a-fernet-token"])
def test_unknown_or_corrupt_stored_forms_are_unreadable(stored: str) -> None:
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox((OLD_KEY,)).open(stored)
    assert SECRET not in str(caught.value)


def test_a_tampered_sealed_value_is_unreadable() -> None:
    box = SecretBox((OLD_KEY,))
    sealed = box.seal(SECRET)
    flipped = "A" if sealed[-5] != "A" else "B"
    tampered = sealed[:-5] + flipped + sealed[-4:]
    with pytest.raises(SecretUnreadable):
        box.open(tampered)
