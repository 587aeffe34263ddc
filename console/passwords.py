"""Password hashes with the standard library's scrypt and a per-user salt.

A stored hash names its parameters (``scrypt$n$r$p$salt$hash``, base64 without padding), so
the cost can be raised later without breaking existing users: ``needs_rehash`` tells when a
successful login should store a new hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

# RFC 7914 interactive-login parameters: 16 MiB of memory, ~50 ms on one core.
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_PASSWORD_BYTES = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("empty password")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError("password too long")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; a malformed hash never matches."""
    try:
        algo, n, r, p, salt, key = stored.split("$")
        if algo != "scrypt":
            return False
        expected = _unb64(key)
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return False
        actual = _derive(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${N}${R}${P}$")


@functools.cache
def dummy_hash() -> str:
    """Verified against when the username is unknown, so that the response time does not
    tell which usernames exist."""
    return hash_password(secrets.token_urlsafe(16))
