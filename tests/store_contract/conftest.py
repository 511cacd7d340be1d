"""Fixtures of the storage contract suite: ``backend`` is parametrised over every storage backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.store.keyring import Key, KeyRing
from tests.store_contract.backends import Backend, local_backend

BACKENDS = ["local"]


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(Key.generate())


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path, keyring: KeyRing) -> AsyncIterator[Backend]:
    if request.param == "local":
        async with local_backend(tmp_path / "store", keyring) as opened:
            yield opened
