"""Benchmark: `casebridge backup create/restore` against `tar | age` of the same installation.

A private CASEBRIDGE_HOME gets --gib of files (--files of them, random bytes: scans do not
compress) stored through the vault as uploads are (encrypted, durable). Then, in one run:

backup    ours: `casebridge backup create DEST` (SQLite online backup, each blob copied with its
          SHA-256, two at a time, one sync of the destination, signed manifest, a second sync).
          Peer: `tar -cf - HOME | age -r KEY > FILE` (age 1.1, Debian), the plain way to an
          encrypted copy of the same folder, synced at the end.
again     after adding 1% new files: ours copies only those (blobs never change under a name);
          tar | age has no increments and writes everything again. Target: ours in proportion
          to what changed (at most 5x the 1% share of the first backup's time, plus a second).
restore   ours: `casebridge backup restore` into an empty home, which also decrypts every file
          against its SHA-256 and verifies the audit chain (the RTO it reports). Peer:
          `age -d | tar -x` into an empty folder, which proves nothing about the content.

restic    the same three steps with `casebridge backup create|restore restic:REPO` (restic 0.14,
          Debian): the same set hard-linked into a spool and snapshotted by restic (encrypted,
          deduplicated, compressed where it can), restored from a `restic restore` of the snapshot.
          Printed beside the native folder copier, with ratios restic / folder.

Ratios are peer time / our time (higher is better for us). Medians over --rounds.
Usage: python bench/backup.py [--gib 5] [--files 100] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import GiB, Series, _cli, banner, check_space, ensure_tool, verdict, workdir

PASSPHRASE = "benchmark passphrase, not a secret"

FILL = """
import os
from casebridge.accounts.models import User
from casebridge.orgs.models import Organization
from casebridge.vault import api as vault
org = Organization.objects.get(slug="bench-practice")
user = User.objects.get(email="bench@example.com")
import struct
triangles = ({size} - 84) // 50
size = 84 + 50 * triangles  # a binary STL's shape (the vault accepts scans, not arbitrary bytes)
for _ in range({count}):
    head = b"bench".ljust(80, b" ") + struct.pack("<I", triangles)
    body = (os.urandom(min(8 << 20, size - 84 - o)) for o in range(0, size - 84, 8 << 20))
    vault.put_stream(organization=org, actor=user, chunks=[head, *body], length=size)
