"""The blob store: round trips, dedup, corruption handling, crash safety and no plaintext on disk."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from proxy.store.blobs import BlobCorrupt, BlobKeyUnknown, BlobMissing, BlobStore
from proxy.store.index import IndexInUse
from proxy.store.keyring import Key, KeyRing

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1024  # small chunks, so modest contents span many of them


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "cache.key"
    KeyRing.load(path)
    return path


@pytest.fixture
def store(tmp_path: Path, key_file: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache", KeyRing.load(key_file), chunk_size=CHUNK)


def put(store: BlobStore, content: bytes, piece: int = 1000) -> str:
    with store.writer() as writer:
        for i in range(0, len(content), piece):
            writer.write(content[i : i + piece])
        return writer.commit().blob_id


@pytest.fixture(params=["whole", "chunked"])
def either_read(request: pytest.FixtureRequest, store: BlobStore) -> BlobStore:
    """The store, reading content as one piece (up to ``whole_blob_bytes``) or chunk by chunk."""
    if request.param == "chunked":
        store.whole_blob_bytes = -1
    return store


def read(store: BlobStore, blob_id: str, **kwargs: bool) -> bytes:
    with store.reader(blob_id, **kwargs) as reader:
        return b"".join(reader)


def files_under(directory: Path) -> list[Path]:
    """Files, but not those of the small blobs' index (there from the start)."""
    return sorted(p for p in directory.rglob("*") if not p.is_dir() and "small" not in p.parts)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 10 * CHUNK + 17])
