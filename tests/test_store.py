"""The store as the formats use it: catalog, ledger and eviction, gc, verify, and what is on disk."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from proxy.config.model import CacheConfig
from proxy.repository.packages import asset_record, published_version, record_fetched_asset, update_published
from proxy.store.catalog import (
    AssetRecord,
    OriginConfiguration,
    PackageCoordinate,
    PackageRecord,
    PackageVersionOrigin,
    PackageVersionRecord,
)
from proxy.store.index import FILE_NAME as INDEX_FILE
from proxy.store.index import Index, KnownNames
from proxy.store.keyring import KeyRing
from proxy.store.local import LocalCatalog
from proxy.store.metadata import CachedDocument
from proxy.store.singleflight import SingleFlight
from proxy.store.store import GROUP_SECONDS, Store, StoreUnavailable
from proxy.store.version import STORE_FORMAT

COORD = PackageCoordinate("npm", "", "left-pad")


def open_store(tmp_path: Path, max_size: int = 10**9) -> Store:
    return Store(tmp_path / "cache", KeyRing.load(tmp_path / "cache.key"), max_size)


async def put(store: Store, data: bytes, *, published: bool) -> str:
    async with store.ingest() as writer:
        writer.write(data)
        writer.finish()
        return (await writer.commit(published=published)).blob_id


async def read_all(store: Store, blob_id: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(blob_id)])


async def test_catalog_round_trip_and_listing(tmp_path):
    store = open_store(tmp_path)
    async with store.ingest() as w:
        w.write(b"tarball bytes")
        w.finish()
        bi = await w.commit(published=False)
    blob = bi.blob_id
    await record_fetched_asset(
        LocalCatalog(store), "dev", COORD, "1.0.0", asset_record("left-pad-1.0.0.tgz", bi), "public-npm"
    )
    record = store.catalog.package("dev", COORD)
    assert record is not None
    assert record.origin_configuration.publish == "BLOCK"  # first fetched from upstream
    version = record.versions["1.0.0"]
    assert version.origin.origin_type == "EXTERNAL" and version.origin.entry_point == "public-npm"
    assert (
        version.assets["left-pad-1.0.0.tgz"].hashes["SHA-256"] == hashlib.sha256(b"tarball bytes").hexdigest()
    )
    assert store.catalog.packages("dev") == [COORD]
    assert store.catalog.repositories() == ["dev"]
    assert await read_all(store, blob) == b"tarball bytes"
    store.close()


def test_a_package_record_survives_its_json_form():
    record = PackageRecord(PackageCoordinate("npm", "@scope", "lib"), OriginConfiguration("BLOCK", "ALLOW"))
    record.versions["1.0.0"] = PackageVersionRecord(
        "1.0.0",
        PackageVersionOrigin("INTERNAL", "dev"),
        assets={"lib-1.0.0.tgz": AssetRecord("lib-1.0.0.tgz", 3, "ab" * 32, {"SHA-256": "cd" * 32})},
        metadata={"dependencies": {"dep": "^1"}},
    )
    record.dist_tags["latest"] = "1.0.0"
    assert PackageRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_the_package_listing_holds_every_package_once_and_forgets_deleted_ones(tmp_path):
    store = open_store(tmp_path)
    catalog = store.catalog
    added = {PackageCoordinate("npm", f"@s{i % 3}" if i % 2 else "", f"pkg-{i}") for i in range(300)}
    for coordinate in added:
        catalog.update_package("dev", coordinate, lambda record: None)
        catalog.update_package("dev", coordinate, lambda record: None)  # an update lists nothing again
    catalog.update_package("other", COORD, lambda record: None)
    assert sorted(catalog.packages("dev"), key=repr) == sorted(added, key=repr)
    assert catalog.repositories() == ["dev", "other"]
    gone = next(iter(added))
    catalog.delete_package("dev", gone)
    assert set(catalog.packages("dev")) == added - {gone}
    assert catalog.packages("other") == [COORD]
    store.close()


async def test_same_content_from_many_writers_is_one_blob(tmp_path):
    store = open_store(tmp_path)
    data = os.urandom(600_000)
    ids = await asyncio.gather(*(put(store, data, published=False) for _ in range(16)))
    assert len(set(ids)) == 1
    assert list(store.blobs.ids()) == [ids[0]]
    store.close()


@pytest.mark.parametrize("published", [True, False])
async def test_only_a_publish_waits_for_the_disk(tmp_path, monkeypatch, published):
    """A publish is the only copy: its blob (content, then directory) and the index entries naming it
    are fsynced before it returns. A fetched asset can be fetched again and is authenticated when
    read, so neither is."""
    store = open_store(tmp_path)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    async with store.ingest() as writer:
        writer.write(os.urandom(100_000))
        writer.finish()
        asset = asset_record("left-pad-1.0.0.tgz", await writer.commit(published=published))
    if published:
        version = published_version("1.0.0", "local", [asset], {})
        await update_published(
            LocalCatalog(store), "local", COORD, lambda r: r.versions.update({"1.0.0": version})
        )
        logs = {str(tmp_path / "cache" / "index" / db / f"{INDEX_FILE}-wal") for db in ("catalog", "ledger")}
        assert any(path.endswith(".part") for path in synced)  # the blob's content, before its rename
        assert logs <= set(synced)
    else:
        await record_fetched_asset(LocalCatalog(store), "dev", COORD, "1.0.0", asset, "public-npm")
        assert synced == []
    assert store.has_blob(asset.blob_id)
    store.close()


async def test_eviction_is_lru_and_never_touches_published(tmp_path):
    store = open_store(tmp_path, max_size=250_000)
    published = await put(store, os.urandom(200_000), published=True)
    old = await put(store, os.urandom(100_000), published=False)
    newer = await put(store, os.urandom(100_000), published=False)
    assert [chunk async for chunk in store.read(old)]  # touch: old is now the most recently used
    newest = await put(store, os.urandom(100_000), published=False)
    await asyncio.to_thread(store.evict)
    remaining = set(store.blobs.ids())
    assert published in remaining
    assert newer not in remaining  # least recently used
    assert {old, newest} <= remaining
    assert store.ledger.cached_size <= 250_000
    store.close()


async def test_eviction_keeps_published_even_when_over_limit(tmp_path):
    store = open_store(tmp_path, max_size=0)
    published = [await put(store, os.urandom(50_000), published=True) for _ in range(3)]
    cached = await put(store, os.urandom(50_000), published=False)
    await asyncio.to_thread(store.evict)
    assert set(store.blobs.ids()) == set(published)
    assert cached not in set(store.blobs.ids())
    store.close()


async def test_gc_removes_only_unreferenced_blobs(tmp_path):
    store = open_store(tmp_path)
    async with store.ingest() as w:
        w.write(b"kept")
        w.finish()
        kept = await w.commit(published=True)
    await update_published(
        LocalCatalog(store),
        "local",
        COORD,
        lambda r: r.versions.update(
            {"1.0.0": published_version("1.0.0", "local", [asset_record("a.tgz", kept)], {})}
        ),
    )
    orphan = await put(store, b"orphan", published=False)
    small_blobs = store.blobs.small.path
    small_orphans = [await put(store, os.urandom(100_000), published=False) for _ in range(20)]
    grown = small_blobs.stat().st_size + Path(f"{small_blobs}-wal").stat().st_size
    report = store.gc()
    assert report.removed_blobs == 21 and report.kept_blobs == 1
    assert set(store.blobs.ids()) == {kept.blob_id}
    assert orphan not in set(store.blobs.ids()) and not any(map(store.has_blob, small_orphans))
    assert small_blobs.stat().st_size + Path(f"{small_blobs}-wal").stat().st_size < grown / 10  # compacted
    store.close()


async def test_verify_reports_broken_blob_and_missing_published_asset(tmp_path):
    store = open_store(tmp_path)
    async with store.ingest() as w:
        w.write(b"published content" * 1000)
        w.finish()
        info = await w.commit(published=True)
    await update_published(
        LocalCatalog(store),
        "local",
        COORD,
        lambda r: r.versions.update(
            {"1.0.0": published_version("1.0.0", "local", [asset_record("a.tgz", info)], {})}
        ),
    )
    assert store.verify().ok
    path = store.blobs.path(info.blob_id)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    report = store.verify()
    assert not report.ok
    assert any(info.blob_id in line for line in report.broken)
    assert not store.blobs.exists(info.blob_id)  # a broken blob is removed, never served
    assert any("published asset a.tgz" in line for line in store.verify().broken)
    store.close()


async def test_first_publish_sets_origin_controls(tmp_path):
    store = open_store(tmp_path)
    record = await update_published(LocalCatalog(store), "local", COORD, lambda r: None)
    assert (record.origin_configuration.publish, record.origin_configuration.upstream) == ("ALLOW", "BLOCK")
    store.close()


async def test_nothing_on_disk_reveals_what_is_cached(tmp_path):
    store = open_store(tmp_path)
    marker = b"UNIQUE-MARKER-" + os.urandom(8).hex().encode()
    content = marker * 5000
    async with store.ingest() as w:
        w.write(content)
        w.finish()
        info = await w.commit(published=False)
    coord = PackageCoordinate("npm", "secretscope", "secret-package-" + marker.decode())
    await record_fetched_asset(
        LocalCatalog(store), "dev", coord, "9.9.9", asset_record(marker.decode() + ".tgz", info), "up"
    )
    store.metadata.put(
        CachedDocument(200, b'{"name":"' + marker + b'"}', etag='"' + marker.decode() + '"'),
        "up",
        marker.decode(),
    )
    store.close()

    digests = [hashlib.new(a, content).digest() for a in ("sha256", "sha512", "sha1", "md5")]
    needles = [marker, b"secret-package", b"secretscope"]
    for d in digests:
        needles += [
            d,
            d.hex().encode(),
            d.hex().upper().encode(),
            base64.b64encode(d),
            base64.b64encode(d).rstrip(b"="),
        ]
    for path in (tmp_path / "cache").rglob("*"):
        needles_in_name = [
            n for n in needles if n.decode(errors="ignore") and n.decode(errors="ignore") in path.name
        ]
        assert not needles_in_name, path
        if path.is_file():
            data = path.read_bytes()
            found = [n[:20] for n in needles if n in data]
            assert not found, (path, found)


async def test_single_flight_runs_work_once_and_survives_a_cancelled_caller():
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    first = asyncio.create_task(flight.do("k", work))
    others = [asyncio.create_task(flight.do("k", work)) for _ in range(20)]
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await asyncio.gather(*others) == [42] * 20
    assert calls == 1
    assert len(flight) == 0


async def test_single_flight_failure_is_shared_then_forgotten():
    flight: SingleFlight[int] = SingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(*(flight.do("k", boom) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def ok() -> int:
        return 1

    assert await flight.do("k", ok) == 1


@pytest.mark.parametrize("published", [True, False])
async def test_ledger_survives_reopen(tmp_path, published):
    store = open_store(tmp_path)
    blob = await put(store, os.urandom(1000), published=published)
    store.close()
    again = open_store(tmp_path)
    assert again.ledger.entries()[blob].pinned is published
    assert again.ledger.cached_size == (0 if published else 1000)
    again.close()


def test_an_index_transaction_commits_whole_or_not_at_all(tmp_path):
    index = Index(tmp_path / "index")
    with index.transaction():
        index.set("a", b"1")
        with index.transaction():  # nested: one commit, at the end of the outer block
            index.set("b", b"2")
    with pytest.raises(RuntimeError), index.transaction():
        index.set("a", b"changed")
        index.delete("b")
        raise RuntimeError("refused half-way")
    assert sorted(index.items()) == [("a", b"1"), ("b", b"2")]
    index.close()


def committed(index: Index, copy_to: Path) -> list[tuple[str, bytes]]:
    """What a process opening the index's files now would read: only what was committed (the open
    index holds them in exclusive mode, so it reads a copy)."""
    copy_to.mkdir()
    for path in index.path.parent.glob(f"{INDEX_FILE}*"):
        (copy_to / path.name).write_bytes(path.read_bytes())
    copy = Index(copy_to)
    try:
        return sorted(copy.items())
    finally:
        copy.close()


def test_an_index_that_knows_its_names_misses_without_reading_sqlite(tmp_path):
    held, written, absent = "a" * 64, "c" * 64, "b" * 64
    index = Index(tmp_path / "index", known_names=True)
    index.set(held, b"1")
    index.close()
    index = Index(tmp_path / "index", known_names=True)  # the file's names, read when it opens
    statements: list[str] = []
    index._con.set_trace_callback(statements.append)
    assert index.get(absent) is None
    assert not index.has(absent)
    assert index.get_from(absent, lambda blob: blob.read()) is None
    assert statements == []
    assert index.get(held) == b"1"
    index.set(written, b"3")  # and the names written since
    assert index.get(written) == b"3"
    assert index.delete(held)
    statements.clear()
    assert index.get(held) is None  # a removed name is still looked up
    assert statements != []
    index.close()


def test_known_names_merged_into_the_sorted_array_are_all_still_known(monkeypatch):
    monkeypatch.setattr(KnownNames, "MERGE_AFTER", 4)
    names = [hashlib.sha256(b"%d" % n).hexdigest() for n in range(20)]  # as keyed names are
    known = KnownNames(sorted(names[:5]))  # as SQLite gives them
    for name in names[5:15]:
        known.add(name)
    assert all(known.may_hold(name) for name in names[:15])
    assert not any(known.may_hold(name) for name in names[15:])


def test_workers_indexes_do_not_keep_names_another_worker_may_have_written(tmp_path):
    one = Index(tmp_path / "index", shared=True, known_names=True)
    other = Index(tmp_path / "index", shared=True, known_names=True)
    one.set("d" * 64, b"4")
    assert other.get("d" * 64) == b"4"
    one.close()
    other.close()


def test_grouped_index_writes_are_read_at_once_and_committed_together(tmp_path):
    index = Index(tmp_path / "index")
    opened: list[int] = []
    index.group_commits(lambda: opened.append(len(opened)))
    index.set("a", b"1")
    index.set("b", b"2")
    with pytest.raises(RuntimeError), index.transaction():  # a block in a group is still whole or nothing
        index.set("a", b"changed")
        raise RuntimeError("refused half-way")
    assert sorted(index.items()) == [("a", b"1"), ("b", b"2")]
    assert opened == [0]  # one group, whose owner was told once
    assert committed(index, tmp_path / "before") == []  # a process dying now would lose the group

    index.commit()
    assert committed(index, tmp_path / "after") == [("a", b"1"), ("b", b"2")]
    with index.transaction():
        index.delete("a")
    assert opened == [0, 1]  # the next write opened the next group
    index.close()  # commits it
    again = Index(tmp_path / "index")
    assert again.items() == [("b", b"2")]
    again.close()


async def grouping_store_with_a_fetched_asset(tmp_path: Path) -> tuple[Store, AssetRecord]:
    """A store grouping its commits as the daemon's does, after it recorded a fetched asset."""
    store = open_store(tmp_path)
    store.group_commits(asyncio.get_running_loop())
    blob = await put(store, os.urandom(1000), published=False)
    fetched = AssetRecord("left-pad-1.0.0.tgz", 1000, blob, {})
    await record_fetched_asset(LocalCatalog(store), "dev", COORD, "1.0.0", fetched, "public-npm")
    return store, fetched


