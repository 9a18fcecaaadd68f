"""Who may share what, and the limits a link is created with."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from casebridge.access.policy import Forbidden, resolve
from casebridge.audit.models import Event
from casebridge.cases.models import Case, Status
from casebridge.core.testing import Personas
from casebridge.sharing import actions
from casebridge.sharing.models import Disclosure, ExternalLink
from casebridge.sharing.tests.conftest import RECIPIENT, SharedCase, build_case, practice_access

pytestmark = pytest.mark.django_db

MakeLink = Callable[..., tuple[ExternalLink, str]]


def test_a_link_defaults_to_seven_days_and_stores_only_a_digest(make_link: MakeLink) -> None:
    link, token = make_link()
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)
    assert token not in link.token_digest and len(link.token_digest) == 64
    assert actions.link_for_token(token) == link and actions.link_for_token(token + "x") is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"expires_in_days": 0}, "1 to 30 days"),
        ({"expires_in_days": 31}, "1 to 30 days"),
        ({"max_downloads": 0}, "1 to 50 downloads"),
        ({"max_downloads": 51}, "1 to 50 downloads"),
        ({"recipient_email": "not-an-address"}, "e-mail address"),
        ({"purpose": "  "}, "why the files are shared"),
        ({"attachments": []}, "at least one file"),
    ],
)
def test_it_refuses_bad_settings(make_link: MakeLink, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_link(**overrides)
    assert not ExternalLink.objects.exists() and not Disclosure.objects.exists()


def test_it_refuses_files_of_another_case(shared: SharedCase, make_link: MakeLink) -> None:
    other = build_case(shared.personas)
    with pytest.raises(ValidationError, match="Only files of this case"):
        make_link(attachments=[other.case.attachments.first()])


def test_a_draft_cannot_be_shared(connected: Personas) -> None:
    draft = build_case(connected, submit=False)
    with pytest.raises(ValidationError, match="draft"):
        actions.create_link(
            draft.access, draft.case, attachments=draft.case.attachments.all(), recipient_email=RECIPIENT, purpose="x"
        )


@pytest.mark.parametrize("closing", ["completed", "archived"])
def test_a_closed_case_cannot_be_shared(shared: SharedCase, make_link: MakeLink, closing: str) -> None:
    if closing == "completed":
        Case.objects.filter(pk=shared.case.pk).update(status=Status.COMPLETED)
    else:
        Case.objects.filter(pk=shared.case.pk).update(archived_at=timezone.now())
    shared.case.refresh_from_db()
    with pytest.raises(ValidationError):
        make_link()


def test_only_practice_members_who_edit_cases_may_share(shared: SharedCase) -> None:
    case = shared.case
    files = list(case.attachments.all()[:1])
    auditor = practice_access(shared.personas, "auditor")
    with pytest.raises(Forbidden):
        actions.create_link(auditor, case, attachments=files, recipient_email=RECIPIENT, purpose="x")
    lab = resolve(shared.personas.lab_manager, shared.personas.lab)
    assert lab is not None
    with pytest.raises(Forbidden):
        actions.create_link(lab, case, attachments=files, recipient_email=RECIPIENT, purpose="x")
    assert not ExternalLink.objects.exists()


def test_creation_is_audited_and_mailed_without_phi(shared: SharedCase, make_link: MakeLink) -> None:
    link, token = make_link()
    event = Event.objects.get(action="share.link.created")
    assert event.target_id == str(link.pk) and event.patient_ref == str(shared.case.patient_id)
    assert event.actor_label == shared.access.actor.email  # type: ignore[union-attr]
    body = mail.outbox[-1].body
    assert f"/s/{token}/" in body and "Jane" not in body and shared.case.number not in body


def test_revoking_twice_is_harmless(shared: SharedCase, make_link: MakeLink) -> None:
    link, _ = make_link()
    actions.revoke_link(shared.access, link)
    actions.revoke_link(shared.access, link)
    assert Event.objects.filter(action="share.link.revoked").count() == 1
    assert actions.dead_reason(link) == "revoked"