def test_round_trip(either_read, size):
    store = either_read
    content = os.urandom(size)
    with store.writer() as writer:
        for i in range(0, size, 333):
            writer.write(content[i : i + 333])
        info = writer.commit()
    assert info.size == size
    assert info.sha256 == hashlib.sha256(content).hexdigest()
    assert info.sha512 == hashlib.sha512(content).hexdigest()
    assert info.sha1 == hashlib.sha1(content).hexdigest()
    assert info.md5 == hashlib.md5(content).hexdigest()
    assert info.blob_id == store.keyring.keyed_name("blob", hashlib.sha256(content).digest())
    assert info.blob_id != info.sha256
    assert store.exists(info.blob_id)
    assert list(store.ids()) == [info.blob_id]
    with store.reader(info.blob_id) as reader:
        assert reader.size == size
        pieces = list(reader)
    assert b"".join(pieces) == content
    whole = store.whole_blob_bytes >= size
    assert len(pieces) == (1 if whole else -(-size // CHUNK)) if size else pieces == []
    assert store.disk_size(info.blob_id) == store.path(info.blob_id).stat().st_size > size
    assert store.verify(info.blob_id) is None
    assert files_under(store.root / "tmp") == []


def test_readers_of_one_thread_read_chunk_by_chunk_in_turn_each_get_their_content(either_read):
    # Every reader of a thread reads its ciphertext into the same buffer (proxy.store.blobs): each chunk
    # must be decrypted before its reader yields.
    store = either_read
    contents = [os.urandom(10 * CHUNK + 17) for _ in range(3)]
    readers = [store.reader(put(store, content)) for content in contents]
    streams = [iter(reader) for reader in readers]
    received: list[list[bytes]] = [[], [], []]
    for _ in range(11):
        for stream, pieces in zip(streams, received, strict=True):
            pieces.append(next(stream, b""))
    for reader in readers:
        reader.close()
    assert [b"".join(pieces) for pieces in received] == contents


def test_modes_are_private(store, tmp_path):
    blob_id = put(store, b"private")
    assert stat.S_IMODE(store.path(blob_id).stat().st_mode) == 0o600
    for directory in (store.root / "blobs", store.root / "tmp", store.path(blob_id).parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_finish_gives_digests_before_commit_and_abort_leaves_nothing(store):
    with store.writer() as writer:
        writer.write(b"declared digest mismatch")
        info = writer.finish()
        assert info.sha256 == hashlib.sha256(b"declared digest mismatch").hexdigest()
        assert writer.finish() == info
        assert not store.exists(info.blob_id)
        writer.abort()
        with pytest.raises(ValueError, match="closed"):
            writer.write(b"more")
    assert files_under(store.root) == []


def test_an_error_inside_the_with_block_aborts(store):
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"half an asset")
        raise RuntimeError("upstream went away")
    assert files_under(store.root) == []


def test_commit_is_final(store):
    writer = store.writer()
    writer.write(b"once")
    info = writer.commit()
    assert writer.commit() == info
    writer.abort()  # no effect after commit
    assert read(store, info.blob_id) == b"once"
    with pytest.raises(ValueError):
        writer.write(b"again")


def test_identical_content_is_stored_once(store):
    content = os.urandom(5000)
    assert put(store, content) == put(store, content, piece=77)
    assert len(files_under(store.root / "blobs")) == 1
    assert files_under(store.root / "tmp") == []


def test_concurrent_writers_of_the_same_content_make_one_blob(store):
    content = os.urandom(50 * CHUNK)
    writers = 8
    barrier = threading.Barrier(writers)
    ids: list[str] = []

    def write() -> None:
        with store.writer() as writer:
            barrier.wait()
            for i in range(0, len(content), 4096):
                writer.write(content[i : i + 4096])
            writer.finish()
            barrier.wait()  # everyone commits at once: the link race itself
            ids.append(writer.commit().blob_id)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == writers and len(set(ids)) == 1
    assert files_under(store.root / "blobs") == [store.path(ids[0])]
    assert files_under(store.root / "tmp") == []
    assert read(store, ids[0]) == content


def test_a_tampered_blob_is_corrupt_removed_and_logged_by_id(either_read, caplog):
    store = either_read
    content = b"MARKER-tamper " * 500
    blob_id = put(store, content)
    flip_byte(store.path(blob_id), 3 * CHUNK)
    received = b""
    with caplog.at_level(logging.WARNING), pytest.raises(BlobCorrupt) as err, store.reader(blob_id) as reader:
        for chunk in reader:
            received += chunk
    assert err.value.blob_id == blob_id
    # Chunk by chunk, what authenticated before the broken chunk went out; as one piece, nothing did.
    assert len(received) < 3 * CHUNK and content.startswith(received)
    assert received if store.whole_blob_bytes < 0 else received == b""
    assert not store.exists(blob_id)
    assert blob_id in caplog.text and "MARKER" not in caplog.text
    assert put(store, content) == blob_id  # the next fetch stores it again
    assert read(store, blob_id) == content


def test_a_truncated_blob_is_refused_before_reading(store):
    blob_id = put(store, os.urandom(3 * CHUNK))
    path = store.path(blob_id)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size - 5)
    with pytest.raises(BlobCorrupt, match="truncated"):
        store.reader(blob_id)
    assert not store.exists(blob_id)


def test_verify_reports_and_removes_bad_blobs(store):
    good = put(store, b"good")
    bad = put(store, b"bad" * 1000)
    flip_byte(store.path(bad), store.path(bad).stat().st_size - 1)
    assert store.verify(good) is None
    assert "authentication failed" in store.verify(bad)
    assert not store.exists(bad)
    assert store.verify(bad) == "missing"
    assert store.exists(good)


@pytest.mark.parametrize("size", [10, 5 * CHUNK])
def test_a_valid_blob_in_another_blobs_place_fails(either_read, size):
    store = either_read
    first, second = put(store, b"1" * size), put(store, b"2" * size)
    third = put(store, b"3" * size)
    os.replace(store.path(first), store.path(second))
    with pytest.raises(BlobCorrupt, match="last chunk"):
        read(store, second)  # the last chunk authenticates the blob's id
    assert not store.exists(second)
    os.replace(store.path(third), store.path(second))
    assert store.verify(second) is not None
    assert not store.exists(second)


def test_a_blob_under_an_unknown_key_is_reported_but_kept(tmp_path, store):
    blob_id = put(store, b"sealed under the old key")
    store.close()
    stranger = BlobStore(store.root, KeyRing(Key.generate()))
    with pytest.raises(BlobKeyUnknown, match="not in the key ring"):
        stranger.reader(blob_id)
    assert "not in the key ring" in stranger.verify(blob_id)
    assert stranger.exists(blob_id)
    stranger.close()
    again = BlobStore(store.root, store.keyring)
    assert read(again, blob_id) == b"sealed under the old key"


def test_content_stored_under_an_old_key_is_found_after_rotation(store):
    content = b"before the rotation"
    old_id = put(store, content)
    store.close()
    rotated = BlobStore(store.root, KeyRing(Key.generate(), store.keyring.keys), chunk_size=CHUNK)
    assert put(rotated, content) == old_id
    assert read(rotated, old_id, check_identity=True) == content
    assert rotated.verify(old_id) is None
    new_id = put(rotated, b"after the rotation")
    assert new_id == rotated.keyring.keyed_name("blob", hashlib.sha256(b"after the rotation").digest())
    assert len(files_under(store.root / "blobs")) == 2


def test_missing_and_deleted_blobs(store):
    blob_id = put(store, b"short-lived")
    assert store.delete(blob_id) is True
    assert store.delete(blob_id) is False
    assert not store.exists(blob_id)
    with pytest.raises(BlobMissing):
        store.reader(blob_id)
    with pytest.raises(BlobMissing):
        store.disk_size(blob_id)
    assert list(store.ids()) == []


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "ab", "A" * 64, "0" * 63, "0" * 65])
def test_blob_ids_are_checked(store, bad_id):
    with pytest.raises(ValueError):
        store.path(bad_id)