async def test_the_daemon_s_store_commits_a_group_soon_and_a_publish_at_once(tmp_path):
    store, fetched = await grouping_store_with_a_fetched_asset(tmp_path)
    catalog = store.catalog.index
    assert committed(catalog, tmp_path / "fetched") == []
    await asyncio.sleep(GROUP_SECONDS * 2)
    assert len(committed(catalog, tmp_path / "later")) == 3  # record, listing, repositories

    # A publish's change commits as it is made, not with a group that could fail after it was acknowledged.
    mine = PackageCoordinate("npm", "", "mine")
    version = published_version("1.0.0", "local", [fetched], {})
    store.catalog.update_package("local", mine, lambda r: r.versions.update({"1.0.0": version}), commit=True)
    assert len(committed(catalog, tmp_path / "published")) == 5
    # Content fetched a moment ago (a small blob in the open group), then published: committed with it.
    content = os.urandom(1000)
    small = await put(store, content, published=False)
    blob = fetched.blob_id
    assert committed(store.blobs.small, tmp_path / "fetched-small") == [(blob, store.blobs.small.get(blob))]
    assert await put(store, content, published=True) == small
    assert small in dict(committed(store.blobs.small, tmp_path / "published-small"))
    store.close()


async def test_the_group_timer_never_waits_on_the_loop_for_a_thread_that_holds_the_index(tmp_path):
    store, _ = await grouping_store_with_a_fetched_asset(tmp_path)
    catalog = store.catalog.index
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # a worker thread writing a large batch, or committing it
        with catalog.held_now() as holding:
            assert holding
            held.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        await asyncio.sleep(GROUP_SECONDS * 2)  # the timer fired meanwhile: it did not wait for the thread
        assert not release.is_set()
        assert catalog.end_group_unless_busy() is False
        assert committed(catalog, tmp_path / "held") == []
    finally:
        release.set()
        holder.join()
    await asyncio.sleep(GROUP_SECONDS * 2)  # and it tried again
    assert len(committed(catalog, tmp_path / "released")) == 3  # record, listing, repositories
    store.close()


