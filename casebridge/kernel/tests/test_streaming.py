"""The streaming format: round trips, Tink interoperability both ways, tampering, range reads."""

from __future__ import annotations

import io
import os
import uuid

import pytest
import tink
from tink import cleartext_keyset_handle, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from casebridge.kernel.crypto.streaming import (
    DEFAULT_LAYOUT,
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    CiphertextIntegrityError,
    DecryptingReader,
    EncryptingWriter,
    Layout,
    associated_data,
    decrypt_range,
    decrypt_stream,
    encrypt_chunks,
)

KEY = bytes(range(32))
AAD = associated_data(uuid.UUID("12345678-1234-5678-1234-567812345678"), 1)
SMALL = Layout(segment_size=256)  # many segments from a few KiB keeps tampering tests fast
FIRST = DEFAULT_LAYOUT.first_plaintext_size
REST = DEFAULT_LAYOUT.plaintext_segment_size


def encrypt(plaintext: bytes, layout: Layout = DEFAULT_LAYOUT, key: bytes = KEY, aad: bytes = AAD) -> bytes:
    sink = io.BytesIO()
    with EncryptingWriter(sink, key, aad, layout) as writer:
        # Odd chunk sizes exercise buffering across segment boundaries.
        for i in range(0, len(plaintext), 70_001):
            writer.write(plaintext[i : i + 70_001])
    return sink.getvalue()


def decrypt(ciphertext: bytes, layout: Layout = DEFAULT_LAYOUT, key: bytes = KEY, aad: bytes = AAD) -> bytes:
    return b"".join(bytes(s) for s in decrypt_stream(io.BytesIO(ciphertext), key, aad, layout))


def ranged(ciphertext: bytes, start: int, end: int | None, layout: Layout = DEFAULT_LAYOUT) -> tuple[bytes, list]:
    calls: list[tuple[int, int]] = []

    def read_range(lo: int, hi: int) -> bytes:
        calls.append((lo, hi))
        return ciphertext[lo:hi]

    out = b"".join(bytes(s) for s in decrypt_range(read_range, len(ciphertext), KEY, AAD, start, end, layout))
    return out, calls


def tink_primitive(key: bytes, segment_size: int = SEGMENT_SIZE) -> streaming_aead.StreamingAead:
    """A Tink StreamingAead over the same raw key material (AES256_GCM_HKDF_1MB parameters)."""
    streaming_aead.register()
    proto_key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0,
        key_value=key,
        params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
            ciphertext_segment_size=segment_size, derived_key_size=32, hkdf_hash_type=common_pb2.SHA256
        ),
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=7,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
                    value=proto_key.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=7,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    handle: tink.KeysetHandle = cleartext_keyset_handle.from_keyset(keyset)
    return handle.primitive(streaming_aead.StreamingAead)


class _KeepOpen(io.BytesIO):
    def close(self) -> None:  # Tink closes the destination when its stream closes
        pass


def tink_encrypt(plaintext: bytes, segment_size: int = SEGMENT_SIZE) -> bytes:
    dest = _KeepOpen()
    with tink_primitive(KEY, segment_size).new_encrypting_stream(dest, AAD) as stream:
        stream.write(plaintext)
    return dest.getvalue()


def tink_decrypt(ciphertext: bytes, segment_size: int = SEGMENT_SIZE) -> bytes:
    with tink_primitive(KEY, segment_size).new_decrypting_stream(io.BytesIO(ciphertext), AAD) as stream:
        return stream.read()


BOUNDARY_SIZES = [0, 1, FIRST - 1, FIRST, FIRST + 1, FIRST + REST - 1, FIRST + REST, FIRST + REST + 1]


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_it_round_trips_at_segment_boundaries(size: int) -> None:
    plaintext = os.urandom(size)
    ciphertext = encrypt(plaintext)
    assert len(ciphertext) == DEFAULT_LAYOUT.ciphertext_size(size)
    assert DEFAULT_LAYOUT.plaintext_size(len(ciphertext)) == size
    assert decrypt(ciphertext) == plaintext


def test_empty_content_is_one_empty_final_segment() -> None:
    assert len(encrypt(b"")) == HEADER_SIZE + TAG_SIZE


def test_it_round_trips_many_small_segments_and_chunk_shapes() -> None:
    plaintext = os.urandom(10_000)
    chunks = [plaintext[:1], plaintext[1:500], plaintext[500:9000], plaintext[9000:]]
    ciphertext = b"".join(encrypt_chunks(chunks, KEY, AAD, SMALL))
    assert SMALL.segments_in(len(ciphertext)) > 30
    assert decrypt(ciphertext, SMALL) == plaintext


