"""Benchmark: DICOM ingest and WADO-RS frame retrieval, CaseBridge vs Orthanc, in one run.

The same instances go to both, on loopback, one after the other:

cbct     a synthetic CBCT: a CT series of --slices Part 10 files of --size x --size int16 pixels
         (512 x 512 x 400 by default, 210 MB), from casebridge.imaging.synthetic.
pydicom  pydicom's own test files (every one pydicom reads as a Part 10 image with a SOP Instance
         UID): odd transfer syntaxes, multi-frame, big-endian; whatever either side refuses is
         counted and left out of its rate.

ours     `casebridge serve` with its background worker, in a private CASEBRIDGE_HOME. The files
         travel as the browser sends a dropped folder: one ZIP (stored) through tus to the transfer
         server (encrypted as it arrives), attached to a draft case as its CBCT through the REST
         API, which queues the ingest; the worker opens the archive, checks and indexes every
         instance, each a file of its own held inside the encrypted archive (a vault extent: the
         ZIP is stored, so no slice is copied or encrypted again). Timed from the tus POST until
         the ingest is done (watched in the database, read-only, then confirmed by the API).
orthanc  Debian's Orthanc (with its DICOMweb plugin) in a private storage directory, receiving
         each instance by `POST /instances` over one keep-alive connection (its REST API), and
         then the same ZIP in one `POST /instances` (Orthanc unpacks archives itself).

frames   WADO-RS frame retrieval of every slice of the CBCT, one request per frame over one
         keep-alive connection per side, as a generic DICOMweb viewer does (ours: /dicomweb,
         bearer token; Orthanc: its DICOMweb plugin's /dicom-web). Frames per second and MB/s.
         Our CBCT viewer does not ask per frame (one series stream).

Medians over --rounds (each round ingests into a fresh study: new UIDs; ours starts each round
with its worker idle and, after a restart, warmed by one untimed instance; every timed ingest,
either side's, starts after os.sync(), on a disk with nothing left to write back). Target: ingest rate >=
Orthanc's (instances/s). Frame retrieval is measured side by side, with no target: the issue sets
none; each of our frame requests is authorized through the policy and audited. Usage:
  python bench/imaging.py [--slices 400] [--size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import ssl
import sys
import time
import uuid
import zipfile
from contextlib import closing
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    Series,
    Server,
    banner,
    ensure_package_file,
    ensure_tool,
    free_port,
    spawn,
    start_casebridge,
    stop,
    tus_upload,
    verdict,
    wait_port,
    workdir,
)

TARGET_INGEST = 1.0
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


# --- the instances ------------------------------------------------------------------------------
def cbct(seed: str, slices: int, size: int) -> list[bytes]:
    from casebridge.imaging.synthetic import cbct_series

    return cbct_series(seed, slices=slices, size=size)


def pydicom_corpus() -> list[bytes]:
    """pydicom's test files that are Part 10 images with a SOP Instance UID, each once."""
    import pydicom
    from pydicom.data import get_testdata_files

    seen: set[str] = set()
    found = []
    for name in sorted(get_testdata_files("*.dcm")):
        try:
            ds = pydicom.dcmread(name, stop_before_pixels=True)
        except Exception as exc:  # a file pydicom itself cannot read is not in the corpus
            print(f"   (left out {Path(name).name}: {type(exc).__name__})")
            continue
        uid = str(getattr(ds, "SOPInstanceUID", "") or "")
        if not uid or uid in seen or "PixelData" not in pydicom.dcmread(name) or not ds.get("StudyInstanceUID"):
            continue
        seen.add(uid)
        found.append(Path(name).read_bytes())
    return found