print("ok")
"""


def fill(home: Path, count: int, size: int) -> None:
    _cli(home, "shell", "-c", FILL.format(size=size, count=count), timeout=3600)


def timed(cmd: list[str] | str, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        cmd, env=env, shell=isinstance(cmd, str), capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def casebridge(home: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "casebridge"), *args]


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASEBRIDGE_", "DATABASE_URL"))}
    return {**env, "CASEBRIDGE_HOME": str(home), "DJANGO_SETTINGS_MODULE": "casebridge.settings"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=5)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    age = ensure_tool("age", "age")
    ensure_tool("age-keygen", "age")
    total = int(args.gib * GiB)
    size = total // args.files
    root = workdir("backup")
    check_space(root, total * 4)
    banner(f"Backup and restore: casebridge backup vs tar | age ({args.files} files, {total / GiB:.1f} GiB)")

    home = root / "home"
    home.mkdir()
    _cli(home, "migrate", "--verbosity", "0")
    _cli(home, "createadmin", "--email", "bench@example.com", "--org", "Bench Practice", "--kind", "practice")
    fill(home, args.files, size)
    env = env_for(home)
    passfile = root / "pass"
    passfile.write_text(PASSPHRASE)
    keys = root / "keys.json"
    timed(casebridge(home, "keys", "export", str(keys), "--passphrase-file", str(passfile)), env)
    identity = root / "age.key"
    subprocess.run(["age-keygen", "-o", str(identity)], capture_output=True, check=True)
    recipient = next(
        line.split(": ", 1)[1] for line in identity.read_text().splitlines() if line.startswith("# public key")
    )

    ours_b, peer_b, ours_r, peer_r, ours_i, peer_i = (Series(n, []) for n in ("ob", "pb", "or", "pr", "oi", "pi"))
    restic_b, restic_i, restic_r = (Series(n, []) for n in ("rb", "ri", "rr"))
    renv = {**env, "CASEBRIDGE_RESTIC_PASSWORD_FILE": str(passfile)}  # restic's own password: a file
    for r in range(args.rounds):
        dest, archive = root / f"dest{r}", root / f"copy{r}.tar.age"
        skip = "--exclude=./backup-spool --exclude=./restic-cache"  # restic's spool and cache are not the data
        tar_age = f"tar -cf - -C {home} {skip} . | {age} -r {recipient} > {archive} && sync -f {archive}"
        subprocess.run(["sync"], check=True)
        peer_b.values.append(timed(tar_age))
        subprocess.run(["sync"], check=True)
        ours_b.values.append(timed(casebridge(home, "backup", "create", str(dest)), env))
        repo = f"restic:{root / f'restic{r}'}"
        subprocess.run(["sync"], check=True)
        restic_b.values.append(timed(casebridge(home, "backup", "create", repo), renv))
        # 1% new files, then both again
        fill(home, max(1, args.files // 100), size)
        subprocess.run(["sync"], check=True)
        peer_i.values.append(timed(tar_age))
        ours_i.values.append(timed(casebridge(home, "backup", "create", str(dest)), env))
        restic_i.values.append(timed(casebridge(home, "backup", "create", repo), renv))
        # restore into empty places
        target, unpacked = root / f"restored{r}", root / f"unpacked{r}"
        unpacked.mkdir()
        peer_r.values.append(timed(f"{age} -d -i {identity} {archive} | tar -xf - -C {unpacked}"))
        restore = ["backup", "restore", str(dest), "--keys", str(keys), "--passphrase-file", str(passfile)]
        ours_r.values.append(timed(casebridge(target, *restore), env_for(target)))
        rtarget = root / f"restic-restored{r}"
        restore[2] = repo
        restic_r.values.append(
            timed(casebridge(rtarget, *restore), {**env_for(rtarget), "CASEBRIDGE_RESTIC_PASSWORD_FILE": str(passfile)})
        )
        for path in (dest, archive, target, unpacked, rtarget, root / f"restic{r}", home / "backup-spool"):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    gib = total / GiB
    print(f"\n   {'':28} {'ours':>9} {'tar | age':>10} {'restic':>9} {'restic/ours':>12}   (seconds, median)")
    for label, ours, peer, rest in (
        ("backup", ours_b, peer_b, restic_b),
        ("after +1% files", ours_i, peer_i, restic_i),
        ("restore", ours_r, peer_r, restic_r),
    ):
        ratio = rest.median / ours.median
        print(f"   {label:<28} {ours.median:9.1f} {peer.median:10.1f} {rest.median:9.1f} {ratio:12.2f}")
    print(f"   backup throughput: ours {gib / ours_b.median:.2f} GiB/s, tar | age {gib / peer_b.median:.2f} GiB/s")
    ratio = peer_b.median / ours_b.median
    print(f"RESULT backup create ratio {ratio:.2f} of tar | age's time (target >= 1.00) {verdict(ratio, 1.0)}")
    bound = 5 * 0.01 * ours_b.median + 1.0
    print(
        f"RESULT backup incremental {ours_i.median:.1f} s after +1% (target <= {bound:.1f} s) "
        f"{verdict(bound / ours_i.median, 1.0)}"
    )
    ratio = peer_r.median / ours_r.median
    print(
        f"RESULT backup restore ratio {ratio:.2f} of age | tar's time, ours also decrypting and checking "
        f"every file (target >= 0.50) {verdict(ratio, 0.5)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