def test_decrypting_reader_reads_like_a_file() -> None:
    plaintext = os.urandom(5000)
    reader = io.BufferedReader(DecryptingReader(io.BytesIO(encrypt(plaintext, SMALL)), KEY, AAD, SMALL))
    assert reader.read(10) + reader.read() == plaintext


def test_writer_left_unclosed_after_error_leaves_an_unreadable_stream() -> None:
    sink = io.BytesIO()
    with pytest.raises(RuntimeError), EncryptingWriter(sink, KEY, AAD, SMALL) as writer:
        writer.write(os.urandom(1000))
        raise RuntimeError("upload dropped")
    with pytest.raises(CiphertextIntegrityError):
        decrypt(sink.getvalue(), SMALL)


# -- Tink interoperability -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, FIRST, FIRST + 1, FIRST + REST + 1])
def test_tink_decrypts_what_the_vault_wrote(size: int) -> None:
    plaintext = os.urandom(size)
    assert tink_decrypt(encrypt(plaintext)) == plaintext


@pytest.mark.parametrize("size", [0, 1, FIRST, FIRST + 1, FIRST + REST + 1])
def test_vault_decrypts_what_tink_wrote(size: int) -> None:
    plaintext = os.urandom(size)
    ciphertext = tink_encrypt(plaintext)
    assert len(ciphertext) == DEFAULT_LAYOUT.ciphertext_size(size)
    assert decrypt(ciphertext) == plaintext
    assert ranged(ciphertext, 0, None)[0] == plaintext


def test_interoperates_with_tink_on_small_segments_too() -> None:
    plaintext = os.urandom(3000)
    assert tink_decrypt(encrypt(plaintext, SMALL), 256) == plaintext
    assert decrypt(tink_encrypt(plaintext, 256), SMALL) == plaintext


def test_tink_rejects_vault_ciphertext_under_other_associated_data() -> None:
    ciphertext = encrypt(b"x" * 100, aad=associated_data("other", 1))
    with pytest.raises(tink.TinkError):
        tink_decrypt(ciphertext)


# -- tampering ------------------------------------------------------------------------------------


def segments(ciphertext: bytes, layout: Layout = SMALL) -> list[bytes]:
    count = layout.segments_in(len(ciphertext))
    return [ciphertext[slice(*layout.ciphertext_span(i, len(ciphertext)))] for i in range(count)]


def assemble(header: bytes, parts: list[bytes]) -> bytes:
    return header + b"".join(parts)


@pytest.fixture
def sample() -> tuple[bytes, bytes]:
    plaintext = os.urandom(2000)  # 9 segments of 256 bytes
    return plaintext, encrypt(plaintext, SMALL)


def assert_rejected(ciphertext: bytes, layout: Layout = SMALL) -> list[bytes]:
    """Fails unless both readers raise; returns what the sequential reader yielded before failing."""
    yielded: list[bytes] = []
    with pytest.raises(CiphertextIntegrityError):
        for piece in decrypt_stream(io.BytesIO(ciphertext), KEY, AAD, layout):
            yielded.append(bytes(piece))
    with pytest.raises(CiphertextIntegrityError):
        ranged(ciphertext, 0, None, layout)
    return yielded


def test_it_rejects_truncation_at_a_segment_boundary(sample: tuple[bytes, bytes]) -> None:
    plaintext, ciphertext = sample
    parts = segments(ciphertext)
    yielded = assert_rejected(assemble(ciphertext[:HEADER_SIZE], parts[:-1]))
    # Segments before the cut were genuine and may have been streamed; the cut one never is.
    assert b"".join(yielded) == plaintext[: len(b"".join(yielded))]
    assert len(yielded) == len(parts) - 2


@pytest.mark.parametrize("cut", [1, 17, HEADER_SIZE, HEADER_SIZE + 5, 600])
def test_it_rejects_truncation_anywhere(sample: tuple[bytes, bytes], cut: int) -> None:
    _, ciphertext = sample
    assert_rejected(ciphertext[:-cut] if cut < len(ciphertext) else b"")


