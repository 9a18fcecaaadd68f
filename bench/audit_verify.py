"""Benchmark: verifying the audit log (chain, Merkle tree, signed checkpoints), side by side with
`sha256sum` over the same bytes as the ceiling.

Usage: .venv/bin/python bench/audit_verify.py [--events 1000000] [--rounds 3]

In a private CASEBRIDGE_HOME on SQLite it writes --events events through record_many (batches of
5,000), seals them (a signed checkpoint every 1,000, as in production) and then times
`chain.verify()`: it reads every sealed event, rebuilds its canonical form, recomputes the hash
chain and the RFC 9162 Merkle tree and checks every checkpoint's signature, chain hash and root.
The peer hashes the same canonical bytes, written once to a file, with coreutils' `sha256sum`:
no database, no JSON, no tree; the speed a verifier could not beat. Medians over --rounds;
target (issue 15): >= 200,000 events/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 200_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cb-bench-verify-", dir="/work" if Path("/work").is_dir() else None))
    try:
        return _run(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(args: argparse.Namespace, home: Path) -> int:
    os.environ["CASEBRIDGE_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "casebridge.settings"
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from casebridge.audit import chain
    from casebridge.audit.api import record_many
    from casebridge.audit.models import Seal

    started = time.perf_counter()
    for first in range(0, args.events, 5000):
        record_many(
            {"action": "org.member.role_changed", "target_id": str(n), "details": {"n": n, "role": "staff"}}
            for n in range(first, min(args.events, first + 5000))
        )
        chain.seal_pending()
    chain.checkpoint_now()
    print(f"wrote and sealed {args.events:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    stream = home / "canonical.bin"
    with stream.open("wb") as out:
        for seal in Seal.objects.select_related("event").order_by("seq").iterator(chunk_size=5000):
            out.write(chain.canonical(seal.event, seal.seq))
    ours, peer = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        result = chain.verify()
        ours.append(time.perf_counter() - t)
        assert result.ok and result.checked == args.events, result.problem
        t = time.perf_counter()
        subprocess.run(["sha256sum", str(stream)], check=True, capture_output=True)
        peer.append(time.perf_counter() - t)
    ours_rate, peer_rate = args.events / statistics.median(ours), args.events / statistics.median(peer)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"events: {args.events:,} ({stream.stat().st_size / 2**20:.0f} MiB canonical), rounds: {args.rounds}")
    print(f"  CaseBridge audit verify: {ours_rate:12,.0f} events/s (median {statistics.median(ours):.2f} s)")
    print(f"  sha256sum, same bytes:   {peer_rate:12,.0f} events/s (median {statistics.median(peer):.2f} s)")
    print(f"  ratio ours/ceiling: {ours_rate / peer_rate:.3f}; target >= {TARGET:,}/s: ", end="")
    print("met" if ours_rate >= TARGET else f"missed ({ours_rate / TARGET:.2f} of it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
