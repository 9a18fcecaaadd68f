"""Benchmark: opening a CBCT in the browser viewer, against downloading the same bytes.

A private `casebridge serve` (with its worker) gets the demo organizations; a synthetic CBCT of
--slices x --size^2 (512 x 512 x 400 by default, 210 MB) is uploaded through tus, attached to a
draft case of the demo practice and indexed. Then, in Chromium (headless, loopback), the demo
clinician signs in with a password and a TOTP code and opens the study in the CBCT viewer,
--rounds times (a new page each time, nothing cached: every answer is no-store):

first slice   milliseconds from navigation start until the first slice was drawn (the axial
              plane's first draw with a slice in, data-first-drawn-ms; when Cornerstone reported
              it loaded, data-first-slice-ms, is printed beside it). Target: under 2000 ms.
volume        milliseconds until the whole volume is loaded (data-loaded-ms), as MB/s of the
              study's bytes.
download      the peer: the same study's bytes fetched in one request, as a download client
              does (curl, the CBCT's ZIP through /api/v1/files/<id>/content and the transfer
              server). Target: the viewer loads the volume at no less than half that rate.
              Printed beside it, not judged: Chromium's own download of the same series (the
              viewer's series stream fetched in the page and read through, nothing done with
              it), what any page gets on this machine before it does anything with the bytes.

Medians over the rounds. Usage: python bench/viewer.py [--slices 400] [--size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Series, Server, _cli, banner, start_casebridge, stop, tus_upload, verdict, workdir
from bench.imaging import Ours

TARGET_FIRST_SLICE_MS = 2000
TARGET_LOAD_RATIO = 0.5
CHROMIUM = "/usr/bin/chromium"


def totp(secret: str, at: float) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s), as an authenticator app computes it."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def demo_clinician(home: Path) -> tuple[str, str, str]:
    """(e-mail, password, TOTP secret) of the demo practice's clinician, from `casebridge demo`."""
    out = _cli(home, "demo", "--force", timeout=600)
    block = re.search(r"Clinician: .*?\n\s+e-mail:\s+(\S+)\n\s+password:\s+(\S+)\n\s+TOTP:\s+(\S+)", out)
    if block is None:
        raise RuntimeError(f"no clinician in the demo's output:\n{out}")
    email, password, secret = block.groups()
    return email, password, secret


def shell(home: Path, code: str) -> str:
    """The last line `code` prints in `casebridge shell` (which first says what it imported)."""
    return _cli(home, "shell", "-c", code).strip().splitlines()[-1]


def upload_study(server: Server, home: Path, slug: str, files: list[bytes]) -> tuple[str, str, int]:
    """The CBCT as a stored ZIP, attached to a new draft of the demo practice, indexed; returns
    (case number, file id, ZIP size)."""
    token = (
        _cli(
            home,
            "serviceaccount",
            "create",
            "--org",
            slug,
            "--name",
            "viewer-bench",
            "--role",
            "staff",
            "--scope",
            "cases:read",
            "--scope",
            "cases:write",
        )
        .strip()
        .splitlines()[-1]
    )
    ours = Ours(Server(server.proc, server.port, home, token, server.cert))
    archive = workdir("viewer-files") / "cbct.zip"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for n, data in enumerate(files):
            z.writestr(f"IM{n:05d}.dcm", data)
    archive.write_bytes(out.getvalue())
    file_id = tus_upload(Server(server.proc, server.port, home, token, server.cert), archive)
    draft = {"patient": {"name": "Viewer Bench"}, "case_type": "digital_crown"}
    number = ours.request("POST", "/api/v1/cases", draft)["number"]
    ours.request("POST", f"/api/v1/cases/{number}/attachments", {"file_id": file_id, "kind": "cbct"})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        ingest = ours.ingest_state(number, file_id)
        if ingest and ingest["state"] in {"done", "failed"}:
            if ingest["imported"] != len(files):
                raise RuntimeError(f"the ingest did not take every slice: {ingest}")
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("the ingest did not finish")
    download = f"{server.base}/api/v1/files/{file_id}/content"
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            ["curl", "-sSfL", "-k", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", download],
            check=True,
            timeout=600,
        )
        seconds.append(time.perf_counter() - start)
    DOWNLOAD.values.extend(archive.stat().st_size / s / 1e6 for s in seconds)
    size = archive.stat().st_size
    archive.unlink()
    return number, file_id, size


