"""A real `casebridge serve` under Ctrl-C: every process of the terminal's group gets SIGINT; the
whole tree is gone within seconds, the transfer server is not started again on the way out, and
no worker is SIGKILLed. While it runs, commands beside it print links with its real port."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from casebridge.transfer.testing import free_port, listening, wait_until

QUICK_EXIT_SECONDS = 8.0  # before the fix: 32 s (a worker SIGKILLed after graceful_timeout)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_stops_serve_its_transfer_server_and_worker_within_seconds(tmp_path: Path) -> None:
    port, transfer_port = free_port(), free_port()
    env = {**os.environ, "CASEBRIDGE_HOME": str(tmp_path), "CASEBRIDGE_WORKERS": "2"}
    for name in ("DATABASE_URL", "CASEBRIDGE_PUBLIC_URL", "CASEBRIDGE_PORT"):
        env.pop(name, None)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [
                *(sys.executable, "-m", "casebridge.cli", "serve"),
                *("--port", str(port), "--transfer-port", str(transfer_port)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
    try:
        announced = tmp_path / "running_server.json"
        wait_until(lambda: announced.exists() and listening(port) and listening(transfer_port), 150, "serve to listen")
        assert json.loads(announced.read_text())["url"] == f"https://localhost:{port}"

        # A command run beside the server prints a link with the port it really listens on.
        created = subprocess.run(
            [
                *(sys.executable, "-m", "casebridge.cli", "createadmin"),
                *("--email", "boss@smile.test", "--org", "Smile Dental", "--kind", "practice"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert f"https://localhost:{port}/setup/" in created.stdout
        assert "8443" not in created.stdout and "CASEBRIDGE_PUBLIC_URL" not in created.stdout

        # Connections a browser opens ahead of time and leaves idle: each holds a server thread.
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        idle = [socket.create_connection(("127.0.0.1", p)) for p in (port, port, transfer_port)]
        idle.append(tls.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"))
        time.sleep(1)

        started = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C does
        serve.wait(timeout=60)
        serve_exit = time.monotonic() - started
        wait_until(lambda: _group_gone(serve.pid), QUICK_EXIT_SECONDS, "every process of the group to exit")
        everything_exit = time.monotonic() - started
        for connection in idle:
            connection.close()
    finally:
        if not _group_gone(serve.pid):
            os.killpg(serve.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert serve.returncode == 0, output
    assert serve_exit < QUICK_EXIT_SECONDS and everything_exit < QUICK_EXIT_SECONDS, output
    assert "starting it again" not in output, output  # no restart mid-shutdown
    assert "SIGKILL" not in output and "did not stop" not in output, output
    assert not announced.exists()  # nothing left that says a server runs here
    assert not listening(port) and not listening(transfer_port)
