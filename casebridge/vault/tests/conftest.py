"""Fixtures for the vault tests: a SoftHSM2 token and a moto server, both private to the test run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SOFTHSM_MODULES = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
]
TOKEN_LABEL = "casebridge-test"
USER_PIN = "271828"


def require(available: bool, what: str, install: str) -> None:
    """Skip locally when a tool is missing, but never under CI, where a skip would hide a gap."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true ({install})")
    pytest.skip(f"{what} tests skipped: not installed here ({install})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture
def vault_home(tmp_path: Path, settings: pytest.FixtureRequest) -> Iterator[Path]:
    """A private blob store and KEK file for one test, so tests never share ciphertext."""
    from casebridge.vault import config, keystore

    settings.VAULT_STORAGE_URL = f"file://{tmp_path / 'blobs'}"  # type: ignore[attr-defined]
    settings.VAULT_KEY_PROVIDER = f"local:{tmp_path / 'keys' / 'kek.json'}"  # type: ignore[attr-defined]
    config.reset_caches()
    keystore.forget_cached_keys()
    config.key_provider.cache_clear()
    from casebridge.vault.keys import provider_from_url

    provider_from_url(settings.VAULT_KEY_PROVIDER, create=True)  # type: ignore[attr-defined]
    yield tmp_path
    config.reset_caches()
    keystore.forget_cached_keys()
