"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from pytest_django.fixtures import Settings

from casebridge.audit import triggers
from casebridge.core.browser_testing import (  # noqa: F401 (fixtures)
    browser,
    https_site,
    new_context,
    page,
    server_idle,
    settle,
    site,
)
from casebridge.core.testing import Personas, build_personas, require

_state = {"triggers_removed": False}


@pytest.fixture(autouse=True)
def _audit_triggers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep the append-only triggers in place for every test, but let the database flush that
    ends a transactional test (live server, several processes) empty the audit tables."""
    names = request.fixturenames
    transactional = "transactional_db" in names or "live_server" in names
    if transactional:
        request.getfixturevalue("transactional_db")
    if _state["triggers_removed"] and (transactional or "db" in names):
        blocker = request.getfixturevalue("django_db_blocker")
        with blocker.unblock():
            triggers.install(connection)
        _state["triggers_removed"] = False
    yield
    if transactional:
        _remove_triggers()
        _state["triggers_removed"] = True


def _remove_triggers(attempts: int = 10) -> None:
    """Drop the triggers for the flush. A live server's thread may still be sealing its last
    request's events (PostgreSQL seals after the response is sent): its reads of the partitioned
    event table and these DROP TRIGGERs can deadlock, and PostgreSQL then cancels one of them.
    When it cancels the drop, the drop is tried again once the seal has gone through."""
    for attempt in range(attempts):
        try:
            triggers.remove(connection)
            return
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """A browser test's pages are closed, and the live server has answered their last requests,
    before any of its fixtures is torn down: a thumbnail still loading when the test ends would
    otherwise be served with the test's vault already gone."""
    settle()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs the suite twice, on SQLite and on PostgreSQL (DATABASE_URL): a test that
    needs PostgreSQL runs in the second pass only, and one that builds installations with
    databases of their own (whatever the suite runs on) in the first only, instead of twice."""
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    for item in items:
        if item.get_closest_marker("postgres_only") and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: `make test-postgres` runs it"))
        if item.get_closest_marker("sqlite_pass_only") and on_postgres:
            item.add_marker(pytest.mark.skip(reason="runs once, in the SQLite pass"))


@pytest.fixture(autouse=True)
def _private_audit_witness(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test's checkpoints are witnessed in a folder of its own: another test's later
    checkpoints would read as a rolled-back database."""
    settings.AUDIT_WITNESS_DIR = tmp_path_factory.mktemp("audit-witness")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest, request: pytest.FixtureRequest) -> None:
    """Argon2id is deliberately slow; tests that are not about hashing use a fast hasher.
    accounts/tests/test_passwords.py checks the real configuration."""
    if request.node.get_closest_marker("real_password_hashing") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture
def personas(db: None) -> Personas:
    return build_personas()


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_executable() -> str:
    path = chromium_path()
    require(path is not None, "chromium (browser tests)", "apt-get install chromium")
    assert path is not None
    return path


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
