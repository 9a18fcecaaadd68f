"""Onboarding training gates patient data; modules carry documents; a pass earns a certificate.

A module made onboarding withholds cases, files and images from members who join afterwards until
they pass it: the gate is in the access policy, so the pages (sent to the training page with the
reason), the API (403 with the reason) and every other credential of that person follow it.
Members already at work keep their access; a module for another role gates nobody else."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from casebridge.access.policy import Forbidden, OnboardingRequired, resolve
from casebridge.access.roles import Perm
from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.compliance import training
from casebridge.compliance.models import TrainingAttachment, TrainingCompletion, TrainingModule
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client
from casebridge.orgs.models import EmergencyAccess

pytestmark = pytest.mark.django_db

QUIZ = "Where may patient files be sent?\nAny e-mail address\n*Through CaseBridge"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _onboarding_module(personas: Personas, roles: list[str] | None = None) -> TrainingModule:
    officer = signed_in_client(personas.members["compliance_officer"])
    form = {"title": "Welcome to HIPAA", "body": "Minimum necessary.", "quiz": QUIZ, "due_days": "7"}
    officer.post(reverse("training", args=[personas.practice.slug]), {**form, "roles": roles or [], "onboarding": "on"})
    return TrainingModule.objects.get()


def _newcomer(personas: Personas, role: str = "staff") -> tuple[Client, object]:
    user = make_user(f"new-{role}@smile.test")
    add_member(personas.practice, user, role)
    return signed_in_client(user), user


def test_a_new_member_opens_no_patient_data_until_onboarding_is_passed(personas: Personas) -> None:
    module = _onboarding_module(personas)
    assert module.onboarding_since is not None
    client, user = _newcomer(personas)
    cases = reverse("case_list", args=[personas.practice.slug])
    refused = client.get(cases, follow=True)
    assert refused.redirect_chain[-1][0] == reverse("training", args=[personas.practice.slug])
    page = refused.content.decode()
    assert "Finish your onboarding training first" in page and "onboarding" in page
    assert Event.objects.filter(action="access.denied", actor_id=str(user.pk)).exists()
    access = resolve(user, personas.practice)
    assert access is not None and access.onboarding_pending and not access.has(Perm.CASES_VIEW)
    with pytest.raises(OnboardingRequired):
        access.require(Perm.CASES_VIEW)
    access.require(Perm.ORG_VIEW)  # the organization itself and the training stay open

    client.post(reverse("training_module", args=[personas.practice.slug, module.pk]), {"q0": "0"})  # wrong
    assert client.get(cases).status_code == 302
    client.post(reverse("training_module", args=[personas.practice.slug, module.pk]), {"q0": "1"})
    assert client.get(cases).status_code == 200
    opened = resolve(user, personas.practice)
    assert opened is not None and not opened.onboarding_pending and opened.has(Perm.CASES_VIEW)


def test_a_failed_attempt_does_not_pass_on_a_colleagues_pass(personas: Personas) -> None:
    """Passing is one completion that is both this member's and a pass: a newcomer who failed the
    quiz stays gated though a colleague passed it, and another newcomer's failure opens nothing."""
    module = _onboarding_module(personas)
    first, first_user = _newcomer(personas, "staff")
    second, second_user = _newcomer(personas, "clinician")
    page = reverse("training_module", args=[personas.practice.slug, module.pk])
    first.post(page, {"q0": "0"})  # wrong
    second.post(page, {"q0": "1"})  # right
    assert TrainingCompletion.objects.filter(module=module, user=first_user, passed=False).exists()
    assert TrainingCompletion.objects.filter(module=module, user=second_user, passed=True).exists()
    cases = reverse("case_list", args=[personas.practice.slug])
    assert first.get(cases).status_code == 302
    assert second.get(cases).status_code == 200
    gated = resolve(first_user, personas.practice)
    assert gated is not None and gated.onboarding_pending and not gated.has(Perm.CASES_VIEW)


def test_the_api_refuses_a_newcomers_token_with_the_reason(personas: Personas) -> None:
    _onboarding_module(personas)
    _client, user = _newcomer(personas, "clinician")
    _token, raw = create_api_token(
        organization=personas.practice, name="scanner", scopes=["cases:read"], days=1, actor=user, user=user
    )
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/cases")
    assert response.status_code == 403
    assert "onboarding training" in response.json()["detail"]


def test_members_already_at_work_and_other_roles_keep_their_access(personas: Personas) -> None:
    _onboarding_module(personas, roles=["clinician"])
    staff_client = signed_in_client(personas.members["staff"])  # joined before the module
    assert staff_client.get(reverse("case_list", args=[personas.practice.slug])).status_code == 200
    newcomer, _user = _newcomer(personas, "staff")  # not a clinician: not gated
    assert newcomer.get(reverse("case_list", args=[personas.practice.slug])).status_code == 200
    clinician, _user = _newcomer(personas, "clinician")
    assert clinician.get(reverse("case_list", args=[personas.practice.slug])).status_code == 302


