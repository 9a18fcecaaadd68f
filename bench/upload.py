"""Benchmark: durable tus upload over TLS to `casebridge serve` vs OpenSSH sftp put of the same file.

ours  `casebridge serve --no-worker` (defaults: gunicorn gthread, 2 workers x 16 threads, TLS in
      the app server, and the transfer server) in a private CASEBRIDGE_HOME on loopback ports.
      curl -k creates the upload (POST, the application) and sends the whole file in one PATCH
      (streamed from disk) to the Location it got: the transfer server, which takes the lease from
      the application, sniffs the type, encrypts each 1 MiB segment as it arrives, hashes the
      plaintext in its own thread, stages ciphertext with fsync, and has the application commit
      (promote to a blob: rename + directory fsyncs) before it answers 204. Timed from the POST
      to the final 204.
peer  a private sshd (temp host key, temp authorized key for root, loopback port,
      Ciphers aes256-gcm@openssh.com, internal-sftp) and `sftp -b` with `put -f` (fsync@openssh.com,
      so the copy is as durable as ours) of the same file into a temp dir.

Rounds alternate peer and ours; medians and the ratio are printed, then the peak RSS of the
transfer server's worker (the process the body goes through) over one upload, with the
application workers' beside it. Targets: ours >= 1.0x sftp; worker peak RSS <= 64 MiB.
Usage: python bench/upload.py [--mib 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    MiB,
    Series,
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

TARGET, RSS_LIMIT_MIB = 1.0, 64
CIPHER = "aes256-gcm@openssh.com"

SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {tmp}/host_ed25519
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Ciphers {cipher}
Subsystem sftp internal-sftp
"""


def start_sshd(sshd: str, tmp: Path) -> tuple[int, Path]:
    for name in ("host_ed25519", "client_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
    (tmp / "authorized_keys").write_text((tmp / "client_ed25519.pub").read_text())
    os.chmod(tmp / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    port = free_port()
    (tmp / "sshd_config").write_text(SSHD_CONFIG.format(port=port, tmp=tmp, cipher=CIPHER))
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115 - lives as long as sshd
    proc = spawn([sshd, "-D", "-e", "-f", str(tmp / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc)
    return port, tmp / "client_ed25519"


def sftp_put(port: int, key: Path, source: Path, target: Path) -> float:
    batch = source.parent / "sftp.batch"
    batch.write_text(f"put -f {source} {target}\n")
    cmd = ["sftp", "-q", "-b", str(batch), "-P", str(port), "-i", str(key), "-c", CIPHER]
    cmd += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    cmd += ["-o", "LogLevel=ERROR", "root@127.0.0.1"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or target.stat().st_size != source.stat().st_size:
        raise RuntimeError(f"sftp put failed ({done.returncode}): {done.stderr}")
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--in-app", action="store_true", help="no transfer server: the application takes the bodies (for A/B)"
    )
    args = parser.parse_args()
    sshd = ensure_tool("sshd", "openssh-server")
    ensure_tool("sftp", "openssh-client")
    ensure_tool("curl", "curl")
    banner(f"durable upload: tus over TLS (casebridge serve) vs sftp put -f ({CIPHER})")
    tmp = workdir("upload")
    check_space(tmp, (args.rounds + 3) * args.mib * MiB + 512 * MiB)
    source = tmp / "scan.stl"
    size = write_stl(source, args.mib * MiB)
    with open(source, "rb") as handle:  # both sides read it from the page cache
        while handle.read(8 * MiB):
            pass
    (tmp / "sftp-in").mkdir()
    port, key = start_sshd(sshd, tmp)
    server = start_casebridge(tmp / "home", transfer_server=not args.in_app)
    print(f"   {size / MiB:.0f} MiB, {args.rounds} rounds (peer first in each)")
    peer, ours = Series("sftp", []), Series("tus", [])
    try:
        for index in range(args.rounds):
            peer.values.append(rate(size, sftp_put(port, key, source, tmp / "sftp-in" / "scan.stl")))
            start = time.perf_counter()
            tus_upload(server, source)
            ours.values.append(rate(size, time.perf_counter() - start))
            print(f"   round {index + 1}: sftp {peer.values[-1]:5.0f} MB/s   tus {ours.values[-1]:5.0f} MB/s")
        streaming, deciding = server.transfer_workers() or server.workers(), server.workers()
        reset_peak(streaming + deciding)
        with rss_sampler(lambda: streaming) as sampled:
            tus_upload(server, source)
        hwm = max(status_kib(pid, "VmHWM") for pid in streaming)
        app_hwm = max(status_kib(pid, "VmHWM") for pid in deciding)
    finally:
        stop(server.proc)
    ratio = ours.median / peer.median
    print("medians")
    print(f"   sftp put -f   {peer.median:6.0f} MB/s")
    print(f"   tus upload    {ours.median:6.0f} MB/s   ratio {ratio:.2f}")
    print(
        f"   transfer worker peak RSS during an upload: VmHWM {hwm / 1024:.1f} MiB (sampled "
        f"{sampled['max_kib'] / 1024:.1f}; application workers, which lease and commit: {app_hwm / 1024:.1f})"
    )
    print(f"RESULT upload ratio {ratio:.2f} (target >= {TARGET:.2f}) {verdict(ratio, TARGET)}")
    rss = "PASS" if hwm / 1024 <= RSS_LIMIT_MIB else "MISS"
    print(f"RESULT upload worker peak RSS {hwm / 1024:.1f} MiB (target <= {RSS_LIMIT_MIB}) {rss}")


if __name__ == "__main__":
    main()
