"""The catalog, blob ledger and metadata cache in PostgreSQL, for several daemons sharing one store
(``[store] catalog = "postgresql://..."``), through asyncpg.

Tables (created when missing, by the first daemon to open the database)::

    store_format      (version, key_check)            the layout's version, as ROOT/store-format, and
                                                      a value sealed with the store's cache key
    catalog_package   (name, repository, coordinate, value)
    catalog_repository(name, value)
    ledger            (blob_id, size, pinned, last_access)
    metadata          (name, value)
    lease             (name, holder, expires)         single flight of fetches across daemons
                                                      (PostgresLeases)

PostgreSQL sees what the SQLite indexes hold and nothing more: ``name`` and ``repository`` are keyed
names (HMAC under the cache key, ``proxy.store.index.entry_namer``), ``value`` and ``coordinate`` are
sealed under the cache key with their row's name as context (``proxy.store.sealed``), so a value cannot
be moved under another name; the ledger holds blob ids (keyed names too) and numbers. Every daemon of
the store must have the same key file.

Concurrency rule: any number of daemons, each with its own pool. ``update_package`` holds a transaction
advisory lock on the package's name, so read-modify-write never loses a concurrent update from another
request, process or host. Eviction holds a session advisory lock: one eviction at a time across every
daemon; a blob's ledger row is deleted only if it is still unpinned and was not read since the eviction
chose it. Every change made with ``commit=True`` (a publish, a /v1 change) and every delete is
announced (NOTIFY, sealed) when it commits, so every daemon drops its merged view of that package at
once (``PostgresCatalog.listen``); a fetched asset's record (no ``commit``) is cache and is not
announced. Every statement or transaction commits on its own (PostgreSQL's default
``synchronous_commit``: durable), so there are no groups to commit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg

from proxy.store.catalog import PackageCoordinate, PackageRecord
from proxy.store.index import entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.ledger import LedgerEntry
from proxy.store.metadata import CachedDocument, check_entry, pack_document, unpack_document
from proxy.store.protocols import SharedEntryUnavailable
from proxy.store.repositories import (
    RecordsChange,
    RepositoriesUnavailable,
    RepositoryRecord,
    entry_name,
    open_records,
    seal_records,
)
from proxy.store.sealed import SealError, seal, unseal

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
POOL_SIZE = 10
# Advisory lock classes (the first of PostgreSQL's two int4 lock keys); the second is the object.
_LOCK_SCHEMA, _LOCK_PACKAGE, _LOCK_EVICTION = 0x43410001, 0x43410002, 0x43410003

_KEY_CHECK = b"codeartifact-proxy store key check"
CHANGES_CHANNEL = "codeartifact_proxy_catalog"
_CHANGE_CONTEXT = b"codeartifact-proxy catalog change"
RECONNECT_SECONDS = 1.0
LEASE_SECONDS = 30.0  # how long a dead daemon's single-flight lease blocks the others at most
POLL_SECONDS = 0.05

T = TypeVar("T")

ChangeListener = Callable[[str, PackageCoordinate], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_format (version INTEGER NOT NULL, key_check BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_package (
    name TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    coordinate BYTEA NOT NULL,
    value BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_package_repository ON catalog_package (repository);
CREATE TABLE IF NOT EXISTS catalog_repository (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    blob_id TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    pinned BOOLEAN NOT NULL,
    last_access DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_eviction ON ledger (last_access) WHERE NOT pinned;
CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
"""


class PostgresUnavailable(Exception):
    """The database cannot be used as the store's; the message says why, without the password."""