def test_break_glass_still_opens_patient_data_and_is_recorded(personas: Personas) -> None:
    from datetime import timedelta

    from django.utils import timezone

    _onboarding_module(personas)
    _client, user = _newcomer(personas, "clinician")
    EmergencyAccess.objects.create(
        organization=personas.practice,
        user=user,
        granted_by=personas.members["owner"],
        reason="Patient in the chair, doctor away",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    access = resolve(user, personas.practice)
    assert access is not None and access.has(Perm.CASES_VIEW) and access.uses_emergency(Perm.CASES_VIEW)


def test_switching_onboarding_off_reopens_access_and_only_managers_switch(personas: Personas) -> None:
    module = _onboarding_module(personas)
    client, _user = _newcomer(personas)
    url = reverse("training_module", args=[personas.practice.slug, module.pk])
    staff = signed_in_client(personas.members["staff"])
    staff.post(url, {"operation": "onboarding"})  # not a compliance manager: nothing changes
    module.refresh_from_db()
    assert module.onboarding_since is not None
    officer = signed_in_client(personas.members["compliance_officer"])
    officer.post(url, {"operation": "onboarding"})  # box unticked
    module.refresh_from_db()
    assert module.onboarding_since is None
    assert client.get(reverse("case_list", args=[personas.practice.slug])).status_code == 200
    assert Event.objects.filter(action="compliance.training.onboarding").count() == 1


def test_documents_are_stored_encrypted_and_read_by_assigned_members(personas: Personas, vault_home: Path) -> None:
    module = _onboarding_module(personas, roles=["staff"])
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("training_module", args=[personas.practice.slug, module.pk])
    upload = io.BytesIO(PDF)
    upload.name = "Sanctions policy.pdf"
    officer.post(url, {"operation": "attach", "title": "Sanctions policy", "document": upload})
    attachment = TrainingAttachment.objects.get()
    assert attachment.stored_object.file_type == "pdf"
    assert not any(PDF in p.read_bytes() for p in vault_home.rglob("*") if p.is_file())  # encrypted at rest
    link = reverse("training_attachment", args=[personas.practice.slug, module.pk, attachment.pk])
    staff = signed_in_client(personas.members["staff"])
    assert "Sanctions policy" in staff.get(url).content.decode()
    response = staff.get(link)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    assert "Sanctions" not in response["Content-Disposition"]  # the vault's neutral naming
    assert Event.objects.filter(action="compliance.training.attachment_read").count() == 1
    clinician = signed_in_client(personas.members["clinician"])  # not assigned
    assert clinician.get(link).status_code == 404
    outsider = signed_in_client(personas.outsider)
    assert outsider.get(link).status_code == 404


def test_a_document_of_no_accepted_type_is_refused_and_nothing_is_kept(personas: Personas, vault_home: Path) -> None:
    module = _onboarding_module(personas)
    access = resolve(personas.members["compliance_officer"], personas.practice)
    assert access is not None
    with pytest.raises(ValidationError, match="accepts"):
        training.attach(access, module, title="Tool", chunks=[b"MZ\x90\x00" + b"\x00" * 200], length=204)
    with pytest.raises(ValidationError, match="Name the document"):
        training.attach(access, module, title=" ", chunks=[PDF], length=len(PDF))
    assert not TrainingAttachment.objects.exists()
    staff = resolve(personas.members["staff"], personas.practice)
    assert staff is not None
    with pytest.raises(Forbidden):
        training.attach(staff, module, title="x", chunks=[PDF], length=len(PDF))


def test_a_pass_earns_a_certificate_for_the_person_and_the_officer_only(personas: Personas) -> None:
    module = _onboarding_module(personas)
    staff = signed_in_client(personas.members["staff"])
    staff.post(reverse("training_module", args=[personas.practice.slug, module.pk]), {"q0": "1"})
    completion = TrainingCompletion.objects.get(passed=True)
    url = reverse("training_certificate", args=[personas.practice.slug, completion.pk])
    response = staff.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "Certificate of completion" in text and "Welcome to HIPAA" in text and "100%" in text
    assert personas.members["staff"].display_name in text and "Valid until" in text
    assert signed_in_client(personas.members["compliance_officer"]).get(url).status_code == 200
    assert signed_in_client(personas.members["clinician"]).get(url).status_code == 404  # someone else's
    assert signed_in_client(personas.outsider).get(url).status_code == 404
    assert Event.objects.filter(action="compliance.training.certificate").count() == 2
    failed = TrainingCompletion.objects.create(module=module, user=personas.members["staff"], score=0, passed=False)
    failed_url = reverse("training_certificate", args=[personas.practice.slug, failed.pk])
    assert staff.get(failed_url).status_code == 404
