"""Benchmark: download over TLS from a running `casebridge serve` vs nginx serving the same file.

ours  `casebridge serve --no-worker` (the defaults: gunicorn gthread, TLS in the app server, 2
      workers x 16 threads, and the transfer server) in a private CASEBRIDGE_HOME on its own
      loopback ports. A binary STL is uploaded once through tus, then GET /api/v1/files/<id>/content
      is authorized and audited by the application, which answers 307 with a single-use ticket;
      the transfer server decrypts (AES-GCM per 1 MiB segment, verified) and streams it. The
      clients follow the redirect (curl -L), so its cost is in the figures.
peer  nginx (started here, not as a daemon, temp config, same port family, same certificate and
      key, 2 worker processes, sendfile on) serving the same plaintext file.

Clients are curl -k to /dev/null: one client, then 4 concurrent clients (aggregate = bytes of all
four / wall time until the last finishes). Rounds alternate peer and ours; medians and ratios are
printed. Then the peak RSS (VmHWM, reset before each transfer) of the transfer server's worker,
the process that streams the bytes, during a 1 GiB and a 4 GiB download (the application's
workers' peak is printed beside it). Targets: single >= 0.70 of nginx (goal 0.90), 4 clients >=
0.40, worker peak RSS <= 64 MiB and the same for both sizes.

Usage: python bench/download.py [--mib 1024] [--rounds 5] [--rss-mib 4096 (0 to skip)]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    MiB,
    Series,
    Server,
    banner,
    check_space,
    ensure_tool,
    free_port,
    rate,
    reset_peak,
    rss_sampler,
    spawn,
    start_casebridge,
    status_kib,
    stop,
    tus_upload,
    verdict,
    wait_port,
    workdir,
    write_stl,
)

TARGET_SINGLE, GOAL_SINGLE, TARGET_MULTI, RSS_LIMIT_MIB = 0.70, 0.90, 0.40, 64
CLIENTS = 4

NGINX_CONF = """\
daemon off;
master_process on;
user root;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 5;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {www};
    }}
}}
"""


def curl_cmd(url: str, token: str | None) -> list[str]:
    cmd = ["curl", "-sS", "-k", "-L", "--fail", "-o", "/dev/null", "-w", "%{size_download}\\n", url]
    return cmd + (["-H", f"Authorization: Bearer {token}"] if token else [])


def fetch(url: str, token: str | None, clients: int, expected: int) -> float:
    """Seconds until `clients` concurrent downloads of `url` have all finished."""
    start = time.perf_counter()
    procs = [subprocess.Popen(curl_cmd(url, token), stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    try:
        outs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    elapsed = time.perf_counter() - start
    for p, out in zip(procs, outs, strict=True):
        if p.returncode != 0 or int(out.strip() or 0) != expected:
            raise RuntimeError(f"download of {url} failed (curl exit {p.returncode}, got {out.strip()} bytes)")
    return elapsed


def verify(url: str, token: str, expected_sha: str) -> None:
    proc = subprocess.Popen(
        ["curl", "-sS", "-k", "-L", "--fail", "-H", f"Authorization: Bearer {token}", url], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    hasher = hashlib.sha256()
    while chunk := proc.stdout.read(4 * MiB):
        hasher.update(chunk)
    proc.wait(timeout=60)
    if hasher.hexdigest() != expected_sha:
        sys.exit("ERROR: the downloaded content does not match what was uploaded")


def tls_of(url: str) -> str:
    out = subprocess.run(["curl", "-sk", "-v", "-o", "/dev/null", "-r", "0-0", url], capture_output=True, text=True)
    for line in out.stderr.splitlines():
        if "SSL connection using" in line:
            return line.split("using", 1)[1].strip()
    return "?"


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * MiB):
            hasher.update(chunk)
    return hasher.hexdigest()


def peak_rss(server: Server, url: str, size: int) -> tuple[int, int, int]:
    """(transfer worker VmHWM, its max sampled VmRSS, app workers' VmHWM), in KiB, over one download."""
    streaming, deciding = server.transfer_workers(), server.workers()
    if not reset_peak(streaming + deciding):
        print("   (cannot reset VmHWM here: peak includes earlier requests)")
    with rss_sampler(server.transfer_workers) as sampled:
        fetch(url, server.token, 1, size)
    app = max(status_kib(pid, "VmHWM") for pid in deciding)
    return max(status_kib(pid, "VmHWM") for pid in streaming), sampled["max_kib"], app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-mib", type=int, default=4096, help="second size for the RSS check; 0 skips it")
    args = parser.parse_args()
    nginx = ensure_tool("nginx", "nginx")
    ensure_tool("curl", "curl")
    banner(f"download over TLS: casebridge serve vs nginx (sendfile), 1 and {CLIENTS} clients")
    tmp = workdir("download")
    check_space(tmp, (2 * args.mib + 2 * args.rss_mib) * MiB + 512 * MiB)

    www = tmp / "www"
    www.mkdir()
    size = write_stl(www / "scan.stl", args.mib * MiB)
    sha = sha256_of(www / "scan.stl")
    server = start_casebridge(tmp / "home")
    try:
        upload_start = time.perf_counter()
        file_id = tus_upload(server, www / "scan.stl")
        print(f"   uploaded {size} bytes through tus in {time.perf_counter() - upload_start:.1f}s")
        ours_url = f"{server.base}/api/v1/files/{file_id}/content"
        verify(ours_url, server.token, sha)

        nginx_port = free_port()
        conf = tmp / "nginx.conf"
        key = server.home / "tls" / "key.pem"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=nginx_port, cert=server.cert, key=key, www=www))
        peer = spawn([nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
        wait_port(nginx_port, peer)
        nginx_url = f"https://127.0.0.1:{nginx_port}/scan.stl"
        print(f"   TLS: ours {tls_of(ours_url)}; nginx {tls_of(nginx_url)}")
        print(f"   {size / MiB:.0f} MiB, {args.rounds} rounds (peer first in each), curl -k to /dev/null")

        p1, o1, p4, o4 = (Series(n, []) for n in ("nginx 1", "ours 1", "nginx 4", "ours 4"))
        for index in range(args.rounds):
            p1.values.append(rate(size, fetch(nginx_url, None, 1, size)))
            o1.values.append(rate(size, fetch(ours_url, server.token, 1, size)))
            p4.values.append(rate(CLIENTS * size, fetch(nginx_url, None, CLIENTS, size)))
            o4.values.append(rate(CLIENTS * size, fetch(ours_url, server.token, CLIENTS, size)))
            print(
                f"   round {index + 1}: 1 client nginx {p1.values[-1]:5.0f} ours {o1.values[-1]:5.0f} MB/s   "
                f"{CLIENTS} clients nginx {p4.values[-1]:5.0f} ours {o4.values[-1]:5.0f} MB/s"
            )
        stop(peer)

        print("peak RSS of the transfer server's worker during one download (VmHWM reset before it)")
        rss = [(size, *peak_rss(server, ours_url, size))]
        if args.rss_mib:
            (www / "scan.stl").unlink()
            big = write_stl(www / "big.stl", args.rss_mib * MiB)
            big_id = tus_upload(server, www / "big.stl")
            (www / "big.stl").unlink()
            rss.append((big, *peak_rss(server, f"{server.base}/api/v1/files/{big_id}/content", big)))
        for nbytes, hwm, sampled, app in rss:
            mib = nbytes / MiB
            print(
                f"   {mib:6.0f} MiB file: VmHWM {hwm / 1024:5.1f} MiB (sampled VmRSS max {sampled / 1024:.1f}; "
                f"application workers, which only decide: {app / 1024:.1f})"
            )
    finally:
        stop(server.proc)

    r1, r4 = o1.median / p1.median, o4.median / p4.median
    print("medians")
    print(f"   1 client    nginx {p1.median:6.0f} MB/s   ours {o1.median:6.0f} MB/s   ratio {r1:.2f}")
    print(f"   {CLIENTS} clients   nginx {p4.median:6.0f} MB/s   ours {o4.median:6.0f} MB/s   ratio {r4:.2f}")
    peaks = [hwm / 1024 for _, hwm, _, _ in rss]
    rss_ok = max(peaks) <= RSS_LIMIT_MIB and (len(peaks) < 2 or abs(peaks[-1] - peaks[0]) <= 4)
    goal = " (goal 0.90 met)" if r1 >= GOAL_SINGLE else ""
    print(f"RESULT download single ratio {r1:.2f} (target >= {TARGET_SINGLE:.2f}) {verdict(r1, TARGET_SINGLE)}{goal}")
    print(f"RESULT download {CLIENTS}-client ratio {r4:.2f} (target >= {TARGET_MULTI:.2f}) {verdict(r4, TARGET_MULTI)}")
    sizes = " / ".join(f"{p:.1f}" for p in peaks)
    print(
        f"RESULT download worker peak RSS {sizes} MiB (target <= {RSS_LIMIT_MIB}, size-independent) "
        f"{'PASS' if rss_ok else 'MISS'}"
    )


if __name__ == "__main__":
    main()
