"""Shared plumbing for the transfer benchmarks: peers, a private CaseBridge server, cleanup, medians.

Everything runs on loopback, in a temporary directory under /work (the same disk as the vault),
and is removed at exit, including after a failure or Ctrl-C. Processes are started in their own
session and stopped by their own process group id, never by name.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CASEBRIDGE = str(VENV_BIN / "casebridge")
MiB = 1 << 20
GiB = 1 << 30
TUS = "1.0.0"

_processes: list[subprocess.Popen[Any]] = []
_paths: list[Path] = []


# --- peers --------------------------------------------------------------------------------
def ensure_tool(binary: str, package: str) -> str:
    """Path of `binary`, installing Debian `package` with apt-get if it is missing; exits with a
    clear message when that is impossible (no root, no network, no apt)."""
    found = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    print(f"{binary} not found: installing the Debian package {package} (apt-get install -y {package}) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=True, timeout=180)
    except (OSError, subprocess.SubprocessError):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=120)
            subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=True, timeout=180)
    found = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.access(p, os.X_OK)), None
    )
    if not found:
        sys.exit(
            f"CANNOT RUN: the peer tool '{binary}' is missing and 'apt-get install -y {package}' failed.\n"
            f"Install it by hand (as root: apt-get update && apt-get install -y {package}) and run again."
        )
    return found


def ensure_package_file(path: str, package: str) -> None:
    """Install Debian `package` when the file it provides (a plugin, say) is missing."""
    if os.path.exists(path):
        return
    print(f"{path} not found: installing the Debian package {package} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=True, timeout=180)
    if not os.path.exists(path):
        sys.exit(f"CANNOT RUN: {path} is missing and 'apt-get install -y {package}' failed; install it as root.")


# --- cleanup ------------------------------------------------------------------------------
def _cleanup() -> None:
    for proc in reversed(_processes):
        stop(proc)
    for path in reversed(_paths):
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, _frame: Any) -> None:
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def workdir(prefix: str) -> Path:
    """A private temp dir on the vault's disk (/work when it exists), removed at exit."""
    base = "/work" if os.path.isdir("/work") and os.access("/work", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=f"cb-bench-{prefix}-", dir=base))
    _paths.append(path)
    return path


def check_space(where: Path, needed: int) -> None:
    free = shutil.disk_usage(where).free
    if free < needed:
        sys.exit(
            f"CANNOT RUN: {where} has {free / GiB:.1f} GiB free, this run needs about {needed / GiB:.1f} GiB; "
            "pass a smaller size (--mib)."
        )


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    _processes.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)  # our own session: the process and its children
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


