"""Benchmark: streaming encrypt + SHA-256 + durable write, disk to disk, vs fio sequential write + fsync.

ours  reads a plaintext file in 1 MiB reads, hashes it (SHA-256 in a BackgroundHasher thread, as
      uploads do; and inline, as put_stream does), encrypts it with EncryptingWriter (Tink
      AES256_GCM_HKDF_1MB wire format) into the FileSystemStore's writer, which fsyncs, renames
      and fsyncs the directory on commit.
peer  fio --rw=write --bs=1M --ioengine=psync --end_fsync=1 of the same size, fresh file each round.
      The peer's rate is fio's own bandwidth figure; the fio process's wall-clock rate (start-up
      and exit included, so lower) is printed beside it.

Both write to the same directory on the same disk; the source file is in the page cache (it is
read once before timing), as it is for fio's in-memory buffers. Throughput counts plaintext bytes
(our ciphertext is 0.0015% larger). Rounds alternate peer and ours; medians and ratios are
printed. Target: ours >= 60% of fio. Usage: python bench/durable_write.py [--mib 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import MiB, Series, banner, check_space, ensure_tool, rate, timed, verdict, workdir
from casebridge.vault.backends.filesystem import FileSystemStore
from casebridge.vault.crypto.streaming import EncryptingWriter, associated_data
from casebridge.vault.hashing import BackgroundHasher

TARGET = 0.60
READ = 1 * MiB


def ours(source: Path, store: FileSystemStore, name: str, *, threaded: bool) -> str:
    key, aad = os.urandom(32), associated_data("00000000-0000-0000-0000-000000000000", 1)
    background = BackgroundHasher() if threaded else None
    inline = hashlib.sha256()
    with open(source, "rb", buffering=0) as src, store.open_writer(name) as sink:
        writer = EncryptingWriter(sink, key, aad)
        while chunk := src.read(READ):
            if background is not None:
                background.update(chunk)
            else:
                inline.update(chunk)
            writer.write(chunk)
        writer.close()
    hasher = background.finish() if background is not None else inline
    return str(hasher.hexdigest())


def fio(binary: str, target: Path, nbytes: int) -> tuple[float, float]:
    """(wall seconds of the fio process, fio's own bandwidth in MB/s)."""
    target.unlink(missing_ok=True)
    cmd = [binary, "--name=seqwrite", f"--filename={target}", "--rw=write", "--bs=1M", f"--size={nbytes}"]
    cmd += ["--ioengine=psync", "--end_fsync=1", "--output-format=json"]
    wall = 0.0
    out = ""

    def run() -> None:
        nonlocal out
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout

    wall = timed(run)
    job = json.loads(out[out.index("{") :])["jobs"][0]
    return wall, job["write"]["bw_bytes"] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fio_bin = ensure_tool("fio", "fio")
    banner("durable write: encrypt + SHA-256 + fsync'd blob vs fio sequential write + end_fsync")
    nbytes = args.mib * MiB
    tmp = workdir("durable")
    check_space(tmp, 4 * nbytes)
    source = tmp / "plain.bin"
    block = os.urandom(16 * MiB)
    with open(source, "wb") as handle:
        for offset in range(0, nbytes, len(block)):
            handle.write(block[: min(len(block), nbytes - offset)])
    expected = hashlib.sha256()
    with open(source, "rb") as handle:  # also pulls it into the page cache
        while chunk := handle.read(8 * MiB):
            expected.update(chunk)
    store = FileSystemStore(tmp / "blobs")
    print(f"   {args.mib} MiB, {args.rounds} rounds, directory {tmp}")

    peer_wall, peer_self, threaded, inline = (Series(n, []) for n in ("fio wall", "fio self", "bg", "inline"))
    for index in range(args.rounds):
        wall, self_bw = fio(fio_bin, tmp / "fio.bin", nbytes)
        (tmp / "fio.bin").unlink()
        peer_wall.values.append(rate(nbytes, wall))
        peer_self.values.append(self_bw)
        for series, is_threaded in ((threaded, True), (inline, False)):
            name = f"bench/{index}-{int(is_threaded)}"
            digest = ""

            def run(name: str = name, is_threaded: bool = is_threaded) -> None:
                nonlocal digest
                digest = ours(source, store, name, threaded=is_threaded)

            series.values.append(rate(nbytes, timed(run)))
            if digest != expected.hexdigest():
                sys.exit("ERROR: the SHA-256 computed by the pipeline is wrong")
            store.delete(name)
        print(
            f"   round {index + 1}: fio {peer_self.values[-1]:6.0f} MB/s (wall-clock {peer_wall.values[-1]:6.0f})"
            f"   ours {threaded.values[-1]:6.0f} MB/s (inline hash {inline.values[-1]:6.0f})"
        )

    peer = peer_self.median
    ratio = threaded.median / peer
    print("medians")
    print(f"   fio seq write + end_fsync   {peer:7.0f} MB/s (fio's figure; process wall-clock {peer_wall.median:.0f})")
    print(f"   ours, hash in a thread       {threaded.median:7.0f} MB/s   ratio {ratio:.2f}")
    print(f"   ours, hash inline            {inline.median:7.0f} MB/s   ratio {inline.median / peer:.2f}")
    print(f"RESULT durable_write ratio {ratio:.2f} (target >= {TARGET:.2f}) {verdict(ratio, TARGET)}")


if __name__ == "__main__":
    main()
