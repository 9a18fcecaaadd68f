"""A real transfer server process for tests: the same command `casebridge serve` runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from casebridge.kernel.tls import ensure_self_signed


@dataclass
class RunningTransferServer:
    proc: subprocess.Popen[bytes]
    port: int
    cert: Path
    log: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=35)

    def kill(self) -> None:
        """SIGKILL the worker and the master, as a crash would: no request finishes."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        workers = [int(pid) for pid in children.read_text().split()] if self.proc.poll() is None else []
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(timeout=10)


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds, or fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback `port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def certificate(tmp: Path) -> tuple[Path, Path]:
    """The self-signed certificate and key under `tmp` that test servers share, as under serve."""
    cert, key = tmp / "tls" / "cert.pem", tmp / "tls" / "key.pem"
    ensure_self_signed(cert, key, ["localhost", "127.0.0.1"])
    return cert, key


def launch(
    tmp: Path, key_line: bytes, storage_url: str, app: list[str] | None = None, port: int = 0
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `python -m casebridge.transfer` with `key_line` on its standard input; `app`: the
    --app-url/--app-host/--app-origin arguments that turn uploads on; `port`: a free one if 0."""
    cert, key = certificate(tmp)
    port = port or free_port()
    command = [sys.executable, "-m", "casebridge.transfer", "--bind", f"127.0.0.1:{port}"]
    command += ["--certfile", str(cert), "--keyfile", str(key), "--storage-url", storage_url, "--threads", "4"]
    command += app or []
    log = (tmp / "transfer.log").open("wb")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own module
    log.close()
    assert proc.stdin is not None
    proc.stdin.write(key_line)
    proc.stdin.close()
    return proc, port, cert


def start(
    tmp: Path,
    key: bytes,
    storage_url: str,
    *,
    internal: bytes | None = None,
    app_url: str = "",
    app_origin: str = "",
    port: int = 0,
) -> RunningTransferServer:
    """A transfer server that listens and has its worker up, or AssertionError with its output.
    With `internal` and `app_url` it also takes upload bodies for the application there."""
    keys = key.hex().encode() + b"\n" + (internal.hex().encode() + b"\n" if internal else b"")
    app = ["--app-url", app_url, "--app-origin", app_origin] if app_url else None
    proc, port, cert = launch(tmp, keys, storage_url, app, port)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if children.read_text().strip():
                return RunningTransferServer(proc, port, cert, tmp / "transfer.log")
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the transfer server did not start:\n{(tmp / 'transfer.log').read_text()}")
