"""The real transfer server process: TLS, a ticket's bytes, one use, no Django in its memory."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.crypto.streaming import EncryptingWriter
from casebridge.kernel.tickets import DownloadTicket, seal, ticket_key
from casebridge.transfer import testing

pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
MiB = 1 << 20
KEY = ticket_key("the installation's secret")


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    cert: Path
    store: FileSystemStore
    log: Path

    def get(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.cert))
        connection = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("transfer")
    started = testing.start(tmp, KEY, f"file://{tmp / 'blobs'}")
    yield Running(started.proc, started.port, started.cert, FileSystemStore(tmp / "blobs"), started.log)
    started.stop()


def _put(store: FileSystemStore, content: bytes) -> DownloadTicket:
    dek, aad, name = os.urandom(32), b"object:1", f"objects/{os.urandom(4).hex()}/v1"
    with store.open_writer(name) as sink:
        writer = EncryptingWriter(sink, dek, aad)
        writer.write(content)
        writer.close()
    return DownloadTicket(
        blob=name,
        ciphertext_size=writer.ciphertext_size,
        dek=dek,
        associated=aad,
        start=0,
        end=len(content),
        size=len(content),
        partial=False,
        content_type="model/stl",
        filename="file_1.stl",
        etag='"sha256-00"',
    )


def test_it_streams_a_ticket_over_tls_once(server: Running) -> None:
    content = os.urandom(5 * MiB + 7)
    path = "/d/" + seal(KEY, _put(server.store, content))
    assert server.get(path) == (200, content)
    status, body = server.get(path)
    assert status == 410 and b"Start the download again" in body


def test_its_log_never_holds_a_ticket(server: Running) -> None:
    token = seal(KEY, _put(server.store, b"solid\n"))
    assert server.get("/d/" + token)[0] == 200
    assert server.get("/d/" + token[:-4] + "AAAA")[0] == 404
    deadline = time.time() + 5
    while b'"GET" 404' not in server.log.read_bytes() and time.time() < deadline:
        time.sleep(0.05)
    logged = server.log.read_text()
    assert '"GET" 200' in logged and '"GET" 404' in logged
    assert token[:40] not in logged and "/d/" not in logged


def test_a_worker_serving_a_file_stays_small(server: Running) -> None:
    content = os.urandom(24 * MiB)
    assert server.get("/d/" + seal(KEY, _put(server.store, content)))[1] == content
    status = Path(f"/proc/{server.worker_pid()}/status").read_text()
    peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    assert peak_kib < 64 * 1024, f"transfer worker peaked at {peak_kib // 1024} MiB"


def test_it_speaks_only_modern_tls(server: Running) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw),
    ):
        pass


def test_the_server_loads_no_django() -> None:
    probe = "import sys, casebridge.transfer.server; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "'django'" not in loaded and "'psycopg'" not in loaded and "'boto3'" not in loaded


@pytest.mark.parametrize("line", [b"\n", b"not hex\n", b"abcd\n"])
def test_it_refuses_to_start_without_a_proper_key(tmp_path: Path, line: bytes) -> None:
    proc, _port, _cert = testing.launch(tmp_path, line, f"file://{tmp_path / 'blobs'}")
    assert proc.wait(timeout=30) != 0
    output = (tmp_path / "transfer.log").read_text()
    assert "32-byte ticket key" in output
