"""Run every benchmark in bench/ one after the other and summarise their RESULT lines.

Each benchmark runs in its own process with a time limit, starts and stops its own peers and
servers, and cleans up after itself. Exit status 1 if a benchmark failed to run or missed a
target. Usage: python bench/run_all.py [--quick] [--only download,upload]

--quick   fewer rounds and 256 MiB files (a smoke run; the figures are not the reference ones)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIMIT = 300  # seconds per benchmark

# name -> (arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "crypto_core": ([], ["16"]),
    "durable_write": ([], ["--mib", "256", "--rounds", "3"]),
    "download": ([], ["--mib", "256", "--rounds", "3", "--rss-mib", "1024"]),
    "upload": ([], ["--mib", "256", "--rounds", "3"]),
    "imaging": ([], ["--slices", "100", "--rounds", "1"]),
    "viewer": ([], ["--slices", "100", "--rounds", "1"]),
    "backup": ([], ["--gib", "1", "--files", "40"]),
    "backup_incremental": ([], ["--files", "50", "--rounds", "2"]),
    "deid": ([], ["--slices", "100", "--rounds", "1"]),
    "audit_verify": ([], ["--events", "50000", "--rounds", "1"]),
    "audit_review": ([], ["--events", "200000", "--rounds", "3"]),
    "audit_cost": ([], ["--rounds", "3", "--requests", "15", "--large-requests", "3"]),
}
# Benchmarks that need longer than LIMIT (audit_review fills 10 million events first: ~6 min here;
# audit_cost makes the demo organizations and signs in first: 5-10 min on a busy machine).
LIMITS = {"audit_review": 3600, "audit_cost": 1200}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "casebridge.settings")
    env.setdefault("CASEBRIDGE_HOME", str(ROOT / "var" / "bench"))
    results: list[str] = []
    failed: list[str] = []
    for name in chosen:
        full, quick = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        print(f"\n### {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith("RESULT"):
                    results.append(line.strip())
            proc.wait(timeout=max(1, LIMITS.get(name, LIMIT) - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            proc.terminate()  # the benchmark's own handler stops its servers and removes its files
            proc.wait(timeout=30)
            failed.append(f"{name} (over {LIMITS.get(name, LIMIT)}s)")
            continue
        if proc.returncode != 0:
            failed.append(f"{name} (exit {proc.returncode})")
        print(f"### {name} took {time.monotonic() - start:.0f}s", flush=True)
    print("\n== summary")
    for line in results:
        print(f"   {line}")
    for name in failed:
        print(f"   FAILED TO RUN: {name}")
    return 1 if failed or any(line.endswith("MISS") or " MISS" in line for line in results) else 0


if __name__ == "__main__":
    sys.exit(main())