# --- data ---------------------------------------------------------------------------------
def stl_size(approx: int) -> int:
    """The exact length of a binary STL near `approx` bytes (84 + 50 per triangle)."""
    return 84 + 50 * max(1, (approx - 84) // 50)


def write_stl(path: Path, approx: int) -> int:
    """A binary STL of about `approx` bytes: valid header and count, incompressible body."""
    size = stl_size(approx)
    block = os.urandom(16 * MiB)
    with open(path, "wb") as handle:
        handle.write(b"CaseBridge benchmark scan".ljust(80, b" ") + struct.pack("<I", (size - 84) // 50))
        left = size - 84
        while left:
            n = handle.write(memoryview(block)[: min(left, len(block))])
            left -= n
    return size


# --- measuring ----------------------------------------------------------------------------
@dataclass
class Series:
    label: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()}: {os.cpu_count()} cores ({model or platform.machine()}), Linux {platform.release()}"


def banner(title: str) -> None:
    print(f"== {title}")
    print(f"   {datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {machine()}")


def rate(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6  # MB/s


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio >= target else "MISS"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- /proc --------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pids: list[int]) -> bool:
    """Reset VmHWM (writing 5 to clear_refs, Linux >= 4.0); False where not permitted."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


# --- a private CaseBridge ------------------------------------------------------------------
@dataclass
class Server:
    proc: subprocess.Popen[Any]
    port: int
    home: Path
    token: str
    cert: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        """The application's gunicorn workers: children of the master (the serve process)."""
        return [pid for pid in children(self.proc.pid) if not _is_transfer_server(pid)]

    def transfer_workers(self) -> list[int]:
        """The transfer server's worker: the process that streams download bytes."""
        return [w for pid in children(self.proc.pid) if _is_transfer_server(pid) for w in children(pid)]


def _is_transfer_server(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"casebridge.transfer" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _cli(home: Path, *args: str, timeout: float = 120) -> str:
    env = {**os.environ, "CASEBRIDGE_HOME": str(home), "DJANGO_SETTINGS_MODULE": "casebridge.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("CASEBRIDGE_STORAGE_URL", None)
    done = subprocess.run(
        [CASEBRIDGE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"casebridge {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_casebridge(
    home: Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    transfer_server: bool = True,
    worker: bool = False,
) -> Server:
    """`casebridge serve` on its own port and home, with an org and a service token;
    `transfer_server=False`: the application moves the bytes itself (`--transfer-port 0`);
    `worker`: with the background worker (ingest, scans), which most benchmarks leave out."""
    home.mkdir(parents=True, exist_ok=True)
    _cli(home, "migrate", "--verbosity", "0", timeout=300)  # over 120 s at load average 12-20
    _cli(home, "createadmin", "--email", "bench@example.com", "--org", "Bench Practice", "--kind", "practice")
    token = (
        _cli(
            home,
            "serviceaccount",
            "create",
            "--org",
            "bench-practice",
            "--name",
            "bench",
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
    port, transfer_port = free_port(), free_port() if transfer_server else 0
    env = {**os.environ, "CASEBRIDGE_HOME": str(home), "DJANGO_SETTINGS_MODULE": "casebridge.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("CASEBRIDGE_STORAGE_URL", None)
    env["CASEBRIDGE_TRANSFER_URL"] = f"https://127.0.0.1:{transfer_port}"
    cmd = [CASEBRIDGE, "serve", "--port", str(port), "--bind", "127.0.0.1", *([] if worker else ["--no-worker"])]
    cmd += ["--transfer-port", str(transfer_port)]
    if workers:
        cmd += ["--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = spawn(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    # serve runs collectstatic first, compressing the viewer bundles and their source maps (~60 MB):
    # over 90 s at load average 12-20 on the shared 2-core machine.
    wait_port(port, proc, timeout=300)
    server = Server(proc, port, home, token, home / "tls" / "cert.pem")
    deadline = time.monotonic() + 30

    def ready() -> bool:
        return len(server.workers()) >= (workers or 2) and (not transfer_server or bool(server.transfer_workers()))

    while not ready() and time.monotonic() < deadline:
        time.sleep(0.2)
    return server


def tus_upload(server: Server, path: Path) -> str:
    """Upload `path` with tus: POST to create, then one PATCH whose body curl streams from the
    file (tus clients use large chunks; one request is the common case for a LAN). Returns the id."""
    size = path.stat().st_size
    curl = ["curl", "-sS", "-k", "-D", "-", "-o", "/dev/null", "-H", f"Authorization: Bearer {server.token}"]
    curl += ["-H", f"Tus-Resumable: {TUS}"]
    head = subprocess.run(
        [*curl, "-X", "POST", "-H", f"Upload-Length: {size}", f"{server.base}/api/v1/uploads/"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    location = _header(head, "Location")
    if not location:
        raise RuntimeError(f"tus creation failed:\n{head}")
    url = location if location.startswith("http") else server.base + location
    patch = [*curl, "-X", "PATCH", "-H", "Content-Type: application/offset+octet-stream"]
    patch += ["-H", "Upload-Offset: 0", "-H", "Expect:", "-T", str(path), url]
    head = subprocess.run(patch, capture_output=True, text=True, timeout=600, check=True).stdout
    file_id = _header(head, "CaseBridge-File-Id")
    if not file_id:
        raise RuntimeError(f"tus PATCH did not complete the upload:\n{head}")
    return file_id


def _header(head: str, name: str) -> str:
    # The last response's headers (curl -D - prints every response, e.g. a 100 Continue first).
    value = ""
    for line in head.splitlines():
        key, _, rest = line.partition(":")
        if key.strip().lower() == name.lower():
            value = rest.strip()
    return value


@contextlib.contextmanager
def rss_sampler(pids: Callable[[], list[int]], interval: float = 0.05) -> Iterator[dict[str, int]]:
    """Poll VmRSS of `pids()` in a thread while the block runs; yields {'max_kib': ...}."""
    import threading

    result = {"max_kib": 0}
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            for pid in pids():
                result["max_kib"] = max(result["max_kib"], status_kib(pid, "VmRSS"))
            done.wait(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
