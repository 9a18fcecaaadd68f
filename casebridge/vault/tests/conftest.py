"""Fixtures for the vault tests: a SoftHSM2 token and a moto server, both private to the test run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from casebridge.core.testing import require
from casebridge.transfer.testing import free_port
from casebridge.vault.scanning import ClamdScanner, ScannerUnavailable

SOFTHSM_MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
]
TOKEN_LABEL = "casebridge-test"
USER_PIN = "271828"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh SoftHSM2 token in a temporary directory; yields module path, token label and PIN."""
    module = next((m for m in SOFTHSM_MODULES if Path(m).is_file()), None)
    tool = shutil.which("softhsm2-util")
    require(module is not None and tool is not None, "SoftHSM2 (PKCS#11)", "apt-get install softhsm2")
    assert module is not None and tool is not None
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        require(False, "python-pkcs11", "pip install python-pkcs11")
    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    # SoftHSM reads this when the module is first initialized in this process.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [tool, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", USER_PIN, "--so-pin", "314159"],
        check=True,
        capture_output=True,
    )
    yield {"module": module, "token": TOKEN_LABEL, "pin": USER_PIN}
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode on a free loopback port: real HTTP, boto3 talks to it like to AWS."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        require(False, "moto server", "pip install 'moto[server]'")
        raise
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# --- clamd: one real daemon per test session, with a signature database made here ---------
# A made-up marker, matched by a body signature (.ndb) written below: real signature databases
# never load here (no freshclam, no network), and EICAR would upset scanners on developer laptops.
MARKER = b"CASEBRIDGE-TEST-MALWARE-MARKER-7f3a9c"
MARKER_SIGNATURE = "CaseBridge.Test.Marker"
# A whole-file hash signature (.hdb) for this exact sample.
HASHED_SAMPLE = b"solid hashed\nendsolid hashed\n" * 7
HASHED_SIGNATURE = "CaseBridge.Test.HashedSample"
# Small enough to test the size-limit error quickly, big enough for "a few MiB" streams.
STREAM_MAX_MIB = 20
MIB = 1 << 20


@dataclass(frozen=True)
class Clamd:
    unix_url: str
    tcp_url: str


def clamd_binary() -> str | None:
    found = shutil.which("clamd")
    if found:
        return found
    return "/usr/sbin/clamd" if Path("/usr/sbin/clamd").is_file() else None


@pytest.fixture(scope="session")
def clamd() -> Iterator[Clamd]:
    """One clamd for the whole session, on a UNIX socket and a loopback TCP port."""
    binary = clamd_binary()
    require(binary is not None, "ClamAV daemon (clamd)", "apt-get install clamav-daemon clamav")
    assert binary is not None
    # Not tmp_path_factory: UNIX socket paths are limited to ~107 bytes and pytest's can be longer.
    home = Path(tempfile.mkdtemp(prefix="cb-clamd-"))
    database = home / "db"
    database.mkdir()
    (database / "casebridge-test.ndb").write_text(f"{MARKER_SIGNATURE}:0:*:{MARKER.hex()}\n")
    md5 = hashlib.md5(HASHED_SAMPLE).hexdigest()  # noqa: S324 - the .hdb format is MD5
    (database / "casebridge-test.hdb").write_text(f"{md5}:{len(HASHED_SAMPLE)}:{HASHED_SIGNATURE}\n")
    port = free_port()
    config = home / "clamd.conf"
    config.write_text(
        f"LocalSocket {home / 'clamd.sock'}\n"
        f"TCPSocket {port}\n"
        "TCPAddr 127.0.0.1\n"
        f"DatabaseDirectory {database}\n"
        f"LogFile {home / 'clamd.log'}\n"
        "Foreground yes\n"
        f"StreamMaxLength {STREAM_MAX_MIB}M\n"
        "SelfCheck 0\n"
    )
    process = subprocess.Popen(
        [binary, "--config-file", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    daemon = Clamd(unix_url=f"unix://{home / 'clamd.sock'}", tcp_url=f"tcp://127.0.0.1:{port}")
    try:
        wait_until_answering(process, daemon, home / "clamd.log")
        yield daemon
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


def wait_until_answering(process: subprocess.Popen[bytes], daemon: Clamd, log: Path) -> None:
    deadline = time.monotonic() + 60  # loading a database takes seconds; ours is two lines
    while time.monotonic() < deadline:
        if process.poll() is not None:
            details = log.read_text() if log.exists() else "(no log)"
            pytest.fail(f"clamd exited with {process.returncode} before answering:\n{details}")
        try:
            ClamdScanner(daemon.unix_url, connect_timeout=1).ping()
            ClamdScanner(daemon.tcp_url, connect_timeout=1).ping()
            return
        except ScannerUnavailable:
            time.sleep(0.1)
    pytest.fail("clamd did not answer within 60 seconds")
