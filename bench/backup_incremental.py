"""Benchmark: a second `casebridge backup create` costs what changed, not what is stored.

Two private installations are filled through the vault (encrypted, durable, as uploads are): a
store of --files scans of --mib each, and one --scale times larger. Each gets a first backup into
a folder; then, --rounds times, --change new scans are added and both copies are taken again:

ours   `casebridge backup create DEST` (the process's wall time, Django start included, and the
       time it reports for the backup itself): a blob already in the destination is never read
       again (its size and SHA-256 sidecar are checked, not its bytes), so only the new blobs and
       the database's online copy are written.
peer   `rsync -a --stats HOME/ PEER/`, the plain incremental copy of the same folder (size and
       mtime decide what is sent): what a careful operator would run without CaseBridge.

Targets: the same change costs about the same on the store --scale times larger (ours at most
1.5x the small store's time); the blob bytes copied are exactly those of the new scans; and
the backup itself (the time it reports, without the ~1 s fixed start of Python and Django, which
is printed too) is within 2x of rsync's time on the larger store (rsync checks nothing; ours
hashes every new blob, copies the database online and signs a manifest). Medians over --rounds.
Usage: python bench/backup_incremental.py [--files 200] [--mib 1] [--scale 4] [--change 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import MiB, Series, _cli, banner, check_space, stl_size, verdict, workdir
from bench.backup import casebridge, env_for, fill

COPIED = re.compile(r"(\d+) copied now \(([\d,.]+) MB of ([\d,.]+) MB\), ([\d.]+) s")
RSYNC_SENT = re.compile(r"Total transferred file size: ([\d,]+) bytes")


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def installation(root: Path, name: str, files: int, size: int) -> Path:
    home = root / name
    home.mkdir()
    _cli(home, "migrate", "--verbosity", "0")
    _cli(home, "createadmin", "--email", "bench@example.com", "--org", "Bench Practice", "--kind", "practice")
    fill(home, files, size)
    return home


def measure(home: Path, root: Path, change: int, size: int, rounds: int) -> dict[str, Series]:
    env = env_for(home)
    dest, peer = root / f"{home.name}-dest", root / f"{home.name}-rsync"
    rsync = ["rsync", "-a", "--stats", "--exclude=/backup-spool", f"{home}/", f"{peer}/"]
    run(casebridge(home, "backup", "create", str(dest)), env)  # the first, full copies
    run(rsync)
    out = {n: Series(n, []) for n in ("wall", "inside", "mb", "files", "rsync", "rsync_mb")}
    for _ in range(rounds):
        fill(home, change, size)
        subprocess.run(["sync"], check=True)
        wall, printed = run(casebridge(home, "backup", "create", str(dest)), env)
        found = COPIED.search(printed)
        if found is None:
            raise RuntimeError(f"unexpected output of backup create: {printed}")
        out["wall"].values.append(wall)
        out["inside"].values.append(float(found.group(4)))
        out["files"].values.append(float(found.group(1)))
        out["mb"].values.append(float(found.group(2).replace(",", "")))
        subprocess.run(["sync"], check=True)
        seconds, printed = run(rsync)
        sent = RSYNC_SENT.search(printed)
        out["rsync"].values.append(seconds)
        out["rsync_mb"].values.append(int(sent.group(1).replace(",", "")) / 1e6 if sent else float("nan"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--mib", type=float, default=1)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--change", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = stl_size(int(args.mib * MiB))
    root = workdir("backup-incremental")
    big_files = args.files * args.scale
    check_space(root, 3 * size * (args.files + big_files + 2 * args.change * args.rounds))
    banner(
        f"Incremental backup: {args.change} new scans of {size / MiB:.1f} MiB on stores of {args.files} "
        f"and {big_files} scans (casebridge backup create vs rsync -a)"
    )
    small = measure(installation(root, "small", args.files, size), root, args.change, size, args.rounds)
    big = measure(installation(root, "big", big_files, size), root, args.change, size, args.rounds)

    change_mb = args.change * size / 1e6
    print(
        f"\n   {'store':<10} {'ours wall':>10} {'ours inside':>12} {'blobs':>6} {'MB':>8} {'rsync':>8} {'rsync MB':>9}"
    )
    for label, got in ((f"{args.files}", small), (f"{big_files}", big)):
        print(
            f"   {label:<10} {got['wall'].median:10.2f} {got['inside'].median:12.2f} {got['files'].median:6.0f} "
            f"{got['mb'].median:8.1f} {got['rsync'].median:8.2f} {got['rsync_mb'].median:9.1f}"
        )
    print(f"   (seconds and MB, medians of {args.rounds}; the change is {change_mb:.1f} MB of scans)")
    growth = big["wall"].median / small["wall"].median
    print(
        f"RESULT backup incremental store x{args.scale}: {growth:.2f}x the time for the same change "
        f"(target <= 1.50) {verdict(1.5 / growth, 1.0)}"
    )
    exact = all(abs(mb - change_mb) < 0.05 for got in (small, big) for mb in got["mb"].values)
    copied = max(big["mb"].values)
    print(
        f"RESULT backup incremental bytes: {copied:.1f} MB of blobs copied for {change_mb:.1f} MB of new scans "
        f"(target: equal) {'PASS' if exact else 'MISS'}"
    )
    whole = big["rsync"].median / big["wall"].median
    print(f"   rsync's time / ours with the (fixed) Python and Django start: {whole:.2f}")
    ratio = big["rsync"].median / big["inside"].median
    print(
        f"RESULT backup incremental ratio {ratio:.2f} of rsync's time on {big_files} scans, the backup itself "
        f"(target >= 0.50) {verdict(ratio, 0.5)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
