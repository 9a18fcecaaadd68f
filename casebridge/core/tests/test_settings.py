"""Test-only relaxations come from the test settings module, never from what is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

# Read in a fresh interpreter: this process has already loaded the test settings. pytest is
# imported first, as a production process might (a plugin, a health check, a debugging session).
_READ_PRODUCTION_SETTINGS = """
import json, os, pytest
os.environ["DJANGO_SETTINGS_MODULE"] = "casebridge.settings"
from django.conf import settings
print(json.dumps({
    "insecure_origin": settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "tasks": settings.TASKS["default"]["BACKEND"],
    "static": settings.STORAGES["staticfiles"]["BACKEND"],
    "finders": getattr(settings, "WHITENOISE_USE_FINDERS", False),
    "autorefresh": getattr(settings, "WHITENOISE_AUTOREFRESH", False),
    "session_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_secure": settings.CSRF_COOKIE_SECURE,
    "hasher": settings.PASSWORD_HASHERS[0],
}))
"""


def _production_settings(home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASEBRIDGE_", "DJANGO_"))}
    env["CASEBRIDGE_HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-c", _READ_PRODUCTION_SETTINGS], env=env, capture_output=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_production_settings_relax_nothing_even_with_pytest_imported(tmp_path: Path) -> None:
    assert _production_settings(tmp_path) == {
        "insecure_origin": False,
        "ssl_redirect": True,
        "tasks": "django_tasks_db.DatabaseBackend",
        "static": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "finders": False,
        "autorefresh": False,
        "session_secure": True,
        "csrf_secure": True,
        "hasher": "django.contrib.auth.hashers.Argon2PasswordHasher",
    }


def test_the_suite_runs_on_the_test_settings_module_that_holds_the_relaxations() -> None:
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "casebridge.settings_test"
    assert settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN is True
    assert settings.TASKS["default"]["BACKEND"] == "django_tasks.backends.immediate.ImmediateBackend"
