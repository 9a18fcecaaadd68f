"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from django.db import connection

from casebridge.audit import triggers
from casebridge.core.testing import Personas, build_personas

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
        triggers.remove(connection)
        _state["triggers_removed"] = True


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
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required for browser tests under CI=true (apt-get install chromium)")
        pytest.skip("browser tests skipped: Debian's chromium is not installed (apt-get install chromium)")
    return path