def test_a_root_in_use_is_refused_to_a_second_store_and_its_writes_go_on(store):
    content = b"in progress while another process tries to open the store" * (store.chunk_size // 40)
    with store.writer() as live:
        live.write(content)  # more than a chunk: the temp file exists
        with pytest.raises(IndexInUse):
            BlobStore(store.root, store.keyring)
        assert len(files_under(store.root / "tmp")) == 1
        blob_id = live.commit().blob_id
    assert read(store, blob_id) == content


CHILD = """
import sys, time
from pathlib import Path
from proxy.store.blobs import BlobStore
from proxy.store.keyring import KeyRing

store = BlobStore(Path(sys.argv[1]), KeyRing.load(Path(sys.argv[2]), create=False))
block = bytes(range(256)) * 4096
if sys.argv[3] == "one-large":
    with store.writer() as writer:
        for i in range(64):  # 64 MiB, slowly
            writer.write(block)
            if i == 2:
                print("writing", flush=True)
            time.sleep(0.05)
        writer.commit()
else:
    for i in range(10_000):  # many blobs of varied sizes, as fast as possible
        with store.writer() as writer:
            writer.write(block[: (i * 7919) % len(block)] + i.to_bytes(4, "big"))
            writer.commit()
        print("committed", flush=True)
"""


def run_child_until(store: BlobStore, key_file: Path, mode: str, line: str, lines: int) -> None:
    """Close ``store`` and kill a child writing into its root once it printed ``line`` ``lines`` times."""
    store.close()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.root), str(key_file), mode],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        for _ in range(lines):
            assert child.stdout.readline().decode().strip() == line
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL


def reopen(store: BlobStore) -> BlobStore:
    return BlobStore(store.root, store.keyring, chunk_size=store.chunk_size)


def test_a_writer_killed_mid_write_leaves_no_blob(store, key_file):
    dead = store.root / "tmp" / "left-by-a-killed-writer.part"
    store.close()
    dead.write_bytes(b"partial")  # the child, opening the store, removes it
    run_child_until(store, key_file, "one-large", "writing", 1)
    assert files_under(store.root / "blobs") == []
    assert not dead.exists()
    assert len(files_under(store.root / "tmp")) == 1  # the killed child's
    assert list(reopen(store).ids()) == []
    assert files_under(store.root / "tmp") == []


def test_blobs_visible_after_a_kill_are_all_complete(store, key_file):
    run_child_until(store, key_file, "many", "committed", 40)
    reopened = reopen(store)
    blob_ids = list(reopened.ids())
    assert len(blob_ids) >= 40
    assert [reopened.verify(blob_id) for blob_id in blob_ids] == [None] * len(blob_ids)


