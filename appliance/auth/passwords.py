"""argon2id password hashing, run off the event loop (it is deliberately slow)."""

from __future__ import annotations

import secrets
import string

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# a hash of a random password, verified when the user does not exist so timing does not tell
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password_sync(password: str) -> str:
    """argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password_sync(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; a missing hash burns the same time and says no."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    """hash_password_sync in a worker thread."""
    return await anyio.to_thread.run_sync(hash_password_sync, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """verify_password_sync in a worker thread."""
    return await anyio.to_thread.run_sync(verify_password_sync, password_hash, password)


def generate_password(length: int = 20) -> str:
    """A random password from letters and digits (easy to read out, hard to guess)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))
