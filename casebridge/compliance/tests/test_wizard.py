"""The first-run set-up: five steps read from live data (officers, vendors, BAA status, first
risk assessment, training), each with a starting point; the clock runs from the first visit to the last step and is
recorded once; compliance managers of the organization only."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from casebridge.access.policy import OrgAccess, resolve
from casebridge.audit.models import Event
from casebridge.compliance import training, wizard
from casebridge.compliance.models import BaaStatus, ComplianceSetup, RiskAssessment, TrainingModule, Vendor
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _officer(personas: Personas) -> OrgAccess:
    access = resolve(personas.members["compliance_officer"], personas.practice)
    assert access is not None
    return access


def _done(personas: Personas) -> dict[str, bool]:
    return {s.key: s.done for s in wizard.steps(personas.practice)}


def test_a_practice_goes_from_nothing_to_a_baseline_through_the_page(personas: Personas) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance_setup", args=[personas.practice.slug])
    page = client.get(url).content.decode()
    assert "0 of 5 steps done" in page and "164.308(a)(2)" in page and "Practice management software" in page
    assert "Start your first risk assessment" in page and "164.308(a)(1)(ii)(A)-(B)" in page
    assert _done(personas) == {"officers": False, "vendors": False, "baas": False, "risk": False, "training": False}

    officer = str(personas.members["compliance_officer"].pk)
    client.post(url, {"operation": "officers", "privacy": officer, "security": officer})
    chosen = ["E-mail provider", "Cloud backup"]
    client.post(url, {"operation": "vendors", "vendors": chosen})
    assert sorted(Vendor.objects.values_list("name", flat=True)) == sorted(chosen)
    assert _done(personas) == {"officers": True, "vendors": True, "baas": False, "risk": False, "training": False}

    mail, backup = Vendor.objects.get(name="E-mail provider"), Vendor.objects.get(name="Cloud backup")
    client.post(url, {"operation": "baa", "vendor": mail.pk, "baa_status": "signed", "baa_signed_on": "2026-11-02"})
    client.post(url, {"operation": "baa", "vendor": backup.pk, "baa_status": "requested"})
    mail.refresh_from_db()
    assert mail.baa_status == BaaStatus.SIGNED and mail.baa_signed_on == date(2026, 11, 2)
    assert _done(personas)["baas"]

    assert list(_done(personas)).index("risk") == list(_done(personas)).index("training") - 1  # before training
    client.post(reverse("risk_assessments", args=[personas.practice.slug]))
    assert RiskAssessment.objects.filter(organization=personas.practice).count() == 1
    assert _done(personas)["risk"] and "Continue the assessment" in client.get(url).content.decode()

    client.post(url, {"operation": "training", "onboarding": "on"})
    module = TrainingModule.objects.get()
    assert module.title == wizard.STARTER_MODULE_TITLE and module.onboarding_since is not None
    assert not module.roles and module.due_days == 30

    page = client.get(url).content.decode()
    assert "5 of 5 steps done" in page and "Baseline complete" in page
    setup = ComplianceSetup.objects.get(organization=personas.practice)
    assert setup.completed_at is not None
    client.get(url)
    assert Event.objects.filter(action="compliance.setup.completed").count() == 1  # recorded once


def test_the_starter_module_is_a_real_quiz_with_its_right_answers() -> None:
    quiz = training.parse_quiz(wizard.STARTER_MODULE_QUIZ)
    assert len(quiz) == 4
    assert [q["choices"][q["answer"]] for q in quiz] == [
        "Through CaseBridge, to a connected lab",
        "Revoke the link and tell the privacy officer today",
        "No: every login belongs to one person",
        "Pass the request to the privacy officer",
    ]


def test_each_kind_of_organization_gets_its_own_starting_list(personas: Personas) -> None:
    practice = {s.name for s in wizard.STARTER_VENDORS["practice"]}
    lab = {s.name for s in wizard.STARTER_VENDORS["lab"]}
    assert "Digital impression platform" in practice and "Lab management software" in lab
    with pytest.raises(ValidationError, match="Tick at least one"):
        wizard.add_starter_vendors(_officer(personas), ["Lab management software"])  # not a practice's
    assert not Vendor.objects.exists()


def test_bad_answers_change_nothing(personas: Personas) -> None:
    access = _officer(personas)
    wizard.add_starter_vendors(access, ["E-mail provider"])
    assert wizard.add_starter_vendors(access, ["E-mail provider"]) == 0  # not listed twice
    vendor = Vendor.objects.get()
    with pytest.raises(ValidationError, match="date"):
        wizard.set_baa_status(access, vendor, BaaStatus.SIGNED)
    with pytest.raises(ValidationError, match="Choose"):
        wizard.set_baa_status(access, vendor, "expired")
    vendor.refresh_from_db()
    assert vendor.baa_status == BaaStatus.NONE
    client = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance_setup", args=[personas.practice.slug])
    client.post(url, {"operation": "baa", "vendor": vendor.pk, "baa_status": "signed", "baa_signed_on": "soon"})
    client.post(url, {"operation": "officers", "privacy": str(personas.outsider.pk)})
    vendor.refresh_from_db()
    assert vendor.baa_status == BaaStatus.NONE and not _done(personas)["officers"]
    wizard.add_starter_training(access, onboarding=False)
    with pytest.raises(ValidationError, match="already assigned"):
        wizard.add_starter_training(access, onboarding=False)


def test_only_compliance_managers_of_the_organization_set_up(personas: Personas) -> None:
    url = reverse("compliance_setup", args=[personas.practice.slug])
    staff = signed_in_client(personas.members["staff"])
    assert staff.get(url).status_code == 403
    assert staff.post(url, {"operation": "vendors", "vendors": ["E-mail provider"]}).status_code == 403
    assert signed_in_client(personas.outsider).get(url).status_code == 404
    assert not Vendor.objects.exists() and not ComplianceSetup.objects.exists()
    foreign = Vendor.objects.create(organization=personas.other_practice, name="Their mail")
    officer = signed_in_client(personas.members["compliance_officer"])
    response = officer.post(url, {"operation": "baa", "vendor": foreign.pk, "baa_status": "signed"})
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.baa_status == BaaStatus.NONE
