"""``nextToken`` for the /v1 List operations: opaque and tamper-checked.

A token is the position of the next page, sealed (AES-GCM, ``proxy.store.sealed``) with the store's
key and bound to the query it continues (operation, repository, package, filters): a token that was
altered, made by another key, or handed to another query is refused with a ValidationException.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from proxy.api.errors import validation
from proxy.store.keyring import KeyRing
from proxy.store.sealed import SealError, seal, unseal

DEFAULT_PAGE = 100


def _context(query: dict[str, Any]) -> bytes:
    return b"next-token\0" + json.dumps(query, sort_keys=True).encode()


def make_token(keyring: KeyRing, query: dict[str, Any], position: Any) -> str:
    sealed = seal(keyring, json.dumps(position).encode(), context=_context(query))
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_token(keyring: KeyRing, query: dict[str, Any], token: str | None) -> Any:
    """The position a token of this query holds; None for no token."""
    if token is None:
        return None
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return json.loads(unseal(keyring, sealed, context=_context(query)))
    except (binascii.Error, ValueError, SealError):
        raise validation("nextToken is not a token this query returned", "OTHER") from None