def test_a_new_store_is_of_the_current_format(tmp_path):
    store = Store.open(CacheConfig(path=tmp_path / "cache", key_file=tmp_path / "cache.key"))
    store.close()
    assert (tmp_path / "cache" / "store-format").read_text() == f"{STORE_FORMAT}\n"
    Store.open(CacheConfig(path=tmp_path / "cache", key_file=tmp_path / "cache.key")).close()


@pytest.mark.parametrize("layout", ["another-version", "unversioned"])
def test_a_store_of_another_format_is_refused_in_one_line_and_left_alone(tmp_path, layout):
    cache = tmp_path / "cache"
    Store.open(CacheConfig(path=cache, key_file=tmp_path / "cache.key")).close()
    if layout == "unversioned":
        (cache / "store-format").unlink()
    else:
        (cache / "store-format").write_text(f"{STORE_FORMAT + 1}\n")
    before = sorted((p.relative_to(cache), p.stat().st_size) for p in cache.rglob("*"))
    with pytest.raises(StoreUnavailable) as refused:
        Store.open(CacheConfig(path=cache, key_file=tmp_path / "cache.key"))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"cache {cache}: holds ")
    assert f"reads store format {STORE_FORMAT} only: move the directory aside" in message
    assert sorted((p.relative_to(cache), p.stat().st_size) for p in cache.rglob("*")) == before


