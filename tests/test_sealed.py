"""The sealed at-rest format: round trips, and every kind of damage or tampering is refused."""

from __future__ import annotations

import io
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.store.keyring import Key, KeyRing
from proxy.store.sealed import (
    CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    TAG_SIZE,
    ChunkCipher,
    Header,
    OpeningFile,
    SealError,
    SealingFile,
    SealReader,
    SealWriter,
    UnknownKeyError,
    seal,
    unseal,
)

KEY = Key.generate()
OTHER_KEY = Key.generate()
RING = KeyRing(KEY)

plaintexts = st.binary(max_size=300)
chunk_sizes = st.integers(min_value=1, max_value=64)
contexts = st.binary(max_size=8)


def seal_stream(plaintext: bytes, chunk_size: int, context: bytes = b"", key: Key = KEY, cuts=()) -> bytes:
    """Seal through the streaming writer, feeding it ``plaintext`` cut at ``cuts``."""
    writer = SealWriter(key, context, chunk_size)
    out = [writer.header()]
    start = 0
    for end in sorted({*cuts, len(plaintext)}):
        out.append(writer.update(plaintext[start:end]))
        start = end
    out.append(writer.finish())
    return b"".join(out)


def open_stream(sealed: bytes, context: bytes = b"", ring: KeyRing = RING, piece: int = 7) -> bytes:
    reader = SealReader(ring, context)
    out = [reader.update(sealed[i : i + piece]) for i in range(0, len(sealed), piece)]
    out.append(reader.finish())
    return b"".join(out)


def chunks_of(sealed: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    step = chunk_size + TAG_SIZE
    body = sealed[HEADER_SIZE:]
    return sealed[:HEADER_SIZE], [body[i : i + step] for i in range(0, len(body), step)]


@st.composite
def multi_chunk(draw: st.DrawFn) -> tuple[bytes, int]:
    """A plaintext and a chunk size that make at least three chunks."""
    chunk_size = draw(st.integers(min_value=1, max_value=16))
    plaintext = draw(st.binary(min_size=2 * chunk_size, max_size=6 * chunk_size))
    return plaintext, chunk_size


@given(plaintexts, chunk_sizes, contexts, st.lists(st.integers(0, 300)), st.integers(1, 100))
def test_round_trip_for_any_bytes_chunk_size_and_feeding(plaintext, chunk_size, context, cuts, piece):
    sealed = seal_stream(plaintext, chunk_size, context, cuts=[c for c in cuts if c < len(plaintext)])
    assert open_stream(sealed, context, piece=piece) == plaintext
    assert unseal(RING, sealed, context) == plaintext
    assert Header.parse(sealed).plaintext_size(len(sealed)) == len(plaintext)


@given(plaintexts, contexts)
def test_small_values_round_trip(plaintext, context):
    sealed = seal(RING, plaintext, context)
    assert unseal(RING, sealed, context) == plaintext
    assert len(sealed) == HEADER_SIZE + len(plaintext) + TAG_SIZE  # small values are one chunk


@pytest.mark.parametrize("size", [0, 1, 300, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5])
def test_a_value_sealed_whole_is_the_stream_a_writer_makes(size):
    plaintext = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    sealed = seal(RING, plaintext, b"ctx")
    assert open_stream(sealed, b"ctx", piece=100_000) == plaintext == unseal(RING, sealed, b"ctx")
    assert len(sealed) == len(seal_stream(plaintext, CHUNK_SIZE, b"ctx"))  # the same chunks
    assert unseal(RING, seal_stream(plaintext, CHUNK_SIZE, b"ctx"), b"ctx") == plaintext


def test_every_chunk_but_the_last_is_full_and_there_is_always_a_last():
    assert len(seal(RING, b"")) == HEADER_SIZE + TAG_SIZE
    sealed = seal_stream(b"x" * 12, 4)
    _, chunks = chunks_of(sealed, 4)
    assert [len(c) - TAG_SIZE for c in chunks] == [4, 4, 4, 0]


def test_the_same_plaintext_seals_differently_each_time():
    assert seal(RING, b"same") != seal(RING, b"same")


@settings(max_examples=300)
@given(st.data(), plaintexts, chunk_sizes)
def test_any_flipped_bit_fails(data, plaintext, chunk_size):
    sealed = bytearray(seal_stream(plaintext, chunk_size))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SealError):
        open_stream(bytes(sealed))
    with pytest.raises(SealError):  # opened whole: a single chunk is opened at once
        unseal(RING, bytes(sealed))


@given(plaintexts, chunk_sizes)
def test_every_truncation_fails(plaintext, chunk_size):
    sealed = seal_stream(plaintext, chunk_size)
    for length in range(len(sealed)):
        with pytest.raises(SealError):
            unseal(RING, sealed[:length])


