"""Benchmark: streaming encrypt + SHA-256 + durable write, disk to disk, vs fio sequential write + fsync.

ours  casebridge.kernel.pipeline.seal_to_blob (what put_stream and so every server-side producer runs;
      tus uploads use the same SealingPipeline): the file is read straight into 1 MiB segment
      buffers, SHA-256 runs in its own thread, each segment is encrypted in place (Tink
      AES256_GCM_HKDF_1MB wire format) and written by a writer thread into the FileSystemStore,
      which reserves the blob's blocks up front, fsyncs, renames and fsyncs the directory.
peer  fio --rw=write --bs=1M --ioengine=psync --end_fsync=1 of the same size, fresh file each round,
      twice: through the page cache (--direct=0, fio's default) and around it (--direct=1), as
      ours writes whole aligned blocks (backends/filesystem.SequentialWriter). The peer's rate is
      fio's own bandwidth figure; the fio process's wall-clock rate (start-up and exit included,
      so lower) is printed beside it. The target is against fio as it runs by default (the
      figure the project started from, ~860 MB/s); the ratio to --direct=1, the disk's own pace
      with no hashing or encryption (SHA-256, ~1.85 GB/s per core here, caps ours), is printed
      beside it.

Both write to the same directory (the blob's fan-out directory) on the same disk, and the
filesystem is synced before every timed run: on a virtual disk where freshly allocated blocks cost
the host an allocation (~250 MB/s here) and reused ones do not (~800-1500 MB/s), writing into
different directories (ext4 spreads them over block groups) or inheriting the other's pending
deletes made the ratio swing between 0.2 and 4 from one round to the next. Even so this disk is
noisy: use several rounds; the source file is in the page cache (it is
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

from bench._common import MiB, Series, banner, check_space, ensure_tool, rate, timed, verdict, workdir, write_stl
from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.crypto.streaming import associated_data
from casebridge.kernel.pipeline import seal_to_blob

TARGET = 0.60
READ = 1 * MiB


def ours(source: Path, store: FileSystemStore, blob_name: str, nbytes: int) -> str:
    key, aad = os.urandom(32), associated_data("00000000-0000-0000-0000-000000000000", 1)
    with open(source, "rb", buffering=0) as src:
        sealed = seal_to_blob(store, blob_name, key, aad, src.readinto, nbytes)
    return sealed.sha256


def fio(binary: str, target: Path, nbytes: int, direct: bool) -> tuple[float, float]:
    """(wall seconds of the fio process, fio's own bandwidth in MB/s)."""
    target.unlink(missing_ok=True)
    cmd = [binary, "--name=seqwrite", f"--filename={target}", "--rw=write", "--bs=1M", f"--size={nbytes}"]
    cmd += ["--ioengine=psync", "--end_fsync=1", f"--direct={int(direct)}", "--output-format=json"]
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
    tmp = workdir("durable")
    check_space(tmp, 4 * args.mib * MiB)
    source = tmp / "plain.stl"  # a scan: the vault refuses content it cannot recognise
    nbytes = write_stl(source, args.mib * MiB)
    expected = hashlib.sha256()
    with open(source, "rb") as handle:  # also pulls it into the page cache
        while chunk := handle.read(8 * MiB):
            expected.update(chunk)
    store = FileSystemStore(tmp / "blobs")
    name = "bench/blob"
    target_dir = store.path_for(name).parent
    target_dir.mkdir(parents=True, exist_ok=True)
    print(f"   {args.mib} MiB, {args.rounds} rounds, directory {tmp}")

    peers = {direct: (Series("fio wall", []), Series("fio self", [])) for direct in (False, True)}
    mine = Series("ours", [])
    for index in range(args.rounds):
        line = f"   round {index + 1}:"
        for direct, (peer_wall, peer_self) in peers.items():
            os.sync()
            wall, self_bw = fio(fio_bin, target_dir / "fio.bin", nbytes, direct)
            (target_dir / "fio.bin").unlink()
            peer_wall.values.append(rate(nbytes, wall))
            peer_self.values.append(self_bw)
            line += f" fio{' direct' if direct else ''} {self_bw:5.0f} (wall {peer_wall.values[-1]:5.0f})"
        os.sync()
        digest = ""

        def run() -> None:
            nonlocal digest
            digest = ours(source, store, name, nbytes)

        mine.values.append(rate(nbytes, timed(run)))
        if digest != expected.hexdigest():
            sys.exit("ERROR: the SHA-256 computed by the pipeline is wrong")
        store.delete(name)
        print(f"{line}   ours {mine.values[-1]:5.0f} MB/s")

    print("medians")
    for direct, (peer_wall, peer_self) in peers.items():
        label = "fio seq write --direct=1 + end_fsync" if direct else "fio seq write + end_fsync          "
        print(
            f"   {label} {peer_self.median:7.0f} MB/s (fio's figure; wall-clock {peer_wall.median:.0f})"
            f"   ratio {mine.median / peer_self.median:.2f}"
        )
    ratio = mine.median / peers[False][1].median
    print(f"   ours (seal_to_blob)                  {mine.median:7.0f} MB/s")
    print(f"RESULT durable_write ratio {ratio:.2f} (target >= {TARGET:.2f}) {verdict(ratio, TARGET)}")


if __name__ == "__main__":
    main()
