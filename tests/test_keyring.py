"""The key ring: key files (creation, refusal of unsafe ones), key ids, keyed names across rotation."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from proxy.store.keyring import Key, KeyFileError, KeyRing


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key(path: Path, secret: bytes, file_mode: int = 0o600) -> Path:
    path.write_bytes(secret)
    path.chmod(file_mode)
    return path


@pytest.fixture
def no_umask():
    # With no umask at all, only the modes the code asks for protect the files.
    old = os.umask(0)
    yield
    os.umask(old)


def test_creates_missing_key_file_privately(tmp_path, no_umask):
    key_file = tmp_path / "a" / "b" / "cache.key"
    ring = KeyRing.load(key_file)
    assert key_file.read_bytes() == ring.current.secret
    assert len(ring.current.secret) == 32
    assert len(ring.current.key_id) == 8
    assert mode(key_file) == 0o600
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["cache.key"]  # no temp file left


def test_reload_gives_the_same_key(tmp_path):
    key_file = tmp_path / "cache.key"
    first = KeyRing.load(key_file)
    again = KeyRing.load(key_file, create=False)
    assert again.current == first.current
    assert again.keyed_name("blob", b"x") == first.keyed_name("blob", b"x")


def test_concurrent_first_starts_agree_on_one_key(tmp_path):
    key_file = tmp_path / "keys" / "cache.key"
    barrier = threading.Barrier(8)
    rings: list[KeyRing] = []

    def load() -> None:
        barrier.wait()
        rings.append(KeyRing.load(key_file))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({ring.current.key_id for ring in rings}) == 1
    assert key_file.read_bytes() == rings[0].current.secret
    assert list((tmp_path / "keys").iterdir()) == [key_file]


def test_missing_without_create_is_refused(tmp_path):
    key_file = tmp_path / "cache.key"
    with pytest.raises(KeyFileError, match="does not exist") as err:
        KeyRing.load(key_file, create=False)
    assert str(key_file) in str(err.value)
    assert not key_file.exists()


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o660, 0o606, 0o644])
def test_group_or_other_access_is_refused(tmp_path, file_mode):
    secret = os.urandom(32)
    key_file = write_key(tmp_path / "cache.key", secret, file_mode)
    with pytest.raises(KeyFileError, match="chmod 600") as err:
        KeyRing.load(key_file)
    message = str(err.value)
    assert str(key_file) in message
    assert secret.hex() not in message and repr(secret) not in message


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_size_is_refused_and_not_replaced(tmp_path, size):
    content = os.urandom(size)
    key_file = write_key(tmp_path / "cache.key", content)
    with pytest.raises(KeyFileError, match="32 bytes") as err:
        KeyRing.load(key_file)
    assert str(key_file) in str(err.value)
    assert key_file.read_bytes() == content


def test_directory_is_refused(tmp_path):
    key_file = tmp_path / "cache.key"
    key_file.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        KeyRing.load(key_file)


def test_fifo_is_refused_without_hanging(tmp_path):
    key_file = tmp_path / "cache.key"
    os.mkfifo(key_file, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        KeyRing.load(key_file)


def test_old_keys_are_loaded_after_the_current(tmp_path):
    old_secret, older_secret = os.urandom(32), os.urandom(32)
    old = write_key(tmp_path / "old.key", old_secret)
    older = write_key(tmp_path / "older.key", older_secret)
    ring = KeyRing.load(tmp_path / "cache.key", [old, older])
    assert [key.secret for key in ring.keys[1:]] == [old_secret, older_secret]
    assert ring.keys[0] is ring.current
    for key in ring.keys:
        assert ring.get(key.key_id) is key
    with pytest.raises(KeyError):
        ring.get(b"\0" * 8)


def test_old_key_files_get_the_same_checks_and_are_never_created(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        KeyRing.load(tmp_path / "cache.key", [tmp_path / "old.key"])
    assert not (tmp_path / "old.key").exists()
    loose = write_key(tmp_path / "loose.key", os.urandom(32), 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        KeyRing.load(tmp_path / "cache.key", [loose])


def test_key_id_is_derived_from_the_secret():
    secret = os.urandom(32)
    key = Key.from_secret(secret)
    assert key.key_id == Key.from_secret(secret).key_id
    assert key.key_id not in secret
    assert Key.generate().key_id != key.key_id
    with pytest.raises(ValueError):
        Key.from_secret(b"short")


def test_reprs_hide_the_secret():
    key = Key.generate()
    ring = KeyRing(key)
    for text in (repr(key), str(key), repr(ring)):
        assert key.secret.hex() not in text
        assert repr(key.secret) not in text
    assert key.key_id.hex() in repr(ring)


def test_keyed_names_depend_on_key_purpose_and_data():
    ring = KeyRing(Key.generate())
    name = ring.keyed_name("blob", b"data")
    assert len(name) == 64 and int(name, 16) >= 0
    assert ring.keyed_name("blob", b"data") == name
    assert ring.keyed_name("catalog", b"data") != name
    assert ring.keyed_name("blob", b"other") != name
    assert KeyRing(Key.generate()).keyed_name("blob", b"data") != name


def test_keyed_names_survive_rotation():
    old = Key.generate()
    before = KeyRing(old).keyed_name("catalog", b"entry")
    rotated = KeyRing(Key.generate(), [old])
    names = rotated.keyed_names("catalog", b"entry")
    assert names == [rotated.keyed_name("catalog", b"entry"), before]
    assert names[0] != before


def test_a_key_listed_twice_counts_once():
    key = Key.generate()
    ring = KeyRing(key, [key])
    assert ring.keys == (key,)
    assert len(ring.keyed_names("blob", b"x")) == 1
