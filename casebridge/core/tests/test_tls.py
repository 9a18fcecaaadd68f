"""The real `casebridge serve` speaks TLS 1.2 and 1.3 only."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casebridge.transfer.testing import free_port

pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    """`casebridge serve`: the application's port, its transfer server's, the serve process."""
    home = tmp_path_factory.mktemp("home")
    port, transfer_port = free_port(), free_port()
    # The real server runs the production settings, not the suite's (settings_test.py).
    env = {**os.environ, "CASEBRIDGE_HOME": str(home), "CASEBRIDGE_WORKERS": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "casebridge.settings"
    env.pop("DATABASE_URL", None)
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "casebridge.cli", "serve", "--port", str(port), "--no-worker"),
            *("--transfer-port", str(transfer_port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    else:
        proc.kill()
    if proc.poll() is not None:
        raise AssertionError("server did not start:\n" + (home / "serve.log").read_text())
    yield port, transfer_port, proc
    proc.terminate()
    proc.wait(timeout=15)
    assert (Path(home) / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    assert Path(home).stat().st_mode & 0o077 == 0


@pytest.fixture(params=["application", "transfer server"])
def server(request: pytest.FixtureRequest, ports: tuple[int, int, subprocess.Popen[bytes]]) -> int:
    """Each listener `serve` opens; both must hold to the same TLS rules."""
    return ports[0] if request.param == "application" else ports[1]


def _handshake(port: int, version: ssl.TLSVersion) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer the old protocol at all
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reply = tls.recv(200).decode()
        return f"{tls.version()} {reply.splitlines()[0]}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_modern_tls_handshakes_succeed(server: int, version: ssl.TLSVersion) -> None:
    result = _handshake(server, version)
    assert result.startswith(version.name.replace("v", "v").replace("_", ".")) and "200 OK" in result


def test_tls_1_1_handshake_is_refused(server: int) -> None:
    with pytest.raises(ssl.SSLError) as excinfo:
        _handshake(server, ssl.TLSVersion.TLSv1_1)
    # The server refused the version; the client really offered TLS 1.1 (not a local error).
    assert "NO_PROTOCOLS_AVAILABLE" not in str(excinfo.value).upper()


def test_plain_http_gets_no_answer(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        reply = raw.recv(200)
    assert b"200 OK" not in reply


def test_serve_refuses_to_start_with_a_missing_key(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CASEBRIDGE_HOME": str(tmp_path),
        "CASEBRIDGE_KEY_PROVIDER": f"local:{tmp_path / 'nowhere' / 'kek.json'}",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "casebridge.cli", "serve", "--port", str(free_port()), "--no-worker"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert b"cannot start" in result.stderr and b"kek.json" in result.stderr


def _transfer_server_of(serve: subprocess.Popen[bytes]) -> int | None:
    # Children of every thread: serve starts the transfer server again from a watching thread.
    tasks = Path(f"/proc/{serve.pid}/task").iterdir()
    children = [child for task in tasks for child in (task / "children").read_text().split()]
    for child in children:
        try:
            if b"casebridge.transfer" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        except OSError:
            continue
    return None


def test_a_transfer_server_that_dies_is_started_again(ports: tuple[int, int, subprocess.Popen[bytes]]) -> None:
    _port, transfer_port, serve = ports
    first = _transfer_server_of(serve)
    assert first is not None
    os.kill(first, signal.SIGKILL)  # as a crash would
    deadline = time.time() + 60
    while time.time() < deadline:
        again = _transfer_server_of(serve)
        if again not in (None, first):
            try:
                if "200 OK" in _handshake(transfer_port, ssl.TLSVersion.TLSv1_3):
                    return
            except OSError:
                pass
        time.sleep(0.3)
    raise AssertionError("the transfer server was not started again within 60 s")