def test_it_rejects_a_dropped_segment(sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    parts = segments(ciphertext)
    assert_rejected(assemble(ciphertext[:HEADER_SIZE], parts[:3] + parts[4:]))


def test_it_rejects_swapped_segments(sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    parts = segments(ciphertext)
    parts[2], parts[3] = parts[3], parts[2]
    yielded = assert_rejected(assemble(ciphertext[:HEADER_SIZE], parts))
    assert len(yielded) == 2


def test_it_rejects_an_appended_segment(sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    parts = segments(ciphertext)
    assert_rejected(assemble(ciphertext[:HEADER_SIZE], [*parts, parts[1]]))


def test_it_rejects_a_segment_from_another_stream_under_the_same_key(sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    other = segments(encrypt(os.urandom(2000), SMALL))
    parts = segments(ciphertext)
    parts[4] = other[4]
    assert_rejected(assemble(ciphertext[:HEADER_SIZE], parts))


def test_it_rejects_every_single_flipped_bit(sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    # Every byte position (header, bodies, tags), one bit each, rotating which bit.
    for position in range(len(ciphertext)):
        tampered = bytearray(ciphertext)
        tampered[position] ^= 1 << (position % 8)
        with pytest.raises(CiphertextIntegrityError):
            decrypt(bytes(tampered), SMALL)


def test_it_rejects_ciphertext_moved_to_another_object_or_version(sample: tuple[bytes, bytes]) -> None:
    _, ciphertext = sample
    obj = uuid.UUID("12345678-1234-5678-1234-567812345678")
    for aad in (associated_data(obj, 2), associated_data(uuid.uuid4(), 1)):
        with pytest.raises(CiphertextIntegrityError, match="segment 0 failed authentication"):
            decrypt(ciphertext, SMALL, aad=aad)


def test_it_rejects_the_wrong_key(sample: tuple[bytes, bytes]) -> None:
    with pytest.raises(CiphertextIntegrityError):
        decrypt(sample[1], SMALL, key=os.urandom(32))


def test_a_failed_segment_leaves_no_plaintext_in_its_buffer() -> None:
    from casebridge.kernel.crypto.streaming import new_stream, open_stream

    header, cipher = new_stream(KEY, AAD)
    ciphertext = bytearray(1000 + TAG_SIZE)
    cipher.encrypt_into(0, True, b"secret!!" * 125, ciphertext)
    ciphertext[0] ^= 1
    out = bytearray(1000)
    with pytest.raises(CiphertextIntegrityError):
        open_stream(KEY, AAD, header).decrypt_into(0, True, bytes(ciphertext), out)
    assert out == bytes(1000)


# -- random access --------------------------------------------------------------------------------


def test_range_reads_touch_only_the_spanned_segments() -> None:
    plaintext = os.urandom(FIRST + 2 * REST + 100)  # 4 segments of 1 MiB
    ciphertext = encrypt(plaintext)
    start, end = FIRST + REST - 10, FIRST + REST + 10  # straddles segments 1 and 2
    out, calls = ranged(ciphertext, start, end)
    assert out == plaintext[start:end]
    assert calls == [
        (0, HEADER_SIZE),
        DEFAULT_LAYOUT.ciphertext_span(1, len(ciphertext)),
        DEFAULT_LAYOUT.ciphertext_span(2, len(ciphertext)),
    ]


@pytest.mark.parametrize(
    ("start", "end"), [(0, 1), (0, 2000), (255, 257), (199, 200), (1999, 2000), (1000, None), (500, 500), (0, 10**9)]
)
def test_range_reads_return_exactly_the_requested_bytes(start: int, end: int | None) -> None:
    plaintext = os.urandom(2000)
    out, _ = ranged(encrypt(plaintext, SMALL), start, end, SMALL)
    assert out == plaintext[start:end]


def test_range_read_of_a_tampered_segment_fails_but_others_still_read(sample: tuple[bytes, bytes]) -> None:
    plaintext, ciphertext = sample
    tampered = bytearray(ciphertext)
    tampered[5 * 256 + 3] ^= 0x80  # inside segment 5
    assert ranged(bytes(tampered), 0, 600, SMALL)[0] == plaintext[:600]
    with pytest.raises(CiphertextIntegrityError, match="segment 5"):
        ranged(bytes(tampered), 1200, 1300, SMALL)


def test_range_read_rejects_an_impossible_ciphertext_size() -> None:
    with pytest.raises(CiphertextIntegrityError):
        ranged(b"\x00" * (HEADER_SIZE + 5), 0, None)


def test_range_read_rejects_a_range_past_the_end() -> None:
    with pytest.raises(ValueError, match="outside"):
        ranged(encrypt(b"abc", SMALL), 5, 6, SMALL)


def test_reused_buffer_mode_yields_the_same_bytes_when_consumed_in_turn() -> None:
    plaintext = os.urandom(3000)
    ciphertext = encrypt(plaintext, SMALL)
    streamed = b"".join(bytes(s) for s in decrypt_stream(io.BytesIO(ciphertext), KEY, AAD, SMALL, reuse_buffer=True))
    pieces = decrypt_range(lambda a, b: ciphertext[a:b], len(ciphertext), KEY, AAD, 100, 2900, SMALL, reuse_buffer=True)
    assert streamed == plaintext
    assert b"".join(bytes(s) for s in pieces) == plaintext[100:2900]