class PostgresIndexes:
    """One daemon's connection pool to the store's database and the three backends on it."""

    def __init__(self, pool: asyncpg.Pool, keyring: KeyRing, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.pool = pool
        self.catalog = PostgresCatalog(pool, keyring)
        self.ledger = PostgresLedger(pool)
        self.metadata = PostgresMetadata(pool, keyring)
        self.leases = PostgresLeases(pool, keyring, ttl=lease_seconds)

    @classmethod
    async def open(
        cls, dsn: str, keyring: KeyRing, *, pool_size: int = POOL_SIZE, lease_seconds: float = LEASE_SECONDS
    ) -> PostgresIndexes:
        """Connect, create the tables if missing, check the layout's version. ``lease_seconds``: how
        long a daemon that died mid-fetch blocks that asset's fetch for the others, at most."""
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise PostgresUnavailable(f"cannot connect: {_reason(exc)}") from None
        try:
            await _prepare(pool, keyring)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, keyring, lease_seconds=lease_seconds)

    async def close(self) -> None:
        try:
            await self.ledger.flush()
        finally:
            await self.pool.close()


async def _prepare(pool: asyncpg.Pool, keyring: KeyRing) -> None:
    try:
        async with pool.acquire() as con, con.transaction():
            # Two daemons starting at once would race on CREATE TABLE IF NOT EXISTS.
            await con.execute("SELECT pg_advisory_xact_lock($1, 0)", _LOCK_SCHEMA)
            await con.execute(_SCHEMA)
            rows = await con.fetch("SELECT version, key_check FROM store_format")
            if not rows:
                await con.execute(
                    "INSERT INTO store_format (version, key_check) VALUES ($1, $2)",
                    SCHEMA_VERSION,
                    seal(keyring, _KEY_CHECK, context=_KEY_CHECK),
                )
            elif [row["version"] for row in rows] != [SCHEMA_VERSION]:
                versions = [row["version"] for row in rows]
                raise PostgresUnavailable(
                    f"holds store format {versions}; this version reads store format {SCHEMA_VERSION} only: "
                    "use an empty database"
                )
            else:
                _check_key(keyring, rows[0]["key_check"])
    except asyncpg.PostgresError as exc:
        raise PostgresUnavailable(_reason(exc)) from None


def _check_key(keyring: KeyRing, key_check: bytes) -> None:
    """Refuse a daemon whose key ring lacks the store's key: what it wrote no other daemon could read."""
    try:
        unseal(keyring, key_check, context=_KEY_CHECK)
    except SealError:
        raise PostgresUnavailable(
            "its store is sealed with another cache key: every daemon of a store needs the same key file"
        ) from None


def _reason(exc: BaseException) -> str:
    # asyncpg's messages name the server and the user, never the password of the DSN.
    return str(exc) or type(exc).__name__


def _object_key(name: str) -> int:
    """The advisory lock object of a keyed name: its first 32 bits, as PostgreSQL's signed int4."""
    return int(name[:8], 16) - 2**31


