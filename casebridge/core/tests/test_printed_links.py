"""Links printed by `createadmin` and `demo` name the server that really runs on this
CASEBRIDGE_HOME, or say which variable to set when none is found."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from casebridge.core import running_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def home(tmp_path: Path, settings: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CASEBRIDGE_PUBLIC_URL", raising=False)
    # pytest-django's settings fixture is untyped; the project's conftest does the same.
    settings.HOME = tmp_path
    settings.PUBLIC_URL = "https://localhost:8443"
    return tmp_path


def _createadmin() -> str:
    out = StringIO()
    call_command("createadmin", "--email", "boss@smile.test", "--org", "Smile", "--kind", "practice", stdout=out)
    return out.getvalue()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_link_names_the_running_servers_port(home: Path) -> None:
    running_server.announce("https://localhost:9443", home=home)
    output = _createadmin()
    assert re.search(r"^  https://localhost:9443/setup/\S+/$", output, re.MULTILINE)
    assert "CASEBRIDGE_PUBLIC_URL" not in output


def test_without_a_running_server_the_default_is_printed_with_what_to_set(home: Path) -> None:
    (home / running_server.FILE_NAME).write_text(json.dumps({"url": "https://localhost:9443", "pid": _dead_pid()}))
    output = _createadmin()
    assert "https://localhost:8443/setup/" in output  # a server that was killed is not believed
    assert "No running `casebridge serve` found" in output and "set CASEBRIDGE_PUBLIC_URL" in output


@pytest.mark.parametrize("content", ["", "not json", '{"url": "https://x"}', '{"pid": "many"}', "[]"])
def test_a_damaged_announcement_is_ignored(home: Path, content: str) -> None:
    (home / running_server.FILE_NAME).write_text(content)
    assert running_server.running_url(home=home) is None


def test_an_explicit_public_url_wins_over_the_running_server(
    home: Path, settings: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    running_server.announce("https://localhost:9443", home=home)
    monkeypatch.setenv("CASEBRIDGE_PUBLIC_URL", "https://cases.example.com")
    settings.PUBLIC_URL = "https://cases.example.com"
    assert "https://cases.example.com/setup/" in _createadmin()


def test_the_announcement_is_private_and_withdrawn_only_by_its_writer(home: Path) -> None:
    running_server.announce("https://localhost:9443", home=home)
    path = home / running_server.FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert running_server.running_url(home=home) == "https://localhost:9443"
    path.write_text(json.dumps({"url": "https://localhost:7443", "pid": os.getppid()}))  # another serve's
    running_server.withdraw(home=home)
    assert path.exists()
    running_server.announce("https://localhost:9443", home=home)
    running_server.withdraw(home=home)
    assert not path.exists()


def test_demo_prints_the_running_servers_sign_in_link(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casebridge.cases import demo

    monkeypatch.setattr(demo, "build", lambda on_progress: [])  # the world itself: cases/tests/test_demo.py
    running_server.announce("https://localhost:9443", home=home)
    out = StringIO()
    call_command("demo", stdout=out)
    assert "Sign in at https://localhost:9443/accounts/login/" in out.getvalue()
