"""A real `casebridge serve` through a workflow that creates secrets (a setup link, an invitation,
an API token, share and password-reset links): none of them is in its log, a refusal is one
line without a traceback, and everything under CASEBRIDGE_HOME is private to its user."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from casebridge.core.redaction import REDACTED, AccessLogger, redact_path
from casebridge.transfer.testing import free_port, listening, wait_until


def test_secret_routes_are_redacted_and_other_paths_kept() -> None:
    assert redact_path("/setup/abc-DEF_123/") == f"/setup/{REDACTED}/"
    assert redact_path("/s/tok/files/9f1c/") == f"/s/{REDACTED}/files/9f1c/"
    assert redact_path("/invitations/xyz/") == f"/invitations/{REDACTED}/"
    assert redact_path("/accounts/password/reset/key/1-k3y/") == f"/accounts/password/reset/key/{REDACTED}/"
    assert redact_path("/accounts/confirm-email/Mzk:1vX:abc/") == f"/accounts/confirm-email/{REDACTED}/"
    assert redact_path("/o/smile/cases/CB-2026-000001/") == "/o/smile/cases/CB-2026-000001/"
    assert redact_path("/api/v1/files/9f1c/content") == "/api/v1/files/9f1c/content"


def test_gunicorn_error_lines_name_requests_without_their_secret(capfd: pytest.CaptureFixture[str]) -> None:
    """gunicorn logs an exception that escapes the application with the request's URI."""
    from gunicorn.config import Config

    AccessLogger(Config()).error("Error handling request %s", "/invitations/an-unaccepted-invitation/")
    written = capfd.readouterr().err
    assert f"/invitations/{REDACTED}/" in written and "an-unaccepted-invitation" not in written


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "casebridge.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


INVITE = """
from casebridge.access.policy import resolve
from casebridge.accounts.models import User
from casebridge.orgs.actions import invite_member
from casebridge.orgs.models import Organization
owner = User.objects.get(email="boss@smile.test")
access = resolve(owner, Organization.objects.get())
print(invite_member(access, email="new@smile.test", role="staff").raw)
"""


def test_a_workflows_secrets_never_reach_the_servers_log_and_its_home_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "mail").mkdir(mode=0o755)
    (home / "mail" / "old.eml").write_text("left by an older version")
    (home / "mail" / "old.eml").chmod(0o644)
    port, transfer_port = free_port(), free_port()
    env = {**os.environ, "CASEBRIDGE_HOME": str(home), "CASEBRIDGE_WORKERS": "1"}
    for name in ("DATABASE_URL", "CASEBRIDGE_PUBLIC_URL", "CASEBRIDGE_PORT", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "casebridge.cli",
                "serve",
                "--port",
                str(port),
                "--transfer-port",
                str(transfer_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    secrets: dict[str, str] = {}
    try:
        wait_until(lambda: listening(port) and listening(transfer_port), 150, "serve to listen")
        created = _cli(env, "createadmin", "--email", "boss@smile.test", "--org", "Smile Dental", "--kind", "practice")
        setup = re.search(r"/setup/([^/\s]+)/", created)
        assert setup is not None
        secrets["setup link"] = setup.group(1)
        secrets["invitation"] = _cli(env, "shell", "-c", INVITE).strip()
        account = ("serviceaccount", "create", "--org", "smile-dental", "--name", "pms", "--role", "staff")
        secrets["API token"] = _cli(env, *account, "--scope", "cases:read").strip().splitlines()[-1]
        # Share and password-reset links are redacted by route, whether or not the secret is valid.
        secrets["share link"] = "Zq8Nw2sharetokenXyZ0123456789abcd"
        secrets["password reset key"] = "3-cb8f9e7a1d2c3b4a5f6e"

        base = f"https://localhost:{port}"
        session = requests.Session()
        cert = str(home / "tls" / "cert.pem")  # serve's own self-signed certificate
        for path in (
            f"/setup/{secrets['setup link']}/",
            f"/invitations/{secrets['invitation']}/",
            f"/s/{secrets['share link']}/",
            f"/s/{secrets['share link']}/files/",
            f"/accounts/password/reset/key/{secrets['password reset key']}/",
        ):
            assert session.get(base + path, allow_redirects=False, timeout=30, verify=cert).status_code < 500, path
        bearer = {"Authorization": f"Bearer {secrets['API token']}"}

        def status(path: str) -> int:
            return int(session.get(base + path, headers=bearer, timeout=30, verify=cert).status_code)

        assert status("/api/v1/me") == 200
        # Refusals: organization pages refuse tokens (403), an unknown file is 404.
        assert status("/o/smile-dental/members/") == 403
        assert status("/api/v1/files/00000000-0000-0000-0000-000000000000") == 404
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert REDACTED in output
    for what, secret in secrets.items():
        assert secret and secret not in output, f"the {what} is in the server's log"
    assert "Traceback" not in output

    loose = []
    for root, dirs, files in os.walk(home):
        for name, wanted in [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            mode = stat.S_IMODE(Path(root, name).lstat().st_mode)
            if not Path(root, name).is_symlink() and mode != wanted:
                loose.append(f"{Path(root, name).relative_to(home)} {oct(mode)}")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert loose == []