DOWNLOAD = Series("download MB/s", [])
BROWSER = Series("Chromium's download MB/s", [])
# The viewer's series stream, fetched on the viewer's page with its session and read to the end:
# [bytes, milliseconds].
BROWSER_DOWNLOAD = """async () => {
    const config = JSON.parse(document.getElementById('cbct-config').textContent);
    const url = `${location.origin}${config.wadoRoot}/studies/${config.study}/series/${config.series}`;
    const start = performance.now();
    const response = await fetch(url, { headers: { Accept: 'multipart/related; type="application/dicom"' } });
    const reader = response.body.getReader();
    let received = 0;
    for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
    }
    return [received, performance.now() - start];
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"CANNOT RUN: {CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from casebridge.imaging.synthetic import cbct_series

    banner(f"CBCT viewer: first slice and whole volume ({args.slices} x {args.size}^2) vs a download")
    home = workdir("viewer") / "home"
    server = start_casebridge(home, worker=True)
    try:
        email, password, secret = demo_clinician(home)
        slug = shell(
            home,
            "from casebridge.orgs.models import Membership as M; "
            f"print(M.objects.get(user__email='{email}').organization.slug)",
        )
        files = cbct_series(f"viewer-{time.time_ns()}", slices=args.slices, size=args.size)
        number, _file_id, size = upload_study(server, home, slug, files)
        series_id = shell(
            home,
            "from casebridge.imaging.models import Series as S; "
            f"print(S.objects.get(study__case__number='{number}').pk)",
        )
        viewer_url = f"{server.base}/o/{slug}/cases/{number}/imaging/{series_id}/"
        first, load = Series("first slice ms", []), Series("volume MB/s", [])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(f"{server.base}/accounts/login/")
            page.get_by_label("E-mail").fill(email)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in", exact=True).click()
            while time.time() % 30 > 25:  # a code about to turn would be refused as the page loads
                time.sleep(0.5)
            page.get_by_label("Authenticator code").fill(totp(secret, time.time()))
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url(re.compile(r"^(?!.*/accounts/).*$"), timeout=30_000)
            for r in range(args.rounds):
                page.goto("about:blank")
                page.goto(viewer_url)
                viewer = page.locator("#cbct-viewer")
                viewer.wait_for(state="attached", timeout=30_000)
                page.wait_for_function(
                    "() => document.querySelector('#cbct-viewer').dataset.state === 'ready'", timeout=600_000
                )
                first_ms = float(viewer.get_attribute("data-first-slice-ms") or "nan")
                drawn_ms = float(viewer.get_attribute("data-first-drawn-ms") or "nan")
                loaded_ms = float(viewer.get_attribute("data-loaded-ms") or "nan")
                metadata_ms = float(viewer.get_attribute("data-metadata-ms") or "nan")
                # Where the time went: the frames' requests as the browser timed them.
                frames = page.evaluate(
                    """() => performance.getEntriesByType('resource')
                        .filter((e) => e.name.includes('/frames/'))
                        .map((e) => [e.requestStart, e.responseStart, e.responseEnd])"""
                )
                stream_start = viewer.get_attribute("data-stream-start-ms")
                stream_end = viewer.get_attribute("data-stream-end-ms")
                if stream_start:
                    print(f"   round {r + 1}: series stream asked at {stream_start} ms, ended at {stream_end} ms")
                if frames:
                    waits = sorted(b - a for a, b, _ in frames)
                    print(
                        f"   round {r + 1}: metadata at {metadata_ms:.0f} ms; {len(frames)} frame requests from "
                        f"{min(a for a, _, _ in frames):.0f} to {max(c for _, _, c in frames):.0f} ms, "
                        f"server wait median {waits[len(waits) // 2]:.0f} ms",
                        flush=True,
                    )
                first.values.append(drawn_ms)
                load.values.append(size / (loaded_ms / 1000) / 1e6)
                print(
                    f"   round {r + 1}: first slice drawn {drawn_ms:.0f} ms (loaded {first_ms:.0f} ms), "
                    f"volume loaded {loaded_ms:.0f} ms",
                    flush=True,
                )
            for _ in range(3):
                received, ms = page.evaluate(BROWSER_DOWNLOAD)
                BROWSER.values.append(received / (ms / 1000) / 1e6)
            browser.close()
        print(f"\n   study: {len(files)} slices, {size / 1e6:.0f} MB")
        print(f"   first slice drawn (median)  {first.median:8.0f} ms")
        print(f"   volume load (median)        {load.median:8.1f} MB/s")
        print(f"   download of the same bytes  {DOWNLOAD.median:8.1f} MB/s (curl, median of 3)")
        print(
            f"   the series in Chromium      {BROWSER.median:8.1f} MB/s (fetched and read through in the page, "
            f"median of 3; the viewer: {load.median / BROWSER.median:.2f} of it)"
        )
        print(
            f"RESULT viewer first slice {first.median:.0f} ms (target < {TARGET_FIRST_SLICE_MS} ms) "
            f"{verdict(TARGET_FIRST_SLICE_MS / first.median, 1.0)}"
        )
        ratio = load.median / DOWNLOAD.median
        print(
            f"RESULT viewer volume load ratio {ratio:.2f} of the download rate "
            f"(target >= {TARGET_LOAD_RATIO:.2f}) {verdict(ratio, TARGET_LOAD_RATIO)}"
        )
    finally:
        stop(server.proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