class PostgresCatalog:
    """``CatalogBackend`` in PostgreSQL; a listing is one indexed query, not a walk of shards."""

    def __init__(self, pool: asyncpg.Pool, keyring: KeyRing) -> None:
        self._pool = pool
        self._keyring = keyring
        self._entry_name = entry_namer(keyring, "catalog")

    def _seal(self, value: Any, context: str) -> bytes:
        return seal(self._keyring, json.dumps(value).encode(), context=context.encode())

    def _open(self, raw: bytes, context: str) -> Any:
        return json.loads(unseal(self._keyring, raw, context=context.encode()))

    def _package_name(self, repository: str, coordinate: PackageCoordinate) -> str:
        return self._entry_name(
            ("package", repository, coordinate.format, coordinate.namespace, coordinate.name)
        )

    def _repository_name(self, repository: str) -> str:
        return self._entry_name(("repository", repository))

    async def package(self, repository: str, coordinate: PackageCoordinate) -> PackageRecord | None:
        name = self._package_name(repository, coordinate)
        raw = await self._pool.fetchval("SELECT value FROM catalog_package WHERE name = $1", name)
        return None if raw is None else PackageRecord.from_json(self._open(raw, name))

    async def update_package(
        self,
        repository: str,
        coordinate: PackageCoordinate,
        change: Callable[[PackageRecord], None],
        *,
        commit: bool = False,
    ) -> PackageRecord:
        name = self._package_name(repository, coordinate)
        async with self._pool.acquire() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_PACKAGE, _object_key(name))
            raw = await con.fetchval("SELECT value FROM catalog_package WHERE name = $1", name)
            record = (
                PackageRecord(coordinate) if raw is None else PackageRecord.from_json(self._open(raw, name))
            )
            change(record)
            await con.execute(
                "INSERT INTO catalog_package (name, repository, coordinate, value) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                name,
                self._repository_name(repository),
                self._seal(vars(coordinate), f"coordinate {name}"),
                self._seal(record.to_json(), name),
            )
            if commit:  # a publish or a /v1 change; a fetched asset's record changes no merged view
                await con.execute(
                    "SELECT pg_notify($1, $2)", CHANGES_CHANNEL, self._change(repository, coordinate)
                )
            if raw is None:
                repository_name = self._repository_name(repository)
                await con.execute(
                    "INSERT INTO catalog_repository (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    repository_name,
                    self._seal(repository, repository_name),
                )
        return record

    async def delete_package(self, repository: str, coordinate: PackageCoordinate) -> None:
        name = self._package_name(repository, coordinate)
        async with self._pool.acquire() as con, con.transaction():
            await con.execute("DELETE FROM catalog_package WHERE name = $1", name)
            await con.execute(
                "SELECT pg_notify($1, $2)", CHANGES_CHANNEL, self._change(repository, coordinate)
            )

    async def packages(self, repository: str) -> list[PackageCoordinate]:
        rows = await self._pool.fetch(
            "SELECT name, coordinate FROM catalog_package WHERE repository = $1",
            self._repository_name(repository),
        )
        return [
            PackageCoordinate(**self._open(row["coordinate"], f"coordinate {row['name']}")) for row in rows
        ]

    async def repositories(self) -> list[str]:
        rows = await self._pool.fetch("SELECT name, value FROM catalog_repository")
        return sorted(self._open(row["value"], row["name"]) for row in rows)

    async def records(self) -> AsyncIterator[tuple[str, PackageRecord]]:
        for repository in await self.repositories():
            rows = await self._pool.fetch(
                "SELECT name, value FROM catalog_package WHERE repository = $1",
                self._repository_name(repository),
            )
            for row in rows:
                yield repository, PackageRecord.from_json(self._open(row["value"], row["name"]))

    def _change(self, repository: str, coordinate: PackageCoordinate) -> str:
        plain = json.dumps([repository, coordinate.format, coordinate.namespace, coordinate.name]).encode()
        return base64.b64encode(seal(self._keyring, plain, context=_CHANGE_CONTEXT)).decode()

    def _open_change(self, payload: str) -> tuple[str, PackageCoordinate]:
        repository, *coordinate = json.loads(
            unseal(self._keyring, base64.b64decode(payload), context=_CHANGE_CONTEXT)
        )
        return repository, PackageCoordinate(*coordinate)

    async def listen(self, on_change: ChangeListener, on_lost: Callable[[], None]) -> CatalogListener:
        """Call ``on_change(repository, coordinate)`` for every package that any daemon of the store
        changes with ``commit=True`` or deletes from now on (this one included), once the change is
        committed. The
        notification carries the package sealed, so PostgreSQL never sees its name. ``on_lost``: the
        listening connection dropped, so changes may have been missed (the listener reconnects)."""
        listener = CatalogListener(self._pool, self._open_change, on_change, on_lost)
        await listener.start()
        return listener

    async def sync(self) -> None:
        """Nothing: every update was committed durably (``synchronous_commit``) before it returned."""

    async def close(self) -> None:
        """Nothing: ``PostgresIndexes.close`` closes the pool."""


