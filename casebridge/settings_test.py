"""Settings for the test suite: the production settings plus the few relaxations tests need.

Chosen explicitly (pyproject.toml's pytest configuration names this module), never inferred
from what happens to be imported: a production process that imports pytest, or runs under
`casebridge.settings`, keeps every protection (core/tests/test_settings.py).
"""

from __future__ import annotations

from casebridge.settings import *  # noqa: F403  (this module is the production settings plus overrides)
from casebridge.settings import STORAGES, TASKS

# Tasks run inline so a test can assert their effects (mail sent, events written) directly.
TASKS = {**TASKS, "default": {**TASKS["default"], "BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
# The test client and the browser tests' live server speak plain HTTP to localhost; the tests of
# the redirect itself turn it back on with override_settings.
SECURE_SSL_REDIRECT = False
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
# No collectstatic before a test run: serve the source folders, without the manifest.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