@given(plaintexts, chunk_sizes, st.binary(min_size=1, max_size=40))
def test_trailing_bytes_fail(plaintext, chunk_size, extra):
    with pytest.raises(SealError):
        unseal(RING, seal_stream(plaintext, chunk_size) + extra)


@given(multi_chunk(), st.data())
def test_reordered_chunks_fail(case, data):
    plaintext, chunk_size = case
    header, chunks = chunks_of(seal_stream(plaintext, chunk_size), chunk_size)
    in_order = list(range(len(chunks)))
    order = data.draw(st.permutations(in_order).filter(lambda p: p != in_order))
    with pytest.raises(SealError):
        unseal(RING, header + b"".join(chunks[i] for i in order))


@given(multi_chunk(), st.data())
def test_duplicated_or_dropped_chunks_fail(case, data):
    plaintext, chunk_size = case
    header, chunks = chunks_of(seal_stream(plaintext, chunk_size), chunk_size)
    i = data.draw(st.integers(0, len(chunks) - 1))
    with pytest.raises(SealError):
        unseal(RING, header + b"".join(chunks[: i + 1] + chunks[i:]))
    with pytest.raises(SealError):
        unseal(RING, header + b"".join(chunks[:i] + chunks[i + 1 :]))


@given(multi_chunk(), st.data())
def test_chunks_or_header_spliced_from_another_blob_fail(case, data):
    plaintext, chunk_size = case
    header, chunks = chunks_of(seal_stream(plaintext, chunk_size), chunk_size)
    other_header, other_chunks = chunks_of(seal_stream(plaintext, chunk_size), chunk_size)
    i = data.draw(st.integers(0, len(chunks) - 1))
    spliced = [*chunks[:i], other_chunks[i], *chunks[i + 1 :]]
    with pytest.raises(SealError):
        unseal(RING, header + b"".join(spliced))
    with pytest.raises(SealError):
        unseal(RING, other_header + b"".join(chunks))


