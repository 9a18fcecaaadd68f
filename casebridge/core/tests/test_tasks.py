"""Periodic work is registered by each app; core imports no domain app to run it."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.audit.models import Event, PendingSeal
from casebridge.core import tasks
from casebridge.core.testing import Personas
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import EmergencyAccess, Membership

CORE = Path(tasks.__file__).resolve().parent
# Entry points (commands) and test helpers sit at the top of the project by nature; the library
# modules of core are what every app imports, so they must not import the apps back.
NOT_LIBRARY = {"management", "tests", "testing.py", "browser_testing.py"}


def _casebridge_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("casebridge.")}


def test_core_library_modules_import_no_domain_app() -> None:
    offending = {}
    for path in CORE.rglob("*.py"):
        if NOT_LIBRARY & set(path.relative_to(CORE).parts):
            continue
        # casebridge.wsgi is the project's entry point that core/server.py serves, not an app; the
        # kernel sits below every app (it imports none: kernel/tests/test_boundary.py).
        foreign = {
            m
            for m in _casebridge_imports(path)
            if not m.startswith(("casebridge.core", "casebridge.wsgi", "casebridge.kernel"))
        }
        if foreign:
            offending[str(path.relative_to(CORE))] = sorted(foreign)
    assert offending == {}


def test_each_app_registers_its_periodic_work_sealing_first_and_signing_last() -> None:
    names = [work.name for work in tasks.periodic_work()]
    assert names[0] == "audit.seal" and names[-1] == "audit.checkpoint"
    assert {"orgs.emergency_expiry", "vault.upload_expiry"} <= set(names)


@pytest.mark.django_db
def test_housekeeping_runs_the_registered_work_of_the_apps(personas: Personas) -> None:
    owner = resolve(personas.members["owner"], personas.practice)
    auditor = Membership.objects.get(user=personas.members["auditor"])
    grant = org_actions.grant_emergency_access(
        owner, auditor, reason="Dr. Smith is unreachable and the lab needs the case today.", hours=2
    )
    EmergencyAccess.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    tasks.housekeeping.enqueue()  # the tests' task backend runs it at once
    assert Event.objects.filter(action="breakglass.expired", target_id=str(grant.pk)).count() == 1
    assert not PendingSeal.objects.exists()  # sealed by the audit app's registered work


@pytest.mark.django_db
def test_one_failing_piece_of_work_does_not_stop_the_others(personas: Personas) -> None:
    def broken() -> None:
        raise OSError("disk unavailable")

    tasks.register_periodic("tests.broken", broken)
    try:
        owner = resolve(personas.members["owner"], personas.practice)
        auditor = Membership.objects.get(user=personas.members["auditor"])
        grant = org_actions.grant_emergency_access(
            owner, auditor, reason="Dr. Smith is unreachable and the lab needs the case today.", hours=2
        )
        EmergencyAccess.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        result = tasks.housekeeping.enqueue()
        assert result.status == "FAILED"
        assert Event.objects.filter(action="breakglass.expired", target_id=str(grant.pk)).exists()
    finally:
        tasks._PERIODIC.pop("tests.broken")
