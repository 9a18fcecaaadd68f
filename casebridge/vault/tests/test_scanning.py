"""Tests for the clamd client, against a real clamd started with a signature database made here."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from casebridge.transfer.testing import free_port
from casebridge.vault.scanning import ClamdScanner, ScannerUnavailable, ScanResult, scan
from casebridge.vault.tests.conftest import (
    HASHED_SAMPLE,
    HASHED_SIGNATURE,
    MARKER,
    MARKER_SIGNATURE,
    MIB,
    STREAM_MAX_MIB,
    Clamd,
)


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes as repeats of one chunk: the test itself stays in constant memory."""
    sent = 0
    while sent < total:
        piece = chunk[: total - sent]
        sent += len(piece)
        yield piece


# --- against a real clamd --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_it_passes_clean_content(clamd: Clamd, transport: str) -> None:
    scanner = ClamdScanner(clamd.unix_url if transport == "unix" else clamd.tcp_url)
    assert scanner.scan([b"solid tooth\n", b"endsolid tooth\n"]) == ScanResult(clean=True, signature=None)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_it_reports_the_signature_found(clamd: Clamd, transport: str) -> None:
    scanner = ClamdScanner(clamd.unix_url if transport == "unix" else clamd.tcp_url)
    result = scanner.scan([b"harmless start ", MARKER, b" harmless end"])
    assert not result.clean
    assert result.signature is not None
    # clamd appends ".UNOFFICIAL" to signatures from unsigned databases.
    assert result.signature.startswith(MARKER_SIGNATURE)


def test_it_finds_a_marker_split_across_chunks(clamd: Clamd) -> None:
    scanner = ClamdScanner(clamd.unix_url)
    half = len(MARKER) // 2
    result = scanner.scan([b"x" * 1000 + MARKER[:half], MARKER[half:] + b"y" * 1000])
    assert result.signature is not None and result.signature.startswith(MARKER_SIGNATURE)


def test_it_matches_a_whole_file_hash_signature(clamd: Clamd) -> None:
    scanner = ClamdScanner(clamd.unix_url)
    result = scanner.scan([HASHED_SAMPLE[:10], HASHED_SAMPLE[10:]])
    assert result.signature is not None and result.signature.startswith(HASHED_SIGNATURE)
    assert scanner.scan([HASHED_SAMPLE + b"\n"]).clean


def test_empty_chunks_do_not_end_the_stream_early(clamd: Clamd) -> None:
    # A zero-length frame means "end of stream" to clamd; the marker after it must still be seen.
    result = ClamdScanner(clamd.unix_url).scan([b"start", b"", MARKER])
    assert not result.clean


def test_it_scans_an_empty_stream(clamd: Clamd) -> None:
    assert ClamdScanner(clamd.unix_url).scan([]).clean


def test_it_streams_several_mebibytes_in_constant_memory(clamd: Clamd) -> None:
    scanner = ClamdScanner(clamd.tcp_url)
    total = 16 * MIB
    tracemalloc.start()
    try:
        result = scanner.scan(repeated(bytes(range(256)) * 256, total))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.clean
    assert peak < 1 * MIB, f"scanning {total} bytes peaked at {peak} bytes of Python memory"


def test_it_finds_a_marker_at_the_end_of_a_large_stream(clamd: Clamd) -> None:
    chunks = [*repeated(b"\x00" * 65536, 4 * MIB), MARKER]
    result = ClamdScanner(clamd.unix_url).scan(chunks)
    assert result.signature is not None and result.signature.startswith(MARKER_SIGNATURE)


def test_it_splits_one_huge_chunk_into_frames(clamd: Clamd) -> None:
    huge = b"\x01" * (5 * MIB) + MARKER
    result = ClamdScanner(clamd.unix_url).scan([huge])
    assert not result.clean


def test_it_raises_when_the_stream_exceeds_clamds_limit(clamd: Clamd) -> None:
    scanner = ClamdScanner(clamd.unix_url)
    with pytest.raises(ScannerUnavailable, match=r"too large.*StreamMaxLength"):
        scanner.scan(repeated(b"\x02" * MIB, (STREAM_MAX_MIB + 4) * MIB))


def test_it_raises_over_tcp_when_the_stream_exceeds_clamds_limit(clamd: Clamd) -> None:
    # Over TCP the reason may be lost to a reset; what matters is that no verdict is invented.
    with pytest.raises(ScannerUnavailable):
        ClamdScanner(clamd.tcp_url).scan(repeated(b"\x02" * MIB, (STREAM_MAX_MIB + 4) * MIB))


def test_errors_from_the_chunks_propagate_unchanged(clamd: Clamd) -> None:
    def failing() -> Iterator[bytes]:
        yield b"part of a file"
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away") as caught:
        ClamdScanner(clamd.unix_url).scan(failing())
    assert not isinstance(caught.value, ScannerUnavailable)