def zipped(files: list[bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for n, data in enumerate(files):
            archive.writestr(f"IM{n:05d}.dcm", data)
    return out.getvalue()


def study_uids(files: list[bytes]) -> set[str]:
    import pydicom

    return {str(pydicom.dcmread(io.BytesIO(f), stop_before_pixels=True).StudyInstanceUID) for f in files}


def exchange(
    conn: HTTPConnection, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request on a keep-alive connection; once more on a fresh connection when the server
    had closed the idle one (both servers do after a while)."""
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, HTTPException):  # a closed idle connection, in plain or TLS words
            conn.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- Orthanc ------------------------------------------------------------------------------------
class Orthanc:
    def __init__(self) -> None:
        binary = ensure_tool("Orthanc", "orthanc")
        ensure_package_file(DICOMWEB_PLUGIN, "orthanc-dicomweb")
        self.dir = workdir("orthanc")
        self.port = free_port()
        config = {
            "Name": "bench",
            "StorageDirectory": str(self.dir / "storage"),
            "IndexDirectory": str(self.dir / "index"),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StorageCompression": False,
            "HttpCompressionEnabled": False,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        (self.dir / "orthanc.json").write_text(json.dumps(config))
        log = open(self.dir / "orthanc.log", "wb")  # noqa: SIM115 - lives as long as Orthanc
        self.proc = spawn([binary, str(self.dir / "orthanc.json")], stdout=log, stderr=log)
        wait_port(self.port, self.proc, timeout=60)
        self.conn = HTTPConnection("127.0.0.1", self.port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        status, data = exchange(self.conn, method, path, body, headers)
        if status >= 300:
            raise RuntimeError(f"Orthanc {method} {path}: {status} {data[:200]!r}")
        return data

    def post_instances(self, files: list[bytes]) -> int:
        """Each file by its own POST /instances; the number Orthanc accepted."""
        accepted = 0
        for data in files:
            status, _ = exchange(self.conn, "POST", "/instances", data, {"Content-Type": "application/dicom"})
            accepted += status == 200
        return accepted

    def post_zip(self, archive: bytes) -> int:
        answer = json.loads(self.request("POST", "/instances", archive, {"Content-Type": "application/zip"}))
        return len(answer) if isinstance(answer, list) else 1

    def wipe(self) -> None:
        for study in json.loads(self.request("GET", "/studies")):
            self.request("DELETE", f"/studies/{study}")

    def frame_paths(self, study_uid: str) -> list[str]:
        series = json.loads(self.request("GET", f"/dicom-web/studies/{study_uid}/series"))
        paths = []
        for s in series:
            series_uid = s["0020000E"]["Value"][0]
            base = f"/dicom-web/studies/{study_uid}/series/{series_uid}"
            for inst in json.loads(self.request("GET", f"{base}/instances")):
                paths.append(f"{base}/instances/{inst['00080018']['Value'][0]}/frames/1")
        return paths


# --- CaseBridge ---------------------------------------------------------------------------------
class Ours:
    def __init__(self, server: Server) -> None:
        self.server = server
        context = ssl.create_default_context(cafile=str(server.cert))
        context.check_hostname = False
        self.conn = HTTPSConnection("127.0.0.1", server.port, context=context, timeout=120)
        self.auth = {"Authorization": f"Bearer {server.token}"}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        headers = dict(self.auth)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, payload = exchange(self.conn, method, path, data, headers)
        if status >= 300:
            raise RuntimeError(f"CaseBridge {method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def ingest(self, archive_path: Path, timeout: float = 600) -> int:
        """Upload, attach as the CBCT of a new draft, wait for the worker to finish indexing; the
        number of instances it imported."""
        file_id = tus_upload(self.server, archive_path)
        case = self.request(
            "POST", "/api/v1/cases", {"patient": {"name": "Bench Patient"}, "case_type": "digital_crown"}
        )
        number = case["number"]
        self.request("POST", f"/api/v1/cases/{number}/attachments", {"file_id": file_id, "kind": "cbct"})
        # The job's state is watched in the database, read-only, as wait_idle does: asking the
        # API 20 times a second would load the server under test (TLS, session, policy) while
        # Orthanc's clock only runs its own POST. The API then confirms what the case page shows.
        database = self.server.home / "casebridge.sqlite3"
        deadline = time.monotonic() + timeout
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT state FROM imaging_ingestjob WHERE source_id = ? ORDER BY created_at DESC LIMIT 1",
                    [uuid.UUID(file_id).hex],
                ).fetchone()
                if row and row[0] in ("done", "failed"):
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError("CaseBridge did not finish the ingest in time")
        ingest = self.ingest_state(number, file_id)
        if not ingest or ingest["state"] != "done":
            raise RuntimeError(f"CaseBridge's ingest failed: {ingest}")
        return int(ingest["imported"])

    def ingest_state(self, number: str, file_id: str) -> dict[str, Any] | None:
        for attachment in self.request("GET", f"/api/v1/cases/{number}/attachments"):
            if attachment["file_id"] == file_id:
                return attachment["ingest"]
        return None

    def frame_paths(self, study_uid: str) -> list[str]:
        paths = []
        for s in self.get_json(f"/dicomweb/studies/{study_uid}/series"):
            series_uid = s["0020000E"]["Value"][0]
            base = f"/dicomweb/studies/{study_uid}/series/{series_uid}"
            for inst in self.get_json(f"{base}/instances"):
                paths.append(f"{base}/instances/{inst['00080018']['Value'][0]}/frames/1")
        return paths

    def get_json(self, path: str) -> Any:
        status, payload = exchange(self.conn, "GET", path, None, {**self.auth, "Accept": "application/dicom+json"})
        if status >= 300:
            raise RuntimeError(f"CaseBridge GET {path}: {status} {payload[:300]!r}")
        return json.loads(payload)


def fetch_frames(conn: HTTPConnection, paths: list[str], headers: dict[str, str]) -> int:
    """GET every frame in turn; total bytes received (multipart bodies)."""
    total = 0
    accept = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*', **headers}
    for path in paths:
        status, body = exchange(conn, "GET", path, None, accept)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        total += len(body)
    return total


# --- the run ------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    banner(f"DICOM ingest and WADO-RS frames: CaseBridge vs Orthanc ({args.slices} x {args.size}^2 CBCT)")
    orthanc = Orthanc()
    server = start_casebridge(workdir("cb") / "home", worker=True)
    ours = Ours(server)
    scratch = workdir("files")
    try:
        corpus = pydicom_corpus()
        print(f"   pydicom corpus: {len(corpus)} instances, {sum(map(len, corpus)) / 1e6:.1f} MB")
        results: dict[str, dict[str, Series]] = {}
        last_cbct: list[bytes] = []
        # pydicom's files first: their rounds restart our server (same UIDs), and the frames below
        # need the server that holds the last CBCT.
        for label, make in (
            ("pydicom", lambda _r: corpus),
            ("cbct", lambda r: cbct(f"bench-{time.time_ns()}-{r}", args.slices, args.size)),
        ):
            rows = results[label] = {k: Series(k, []) for k in ("ours", "orthanc", "orthanc-zip")}
            for r in range(args.rounds):
                files = make(r)
                if label == "cbct":
                    last_cbct = files
                nbytes = sum(map(len, files))
                archive = scratch / f"{label}-{r}.zip"
                archive.write_bytes(zipped(files))

                orthanc.wipe()
                settle()
                start = time.perf_counter()
                accepted_o = orthanc.post_instances(files)
                rows["orthanc"].values.append(accepted_o / (time.perf_counter() - start))
                orthanc.wipe()
                settle()
                start = time.perf_counter()
                accepted_z = orthanc.post_zip(archive.read_bytes())
                rows["orthanc-zip"].values.append(accepted_z / (time.perf_counter() - start))
                if label == "pydicom" and r > 0:
                    # the same UIDs again: a fresh server state keeps this an ingest, not a duplicate check
                    server = restart(server)
                    ours = Ours(server)
                    # Untimed: the new worker's first task loads the DICOM libraries, as a running
                    # server's did long before.
                    warm = scratch / "warm.zip"
                    warm.write_bytes(zipped(cbct(f"warm-{time.time_ns()}", 1, 16)))
                    ours.ingest(warm)
                wait_idle(server)
                settle()
                start = time.perf_counter()
                accepted_c = ours.ingest(archive)
                seconds = time.perf_counter() - start
                rows["ours"].values.append(accepted_c / seconds)
                print(
                    f"   {label} round {r + 1}: {len(files)} instances, {nbytes / 1e6:.0f} MB; "
                    f"ours {accepted_c} in {seconds:.2f}s; "
                    f"Orthanc accepted {accepted_o} (per file), {accepted_z} (zip)",
                    flush=True,
                )
                archive.unlink()

        # Frames of the last CBCT, which both servers hold (Orthanc from the zip round).
        study = next(iter(study_uids(last_cbct)))
        orthanc.wipe()
        orthanc.post_instances(last_cbct)
        paths_o, paths_c = orthanc.frame_paths(study), ours.frame_paths(study)
        frame_rows = {"ours": Series("ours", []), "orthanc": Series("orthanc", [])}
        for _ in range(args.rounds):
            start = time.perf_counter()
            fetch_frames(orthanc.conn, paths_o, {})
            frame_rows["orthanc"].values.append(len(paths_o) / (time.perf_counter() - start))
            start = time.perf_counter()
            fetch_frames(ours.conn, paths_c, ours.auth)
            frame_rows["ours"].values.append(len(paths_c) / (time.perf_counter() - start))

        print("\n   ingest, instances/s (median)      ours     Orthanc  Orthanc-zip")
        for label, rows in results.items():
            print(
                f"   {label:<32} {rows['ours'].median:8.1f} {rows['orthanc'].median:10.1f} "
                f"{rows['orthanc-zip'].median:11.1f}"
            )
        mb_per_instance = sum(map(len, last_cbct)) / len(last_cbct) / 1e6
        print(
            f"   cbct MB/s                        {results['cbct']['ours'].median * mb_per_instance:8.1f} "
            f"{results['cbct']['orthanc'].median * mb_per_instance:10.1f}"
        )
        print(
            f"   WADO-RS frames/s                 {frame_rows['ours'].median:8.1f} {frame_rows['orthanc'].median:10.1f}"
        )
        for label, rows in results.items():
            best = max(rows["orthanc"].median, rows["orthanc-zip"].median)
            ratio = rows["ours"].median / best
            print(
                f"RESULT imaging ingest {label} ratio {ratio:.2f} vs Orthanc's faster path "
                f"(target >= {TARGET_INGEST:.2f}) {verdict(ratio, TARGET_INGEST)}"
            )
        ratio = frame_rows["ours"].median / frame_rows["orthanc"].median
        print(f"RESULT imaging WADO-RS frames ratio {ratio:.2f} of Orthanc's (side by side, no target)")
    finally:
        stop(server.proc)
        stop(orthanc.proc)
    return 0


def settle() -> None:
    """Before each timed ingest, on either side: write back what the run before left in the page
    cache (Orthanc does not flush its files, and our batches' sync would otherwise wait for its
    hundreds of megabytes), so each side starts on an idle disk."""
    os.sync()


def wait_idle(server: Server, timeout: float = 300) -> None:
    """Until the worker has nothing queued or running (the last round's pictures, made after its
    ingest): each round starts on an idle server, as each of Orthanc's does (it has done all its
    work when it answers)."""
    database = server.home / "casebridge.sqlite3"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as conn:
            (busy,) = conn.execute(
                "SELECT COUNT(*) FROM django_tasks_database_dbtaskresult WHERE status IN ('READY', 'RUNNING')"
            ).fetchone()
        if busy == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("CaseBridge's worker did not become idle")


def restart(server: Server) -> Server:
    stop(server.proc)
    return start_casebridge(workdir("cb") / "home", worker=True)


if __name__ == "__main__":
    sys.exit(main())