KILLED_WRITER = """
import asyncio, os, sys, time
from pathlib import Path
from proxy.repository.packages import asset_record, record_fetched_asset
from proxy.store.catalog import PackageCoordinate
from proxy.store.index import FILE_NAME as INDEX_FILE
from proxy.store.index import Index
from proxy.store.keyring import KeyRing
from proxy.store.ledger import LedgerEntry
from proxy.store.local import LocalCatalog
from proxy.store.store import Store

async def main():
    root = Path(sys.argv[1])
    store = Store(root / "cache", KeyRing.load(root / "keys" / "cache.key"), 10**12)
    async with store.ingest() as writer:
        for i in range(4096):  # 256 MiB, slowly enough to be killed in the middle
            writer.write(os.urandom(65536))
            if i == 64:
                print("writing", flush=True)
            time.sleep(0.002)
        writer.finish()
        info = await writer.commit(published=True)
    coord = PackageCoordinate("npm", "", "big")
    asset = asset_record("big-1.0.0.tgz", info)
    await record_fetched_asset(LocalCatalog(store), "local", coord, "1.0.0", asset, "up")
    print("committed", flush=True)

asyncio.run(main())
"""


def test_kill_during_large_write_leaves_nothing_visible(tmp_path):
    import subprocess
    import sys

    from tests.fakes.daemon import ROOT, run_command, write_config

    config = write_config(tmp_path, "[repository.local]\npublish = true\n")
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    proc.kill()
    proc.wait()
    assert any((tmp_path / "cache" / "tmp").iterdir())  # the temp file it was writing is there
    verify = run_command(config, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verified 0 blobs: ok" in verify.stdout
    store = Store(tmp_path / "cache", KeyRing.load(tmp_path / "keys" / "cache.key"), 10**9)
    assert store.catalog.package("local", PackageCoordinate("npm", "", "big")) is None
    assert list(store.blobs.ids()) == []
    assert not any((tmp_path / "cache" / "tmp").iterdir())  # leftovers cleaned on open
    store.close()
