"""What the PostgreSQL backend does beyond the contract: several daemons on one database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from proxy.store.catalog import PackageCoordinate
from proxy.store.keyring import Key, KeyRing
from proxy.store.postgres import PostgresIndexes, PostgresUnavailable
from tests.store_contract.postgres import new_database


@pytest.fixture
async def dsn(pg_cluster):
    async with new_database(pg_cluster) as opened:
        yield opened


async def test_daemons_starting_at_once_share_one_schema(dsn, keyring):
    opened = await asyncio.gather(*(PostgresIndexes.open(dsn, keyring, pool_size=2) for _ in range(4)))
    try:
        await opened[0].ledger.record("a" * 64, 7, pinned=False)
        assert [await each.ledger.cached_size() for each in opened] == [7, 7, 7, 7]
    finally:
        for each in opened:
            await each.close()


async def test_a_daemon_with_another_cache_key_is_refused(dsn, keyring):
    await (await PostgresIndexes.open(dsn, keyring)).close()
    with pytest.raises(PostgresUnavailable, match="sealed with another cache key"):
        await PostgresIndexes.open(dsn, KeyRing(Key.generate()))
    rotated = KeyRing(Key.generate(), keyring.keys)  # the store's key kept as an old key: accepted
    await (await PostgresIndexes.open(dsn, rotated)).close()


async def test_a_database_of_another_store_format_is_refused(dsn, keyring):
    await (await PostgresIndexes.open(dsn, keyring)).close()
    con = await asyncpg.connect(dsn)
    try:
        await con.execute("UPDATE store_format SET version = 99")
    finally:
        await con.close()
    with pytest.raises(PostgresUnavailable, match=r"store format \[99\].*use an empty database"):
        await PostgresIndexes.open(dsn, keyring)


async def test_an_unreachable_database_says_so(keyring):
    with pytest.raises(PostgresUnavailable, match="cannot connect"):
        await PostgresIndexes.open("postgresql://proxy@127.0.0.1:1/proxy", keyring)


async def test_two_daemons_evicting_at_once_delete_each_blob_once(dsn, keyring):
    first, second = PostgresIndexes.open(dsn, keyring), PostgresIndexes.open(dsn, keyring)
    first, second = await first, await second
    try:
        for n in range(20):
            await first.ledger.record(f"{n:064x}", 10, pinned=False)
        deleted: list[str] = []

        async def delete_blob(blob_id: str) -> None:
            deleted.append(blob_id)
            await asyncio.sleep(0)  # let the other eviction run meanwhile

        evicted = await asyncio.gather(
            first.ledger.evict(50, delete_blob), second.ledger.evict(50, delete_blob)
        )
        assert sorted(deleted) == sorted(evicted[0] + evicted[1]) and len(set(deleted)) == len(deleted) == 15
        assert await first.ledger.cached_size() == 50
    finally:
        await first.close()
        await second.close()


async def test_eviction_spares_a_blob_another_daemon_read_meanwhile(dsn, keyring):
    first, second = await PostgresIndexes.open(dsn, keyring), await PostgresIndexes.open(dsn, keyring)
    try:
        for blob_id in ("a" * 64, "b" * 64, "c" * 64):
            await first.ledger.record(blob_id, 10, pinned=False)
            await asyncio.sleep(0.005)
        deleted: list[str] = []

        async def delete_blob(blob_id: str) -> None:
            deleted.append(blob_id)
            if blob_id == "a" * 64:  # while evicting, another daemon serves "b"
                second.ledger.touch("b" * 64)
                await second.ledger.flush()

        assert await first.ledger.evict(10, delete_blob) == ["a" * 64, "c" * 64]
        assert deleted == ["a" * 64, "c" * 64]
        assert list(await first.ledger.entries()) == ["b" * 64]
    finally:
        await first.close()
        await second.close()


async def test_every_daemon_hears_of_a_change_once_committed(dsn, keyring):
    writer, reader = await PostgresIndexes.open(dsn, keyring), await PostgresIndexes.open(dsn, keyring)
    heard: asyncio.Queue[tuple[str, PackageCoordinate]] = asyncio.Queue()
    listener = await reader.catalog.listen(lambda *change: heard.put_nowait(change), lambda: None)
    try:
        coordinate = PackageCoordinate("npm", "@team", "announced")
        # A fetched asset's record is cache (no ``commit``): not announced; a publish is.
        await writer.catalog.update_package(
            "team-repo", PackageCoordinate("npm", "", "fetched"), lambda r: None
        )
        await writer.catalog.update_package("team-repo", coordinate, lambda record: None, commit=True)
        assert await asyncio.wait_for(heard.get(), 30) == ("team-repo", coordinate)
        assert await reader.catalog.package("team-repo", coordinate) is not None  # committed by then

        def refuse(record):
            raise ValueError("refused")

        with pytest.raises(ValueError):  # a change rolled back is not announced
            await writer.catalog.update_package(
                "team-repo", PackageCoordinate("npm", "", "never"), refuse, commit=True
            )
        await writer.catalog.delete_package("team-repo", coordinate)
        assert await asyncio.wait_for(heard.get(), 30) == ("team-repo", coordinate)
        assert heard.empty()
    finally:
        await listener.stop()
        await writer.close()
        await reader.close()


async def test_a_dropped_listening_connection_is_reported_and_reopened(dsn, keyring, pg_cluster):
    indexes = await PostgresIndexes.open(dsn, keyring)
    heard: asyncio.Queue[object] = asyncio.Queue()
    listener = await indexes.catalog.listen(
        lambda *change: heard.put_nowait(change), lambda: heard.put_nowait("lost")
    )
    try:
        admin = await asyncpg.connect(pg_cluster.dsn())
        try:  # what a database restart or a network cut does to the listening connection
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
            )
        finally:
            await admin.close()
        assert await asyncio.wait_for(heard.get(), 30) == "lost"
        assert await asyncio.wait_for(heard.get(), 30) == "lost"  # reconnected: what came between is lost
        coordinate = PackageCoordinate("pypi", "", "after-reconnect")
        await indexes.catalog.update_package("team-repo", coordinate, lambda record: None, commit=True)
        assert await asyncio.wait_for(heard.get(), 30) == ("team-repo", coordinate)
    finally:
        await listener.stop()
        await indexes.close()


async def test_concurrent_misses_on_several_daemons_run_the_work_once(dsn, keyring):
    daemons = [await PostgresIndexes.open(dsn, keyring) for _ in range(3)]
    committed: dict[str, bytes] = {}  # what the store would hold once the fetch committed
    runs: list[int] = []

    def locate_on(daemon: int):
        async def locate():  # what the asset locator runs: the catalog first, else a fetch
            if "asset" in committed:
                return committed["asset"]
            runs.append(daemon)
            await asyncio.sleep(0.2)  # the upstream fetch, while the others arrive
            committed["asset"] = b"content"
            return b"content"

        return locate

    try:
        results = await asyncio.gather(
            *(
                daemons[n % 3].leases.exclusive(("team-repo", "left-pad-1.0.0.tgz"), locate_on(n % 3))
                for n in range(30)
            )
        )
        assert results == [b"content"] * 30
        assert len(runs) == 1
        con = await asyncpg.connect(dsn)
        try:
            assert await con.fetchval("SELECT count(*) FROM lease") == 0  # released
        finally:
            await con.close()
    finally:
        for daemon in daemons:
            await daemon.close()


async def test_a_dead_daemon_s_lease_blocks_the_others_only_until_it_expires(dsn, keyring):
    dead = await PostgresIndexes.open(dsn, keyring, lease_seconds=0.5)
    alive = await PostgresIndexes.open(dsn, keyring)
    key = ("team-repo", "app-1.0.jar")
    try:
        # A daemon that took the lease and died: it never renews nor releases it.
        assert await dead.leases._acquire(dead.leases._name(key))

        async def fetch():
            return b"fetched by the daemon still alive"

        assert await alive.leases.exclusive(key, fetch) == b"fetched by the daemon still alive"
    finally:
        await dead.close()
        await alive.close()


async def test_a_long_fetch_keeps_its_lease(dsn, keyring):
    first = await PostgresIndexes.open(dsn, keyring, lease_seconds=0.3)
    second = await PostgresIndexes.open(dsn, keyring, lease_seconds=0.3)
    key = ("team-repo", "big.whl")
    committed: list[bytes] = []
    runs: list[str] = []

    def locate_on(name: str):
        async def locate():
            if committed:
                return committed[0]
            runs.append(name)
            await asyncio.sleep(1.0)  # longer than the lease: renewed meanwhile
            committed.append(b"wheel")
            return b"wheel"

        return locate

    try:
        first_call = asyncio.ensure_future(first.leases.exclusive(key, locate_on("first")))
        while not runs:  # the first holds the lease and works
            await asyncio.sleep(0.01)
        assert await second.leases.exclusive(key, locate_on("second")) == b"wheel"
        assert await first_call == b"wheel"
        assert runs == ["first"]
    finally:
        await first.close()
        await second.close()
