"""Benchmark: what auditing adds to the latency of a page and of a download, audit on vs off.

Two `casebridge serve --no-worker` (the defaults: gunicorn gthread, TLS in the app server, 2
workers x 16 threads, the transfer server) on the same private CASEBRIDGE_HOME, so the same
SQLite database (WAL, synchronous=FULL), the same data and the same session:

on   the portal as it ships: every access is recorded by record() in its own transaction,
     committed before the response, then sealed (chained) by the on-commit sealer.
off  the same, started with DJANGO_SETTINGS_MODULE=bench.audit_off: record() still builds and
     checks the event, but nothing is inserted, queued or sealed (bench/audit_off.py, which
     refuses to load outside a benchmark's temporary home).

The demo organizations are made (`casebridge demo`); the demo clinician signs in over HTTPS with
a password and a TOTP code, as a person does. Requests, each timed from sending it until the
last byte of the answer is read, over kept-alive TLS connections (one client, one request at a
time, as a person clicking or a download client):

page       GET /o/<practice>/cases/<number>/ by session: the case page (one `case.viewed`).
small      GET /api/v1/files/<id>/content of a 4 KiB STL with a bearer token, following the 307 to
           the transfer server (`token.used` and `file.downloaded`: two events).
10 MB      the same for a 10 MiB STL.

Requests are --pause seconds apart (0.1 by default: a person does not click again within
milliseconds), so work a server does after sending a response, as the sealer now does
(docs/audit.md), is not counted; with --pause 0 on one kept-alive connection it lands in the next
request's time instead.

Each round measures every scenario on both servers, the order alternating between rounds so
background load on this shared machine hits both alike; a round's figure is the p50 and p95 of
its requests, and the result is the median over rounds. Added latency = (on - off) / off, of the
medians of p50. Target: <= 10%. At the end the events written are counted: exactly the "on"
requests' events, none for "off" (the switch is real), and none left unsealed.

Usage: python bench/audit_cost.py [--rounds 7] [--requests 40] [--large-requests 8] [--pause 0.1]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import ssl
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    ROOT,
    MiB,
    Server,
    banner,
    start_casebridge,
    stop,
    tus_upload,
    workdir,
    write_stl,
)
from bench.viewer import demo_clinician, shell, totp

TARGET = 0.10  # added latency, (on - off) / off
SIDES = ("on", "off")


class Client:
    """Kept-alive HTTPS connections (one per host:port), cookies, and timed GETs that follow a
    307 to the transfer server."""

    def __init__(self) -> None:
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate, on loopback
        self.connections: dict[str, http.client.HTTPSConnection] = {}
        self.cookies: dict[str, str] = {}

    def _connection(self, netloc: str) -> http.client.HTTPSConnection:
        if netloc not in self.connections:
            host, port = netloc.rsplit(":", 1)
            self.connections[netloc] = http.client.HTTPSConnection(host, int(port), context=self.tls, timeout=120)
        return self.connections[netloc]

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], int, bytes]:
        """(status, headers, bytes read, the body when it is small)."""
        parts = urlsplit(url)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            conn = self._connection(parts.netloc)
            try:
                conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, sent)
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()  # the server closed an idle connection: a new one (not in the figures)
                if attempt == 2:
                    raise
        kept, total = b"", 0
        while chunk := response.read(MiB):
            total += len(chunk)
            if total <= 1 * MiB:
                kept += chunk
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        if response.will_close:
            conn.close()
            del self.connections[parts.netloc]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, total, kept

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, int]:
        """GET `url`, following one 307 (the transfer server's ticket); (status, body bytes)."""
        status, head, total, _ = self.request("GET", url, headers=headers)
        if status == 307:
            status, head, total, _ = self.request("GET", head["location"])
        return status, total

    def timed(self, url: str, headers: dict[str, str] | None, expected: int | None) -> float:
        start = time.perf_counter()
        status, total = self.get(url, headers)
        elapsed = time.perf_counter() - start
        if status != 200 or (expected is not None and total != expected):
            raise RuntimeError(f"GET {url}: {status}, {total} bytes (expected 200, {expected})")
        return elapsed


def csrf_field(html: bytes) -> str:
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if found is None:
        raise RuntimeError("no CSRF token in the form")
    return found.group(1).decode()


def sign_in(client: Client, base: str, email: str, password: str, secret: str) -> None:
    """The login form, then the authenticator code: the session a person gets."""
    origin = {"Origin": base, "Content-Type": "application/x-www-form-urlencoded"}
    _, _, _, page = client.request("GET", f"{base}/accounts/login/")
    form = urlencode({"login": email, "password": password, "csrfmiddlewaretoken": csrf_field(page)}).encode()
    status, head, _, _ = client.request(
        "POST", f"{base}/accounts/login/", form, {**origin, "Referer": f"{base}/accounts/login/"}
    )
    if status != 302 or "2fa" not in head.get("location", ""):
        raise RuntimeError(f"sign-in with the password: {status} {head.get('location')}")
    mfa = base + head["location"] if head["location"].startswith("/") else head["location"]
    _, _, _, page = client.request("GET", mfa)
    while time.time() % 30 > 25:  # a code about to turn could be refused
        time.sleep(0.5)
    form = urlencode({"code": totp(secret, time.time()), "csrfmiddlewaretoken": csrf_field(page)}).encode()
    status, head, _, _ = client.request("POST", mfa, form, {**origin, "Referer": mfa})
    if status != 302 or "/accounts/" in head.get("location", ""):
        raise RuntimeError(f"sign-in with the TOTP code: {status} {head.get('location')}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def count_events(home: Path) -> dict[str, int]:
    """Events by action (of those measured here), and how many wait for their seal."""
    out = shell(
        home,
        "from casebridge.audit.models import Event, PendingSeal; import json; "
        "print(json.dumps({a: Event.objects.filter(action=a).count() for a in "
        "('case.viewed', 'file.downloaded', 'token.used')} | {'unsealed': PendingSeal.objects.count()}))",
    )
    import json

    return dict(json.loads(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=40, help="page and small-file requests per side and round")
    parser.add_argument("--large-requests", type=int, default=8, help="10 MiB downloads per side and round")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds between requests (default 0.1; 0: back to back)"
    )
    args = parser.parse_args()
    banner("what auditing adds to a page and a download (audit on vs off, same server, same data)")
    tmp = workdir("auditcost")
    home = tmp / "home"
    on = start_casebridge(home)
    servers: dict[str, Server] = {"on": on}
    try:
        email, password, secret = demo_clinician(home)
        slug, number = shell(
            home,
            "from casebridge.orgs.models import Membership as M; from casebridge.cases.models import Case; "
            f"o = M.objects.get(user__email='{email}').organization; "
            "print(o.slug, Case.objects.filter(practice=o).order_by('created_at').first().number)",
        ).split()
        files = {}
        for label, size in (("small", 4096), ("10 MB", 10 * MiB)):
            path = tmp / f"{label.replace(' ', '')}.stl"
            exact = write_stl(path, size)
            files[label] = (tus_upload(on, path), exact)
            path.unlink()
        off_env = {"DJANGO_SETTINGS_MODULE": "bench.audit_off", "CASEBRIDGE_BENCH_AUDIT": "off"}
        off_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        servers["off"] = start_casebridge(home, env=off_env, prepare=False)

        client = Client()
        sign_in(client, on.base, email, password, secret)  # one session, valid on both (same database)
        bearer = {"Authorization": f"Bearer {on.token}"}
        scenarios = {
            "page": (f"/o/{slug}/cases/{number}/", None, None, args.requests),
            "small": (f"/api/v1/files/{files['small'][0]}/content", bearer, files["small"][1], args.requests),
            "10 MB": (f"/api/v1/files/{files['10 MB'][0]}/content", bearer, files["10 MB"][1], args.large_requests),
        }
        print(
            f"   SQLite (WAL, synchronous=FULL), {args.rounds} rounds; per side and round {args.requests} page and "
            f"small-file requests, {args.large_requests} of 10 MiB; kept-alive TLS, one request at a time, "
            f"{args.pause:g} s apart"
        )
        for server in servers.values():  # warm-up: connections, caches, each worker's first requests
            for path, headers, expected, _ in scenarios.values():
                for _ in range(6):
                    client.timed(server.base + path, headers, expected)
        before = count_events(home)
        made = {side: 0 for side in SIDES}
        p50: dict[tuple[str, str], list[float]] = {}
        p95: dict[tuple[str, str], list[float]] = {}
        for index in range(args.rounds):
            line = []
            for name, (path, headers, expected, count) in scenarios.items():
                order = SIDES if index % 2 == 0 else SIDES[::-1]
                for side in order:
                    times = []
                    for _ in range(count):
                        time.sleep(args.pause)  # a person's pace between clicks; not in the figures
                        times.append(client.timed(servers[side].base + path, headers, expected))
                    made[side] += count * (1 if name == "page" else 2)
                    p50.setdefault((name, side), []).append(percentile(times, 0.50) * 1000)
                    p95.setdefault((name, side), []).append(percentile(times, 0.95) * 1000)
                line.append(f"{name} on {p50[(name, 'on')][-1]:6.1f} off {p50[(name, 'off')][-1]:6.1f}")
            print(f"   round {index + 1} p50 ms: " + "   ".join(line), flush=True)
        after = count_events(home)
    finally:
        for server in servers.values():
            stop(server.proc)

    written = sum(after[a] - before[a] for a in ("case.viewed", "file.downloaded", "token.used"))
    load = os.getloadavg()
    print(f"medians over {args.rounds} rounds (ms); load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"   {'':8}{'p50 on':>9}{'p50 off':>9}{'added':>9}{'p95 on':>9}{'p95 off':>9}{'added':>9}")
    added = {}
    for name in scenarios:
        m50 = [statistics.median(p50[(name, side)]) for side in SIDES]
        m95 = [statistics.median(p95[(name, side)]) for side in SIDES]
        added[name] = (m50[0] - m50[1]) / m50[1]
        extra95 = (m95[0] - m95[1]) / m95[1]
        print(
            f"   {name:8}{m50[0]:9.1f}{m50[1]:9.1f}{added[name]:+9.0%}{m95[0]:9.1f}{m95[1]:9.1f}{extra95:+9.0%}"
            f"   ({m50[0] - m50[1]:+.1f} ms)"
        )
    print(
        f"   events written during the rounds: {written} (the 'on' requests made {made['on']}, the 'off' ones "
        f"{made['off']} that were not written); left unsealed: {after['unsealed']}"
    )
    if written != made["on"] or after["unsealed"]:
        print("ERROR: the events written are not exactly the 'on' requests' events, all sealed")
        return 1
    for name, value in added.items():
        mark = "PASS" if value <= TARGET else "MISS"
        print(f"RESULT audit cost {name} {value:+.0%} p50 latency (target <= {TARGET:.0%}) {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
