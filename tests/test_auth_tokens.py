"""Authorization tokens: bound to principal, domain and expiry; any changed bit is refused."""

from __future__ import annotations

import os
import stat

import pytest

from proxy.auth.tokens import TokenKeeper, TokenRefused, token_key_file
from proxy.store.keyring import KeyFileError


def test_a_token_names_its_principal_and_expires(tmp_path):
    keeper = TokenKeeper.load(tmp_path / "keys" / "cache.key", "local")
    token, expires = keeper.issue("reader", 900, now=1000.0)
    assert expires == 1900.0
    claims = keeper.verify(token, now=1899.0)
    assert (claims.principal, claims.domain, claims.expires) == ("reader", "local", 1900.0)
    with pytest.raises(TokenRefused, match="expired"):
        keeper.verify(token, now=1900.0)


def test_every_single_bit_flip_is_refused(tmp_path):
    keeper = TokenKeeper.load(tmp_path / "cache.key", "local")
    token, _ = keeper.issue("ci", 3600)
    raw = token.encode()
    for index in range(len(raw)):
        for bit in range(7):  # ASCII: the 8th bit only makes it non-ASCII
            changed = bytearray(raw)
            changed[index] ^= 1 << bit
            with pytest.raises(TokenRefused):
                keeper.verify(changed.decode("latin-1"))


def test_the_key_lives_beside_the_cache_key_private_and_tokens_survive_a_restart(tmp_path):
    cache_key = tmp_path / "keys" / "cache.key"
    token, _ = TokenKeeper.load(cache_key, "local").issue("ci", 3600)
    path = token_key_file(cache_key)
    assert path.parent == cache_key.parent
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert TokenKeeper.load(cache_key, "local").verify(token).principal == "ci"
    with pytest.raises(TokenRefused, match="domain"):
        TokenKeeper.load(cache_key, "other").verify(token)
    with pytest.raises(TokenRefused, match="signature"):
        TokenKeeper.load(tmp_path / "elsewhere" / "cache.key", "local").verify(token)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        TokenKeeper.load(cache_key, "local")
