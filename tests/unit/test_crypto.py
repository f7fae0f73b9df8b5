"""Field encryption (AES-GCM key ring) and HMAC signatures."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import ConfigError, SignatureError
from gateway.partners.signing import sign_payload, verify_signature
from gateway.store.encryption import DecryptionError, FieldCipher, parse_key_ring

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()


def test_ciphertext_carries_key_id_and_round_trips() -> None:
    cipher = FieldCipher(parse_key_ring(f"k1:{K1}"))
    token = cipher.encrypt("DE89370400440532013000", "instruction:x:debtor")
    assert token.startswith("k1$") and "DE89" not in token
    assert cipher.decrypt(token, "instruction:x:debtor") == "DE89370400440532013000"


def test_keys_rotate_new_key_encrypts_old_key_still_decrypts() -> None:
    old = FieldCipher(parse_key_ring(f"k1:{K1}"))
    token = old.encrypt("secret", "ctx")
    rotated = FieldCipher(parse_key_ring(f"k2:{K2},k1:{K1}"))
    assert rotated.decrypt(token, "ctx") == "secret"
    assert rotated.encrypt("secret", "ctx").startswith("k2$")


def test_ciphertext_is_bound_to_its_context() -> None:
    cipher = FieldCipher(parse_key_ring(f"k1:{K1}"))
    token = cipher.encrypt("secret", "instruction:a:debtor")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, "instruction:b:debtor")


def test_unknown_key_id_is_a_clear_error() -> None:
    token = FieldCipher(parse_key_ring(f"k1:{K1}")).encrypt("x", "c")
    with pytest.raises(DecryptionError, match="no key with id 'k1'"):
        FieldCipher(parse_key_ring(f"k2:{K2}")).decrypt(token, "c")


@pytest.mark.parametrize(
    "spec", ["", "nokey", f"k1:{K1[:-4]}", "k1:not-base64!", "k1:" + base64.b64encode(b"x" * 10).decode()]
)
def test_bad_key_ring_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_key_ring(spec)


def test_signature_verifies_and_rejects_forgery_and_replay() -> None:
    body = b'{"a": 1}'
    header = sign_payload(b"secret", body, timestamp=1_000_000)
    assert verify_signature(b"secret", body, header, now=1_000_010) == 1_000_000
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"other", body, header, now=1_000_010)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"secret", b'{"a": 2}', header, now=1_000_010)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(b"secret", body, header, now=1_000_000 + 301)
    with pytest.raises(SignatureError, match="missing"):
        verify_signature(b"secret", body, None)
    with pytest.raises(SignatureError, match="timestamp"):
        verify_signature(b"secret", body, "v1=abc")


def test_encrypt_many_gives_tokens_encrypt_could_have_given() -> None:
    cipher = FieldCipher(parse_key_ring(f"k1:{K1}"))
    fields = [(f'{{"iban": "DE8937040044053201300{i}"}}', f"instruction:ins_{i}:debtor") for i in range(50)]
    tokens = cipher.encrypt_many(fields)
    assert [cipher.decrypt(t, context) for t, (_, context) in zip(tokens, fields, strict=True)] == [
        plain for plain, _ in fields
    ]
    assert all(t.startswith("k1$") for t in tokens)
    nonces = {base64.b64decode(t[3:])[:12] for t in tokens}
    assert len(nonces) == len(fields)  # a nonce of its own for every field
    with pytest.raises(DecryptionError):  # each bound to its own context
        cipher.decrypt(tokens[0], fields[1][1])
    assert cipher.encrypt_many([]) == []