def test_nothing_on_disk_reveals_the_content_or_its_digests(store):
    marker = f"UNIQUE-MARKER-{uuid.uuid4().hex}".encode()
    content = (marker + b" some package contents ") * 2000
    digests = [hashlib.new(name, content).digest() for name in ("sha256", "sha512", "sha1", "md5")]
    needles = [marker, marker.lower(), marker.hex().encode()]
    for digest in digests:
        hex_digest = digest.hex()
        needles += [digest, hex_digest.encode(), hex_digest.upper().encode()]
        needles += [base64.b64encode(digest).rstrip(b"="), base64.urlsafe_b64encode(digest).rstrip(b"=")]

    def assert_hidden() -> None:
        haystack = [bytes(path) for path in store.root.rglob("*")]
        haystack += [path.read_bytes() for path in store.root.rglob("*") if path.is_file()]
        for needle in needles:
            assert not any(needle in hay for hay in haystack)

    with store.writer() as writer:
        writer.write(content)
        assert_hidden()  # the temp file is sealed too
        writer.commit()
    assert len(files_under(store.root / "blobs")) == 1
    small = marker + b" a small fetched package"
    needles.append(hashlib.sha256(small).hexdigest().encode())
    with store.writer() as writer:
        writer.write(small)
        writer.commit(durable=False)
    store.small.commit()
    assert_hidden()


def test_content_smaller_than_a_chunk_touches_the_disk_only_at_commit(store):
    with store.writer() as writer:
        writer.write(b"a small package")
        info = writer.finish()
        assert files_under(store.root / "tmp") == [] and not store.exists(info.blob_id)
        first = writer.commit()
    with store.writer() as again:
        again.write(b"a small package")
        assert again.commit() == first  # stored already: nothing written
    assert files_under(store.root / "tmp") == [] and list(store.ids()) == [first.blob_id]
    assert read(store, first.blob_id) == b"a small package"


def test_small_fetched_content_is_a_row_and_published_content_a_file(store):
    """Fetched content up to SMALL_BLOB_BYTES is kept in the small blobs' index, not a file of its own;
    what must survive a power failure (published, durable) is always a file. Readers see no difference."""
    with store.writer() as writer:
        writer.write(b"a small fetched package")
        fetched = writer.commit(durable=False)
    assert files_under(store.root / "blobs") == []
    assert store.exists(fetched.blob_id) and list(store.ids()) == [fetched.blob_id]
    assert read(store, fetched.blob_id) == b"a small fetched package"
    assert store.disk_size(fetched.blob_id) > fetched.size
    assert store.verify(fetched.blob_id) is None
    with store.writer() as again:
        again.write(b"a small fetched package")
        assert again.commit() == fetched  # published later: the row is the blob (the store syncs it)
    with store.writer() as writer:
        writer.write(b"a small published package")
        published = writer.commit()
    assert files_under(store.root / "blobs") == [store.path(published.blob_id)]
    assert store.delete(fetched.blob_id) and not store.exists(fetched.blob_id)
    assert not store.delete(fetched.blob_id)
    with pytest.raises(BlobMissing):
        store.reader(fetched.blob_id)


def test_a_blob_read_from_its_file_is_read_again_without_the_small_index_until_it_moves(store, monkeypatch):
    with store.writer() as writer:
        writer.write(b"a package published, then fetched again")
        published = writer.commit()  # durable: a file
    asked: list[str] = []
    small_get = store.small.get
    monkeypatch.setattr(store.small, "get", lambda name: asked.append(name) or small_get(name))
    assert read(store, published.blob_id) == b"a package published, then fetched again"
    assert read(store, published.blob_id) == b"a package published, then fetched again"
    assert asked == [published.blob_id]  # the second read opened the file at once
    # Evicted, then fetched again as small content: a row now; the file is not there to open.
    assert store.delete(published.blob_id)
    with store.writer() as writer:
        writer.write(b"a package published, then fetched again")
        assert writer.commit(durable=False) == published
    assert files_under(store.root / "blobs") == []
    assert read(store, published.blob_id) == b"a package published, then fetched again"
    assert store.delete(published.blob_id)
    with pytest.raises(BlobMissing):
        store.reader(published.blob_id)


def test_a_small_blob_that_fails_authentication_is_removed(store, caplog):
    with store.writer() as writer:
        writer.write(b"a small fetched package")
        info = writer.commit(durable=False)
    sealed = bytearray(store.small.get(info.blob_id) or b"")
    sealed[-1] ^= 1
    store.small.set(info.blob_id, bytes(sealed))
    with caplog.at_level(logging.WARNING), pytest.raises(BlobCorrupt):
        read(store, info.blob_id)
    assert not store.exists(info.blob_id)
    assert info.blob_id in caplog.text and "corrupt" in caplog.text
