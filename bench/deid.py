"""Benchmark: DICOM de-identification, CaseBridge vs dicognito vs deid, side by side in one run.

The same instances go through each tool, one process, one core, bytes in and Part 10 bytes out
(read with pydicom, de-identified, written to memory): what an export does per file.

corpus   every file of pydicom's test data and of the pydicom-data package (244 files: odd transfer
         syntaxes, multi-frame, big-endian, private tags, deep sequences). A file a tool refuses or
         fails on is counted and left out of its rate.
cbct     a synthetic CBCT: --slices Part 10 files of --size x --size int16 pixels (400 x 512 x 512 by
         default), from casebridge.imaging.synthetic.

casebridge  casebridge.deid.deidentify, the Basic Profile (every row of PS3.15 Table E.1-1).
dicognito   dicognito's Anonymizer with its defaults.
deid        pydicom/deid's replace_identifiers with its default recipe, private tags removed.

Instances per second per core (the process's CPU time, so that other work on the shared cores does
not count), medians over --rounds. After the timed rounds, the corpus outputs
of each tool are judged by the test suite's independent Table E.1-1 checker (casebridge/deid/
tests/checker.py, Basic Profile): the number of files with at least one violation is printed.
Target: CaseBridge faster than both on both sets. Usage:
  python bench/deid.py [--slices 400] [--size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the script is named after the `deid` package it measures: its own folder must not shadow it
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Series, banner, verdict

TARGET = 1.0
SECRET = b"bench-case-secret"


def corpus() -> list[bytes]:
    from casebridge.deid.corpus import corpus_files

    return [path.read_bytes() for path in corpus_files()]


def casebridge_tool() -> Callable[[bytes], bytes]:
    from casebridge.deid import Options, deidentify

    options = Options()

    def run(data: bytes) -> bytes:
        return deidentify(data, options, SECRET).data or b""

    return run


def dicognito_tool() -> Callable[[bytes], bytes]:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer(seed="bench-case-secret")

    def run(data: bytes) -> bytes:
        ds = pydicom.dcmread(io.BytesIO(data))
        anonymizer.anonymize(ds)
        out = io.BytesIO()
        ds.save_as(out)
        return out.getvalue()

    return run


def deid_tool() -> Callable[[bytes], bytes]:
    import pydicom
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers
    from deid.logger import bot

    bot.level = 0  # its per-file warnings would dominate the time
    recipe = DeidRecipe()

    def run(data: bytes) -> bytes:
        ds = pydicom.dcmread(io.BytesIO(data))
        (cleaned,) = replace_identifiers([ds], deid=recipe, save=False, remove_private=True)
        out = io.BytesIO()
        cleaned.save_as(out)
        return out.getvalue()

    return run


def measure(run: Callable[[bytes], bytes], files: list[bytes]) -> tuple[float, int, list[bytes | None]]:
    """(instances/s, failures, outputs) for one pass."""
    outputs: list[bytes | None] = []
    failures = 0
    start = time.process_time()  # CPU time of this one process: per core, whatever else runs
    for data in files:
        try:
            outputs.append(run(data))
        except Exception:  # a tool's refusal or crash: counted, left out of its rate
            failures += 1
            outputs.append(None)
    seconds = time.process_time() - start
    done = len(files) - failures
    return (done / seconds if seconds else 0.0), failures, outputs


def violations(files: list[bytes], outputs: list[bytes | None]) -> tuple[int, int, Counter[str]]:
    """(files with a Basic Profile violation, files judged, files per kind of violation) by the
    test suite's checker."""
    from casebridge.deid.tests.checker import Checker

    checker = Checker(set())
    bad = judged = 0
    kinds: Counter[str] = Counter()
    for data, output in zip(files, outputs, strict=True):
        original, result = _whole(data), _whole(output)
        if original is None or result is None:
            continue  # refused, or an original pydicom cannot read whole: no reference
        judged += 1
        problems = checker.check(original, result)
        bad += bool(problems)
        # "(0008,1140)[0].(0008,1155) Name: outcome" -> "Name: outcome", once per file
        kinds.update({p.split(" ", 1)[1] if p[:1] in "(m" else p for p in problems})
    return bad, judged, kinds


def _whole(data: bytes | None) -> Any:
    import pydicom

    if data is None:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        for _ in ds.iterall():
            pass
    except Exception:
        return None
    return ds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    banner("DICOM de-identification: CaseBridge vs dicognito vs deid (instances/s per core)")
    from casebridge.imaging.synthetic import cbct_series

    sets = {
        "corpus": corpus(),
        f"cbct {args.slices}x{args.size}x{args.size}": cbct_series("bench-deid", slices=args.slices, size=args.size),
    }
    tools = {"casebridge": casebridge_tool(), "dicognito": dicognito_tool(), "deid": deid_tool()}
    ok = True
    for label, files in sets.items():
        mb = sum(map(len, files)) / 1e6
        print(f"\n-- {label}: {len(files)} files, {mb:.0f} MB")
        rates: dict[str, Series] = {name: Series(name, []) for name in tools}
        failed: dict[str, int] = {}
        outputs: dict[str, list[bytes | None]] = {}
        for round_no in range(args.rounds):
            for name, run in tools.items():  # interleaved, so drift hits every tool alike
                per_s, failures, out = measure(run, files)
                rates[name].values.append(per_s)
                failed[name] = failures
                if round_no == 0 and label == "corpus":
                    outputs[name] = out
        for name in tools:
            line = f"   {name:<11} {rates[name].median:9.1f} instances/s  ({failed[name]} refused or failed)"
            if outputs.get(name):
                bad, judged, kinds = violations(files, outputs[name])
                line += f"  Table E.1-1 violations in {bad} of {judged} files"
                line += "".join(f"\n{'':15}{count:4d} files: {kind}" for kind, count in kinds.most_common(6))
            print(line)
        ours = rates["casebridge"].median
        for other in ("dicognito", "deid"):
            ratio = ours / rates[other].median if rates[other].median else float("inf")
            result = verdict(ratio, TARGET)
            ok &= result == "PASS"
            print(f"RESULT deid {label.split()[0]} vs {other} ratio {ratio:.2f} (target >= {TARGET:.1f}) {result}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