class CatalogListener:
    """One connection that LISTENs for catalog changes (``PostgresCatalog.listen``); ``stop`` ends it.
    When the connection drops it reports ``on_lost`` and connects again, every ``RECONNECT_SECONDS``."""

    channel = CHANGES_CHANNEL

    def __init__(
        self,
        pool: asyncpg.Pool,
        open_change: Callable[[str], tuple[str, PackageCoordinate]],
        on_change: ChangeListener,
        on_lost: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._open_change = open_change
        self._on_change = on_change
        self._on_lost = on_lost
        self._con: asyncpg.pool.PoolConnectionProxy | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        con = await self._pool.acquire()
        try:
            await con.add_listener(self.channel, self._notified)
        except BaseException:
            await self._pool.release(con)
            raise
        con.add_termination_listener(self._terminated)
        self._con = con

    def _notified(self, con: object, pid: int, channel: str, payload: str) -> None:
        try:
            repository, coordinate = self._open_change(payload)
        except (SealError, ValueError) as exc:
            log.warning("catalog change notification ignored: %s", exc)
            return
        self._on_change(repository, coordinate)

    def _terminated(self, con: object) -> None:
        if self._stopped:
            return
        log.warning("catalog change notifications lost: the connection dropped; reconnecting")
        dropped, self._con = self._con, None
        self._on_lost()
        self._reconnect = asyncio.get_running_loop().create_task(self._connect_again(dropped))

    async def _connect_again(self, dropped: asyncpg.pool.PoolConnectionProxy | None) -> None:
        if dropped is not None:
            with contextlib.suppress(Exception):  # the pool replaces a closed connection
                await self._pool.release(dropped)
        while not self._stopped:
            await asyncio.sleep(RECONNECT_SECONDS)
            try:
                await self.start()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("catalog change notifications: reconnecting failed: %s", _reason(exc))
                continue
            self._on_lost()  # changes between the drop and now were missed
            return

    async def stop(self) -> None:
        self._stopped = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        con, self._con = self._con, None
        if con is not None:
            con.remove_termination_listener(self._terminated)
            await con.remove_listener(self.channel, self._notified)
            await self._pool.release(con)


class PostgresLedger:
    """``LedgerBackend`` in PostgreSQL, shared by every daemon of the store."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._touched: dict[str, float] = {}

    async def record(self, blob_id: str, size: int, *, pinned: bool) -> None:
        await self._pool.execute(
            "INSERT INTO ledger (blob_id, size, pinned, last_access) "
            "VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (blob_id) DO UPDATE SET size = EXCLUDED.size, "
            "pinned = ledger.pinned OR EXCLUDED.pinned, last_access = EXCLUDED.last_access",
            blob_id,
            size,
            pinned,
            time.time(),  # the daemons' clocks, like ``touch``: eviction compares the two
        )

    def touch(self, blob_id: str) -> None:
        self._touched[blob_id] = time.time()

    async def forget(self, blob_id: str) -> None:
        self._touched.pop(blob_id, None)
        await self._pool.execute("DELETE FROM ledger WHERE blob_id = $1", blob_id)

    async def flush(self) -> None:
        touched, self._touched = self._touched, {}
        if touched:
            await self._pool.execute(
                "UPDATE ledger SET last_access = greatest(last_access, t.at) "
                "FROM unnest($1::text[], $2::float8[]) AS t(blob_id, at) WHERE ledger.blob_id = t.blob_id",
                list(touched),
                list(touched.values()),
            )

    async def entries(self) -> dict[str, LedgerEntry]:
        rows = await self._pool.fetch("SELECT blob_id, size, pinned, last_access FROM ledger")
        return {row["blob_id"]: LedgerEntry(row["size"], row["pinned"], row["last_access"]) for row in rows}

    async def set_pins(self, pinned: Iterable[str]) -> None:
        await self._pool.execute(
            "UPDATE ledger SET pinned = (blob_id = ANY($1::text[])) "
            "WHERE pinned <> (blob_id = ANY($1::text[]))",
            list(pinned),
        )

    async def cached_size(self) -> int:
        return await self._pool.fetchval("SELECT coalesce(sum(size), 0)::bigint FROM ledger WHERE NOT pinned")

    async def blob_count(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM ledger")

    async def evict(self, max_size: int, delete_blob: Callable[[str], Awaitable[object]]) -> list[str]:
        await self.flush()
        evicted: list[str] = []
        async with self._pool.acquire() as con:
            if not await con.fetchval("SELECT pg_try_advisory_lock($1, 0)", _LOCK_EVICTION):
                return evicted  # another daemon is evicting
            try:
                total = await con.fetchval(
                    "SELECT coalesce(sum(size), 0)::bigint FROM ledger WHERE NOT pinned"
                )
                if total <= max_size:
                    return evicted
                candidates = await con.fetch(
                    "SELECT blob_id, size, last_access FROM ledger WHERE NOT pinned "
                    "ORDER BY last_access, blob_id"
                )
                for row in candidates:
                    if total <= max_size:
                        break
                    # Only if nobody pinned or read it since it was chosen; its row goes before its blob,
                    # so a daemon that finds no row records the blob again when it stores it.
                    deleted = await con.fetchval(
                        "DELETE FROM ledger WHERE blob_id = $1 AND NOT pinned AND last_access <= $2 "
                        "RETURNING size",
                        row["blob_id"],
                        row["last_access"],
                    )
                    if deleted is None:
                        continue
                    await delete_blob(row["blob_id"])
                    total -= deleted
                    evicted.append(row["blob_id"])
            finally:
                await con.execute("SELECT pg_advisory_unlock($1, 0)", _LOCK_EVICTION)
        if evicted:
            log.info("evicted %d cached blobs; cached content now %d bytes", len(evicted), total)
        return evicted

    async def close(self) -> None:
        """Nothing: ``PostgresIndexes.close`` flushes and closes the pool."""


class PostgresLeases:
    """``AssetLeases`` across daemons: of all concurrent ``exclusive`` calls for one key, on any host,
    one runs its ``work`` (the locate that fetches and commits) at a time; the others wait, then run
    theirs, which finds what the first committed.

    The runner holds a lease row (its name a keyed hash of the key) and renews it every third of
    ``ttl`` while it works; a daemon that dies mid-fetch stops renewing, and its lease is taken over
    once ``ttl`` has passed: no dead daemon blocks others longer than that. Expiry is by the database's
    clock, so the daemons' clocks need not agree. Waiters poll the row every ``poll`` seconds.

    Concurrency rule: the daemon's own single flight (``proxy.store.singleflight``) should come first,
    so that one request per daemon, not every request, waits here.
    """

    def __init__(
        self, pool: asyncpg.Pool, keyring: KeyRing, *, ttl: float = LEASE_SECONDS, poll: float = POLL_SECONDS
    ) -> None:
        self._pool = pool
        self._name = entry_namer(keyring, "lease")
        self._holder = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}"
        self.ttl = ttl
        self.poll = poll

    async def exclusive(self, key: tuple[str, ...], work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` while this daemon holds ``key``'s lease (waiting while another one does)."""
        name = self._name(key)
        while not await self._acquire(name):
            await self._wait(name)
        renewing = asyncio.get_running_loop().create_task(self._renew(name))
        try:
            return await work()
        finally:
            renewing.cancel()
            await self._pool.execute("DELETE FROM lease WHERE name = $1 AND holder = $2", name, self._holder)

    async def _acquire(self, name: str) -> bool:
        holder = await self._pool.fetchval(
            "INSERT INTO lease (name, holder, expires) "
            "VALUES ($1, $2, extract(epoch FROM clock_timestamp()) + $3) "
            "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires "
            "WHERE lease.expires < extract(epoch FROM clock_timestamp()) RETURNING holder",
            name,
            self._holder,
            self.ttl,
        )
        return holder is not None

    async def _renew(self, name: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            renewed = await self._pool.execute(
                "UPDATE lease SET expires = extract(epoch FROM clock_timestamp()) + $3 "
                "WHERE name = $1 AND holder = $2",
                name,
                self._holder,
                self.ttl,
            )
            if renewed == "UPDATE 0":  # taken over after it expired: the work may run twice, harmlessly
                log.warning("single flight lease %s lost to another daemon", name[:12])
                return

    async def _wait(self, name: str) -> None:
        while await self._pool.fetchval(
            "SELECT 1 FROM lease WHERE name = $1 AND expires >= extract(epoch FROM clock_timestamp())", name
        ):
            await asyncio.sleep(self.poll)


class PostgresMetadata:
    """``MetadataBackend`` in PostgreSQL: whole-document replace, the last writer wins."""

    def __init__(self, pool: asyncpg.Pool, keyring: KeyRing) -> None:
        self._pool = pool
        self._keyring = keyring
        self._name = entry_namer(keyring, "metadata")

    async def get(self, *key: str) -> CachedDocument | None:
        name = self._name(key)
        raw = await self._pool.fetchval("SELECT value FROM metadata WHERE name = $1", name)
        return None if raw is None else unpack_document(unseal(self._keyring, raw, context=name.encode()))

    async def put(self, doc: CachedDocument, *key: str) -> None:
        name = self._name(key)
        await self._pool.execute(
            "INSERT INTO metadata (name, value) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            name,
            seal(self._keyring, pack_document(doc), context=name.encode()),
        )

    async def delete(self, *key: str) -> None:
        await self._pool.execute("DELETE FROM metadata WHERE name = $1", self._name(key))

    async def names(self) -> list[str]:
        return [row["name"] for row in await self._pool.fetch("SELECT name FROM metadata")]

    async def check(self, name: str) -> str | None:
        raw = await self._pool.fetchval("SELECT value FROM metadata WHERE name = $1", name)
        return check_entry(self._keyring, name, raw)

    async def close(self) -> None:
        """Nothing: ``PostgresIndexes.close`` closes the pool."""


# -- one-entry documents of a shared store: the repository registry, the permissions policies -------
REGISTRY_CHANNEL = "codeartifact_proxy_repositories"
POLICIES_CHANNEL = "codeartifact_proxy_policies"
_LOCK_ENTRY = 0x43410004
_ENTRY_SCHEMA = "CREATE TABLE IF NOT EXISTS shared_entries (name TEXT PRIMARY KEY, value BYTEA NOT NULL)"
_ENTRY_ROW = "SELECT value FROM shared_entries WHERE name = $1"


class PostgresEntry:
    """One named value every daemon of a shared store reads: a row of ``shared_entries``, its name keyed
    and its value sealed by the caller (the database sees neither what it is nor what it holds).

    Concurrency rule: ``change`` is a read-modify-write in one transaction under an advisory lock, so
    concurrent changes from any daemon never lose one another; it announces the change (NOTIFY on the
    entry's channel, with no payload: the row is the news) when it commits, and ``watch`` hears it on
    every daemon, this one included."""

    def __init__(self, pool: asyncpg.Pool, name: str, channel: str) -> None:
        self._pool = pool
        self._name = name
        self._channel = channel
        self._table_ready = False

    @classmethod
    def of(cls, catalog: object, name: str, channel: str) -> PostgresEntry:
        """The entry ``name`` in the database of a shared store's catalog."""
        return cls(_postgres(catalog)._pool, name, channel)

    async def load(self) -> bytes | None:
        try:
            await self._create_table()
            return await self._pool.fetchval(_ENTRY_ROW, self._name)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SharedEntryUnavailable(f"the store's database: {_reason(exc)}") from None

    async def change(self, apply: Callable[[bytes | None], bytes]) -> bytes:
        """Store ``apply(stored value)`` (it may raise to refuse: nothing is written) and return it."""
        try:
            await self._create_table()
            async with self._pool.acquire() as con, con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_ENTRY, self._name)
                value = apply(await con.fetchval(_ENTRY_ROW, self._name))
                await con.execute(
                    "INSERT INTO shared_entries (name, value) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    self._name,
                    value,
                )
                await con.execute("SELECT pg_notify($1, '')", self._channel)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SharedEntryUnavailable(f"the store's database: {_reason(exc)}") from None
        return value

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call ``on_change()`` after every change any daemon commits, and after the listening
        connection was lost and is back (changes may have been missed); returns the stop."""
        listener = _EntryListener(self._pool, self._channel, on_change)
        try:
            await listener.start()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SharedEntryUnavailable(f"the store's database: {_reason(exc)}") from None
        return listener.stop

    async def _create_table(self) -> None:
        if self._table_ready:
            return
        async with self._pool.acquire() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1, 0)", _LOCK_SCHEMA)  # as _prepare's
            await con.execute(_ENTRY_SCHEMA)
        self._table_ready = True


def _postgres(catalog: object) -> PostgresCatalog:
    if not isinstance(catalog, PostgresCatalog):
        raise TypeError(f"a shared store's catalog is PostgreSQL's, not {type(catalog).__name__}")
    return catalog


class PostgresRepositoryEntries:
    """The repositories created through /v1 on a shared store: one ``PostgresEntry`` (sealed as
    ``proxy.store.repositories`` seals the one-host entry), so every daemon of the store serves them.
    The config file's repositories are not stored: each daemon has its own file."""

    keeps_config_records = False

    def __init__(self, entry: PostgresEntry, keyring: KeyRing) -> None:
        self._entry = entry
        self._keyring = keyring
        self._name = entry_name(keyring)

    @classmethod
    def of(cls, catalog: object) -> PostgresRepositoryEntries:
        """The entries in the database of a shared store's catalog."""
        keyring = _postgres(catalog)._keyring
        return cls(PostgresEntry.of(catalog, entry_name(keyring), REGISTRY_CHANNEL), keyring)

    def load_now(self) -> list[RepositoryRecord]:
        """Nothing: the database is read by ``load``, when the daemon starts serving."""
        return []

    async def load(self) -> list[RepositoryRecord]:
        try:
            raw = await self._entry.load()
        except SharedEntryUnavailable as exc:
            raise RepositoriesUnavailable(str(exc)) from None
        return [] if raw is None else open_records(self._keyring, self._name, raw)

    async def change(self, apply: RecordsChange) -> list[RepositoryRecord]:
        """Store ``apply(stored records)`` (it may raise to refuse: nothing is written) and return it."""
        changed: list[RepositoryRecord] = []

        def sealed(raw: bytes | None) -> bytes:
            changed[:] = apply([] if raw is None else open_records(self._keyring, self._name, raw))
            return seal_records(self._keyring, self._name, changed)

        try:
            await self._entry.change(sealed)
        except SharedEntryUnavailable as exc:
            raise RepositoriesUnavailable(str(exc)) from None
        return changed

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        try:
            return await self._entry.watch(on_change)
        except SharedEntryUnavailable as exc:
            raise RepositoriesUnavailable(str(exc)) from None


class _EntryListener(CatalogListener):
    """The catalog listener's reconnecting connection, on an entry's channel: every notice, and every
    reconnection, means "read the entry again"."""

    def __init__(self, pool: asyncpg.Pool, channel: str, on_change: Callable[[], None]) -> None:
        super().__init__(pool, _no_package, _no_package_change, on_lost=on_change)
        self.channel = channel
        self._reread = on_change

    def _notified(self, con: object, pid: int, channel: str, payload: str) -> None:
        self._reread()  # the notice carries nothing: the row is the news


def _no_package(_payload: str) -> tuple[str, PackageCoordinate]:
    raise ValueError("a registry notice names no package")


def _no_package_change(_repository: str, _package: PackageCoordinate) -> None:
    """Never called: ``_EntryListener._notified`` handles every notice."""
