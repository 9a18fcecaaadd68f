"""Who gets nothing: another lab, another practice, a deactivated member of the practice, a
revoked and an expired external link. Each gets the same 404 as "no such thing", on every door
(case page, file download with a session and with a token, REST case detail, link pages), no
success event names the patient for them, and no answer contains the patient's details."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.accounts import actions as account_actions
from casebridge.accounts.models import User
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case
from casebridge.cases.tests.test_workflow import _file
from casebridge.core.testing import Personas, add_member, make_org, make_user, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Membership, Organization, OrgKind
from casebridge.sharing import actions as sharing
from casebridge.sharing.models import ExternalLink

pytestmark = pytest.mark.django_db

PATIENT, DOB, CHART = "Jane Roe", date(1961, 4, 2), "A-77"
LINK_RE = re.compile(r"/s/([A-Za-z0-9_-]+)/")
CODE_RE = re.compile(r"\b(\d{6})\b")


def _connect(personas: Personas, lab: Organization) -> None:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug=lab.slug, basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    manager = Membership.objects.filter(organization=lab, role="lab_manager").first()
    assert manager is not None
    lab_access = resolve(manager.user, lab)
    assert lab_access is not None
    org_actions.accept_connection(lab_access, connection)


@pytest.fixture
def submitted(personas: Personas, vault_home: Path) -> Case:
    """A submitted crown case with five files, the lab connected under a BAA."""
    _connect(personas, personas.lab)
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    case = actions.create_case(
        access,
        patient_name=PATIENT,
        patient_dob=DOB,
        chart_number=CHART,
        case_type="digital_crown",
        lab=personas.lab,
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )
    for kind, label in (("scan", "upper"), ("scan", "lower"), ("scan", "bite"), ("photo", "shade"), ("photo", "shade")):
        actions.attach_file(access, case, _file(access), kind=kind, label=label)
    actions.submit_case(access, case)
    return case


def _token(user: User, org: Organization) -> str:
    _token, raw = account_actions.create_api_token(
        organization=org, name="sync", scopes=["cases:read", "cases:write"], days=30, actor=user, user=user
    )
    return raw


def _other_lab(personas: Personas) -> tuple[User, Organization]:
    lab = make_org("Rival Lab", OrgKind.LAB)
    user = make_user("manager@rival.test")
    add_member(lab, user, "lab_manager")
    _connect(personas, lab)  # connected to the practice, just not the lab of this case
    return user, lab


def _other_practice(personas: Personas) -> tuple[User, Organization]:
    return personas.outsider, personas.other_practice


def _deactivated(personas: Personas) -> tuple[User, Organization]:
    # A token issued while they still worked there must die with the membership.
    membership = Membership.objects.get(user=personas.deactivated)
    Membership.objects.filter(pk=membership.pk).update(is_active=True)
    return personas.deactivated, personas.practice


PERSONAS: dict[str, Callable[[Personas], tuple[User, Organization]]] = {
    "another lab": _other_lab,
    "another practice": _other_practice,
    "a deactivated member": _deactivated,
}


def _assert_nothing_leaked(response: object) -> None:
    content = getattr(response, "content", b"")
    # A page's CSRF token is 64 random letters and digits: "Roe" turns up in one in a few
    # thousand. It holds nothing of the case, so it is left out of the search.
    content = re.sub(rb'name="csrfmiddlewaretoken" value="[A-Za-z0-9]+"', b"", content)
    for value in (PATIENT, "Roe", CHART, DOB.isoformat()):
        assert value.encode() not in content


@pytest.mark.parametrize("who", list(PERSONAS))
def test_outsiders_get_404_everywhere(who: str, personas: Personas, submitted: Case) -> None:
    case = submitted
    user, org = PERSONAS[who](personas)
    raw = _token(user, org)
    if who == "a deactivated member":
        Membership.objects.filter(user=user).update(is_active=False)
    file_id = case.attachments.first().stored_object_id  # type: ignore[union-attr]
    client = signed_in_client(user)
    session = client.session
    session["current_org"] = org.slug
    session.save()
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    answers = {
        "case page (own org)": client.get(reverse("case_detail", args=[org.slug, case.number])),
        "case page (practice)": client.get(reverse("case_detail", args=[personas.practice.slug, case.number])),
        "case files (practice)": client.get(reverse("case_files", args=[personas.practice.slug, case.number])),
        "share page": client.get(reverse("case_share", args=[personas.practice.slug, case.number])),
        "download (session)": client.get(reverse("file_content", args=[file_id])),
        "download (token)": bearer.get(reverse("file_content", args=[file_id])),
        "file detail (token)": bearer.get(reverse("file_detail", args=[file_id])),
        "api case (session)": client.get(f"/api/v1/cases/{case.number}"),
        "api case (token)": bearer.get(f"/api/v1/cases/{case.number}"),
        "api files (token)": bearer.get(f"/api/v1/cases/{case.number}/attachments"),
        "api messages (token)": bearer.get(f"/api/v1/cases/{case.number}/messages"),
    }
    statuses = {name: r.status_code for name, r in answers.items()}
    if who == "a deactivated member":
        # Their token may be refused outright (401) rather than pointing at nothing (404), and
        # the session API, with no organization left to act in, asks them to open one (400).
        statuses = {name: 404 if s in (401, 404) else s for name, s in statuses.items()}
        if statuses["api case (session)"] == 400:
            statuses["api case (session)"] = 404
    assert statuses == dict.fromkeys(answers, 404)
    for response in answers.values():
        _assert_nothing_leaked(response)
    mine = Event.objects.filter(actor_id=str(user.pk), outcome="success")
    assert not mine.filter(patient_ref=str(case.patient_id)).exists()
    assert not mine.filter(action__in=["case.viewed", "file.downloaded"]).exists()


# --- external links -----------------------------------------------------------------------
def _verified_link(personas: Personas, case: Case, django_capture_on_commit_callbacks) -> tuple[Client, str, str]:  # type: ignore[no-untyped-def]
    """A link the recipient has opened and verified: a dead link must end even that session."""
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sharing.create_link(
            access,
            case,
            attachments=list(case.attachments.all()[:2]),
            recipient_email="jdoe@example.com",
            purpose="Second opinion",
        )
    match = LINK_RE.search(mail.outbox[-1].body)
    assert match is not None
    token = match.group(1)
    recipient = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert recipient.post(reverse("share_send_code", args=[token])).status_code in (200, 302)
    code = CODE_RE.search(mail.outbox[-1].body)
    assert code is not None
    recipient.post(reverse("share_verify", args=[token]), {"code": code.group(1)})
    files = recipient.get(reverse("share_files", args=[token]))
    assert files.status_code == 200  # alive and verified: the recipient sees the files
    file_id = str(case.attachments.order_by("pk").first().stored_object_id)  # type: ignore[union-attr]
    return recipient, token, file_id


@pytest.mark.parametrize("death", ["revoked", "expired"])
def test_a_dead_link_gets_404_on_every_link_page(
    death: str,
    personas: Personas,
    submitted: Case,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    cache.clear()
    recipient, token, _ = _verified_link(personas, submitted, django_capture_on_commit_callbacks)
    link = ExternalLink.objects.get()
    shared = [str(a.stored_object_id) for a in link.attachments.all()]
    if death == "revoked":
        access = resolve(personas.members["owner"], personas.practice)
        assert access is not None
        sharing.revoke_link(access, link)
    else:
        ExternalLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = Event.objects.filter(action="share.file.downloaded").count()
    answers = {
        "landing": recipient.get(reverse("share_landing", args=[token])),
        "send code": recipient.post(reverse("share_send_code", args=[token])),
        "verify": recipient.post(reverse("share_verify", args=[token]), {"code": "123456"}),
        "files": recipient.get(reverse("share_files", args=[token])),
        "download": recipient.get(reverse("share_download", args=[token, shared[0]])),
        "fresh browser": Client().get(reverse("share_landing", args=[token])),
    }
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 404)
    for response in answers.values():
        _assert_nothing_leaked(response)
    assert Event.objects.filter(action="share.file.downloaded").count() == before
    refused = Event.objects.filter(action="share.link.refused", outcome="denied", patient_ref=str(submitted.patient_id))
    assert refused.exists()  # the attempts are on the record, as denied
