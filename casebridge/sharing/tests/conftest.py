"""Fixtures for the sharing tests: a practice with a case sent to its lab, with files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from casebridge.access.policy import OrgAccess, resolve
from casebridge.cases import actions as case_actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case
from casebridge.core.testing import Personas
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis
from casebridge.sharing import actions
from casebridge.sharing.models import ExternalLink
from casebridge.vault import api as vault
from casebridge.vault.tests.samples import binary_stl

PATIENT = "Jane Roe"
RECIPIENT = "jdoe@example.com"
LINK_RE = re.compile(r"/s/([A-Za-z0-9_-]+)/")
CODE_RE = re.compile(r"\b(\d{6})\b")


@dataclass
class SharedCase:
    personas: Personas
    access: OrgAccess
    case: Case
    contents: dict[str, bytes]  # stored object id -> plaintext


def practice_access(personas: Personas, role: str = "clinician") -> OrgAccess:
    access = resolve(personas.members[role], personas.practice)
    assert access is not None
    return access


def build_case(personas: Personas, *, submit: bool = True) -> SharedCase:
    access = practice_access(personas)
    case = case_actions.create_case(
        access,
        patient_name=PATIENT,
        case_type="digital_crown",
        lab=personas.lab,
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )
    contents = {}
    for kind, label in (("scan", "upper"), ("scan", "lower"), ("scan", "bite"), ("photo", "shade"), ("photo", "shade")):
        content = binary_stl(5000)
        stored = vault.put_stream(
            organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
        ).stored_object
        case_actions.attach_file(access, case, stored, kind=kind, label=label)
        # Read back what the vault holds: ingest may have cleaned the file (STL header).
        stored.refresh_from_db()
        contents[str(stored.pk)] = b"".join(bytes(s) for s in vault.read_version(vault.get_version(stored)))
    if submit:
        case_actions.submit_case(access, case)
    return SharedCase(personas, access, case, contents)


@pytest.fixture
def connected(personas: Personas, vault_home: Path) -> Personas:
    owner = practice_access(personas, "owner")
    connection = org_actions.request_connection(
        owner, other_slug="precision-lab", basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    lab_access = resolve(personas.lab_manager, personas.lab)
    assert lab_access is not None
    org_actions.accept_connection(lab_access, connection)
    return personas


@pytest.fixture(autouse=True)
def _mail_at_once(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tests run inside one transaction that never commits: send queued mail right away."""
    if "live_server" not in request.fixturenames:
        monkeypatch.setattr("casebridge.core.mail.transaction", SimpleNamespace(on_commit=lambda fn: fn()))
    cache.clear()
    yield


@pytest.fixture
def shared(connected: Personas) -> SharedCase:
    return build_case(connected)


def last_token() -> str:
    match = LINK_RE.search(mail.outbox[-1].body)
    assert match is not None
    return match.group(1)


def last_code() -> str:
    match = CODE_RE.search(mail.outbox[-1].body)
    assert match is not None
    return match.group(1)


@pytest.fixture
def make_link(shared: SharedCase) -> Callable[..., tuple[ExternalLink, str]]:
    """Share files of the case; returns the link and the raw token read from the e-mail. These
    links send the originals (with the reason that needs), so the tests of delivery can compare
    bytes; de-identified links, the default, are tested in test_deidentified_links.py."""

    def make(**overrides: Any) -> tuple[ExternalLink, str]:
        options: dict[str, Any] = {
            "attachments": list(shared.case.attachments.all()[:2]),
            "recipient_email": RECIPIENT,
            "purpose": "Second opinion requested by the patient",
            "deidentify": False,
            "reason": "The tests of delivery compare the bytes sent with the originals",
        }
        options.update(overrides)
        link = actions.create_link(shared.access, shared.case, **options)
        return link, last_token()

    return make
