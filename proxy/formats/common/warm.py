"""Warm restarts: what a daemon holds in memory (each format's merged views, as their renderings, and
where its assets were found) outlives a graceful stop, so the first install after a restart (a
``systemctl restart``, a reboot of the laptop) is served as from memory, not from the store's sealed
renderings and catalog.

The parts that keep memory (``WarmPart``: the merged-document caches and the asset locators) are
added to the daemon's ``WarmParts`` by name when a format builds them. When the daemon stops
gracefully, ``keep`` pickles every part's state into a file the one-host store gives
(``Store.keeping_warm``), sealed under the cache key a chunk at a time; the store makes it
``ROOT/warm`` once its indexes are closed. Whatever opens the store next takes that file and deletes
it (``Store.warm``): the daemon restores it before it serves (``restore``), while ``gc``, ``verify``,
``import`` and every other command drop it, so a state is only restored into the store as the daemon
that kept it left it. It is restored only by the same code and configuration (``fingerprint_of``,
bound into the seal: an upgrade or an edited configuration starts cold); otherwise, or when it does
not open, the daemon says why in one line and starts cold. A crash leaves no state: the next daemon
is served from the sealed renderings and the catalog. Several workers or a shared store keep none:
other processes change the store while one of them is stopped.

The state is a pickle of the parts' own objects (released views, asset records); the unpickler is
only given plaintext that authenticated under the cache key and this code's and configuration's
fingerprint, a chunk at a time (``proxy.store.sealed.OpeningFile``).

Concurrency: ``keep`` runs on the event loop after the last request (nothing changes the parts while
they are pickled); ``restore`` unpickles in a worker thread, before the first request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import time
from pathlib import Path
from typing import BinaryIO, Protocol

import proxy
from proxy.config.model import Config
from proxy.store.keyring import KeyRing
from proxy.store.sealed import OpeningFile, SealError, SealingFile
from proxy.store.store import Store

log = logging.getLogger(__name__)

_CONTEXT = b"codeartifact-proxy warm state\0"


class WarmPart(Protocol):
    def warm_state(self) -> object:
        """What the part holds in memory, as picklable objects ``restore`` takes back."""
        ...

    def restore(self, state: object) -> int:
        """Hold ``warm_state``'s objects again, within the part's memory bound; how many it holds."""
        ...


class WarmParts:
    """The parts of one daemon whose memory outlives a graceful restart, each under a unique name."""

    def __init__(self) -> None:
        self._parts: dict[str, WarmPart] = {}

    def add(self, name: str, part: WarmPart) -> None:
        if name in self._parts:
            raise ValueError(f"a warm part is named {name} already")
        self._parts[name] = part

    def state(self) -> dict[str, object]:
        return {name: part.warm_state() for name, part in self._parts.items()}

    def restore(self, states: dict[str, object]) -> dict[str, int]:
        """Each part's state back; how many items each part that got one holds."""
        return {name: part.restore(states[name]) for name, part in self._parts.items() if name in states}


def fingerprint_of(config: Config) -> bytes:
    """What a warm state is valid for: this code (the package's sources, as the daemon started: an
    upgrade installed while it runs is other code) and this configuration (as loaded, and its file)."""
    digest = hashlib.sha256(repr(config).encode())
    source = Path(config.source)
    if source.is_file():
        digest.update(source.read_bytes())
    for path in sorted(Path(proxy.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.digest()


async def restore(parts: WarmParts, store: Store, fingerprint: bytes) -> None:
    """The warm state the store's last daemon kept (``Store.warm``), back in ``parts`` if it was kept
    under ``fingerprint`` (this daemon's, taken when it started)."""
    file, store.warm = store.warm, None
    if file is None:
        return
    began = time.monotonic()
    try:
        with file:
            states = await asyncio.to_thread(_load, store.keyring, fingerprint, file)
    except WarmStateRefused as exc:
        log.info("starting cold: the warm state the last run kept %s", exc)
        return
    held = ", ".join(f"{count} {name}" for name, count in parts.restore(states).items() if count)
    spent = (time.monotonic() - began) * 1000
    log.info("warm start: %s, as the last run held them (%.0f ms)", held or "nothing", spent)


async def keep(parts: WarmParts, store: Store, fingerprint: bytes) -> None:
    """Seal ``parts``' state into the file the store keeps when it closes (the daemon's last step);
    nothing when they hold nothing. On the event loop: the parts are not changed while they are
    pickled, and only a chunk of the pickle is held at a time."""
    states = parts.state()
    if not any(states.values()):
        return
    try:
        with store.keeping_warm() as file:
            sealing = SealingFile(store.keyring.current, file.write, _CONTEXT + fingerprint)
            pickle.dump(states, sealing, protocol=pickle.HIGHEST_PROTOCOL)
            sealing.finish()
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:  # a full disk; a bug
        log.warning("the warm state was not kept: %s", exc)


class WarmStateRefused(Exception):
    """A warm state that is not restored: the message says why, after "the warm state ... kept"."""


def _load(keyring: KeyRing, fingerprint: bytes, file: BinaryIO) -> dict[str, object]:
    try:
        states: dict[str, object] = pickle.load(OpeningFile(keyring, file, _CONTEXT + fingerprint))
    except SealError:
        raise WarmStateRefused(
            "does not open: other code or another configuration kept it, or it is damaged"
        ) from None
    except Exception as exc:  # authenticated, so written by this code: only a bug gets here
        raise WarmStateRefused(f"cannot be read ({type(exc).__name__})") from None
    return states
