"""Benchmark: the vault's streaming-encryption core vs plain AESGCM encrypt_into/decrypt_into, no I/O.

Both sides process the same plaintext in the same 1 MiB ciphertext segments, in memory. Prints the
median throughput of each and the ratio (target: >= 0.80). Usage: python bench/crypto_core.py [MiB]
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casebridge.kernel.crypto.streaming import (
    DEFAULT_LAYOUT,
    TAG_SIZE,
    EncryptingWriter,
    associated_data,
    decrypt_range,
    decrypt_stream,
    new_stream,
    open_stream,
)

ROUNDS = 7


class NullSink:
    def write(self, data: memoryview, /) -> int:
        return len(data)


def median_rate(label: str, nbytes: int, run: Callable[[], object]) -> float:
    run()  # warm-up
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    rate = nbytes / statistics.median(times) / 1e9
    print(f"  {label:<52} {rate:6.2f} GB/s")
    return rate


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    seg_pt = DEFAULT_LAYOUT.plaintext_segment_size  # 1 MiB ciphertext segment - tag
    count = max(1, mib)
    plaintext = os.urandom(seg_pt * count)
    nbytes = len(plaintext)
    view = memoryview(plaintext)
    key, aad = os.urandom(32), associated_data("bench", 1)
    out = bytearray(seg_pt + TAG_SIZE)
    pt_out = bytearray(seg_pt)
    print(f"{count} segments of {DEFAULT_LAYOUT.segment_size} bytes ciphertext, {ROUNDS} rounds, medians")

    plain = AESGCM(key)
    nonce = os.urandom(12)

    def plain_encrypt() -> None:
        for i in range(count):
            plain.encrypt_into(nonce, view[i * seg_pt : (i + 1) * seg_pt], None, out)

    _, cipher = new_stream(key, aad)

    def core_encrypt() -> None:
        for i in range(count):
            cipher.encrypt_into(i, i == count - 1, view[i * seg_pt : (i + 1) * seg_pt], out)

    def writer_encrypt() -> None:
        # Realistic producer: 1 MiB reads that do not line up with segments, so buffering is exercised.
        with EncryptingWriter(NullSink(), key, aad) as writer:
            for i in range(0, nbytes, 1 << 20):
                writer.write(view[i : i + (1 << 20)])

    # Ciphertext for the decryption side: one real stream, and one plain segment.
    sink = io.BytesIO()
    with EncryptingWriter(sink, key, aad) as writer:
        writer.write(plaintext[: DEFAULT_LAYOUT.first_plaintext_size])
        writer.write(plaintext[seg_pt : seg_pt * count])
    stream_ct = sink.getvalue()
    stream_view = memoryview(stream_ct)
    # Distinct segments on both sides: one reused segment would sit in cache and flatter the peer.
    plain_cts = [plain.encrypt(nonce, view[i * seg_pt : (i + 1) * seg_pt], None) for i in range(count)]
    segments = [stream_view[slice(*DEFAULT_LAYOUT.ciphertext_span(i, len(stream_ct)))] for i in range(count)]
    reader_cipher = open_stream(key, aad, stream_ct)
    dec_bytes = len(stream_ct) - count * TAG_SIZE - 40

    def plain_decrypt() -> None:
        for ct in plain_cts:
            plain.decrypt_into(nonce, ct, None, pt_out)

    def core_decrypt() -> None:
        for i, segment in enumerate(segments):
            reader_cipher.decrypt_into(i, i == count - 1, segment, memoryview(pt_out)[: len(segment) - TAG_SIZE])

    def stream_decrypt() -> None:
        for _ in decrypt_stream(io.BytesIO(stream_ct), key, aad, reuse_buffer=True):
            pass

    def read(start: int, end: int) -> bytes:
        return stream_view[start:end].tobytes()

    def range_decrypt() -> None:
        for _ in decrypt_range(read, len(stream_ct), key, aad, reuse_buffer=True):
            pass

    print("encrypt")
    base = median_rate("plain AESGCM.encrypt_into", nbytes, plain_encrypt)
    core = median_rate("vault SegmentCipher.encrypt_into (core)", nbytes, core_encrypt)
    full = median_rate("vault EncryptingWriter, 1 MiB unaligned writes", nbytes, writer_encrypt)
    print("decrypt")
    dbase = median_rate("plain AESGCM.decrypt_into", nbytes, plain_decrypt)
    dcore = median_rate("vault SegmentCipher.decrypt_into (core)", dec_bytes, core_decrypt)
    dstream = median_rate("vault decrypt_stream from BytesIO, reused buffer", dec_bytes, stream_decrypt)
    drange = median_rate("vault decrypt_range, whole object, reused buffer", dec_bytes, range_decrypt)
    print("ratios (target core >= 0.80)")
    print(f"  encrypt core {core / base:.2f}   writer {full / base:.2f}")
    print(f"  decrypt core {dcore / dbase:.2f}   stream {dstream / dbase:.2f}   range {drange / dbase:.2f}")
    for label, ratio in (("encrypt", core / base), ("decrypt", dcore / dbase)):
        print(f"RESULT crypto_core {label} ratio {ratio:.2f} (target >= 0.80) {'PASS' if ratio >= 0.80 else 'MISS'}")


if __name__ == "__main__":
    main()
