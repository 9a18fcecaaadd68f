"""A standard tus client (tuspy) against the real `casebridge serve` over TLS: it resumes after a
connection dropped mid-request and after the server was killed and started again. The bodies go
to the transfer server `serve` starts (the tus Location points there), downloads come from it.
Every test runs with the blobs on the filesystem and in S3 (moto's server over HTTP on loopback),
where the transfer server stages parts through the URLs the application presigns."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from casebridge.kernel.tickets import internal_key, ticket_key
from casebridge.transfer import testing as transfer_testing
from casebridge.transfer.testing import free_port
from casebridge.vault.tests.samples import binary_stl

MiB = 1 << 20
TIMEOUT = 60


@dataclass
class Server:
    home: Path
    port: int
    token: str
    transfer_port: int = 0
    storage_url: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def cert(self) -> str:
        """The server's self-signed certificate, trusted as its own CA: TLS is verified, not skipped."""
        return str(self.home / "tls" / "cert.pem")

    def request(self, method: str, url: str, **kwargs: object) -> requests.Response:
        return requests.request(method, url, verify=self.cert, timeout=TIMEOUT, **kwargs)

    def env(self) -> dict[str, str]:
        # The real server runs the production settings, not the suite's (settings_test.py).
        env = {**os.environ, "CASEBRIDGE_HOME": str(self.home), "CASEBRIDGE_WORKERS": "1"}
        env["DJANGO_SETTINGS_MODULE"] = "casebridge.settings"
        env.pop("DATABASE_URL", None)
        if self.storage_url:
            env["CASEBRIDGE_STORAGE_URL"] = self.storage_url
        return env

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "casebridge.cli", *args],
            env=self.env(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        return result.stdout.decode()

    def start(self) -> None:
        log = (self.home / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "casebridge.cli", "serve", "--port", str(self.port), "--no-worker"),
                *("--transfer-port", str(self.transfer_port)),
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", verify=self.cert, timeout=2).status_code == 200:
                    return
            except (requests.RequestException, OSError):
                time.sleep(0.3)
        raise AssertionError("server did not start:\n" + (self.home / "serve.log").read_text())

    def kill(self) -> None:
        """SIGKILL the whole process group: no graceful shutdown, as in a crash or power loss."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module", params=["file storage", "s3 on moto server over http loopback"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("tus-home")
    storage_url = ""
    if request.param.startswith("s3"):
        endpoint = request.getfixturevalue("moto_endpoint")  # its AWS_* variables reach serve too
        bucket = f"cb-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        storage_url = f"s3://{bucket}/vault?endpoint={endpoint}&region=us-east-1"
    srv = Server(home=home, port=free_port(), token="", transfer_port=free_port(), storage_url=storage_url)
    srv.cli("migrate", "--noinput")
    srv.cli("createadmin", "--email", "owner@e2e.test", "--org", "E2E Dental", "--kind", "practice")
    srv.token = srv.cli(
        "serviceaccount",
        "create",
        "--org",
        "e2e-dental",
        "--name",
        "scanner",
        "--role",
        "staff",
        "--scope",
        "cases:write",
        "--scope",
        "cases:read",
    ).strip()
    srv.start()
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = srv.cert
    yield srv
    if saved is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = saved
    if srv.process is not None and srv.process.poll() is None:
        os.killpg(srv.process.pid, signal.SIGTERM)
        srv.process.wait(timeout=20)


def _uploader(server: Server, path: Path, url: str | None = None) -> object:
    client = tus.TusClient(f"{server.base}/api/v1/uploads/", headers=server.headers())
    # tuspy only takes a yes/no for verification; requests then trusts REQUESTS_CA_BUNDLE (see the fixture).
    return client.uploader(file_path=str(path), url=url, chunk_size=MiB, verify_tls_cert=True)


def _download(server: Server, file_id: str) -> bytes:
    response = server.request("GET", f"{server.base}/api/v1/files/{file_id}/content", headers=server.headers())
    assert response.status_code == 200
    # The application decided and handed the bytes to its transfer server.
    assert [r.status_code for r in response.history] == [307]
    assert response.url.startswith(f"https://localhost:{server.transfer_port}/d/")
    return response.content


def _head(server: Server, url: str) -> requests.Response:
    return server.request("HEAD", url, headers={**server.headers(), "Tus-Resumable": "1.0.0"})


def _file_id(server: Server, url: str) -> str:
    return str(_head(server, url).headers["CaseBridge-File-Id"])


def test_resumes_after_the_connection_drops_mid_request(server: Server, tmp_path: Path) -> None:
    content = binary_stl(5 * MiB)
    path = tmp_path / "scan.stl"
    path.write_bytes(content)
    created = server.request(
        "POST",
        f"{server.base}/api/v1/uploads/",
        headers={**server.headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(content))},
    )
    assert created.status_code == 201
    url = created.headers["Location"]
    # The application created it; its bodies go to the transfer server.
    assert url.startswith(f"https://localhost:{server.transfer_port}/u/")
    # A PATCH announcing 4 MiB that dies after 2.5 MiB, like a laptop leaving the Wi-Fi.
    raw = socket.create_connection(("127.0.0.1", server.transfer_port))
    ctx = ssl.create_default_context(cafile=server.cert)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    path_only = urlsplit(url).path
    tls.sendall(
        (
            f"PATCH {path_only} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {server.token}\r\n"
            "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {4 * MiB}\r\n\r\n"
        ).encode()
        + content[: int(2.5 * MiB)]
    )
    time.sleep(0.5)
    tls.close()
    offset = 0
    for _ in range(50):
        offset = int(_head(server, url).headers["Upload-Offset"])
        if offset:
            break
        time.sleep(0.2)
    assert 0 < offset <= int(2.5 * MiB)  # what arrived was kept
    uploader = _uploader(server, path, url=url)
    uploader.upload()
    file_id = _file_id(server, url)
    assert hashlib.sha256(_download(server, file_id)).digest() == hashlib.sha256(content).digest()


def test_resumes_after_the_server_is_killed_and_restarted(server: Server, tmp_path: Path) -> None:
    content = binary_stl(6 * MiB + 777)
    path = tmp_path / "cbct.stl"
    path.write_bytes(content)
    uploader = _uploader(server, path)
    uploader.upload(stop_at=3 * MiB)
    url = uploader.url
    assert int(_head(server, url).headers["Upload-Offset"]) == 3 * MiB
    server.kill()
    server.start()
    resumed = _uploader(server, path, url=url)
    assert resumed.offset == 3 * MiB
    resumed.upload()
    file_id = _file_id(server, url)
    body = _download(server, file_id)
    assert body == content


def _descendants(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *_descendants(int(child))]
    return found


def test_the_transfer_worker_taking_a_large_body_stays_small(server: Server, tmp_path: Path) -> None:
    """24 MiB in one PATCH: the worker holds a few segment buffers (and, on S3, one part), never the body."""
    content = binary_stl(24 * MiB)
    path = tmp_path / "arch.stl"
    path.write_bytes(content)
    client = tus.TusClient(f"{server.base}/api/v1/uploads/", headers=server.headers())
    uploader: Any = client.uploader(file_path=str(path), chunk_size=len(content), verify_tls_cert=True)
    uploader.upload()
    assert _download(server, _file_id(server, uploader.url)) == content
    assert server.process is not None
    transfer = [p for p in _descendants(server.process.pid) if b"casebridge.transfer" in _cmdline(p)]
    workers = [w for p in transfer for w in _descendants(p)]
    assert workers, "no transfer server worker found"
    for worker in workers:
        status = Path(f"/proc/{worker}/status").read_text()
        peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
        assert peak_kib < 64 * 1024, f"transfer worker peaked at {peak_kib / 1024:.1f} MiB"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_download_ticket_works_once_across_a_restart_and_on_another_transfer_server(
    server: Server, tmp_path: Path
) -> None:
    content = binary_stl(2 * MiB + 5)
    path = tmp_path / "crown.stl"
    path.write_bytes(content)
    uploader = _uploader(server, path)
    uploader.upload()
    file_id = _file_id(server, uploader.url)
    decided = server.request(
        "GET", f"{server.base}/api/v1/files/{file_id}/content", headers=server.headers(), allow_redirects=False
    )
    assert decided.status_code == 307
    ticket_url = decided.headers["Location"]
    assert server.request("GET", ticket_url).content == content

    # Another transfer server of the installation (as on a second host), asking the same application.
    secret = (server.home / "secret_key").read_text().strip()
    other = transfer_testing.start(
        server.home,
        ticket_key(secret),
        server.storage_url or f"file://{server.home / 'blobs'}",
        internal=internal_key(secret),
        app_url=f"https://127.0.0.1:{server.port}",
        app_origin=server.base,
    )
    try:
        elsewhere = server.request("GET", f"{other.url}{urlsplit(ticket_url).path}")
        assert elsewhere.status_code == 410 and content not in elsewhere.content
    finally:
        other.stop()

    # The whole server killed and started again, well inside the ticket's 60 seconds.
    server.kill()
    server.start()
    again = server.request("GET", ticket_url)
    assert again.status_code == 410 and content not in again.content


@pytest.mark.parametrize("to", ["the transfer server", "the application"])
def test_a_body_refused_for_its_type_gets_its_answer_while_the_client_is_still_sending(
    server: Server, tmp_path: Path, to: str
) -> None:
    """20 MiB of random bytes named x.stl, in 8 MiB PATCHes: the type is refused after the first
    MiB, with 7 MiB (far more than the socket buffers) still on its way. The client reads the 415
    and its reason instead of a broken connection it would retry."""
    path = tmp_path / "x.stl"
    path.write_bytes(os.urandom(20 * MiB))
    created = server.request(
        "POST",
        f"{server.base}/api/v1/uploads/",
        headers={**server.headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(20 * MiB)},
    )
    assert created.status_code == 201
    url = created.headers["Location"]
    if to == "the application":  # the application takes a PATCH sent to it as well
        url = f"{server.base}/api/v1/uploads/{url.rsplit('/', 1)[1]}"
    client = tus.TusClient(f"{server.base}/api/v1/uploads/", headers=server.headers())
    uploader: Any = client.uploader(file_path=str(path), url=url, chunk_size=8 * MiB, verify_tls_cert=True)
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 415, refused.value
    assert b"STL" in refused.value.response_content  # the list of accepted types
    assert _head(server, url).status_code == 404  # the refused upload is gone


@pytest.mark.parametrize("to", ["the transfer server", "the application"])
def test_a_body_refused_before_a_byte_of_it_is_read_gets_its_answer(server: Server, to: str) -> None:
    """A PATCH at the wrong offset is refused before its body is read (as a lease, a scope or a
    size refusal is): the client, still sending 24 MiB, reads the 409."""
    created = server.request(
        "POST",
        f"{server.base}/api/v1/uploads/",
        headers={**server.headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(48 * MiB)},
    )
    url = created.headers["Location"]
    if to == "the application":
        url = f"{server.base}/api/v1/uploads/{url.rsplit('/', 1)[1]}"
    headers = {
        **server.headers(),
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": str(MiB),
        "Content-Type": "application/offset+octet-stream",
    }
    answer = server.request("PATCH", url, headers=headers, data=binary_stl(24 * MiB))
    assert answer.status_code == 409
    assert "Upload-Offset" in answer.text


def test_a_long_patch_killed_with_the_server_resumes_at_once_from_its_last_checkpoint(
    server: Server, tmp_path: Path
) -> None:
    """One 48 MiB PATCH, sent at a few MiB/s; while it flows, the upload's offset advances (its
    request hands over what is durably staged as it renews its lease). The server is killed
    (SIGKILL, every process) at 85%, started again, and tuspy resumes at once, from that offset:
    not 0, and although the dead request's lease has not run out yet."""
    content = binary_stl(48 * MiB)
    size = len(content)
    path = tmp_path / "cbct.stl"
    path.write_bytes(content)
    created = server.request(
        "POST",
        f"{server.base}/api/v1/uploads/",
        headers={**server.headers(), "Tus-Resumable": "1.0.0", "Upload-Length": str(size)},
    )
    url = created.headers["Location"]
    tls = ssl.create_default_context(cafile=server.cert).wrap_socket(
        socket.create_connection(("127.0.0.1", server.transfer_port)), server_hostname="localhost"
    )
    tls.sendall(
        (
            f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {server.token}\r\n"
            "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
    )
    sent, durable = 0, 0
    deadline = time.monotonic() + 90
    while sent < size * 85 // 100 and time.monotonic() < deadline:
        tls.sendall(content[sent : sent + MiB // 2])
        sent += MiB // 2
        # ~6 MiB/s, and slower near the end until half the body is committed: on a busy machine the
        # checkpoints lag, and they come only while bytes flow.
        time.sleep(0.08 if durable >= size // 2 or sent < size * 7 // 10 else 0.4)
        if durable < size // 2 and sent % (2 * MiB) == 0:
            durable = int(_head(server, url).headers["Upload-Offset"])
    durable = int(_head(server, url).headers["Upload-Offset"])
    assert durable >= size // 2, f"only {durable} of the {sent} bytes sent were committed while the body flowed"

    server.kill()
    tls.close()
    # The dead request's lease is still held, and for longer than any restart takes (however slow
    # the machine): without the takeover of a dead holder's lease, the resume below would get 423.
    upload_id = urlsplit(url).path.rsplit("/", 1)[1].replace("-", "")
    held_until = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(server.home / "casebridge.sqlite3") as db:
        changed = db.execute(
            "UPDATE vault_upload SET lease_until = ? WHERE id = ? AND lease_token != ''", [held_until, upload_id]
        ).rowcount
    assert changed == 1, "the killed request held no lease"
    server.start()
    resumed: Any = _uploader(server, path, url=url)
    assert resumed.offset >= durable
    resumed.upload_chunk()  # tuspy does not retry: a 423 would raise here
    resumed.upload()
    assert _download(server, _file_id(server, url)) == content
