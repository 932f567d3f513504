"""API token format: ``sb_<random>``, stored as HMAC-SHA256 under the session key."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "sb_"


def new_token() -> str:
    """A fresh random token (shown to its owner once)."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(key: bytes, token: str) -> str:
    """The keyed hash stored in place of the token."""
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def key_fingerprint(key: bytes) -> str:
    """A short id of the session key; sessions carry it so a rotated key voids them."""
    return hashlib.sha256(b"salesboost-session:" + key).hexdigest()[:16]
