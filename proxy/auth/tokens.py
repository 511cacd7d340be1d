"""Authorization tokens: what GetAuthorizationToken hands out and the package clients send back.

A token is ``cap1.<payload>.<mac>`` (base64url): the payload names the principal, the domain, the
expiry and a random nonce; the MAC is HMAC-SHA256 under a key derived from the token key file, which
lives beside the cache key and is made 0600 like it (``proxy.store.keyring``). Tokens are not stored
anywhere: a token is valid while its MAC verifies, it has not expired, it names this domain and its
principal is still configured. A changed bit anywhere breaks the MAC.

Concurrency: ``TokenKeeper`` is immutable after construction; safe to share.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from proxy.store.keyring import KeyRing

PREFIX = "cap1"
MAX_DURATION = 12 * 3600
MIN_DURATION = 15 * 60
TOKEN_KEY_FILE = "token.key"
_MAC_INFO = b"codeartifact-proxy authorization token v1"


class TokenRefused(Exception):
    """A token that is malformed, forged, expired or for another domain. Never carries the token."""


@dataclass(frozen=True)
class TokenClaims:
    principal: str
    domain: str
    expires: float


def token_key_file(cache_key_file: Path) -> Path:
    """The token key's file: beside the cache key."""
    return cache_key_file.with_name(TOKEN_KEY_FILE)


class TokenKeeper:
    """Issues and verifies tokens of one domain."""

    def __init__(self, secret: bytes, domain: str) -> None:
        hkdf = HKDF(hashes.SHA256(), length=32, salt=None, info=_MAC_INFO)
        self._mac_key = hkdf.derive(secret)
        self.domain = domain

    @classmethod
    def load(cls, cache_key_file: Path, domain: str) -> TokenKeeper:
        """Read the token key (made 0600 on first use); ``KeyFileError`` when it is unsafe or broken."""
        key = KeyRing.load(token_key_file(cache_key_file)).current
        return cls(key.secret, domain)

    def issue(self, principal: str, duration: float, now: float | None = None) -> tuple[str, float]:
        """A token for ``principal`` valid ``duration`` seconds, and its expiry (epoch seconds)."""
        expires = round((now if now is not None else time.time()) + duration, 3)
        claims = {"p": principal, "d": self.domain, "e": expires, "n": secrets.token_urlsafe(12)}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{PREFIX}.{payload}.{_b64(self._mac(payload))}", expires

    def verify(self, token: str, now: float | None = None) -> TokenClaims:
        """The claims of a valid token; ``TokenRefused`` saying why otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise TokenRefused("not an authorization token of this proxy")
        _, payload, mac = parts
        try:
            given = _unb64(mac)
        except ValueError:
            raise TokenRefused("the token is damaged") from None
        if _b64(given) != mac:  # base64's spare low bits: a flipped one must not go unnoticed
            raise TokenRefused("the token is damaged")
        if not hmac.compare_digest(given, self._mac(payload)):
            raise TokenRefused("the token's signature does not verify (damaged or forged)")
        claims = json.loads(_unb64(payload))
        if claims["d"] != self.domain:
            raise TokenRefused(f"the token is for domain {claims['d']!r}, not {self.domain!r}")
        if claims["e"] <= (now if now is not None else time.time()):
            raise TokenRefused("the token has expired; get a new one with GetAuthorizationToken")
        return TokenClaims(claims["p"], claims["d"], float(claims["e"]))

    def _mac(self, payload: str) -> bytes:
        return hmac.digest(self._mac_key, f"{PREFIX}.{payload}".encode(), hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64url") from None