@given(multi_chunk(), st.data())
def test_no_plaintext_is_released_from_a_damaged_chunk(case, data):
    plaintext, chunk_size = case
    sealed = bytearray(seal_stream(plaintext, chunk_size))
    step = chunk_size + TAG_SIZE
    damaged = data.draw(st.integers(0, (len(sealed) - HEADER_SIZE) // step - 1))
    sealed[HEADER_SIZE + damaged * step] ^= 0x80
    reader = SealReader(RING)
    released = b""
    with pytest.raises(SealError):
        for i in range(len(sealed)):  # byte by byte: the most chances to release too early
            released += reader.update(sealed[i : i + 1])
        reader.finish()
    assert released == plaintext[: damaged * chunk_size]


def test_a_full_chunk_is_held_back_until_it_is_known_not_to_be_the_last():
    chunk_size = 8
    sealed = seal_stream(bytes(range(20)), chunk_size)
    reader = SealReader(RING)
    assert reader.update(sealed[: HEADER_SIZE + chunk_size + TAG_SIZE]) == b""
    assert reader.update(sealed[HEADER_SIZE + chunk_size + TAG_SIZE : -1]) == bytes(range(16))
    assert reader.update(sealed[-1:]) == b""
    assert reader.finish() == bytes(range(16, 20))
    # Cut right after a full chunk: that chunk was not sealed as the last, so it never comes out.
    cut = SealReader(RING)
    assert cut.update(sealed[: HEADER_SIZE + chunk_size + TAG_SIZE]) == b""
    with pytest.raises(SealError, match="authentication failed"):
        cut.finish()


def test_a_different_context_fails():
    sealed = seal(RING, b"value", context=b"entry-a")
    with pytest.raises(SealError):
        unseal(RING, sealed, context=b"entry-b")
    with pytest.raises(SealError):
        unseal(RING, sealed)


@given(plaintexts, chunk_sizes, st.binary(min_size=1, max_size=16))
def test_the_final_context_is_authenticated_by_the_last_chunk(plaintext, chunk_size, final_context):
    writer = SealWriter(KEY, b"ctx", chunk_size)
    sealed = writer.header() + writer.update(plaintext) + writer.finish(final_context)
    reader = SealReader(RING, b"ctx")
    assert reader.update(sealed) + reader.finish(final_context) == plaintext
    for wrong in (b"", final_context + b"x", final_context[:-1]):
        reader = SealReader(RING, b"ctx")
        with pytest.raises(SealError, match="last chunk"):
            reader.update(sealed)
            reader.finish(wrong)


def test_only_the_last_chunk_takes_a_final_context():
    cipher = ChunkCipher(KEY, Header(KEY.key_id, b"\0" * 16, 16))
    with pytest.raises(ValueError):
        cipher.seal(b"x" * 16, last=False, final_context=b"name")


def test_unknown_key_fails_naming_only_its_id():
    sealed = seal(KeyRing(OTHER_KEY), b"value")
    with pytest.raises(UnknownKeyError) as err:
        unseal(RING, sealed)
    assert err.value.key_id == OTHER_KEY.key_id
    assert OTHER_KEY.key_id.hex() in str(err.value)
    assert OTHER_KEY.secret.hex() not in str(err.value)


def test_a_header_naming_another_key_of_the_ring_fails():
    ring = KeyRing(KEY, [OTHER_KEY])
    sealed = bytearray(seal(ring, b"value"))
    key_id_at = sealed.index(KEY.key_id)
    sealed[key_id_at : key_id_at + 8] = OTHER_KEY.key_id
    with pytest.raises(SealError, match="authentication failed"):
        unseal(ring, bytes(sealed))


def test_an_old_key_in_the_ring_still_opens_what_it_sealed():
    sealed = seal_stream(b"sealed before the rotation" * 10, 16, key=OTHER_KEY)
    rotated = KeyRing(KEY, [OTHER_KEY])
    assert unseal(rotated, sealed) == b"sealed before the rotation" * 10
    assert Header.parse(seal(rotated, b"new")).key_id == KEY.key_id


@pytest.mark.parametrize("chunk_size", [0, MAX_CHUNK_SIZE + 1])
def test_bad_chunk_sizes_are_refused(chunk_size):
    with pytest.raises(ValueError):
        SealWriter(KEY, chunk_size=chunk_size)
    header = Header(KEY.key_id, b"\0" * 16, chunk_size).to_bytes()
    with pytest.raises(SealError, match="chunk size"):
        unseal(RING, header + b"\0" * TAG_SIZE)


def test_not_sealed_data_fails_clearly():
    with pytest.raises(SealError, match="magic"):
        unseal(RING, b"\0" * 100)
    sealed = bytearray(seal(RING, b"x"))
    sealed[len(b"CAPSEAL")] = 99
    with pytest.raises(SealError, match="version 99"):
        unseal(RING, bytes(sealed))


def test_streams_cannot_be_used_after_they_end():
    writer = SealWriter(KEY)
    writer.finish()
    with pytest.raises(ValueError):
        writer.update(b"more")
    with pytest.raises(ValueError):
        writer.finish()
    reader = SealReader(RING)
    with pytest.raises(SealError):
        reader.update(b"\0" * HEADER_SIZE)
    with pytest.raises(ValueError):
        reader.update(b"more")


def test_default_chunk_size_is_within_bounds():
    assert 64 * 1024 <= CHUNK_SIZE <= 1024 * 1024
    big = bytes(range(256)) * (CHUNK_SIZE // 256 * 3 + 1)
    assert unseal(RING, seal(RING, big)) == big


# -- files: a pickle sealed into a file and read back a chunk at a time (the warm state) ----------
def sealed_file(value: object, chunk_size: int, context: bytes = b"") -> bytes:
    out = io.BytesIO()
    sealing = SealingFile(KEY, out.write, context, chunk_size)
    pickle.dump(value, sealing, protocol=pickle.HIGHEST_PROTOCOL)
    sealing.finish()
    return out.getvalue()


@given(
    st.lists(st.one_of(st.binary(max_size=200), st.text(max_size=50), st.integers())), chunk_sizes, contexts
)
def test_a_pickle_round_trips_through_a_sealed_file(value, chunk_size, context):
    sealed = sealed_file(value, chunk_size, context)
    assert unseal(RING, sealed, context) == pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.load(OpeningFile(RING, io.BytesIO(sealed), context)) == value


@given(
    st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n")), chunk_sizes, st.lists(st.integers(0, 40))
)
def test_a_sealed_file_reads_in_any_pieces(plaintext, chunk_size, sizes):
    opened = OpeningFile(RING, io.BytesIO(seal_stream(plaintext, chunk_size)))
    pieces = []
    for size in sizes:
        if size % 3 == 0:
            line = opened.readline()
            assert line.find(b"\n") in (-1, len(line) - 1)  # up to the first line end, or to the end
            pieces.append(line)
        elif size % 3 == 1:
            pieces.append(opened.read(size))
        else:
            buffer = bytearray(size)
            pieces.append(bytes(buffer[: opened.readinto(buffer)]))
    pieces.append(opened.read())
    assert b"".join(pieces) == plaintext


@given(plaintexts, chunk_sizes, st.data())
def test_a_damaged_or_cut_sealed_file_fails_before_its_end_is_read(plaintext, chunk_size, data):
    sealed = bytearray(seal_stream(plaintext, chunk_size))
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
        sealed[bit // 8] ^= 1 << (bit % 8)
    else:
        del sealed[data.draw(st.integers(0, len(sealed) - 1)) :]
    opened = OpeningFile(RING, io.BytesIO(bytes(sealed)))
    with pytest.raises(SealError):
        opened.read()