def test_the_one_call_form_scans_by_url(clamd: Clamd) -> None:
    assert scan(clamd.unix_url, [b"clean"]).clean
    assert not scan(clamd.tcp_url, [MARKER]).clean


def test_ping_succeeds_against_a_running_daemon(clamd: Clamd) -> None:
    ClamdScanner(clamd.unix_url).ping()
    ClamdScanner(clamd.tcp_url).ping()


# --- without a daemon ------------------------------------------------------------------------


def test_it_raises_when_the_socket_path_is_absent(tmp_path: Path) -> None:
    scanner = ClamdScanner(f"unix://{tmp_path / 'nothing-here.ctl'}")
    with pytest.raises(ScannerUnavailable, match="cannot reach clamd"):
        scanner.scan([b"data"])
    with pytest.raises(ScannerUnavailable, match="cannot reach clamd"):
        scanner.ping()


def test_it_raises_when_the_daemon_is_stopped() -> None:
    # A stopped clamd leaves its socket file behind: connecting is refused.
    with tempfile.TemporaryDirectory(prefix="cb-stale-") as directory:
        path = Path(directory) / "clamd.ctl"
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        stale.close()
        with pytest.raises(ScannerUnavailable, match="cannot reach clamd"):
            ClamdScanner(f"unix://{path}").scan([b"data"])


def test_it_raises_when_nothing_listens_on_the_tcp_port() -> None:
    with pytest.raises(ScannerUnavailable, match="cannot reach clamd"):
        ClamdScanner(f"tcp://127.0.0.1:{free_port()}", connect_timeout=2).scan([b"data"])


@pytest.fixture
def fake_clamd() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A one-connection UNIX server whose behaviour the test supplies; yields a starter."""
    directory = tempfile.mkdtemp(prefix="cb-fake-")
    threads: list[threading.Thread] = []
    servers: list[socket.socket] = []

    def start(behaviour: Callable[[socket.socket], None]) -> str:
        path = f"{directory}/fake-{len(servers)}.ctl"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        servers.append(server)

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                behaviour(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"unix://{path}"

    yield start
    for thread in threads:
        thread.join(timeout=5)
    for server in servers:
        server.close()
    shutil.rmtree(directory, ignore_errors=True)


def read_until_end_of_stream(connection: socket.socket) -> None:
    buffered = b""
    while not buffered.endswith(b"\0\0\0\0"):
        data = connection.recv(65536)
        if not data:
            return
        buffered = (buffered + data)[-4:]


def test_it_raises_when_the_daemon_hangs_up_without_a_verdict(fake_clamd: Callable[..., str]) -> None:
    url = fake_clamd(read_until_end_of_stream)
    with pytest.raises(ScannerUnavailable, match="without a verdict"):
        ClamdScanner(url).scan([b"data"])


def test_it_raises_when_the_daemon_never_answers(fake_clamd: Callable[..., str]) -> None:
    def silent(connection: socket.socket) -> None:
        read_until_end_of_stream(connection)
        time.sleep(1.5)

    url = fake_clamd(silent)
    with pytest.raises(ScannerUnavailable, match="gave no verdict"):
        ClamdScanner(url, timeout=0.5).scan([b"data"])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"stream: Can't allocate memory ERROR\0", "could not scan"),
        (b"UNKNOWN COMMAND\0", "other than a verdict"),
        (b"stream:  FOUND\0", "other than a verdict"),
    ],
)
def test_it_raises_on_replies_that_are_not_verdicts(fake_clamd: Callable[..., str], reply: bytes, message: str) -> None:
    def answer(connection: socket.socket) -> None:
        read_until_end_of_stream(connection)
        connection.sendall(reply)

    with pytest.raises(ScannerUnavailable, match=message):
        ClamdScanner(fake_clamd(answer)).scan([b"data"])


def test_it_sends_the_instream_protocol(fake_clamd: Callable[..., str]) -> None:
    received = bytearray()

    def record(connection: socket.socket) -> None:
        while not received.endswith(b"\0\0\0\0"):
            received.extend(connection.recv(65536))
        connection.sendall(b"stream: OK\0")

    assert ClamdScanner(fake_clamd(record)).scan([b"ab", b"", b"cde"]).clean
    assert bytes(received) == b"zINSTREAM\0" + b"\0\0\0\x02ab" + b"\0\0\0\x03cde" + b"\0\0\0\0"


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "clamd.ctl",
        "http://127.0.0.1:3310",
        "unix://relative/clamd.ctl",
        "unix:relative.ctl",
        "tcp://",
        "tcp://127.0.0.1:notaport",
        "tcp://127.0.0.1:3310/path",
    ],
)
def test_it_refuses_malformed_urls_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="clamd URL"):
        ClamdScanner(url)


def test_tcp_port_defaults_to_clamds() -> None:
    scanner = ClamdScanner("tcp://127.0.0.1")
    assert scanner.url == "tcp://127.0.0.1"
    assert scanner._address == ("127.0.0.1", 3310)
