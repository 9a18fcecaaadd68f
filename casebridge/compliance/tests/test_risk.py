"""The security risk assessment (45 CFR 164.308(a)(1)(ii)(A)-(B)): questions by the Security
Rule's standards, answers CaseBridge can know suggested from the checklist's live checks and frozen
when the assessment is completed, evidence stored encrypted and read under audit, a risk register
scored likelihood x impact, a yearly schedule and a report; compliance managers of the
organization only, and every bad input refused with nothing changed."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from casebridge.access.policy import Forbidden, OrgAccess, resolve
from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.compliance import risk
from casebridge.compliance.models import RiskAnswer, RiskAssessment, RiskEntry, RiskEvidence, RiskStatus
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _access(personas: Personas, role: str = "compliance_officer") -> OrgAccess:
    access = resolve(personas.members[role], personas.practice)
    assert access is not None
    return access


def _answer_by_hand(access: OrgAccess, assessment: RiskAssessment) -> None:
    for row in risk.rows(assessment):
        if row.suggestion is None:
            risk.answer(access, assessment, row.question.key, "yes", "In place.")


def _entry(access: OrgAccess, assessment: RiskAssessment, **changes: object) -> RiskEntry:
    fields: dict = {
        "threat": "A laptop with exported X-rays is stolen",
        "vulnerability": "Its disk is not encrypted",
        "likelihood": 3,
        "impact": 5,
        "owner": None,
        "remediation": "Turn on full-disk encryption",
        "due_on": timezone.localdate() + timedelta(days=30),
        "status": RiskStatus.OPEN,
    }
    fields.update(changes)
    return risk.save_entry(access, assessment, None, **fields)


def test_the_questions_cover_the_three_standards_each_with_its_citation() -> None:
    keys = [q.key for q in risk.QUESTIONS]
    assert len(keys) == len(set(keys))
    for standard, _heading, citation in risk.STANDARDS:
        mine = [q for q in risk.QUESTIONS if q.standard == standard]
        assert mine, standard
        assert all(q.citation.startswith(citation.removeprefix("45 CFR ")) for q in mine)
    assert {q.live for q in risk.QUESTIONS if q.live} >= {risk.LIVE_MFA, risk.LIVE_ENCRYPTION, risk.LIVE_AUDIT_LOG}


def test_live_answers_are_suggested_then_frozen_when_the_assessment_is_completed(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    response = officer.post(reverse("risk_assessments", args=[personas.practice.slug]))
    assessment = RiskAssessment.objects.get()
    assert response.status_code == 302 and str(assessment.pk) in response["Location"]
    page = officer.get(reverse("risk_assessment", args=[personas.practice.slug, assessment.pk])).content.decode()
    assert "from live data" in page and "164.308(a)(1)(ii)(A)" in page and "164.310" in page
    assert "active members have a second factor" in page  # the checklist's own evidence

    rows = {r.question.key: r for r in risk.rows(assessment)}
    assert rows["mfa"].value == "yes" and rows["mfa"].from_live_data  # the personas all enrolled
    assert rows["encryption_at_rest"].value == "yes"
    assert rows["audit_log"].value == "partly"  # never verified
    assert rows["access_review"].value == "no" and "No access review" in rows["access_review"].suggestion.evidence
    assert rows["sanctions"].value == "" and rows["sanctions"].suggestion is None  # CaseBridge cannot know

    access = _access(personas)
    with pytest.raises(ValidationError, match="not answered yet"):
        risk.complete(access, assessment)
    assessment.refresh_from_db()
    assert assessment.completed_at is None and not RiskAnswer.objects.exists()

    _answer_by_hand(access, assessment)
    risk.answer(access, assessment, "audit_log", "no", "Nobody runs the verification yet.")  # overrides live
    officer.post(reverse("risk_assessment", args=[personas.practice.slug, assessment.pk]), {"operation": "complete"})
    assessment.refresh_from_db()
    assert assessment.completed_at is not None and assessment.completed_by == personas.members["compliance_officer"]
    frozen = RiskAnswer.objects.get(assessment=assessment, question="mfa")
    assert frozen.from_live_data and frozen.answer == "yes" and "second factor" in frozen.note
    assert RiskAnswer.objects.get(question="audit_log").answer == "no"
    assert RiskAnswer.objects.filter(assessment=assessment).count() == len(risk.QUESTIONS)

    record("audit.verified", details={"checked": 1, "head": 1})  # the system changes afterwards...
    after = {r.question.key: r for r in risk.rows(assessment)}
    assert after["audit_log"].value == "no" and after["mfa"].suggestion is None  # ...the record does not
    completed = Event.objects.get(action="compliance.risk.completed")
    assert completed.details["answers"]["no"] == 2 and completed.details["from_live_data"] >= 5
    assert "Nobody" not in json.dumps([e.details for e in Event.objects.filter(action__startswith="compliance.risk")])
    page = officer.get(reverse("risk_assessment", args=[personas.practice.slug, assessment.pk])).content.decode()
    assert "Completed" in page and "Save answer" not in page and "Add to the register" not in page
    assert "from live data" in page and "Nobody runs the verification yet." in page
    with pytest.raises(ValidationError, match="completed"):
        risk.answer(access, assessment, "sanctions", "no", "changed my mind")
    assert RiskAnswer.objects.get(question="sanctions").answer == "yes"


def test_the_schedule_falls_due_a_year_after_completion_and_shows_overdue(personas: Personas) -> None:
    access = _access(personas)
    url = reverse("risk_assessments", args=[personas.practice.slug])
    officer = signed_in_client(personas.members["compliance_officer"])
    assert risk.last_completed(personas.practice) is None and risk.next_due(personas.practice) == timezone.localdate()
    assert "the first one is due now" in officer.get(url).content.decode()
    assessment = risk.start(access)
    _answer_by_hand(access, assessment)
    risk.complete(access, assessment)
    assert risk.last_completed(personas.practice) == assessment
    assert risk.next_due(personas.practice) == timezone.localdate() + timedelta(days=365)
    assert risk.overdue_days(personas.practice) == 0
    RiskAssessment.objects.filter(pk=assessment.pk).update(completed_at=timezone.now() - timedelta(days=400))
    assert risk.overdue_days(personas.practice) == 35
    assert "overdue by 35 days" in officer.get(url).content.decode()
    risk.start(access)  # next year's
    with pytest.raises(ValidationError, match="already in progress"):
        risk.start(access)
    assert RiskAssessment.objects.count() == 2


def test_the_register_scores_levels_and_carries_open_risks_into_next_year(personas: Personas) -> None:
    assert [risk.level(s) for s in (1, 4, 5, 9, 10, 12, 15, 25)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]
    access = _access(personas)
    assessment = risk.start(access)
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("risk_assessment", args=[personas.practice.slug, assessment.pk])
    owner = personas.members["compliance_officer"]
    form = {
        "operation": "entry",
        "threat": "Ransomware on the front-desk PC",
        "vulnerability": "No offline backup",
        "likelihood": "4",
        "impact": "5",
        "owner": str(owner.pk),
        "remediation": "Weekly offline copy",
        "due_on": "2027-01-15",
        "status": "open",
    }
    assert officer.post(url, form).status_code == 302
    entry = RiskEntry.objects.get()
    assert entry.score == 20 and entry.owner == owner and str(entry.due_on) == "2027-01-15"
    page = officer.get(url).content.decode()
    assert "4 \u00d7 5 = 20" in page and "critical" in page
    officer.post(url, {**form, "entry": str(entry.pk), "status": "in_progress"})
    entry.refresh_from_db()
    assert entry.status == RiskStatus.IN_PROGRESS and RiskEntry.objects.count() == 1
    saved = Event.objects.filter(action="compliance.risk.entry_saved").last()
    assert saved is not None and saved.details["level"] == "critical"
    assert "Ransomware" not in json.dumps(saved.details)  # no free text in the log

    _entry(access, assessment, status=RiskStatus.DONE, threat="Shared login at the front desk")
    _answer_by_hand(access, assessment)
    risk.complete(access, assessment)
    following = risk.start(access)
    assert [e.threat for e in following.entries.all()] == ["Ransomware on the front-desk PC"]  # the open one
    assert RiskEntry.objects.filter(assessment=assessment).count() == 2  # last year's register untouched
    assert Event.objects.get(action="compliance.risk.started", details__carried_risks=1)


def test_bad_input_is_refused_with_a_clear_error_and_nothing_changes(personas: Personas) -> None:
    access = _access(personas)
    assessment = risk.start(access)
    with pytest.raises(ValidationError, match="Choose yes, partly"):
        risk.answer(access, assessment, "sanctions", "maybe", "")
    with pytest.raises(ValidationError, match="Say what is missing"):
        risk.answer(access, assessment, "sanctions", "no", " ")
    with pytest.raises(ValidationError, match="not part of the assessment"):
        risk.answer(access, assessment, "nonsense", "yes", "")
    with pytest.raises(ValidationError, match="1 \\(lowest\\) to 5"):
        _entry(access, assessment, likelihood=6)
    with pytest.raises(ValidationError, match="active member"):
        _entry(access, assessment, owner=personas.outsider)
    with pytest.raises(ValidationError, match="active member"):
        _entry(access, assessment, owner=personas.deactivated)
    with pytest.raises(ValidationError, match="Say what could happen"):
        _entry(access, assessment, threat=" ")
    assert not RiskAnswer.objects.exists() and not RiskEntry.objects.exists()

    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("risk_assessment", args=[personas.practice.slug, assessment.pk])
    bad = {"operation": "entry", "threat": "Phishing", "vulnerability": "No training", "likelihood": "9"}
    response = officer.post(url, {**bad, "impact": "2", "status": "open"}, follow=True)
    assert "Likelihood (1-5)" in response.content.decode()  # which field, in the message
    response = officer.post(url, {"operation": "answer", "question": "sanctions", "answer": "no"}, follow=True)
    assert "Say what is missing" in response.content.decode()
    assert not RiskAnswer.objects.exists() and not RiskEntry.objects.exists()


def test_evidence_is_stored_encrypted_and_each_download_is_audited(personas: Personas, vault_home: Path) -> None:
    access = _access(personas)
    assessment = risk.start(access)
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("risk_assessment", args=[personas.practice.slug, assessment.pk])
    upload = io.BytesIO(PDF)
    upload.name = "Sanctions policy.pdf"
    form = {"operation": "evidence", "question": "sanctions", "title": "Sanctions policy", "document": upload}
    officer.post(url, form)
    evidence = RiskEvidence.objects.get()
    assert evidence.question == "sanctions" and evidence.stored_object.file_type == "pdf"
    assert not any(PDF in p.read_bytes() for p in vault_home.rglob("*") if p.is_file())  # encrypted at rest
    assert "Sanctions policy" in officer.get(url).content.decode()
    link = reverse("risk_evidence", args=[personas.practice.slug, assessment.pk, evidence.pk])
    response = officer.get(link)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    assert "Sanctions" not in response["Content-Disposition"]  # neutral stored names
    assert Event.objects.filter(action="compliance.risk.evidence_read").count() == 1
    assert signed_in_client(personas.members["staff"]).get(link).status_code == 403
    assert signed_in_client(personas.outsider).get(link).status_code == 404
    assert Event.objects.filter(action="compliance.risk.evidence_read").count() == 1

    with pytest.raises(ValidationError, match="accepts"):
        risk.attach(access, assessment, "sanctions", title="Tool", chunks=[b"MZ\x90\x00" + b"\x00" * 200], length=204)
    with pytest.raises(ValidationError, match="Name the document"):
        risk.attach(access, assessment, "sanctions", title=" ", chunks=[PDF], length=len(PDF))
    with pytest.raises(ValidationError, match="not part of the assessment"):
        risk.attach(access, assessment, "nonsense", title="x", chunks=[PDF], length=len(PDF))
    with pytest.raises(Forbidden):
        risk.attach(_access(personas, "staff"), assessment, "sanctions", title="x", chunks=[PDF], length=len(PDF))
    assert RiskEvidence.objects.count() == 1


def test_the_report_prints_answers_live_data_and_the_register(personas: Personas) -> None:
    access = _access(personas)
    assessment = risk.start(access)
    _entry(access, assessment)
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("risk_report", args=[personas.practice.slug, assessment.pk])

    def text() -> str:
        response = officer.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
        return "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)

    draft = text()
    assert "DRAFT" in draft and "Physical safeguards" in draft and "from live data" in draft
    assert "A laptop with exported X-rays is stolen" in draft and "score 15 (critical)" in draft
    _answer_by_hand(access, assessment)
    risk.complete(access, assessment)
    final = text()
    assert "DRAFT" not in final and "next due" in final
    assert Event.objects.filter(action="compliance.risk.report").count() == 2
    assert signed_in_client(personas.members["auditor"]).get(url).status_code == 403


def test_compliance_managers_of_the_organization_only(personas: Personas) -> None:
    slug = personas.practice.slug
    listing = reverse("risk_assessments", args=[slug])
    for role in ("staff", "clinician", "auditor"):
        client = signed_in_client(personas.members[role])
        assert client.get(listing).status_code == 403
        assert client.post(listing).status_code == 403
    assert signed_in_client(personas.outsider).post(listing).status_code == 404
    assert not RiskAssessment.objects.exists()

    assessment = risk.start(_access(personas))
    detail = reverse("risk_assessment", args=[slug, assessment.pk])
    staff = signed_in_client(personas.members["staff"])
    assert staff.post(detail, {"operation": "answer", "question": "sanctions", "answer": "yes"}).status_code == 403
    assert signed_in_client(personas.outsider).get(detail).status_code == 404
    with pytest.raises(Forbidden):
        risk.answer(_access(personas, "staff"), assessment, "sanctions", "yes", "")
    with pytest.raises(Forbidden):
        risk.start(_access(personas, "auditor"))

    theirs = RiskAssessment.objects.create(organization=personas.other_practice)
    officer = signed_in_client(personas.members["compliance_officer"])
    for url in (
        reverse("risk_assessment", args=[slug, theirs.pk]),
        reverse("risk_report", args=[slug, theirs.pk]),
    ):
        assert officer.get(url).status_code == 404
    response = officer.post(
        reverse("risk_assessment", args=[slug, theirs.pk]), {"operation": "answer", "question": "mfa", "answer": "no"}
    )
    assert response.status_code == 404
    with pytest.raises(ValidationError, match="another organization"):
        risk.answer(_access(personas), theirs, "mfa", "yes", "")
    assert not RiskAnswer.objects.exists()
    assert officer.get(reverse("compliance", args=[slug])).content.decode().count(listing) == 1  # linked


def test_the_checklist_reads_the_assessment_instead_of_an_attestation_once_one_is_started(
    personas: Personas,
) -> None:
    from casebridge.compliance import dashboard

    def item() -> dashboard.Check:
        return next(c for c in dashboard.checks(personas.practice) if c.key == dashboard.RISK_ASSESSMENT)

    assert item().attestable  # assessed elsewhere (a consultant, HHS's tool): a person attests it
    access = _access(personas)
    assessment = risk.start(access)
    assert not item().attestable and item().state == dashboard.ATTENTION and "in progress" in item().evidence
    with pytest.raises(ValidationError, match="not checked by attestation"):
        dashboard.attest(access, dashboard.RISK_ASSESSMENT, "We did it on paper.")
    _answer_by_hand(access, assessment)
    risk.complete(access, assessment)
    done = item()
    assert done.state == dashboard.OK and done.checked_on == timezone.localdate()
    assert f"next due {risk.next_due(personas.practice):%Y-%m-%d}" in done.evidence
    RiskAssessment.objects.filter(pk=assessment.pk).update(completed_at=timezone.now() - timedelta(days=400))
    late = item()
    assert late.state == dashboard.ATTENTION and "35 days overdue" in late.evidence


def test_the_officers_are_told_once_when_the_yearly_assessment_falls_due(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core import mail

    access = _access(personas)
    assessment = risk.start(access)
    _answer_by_hand(access, assessment)
    risk.complete(access, assessment)
    with django_capture_on_commit_callbacks(execute=True):
        assert risk.remind() == 0  # due in a year: nothing yet
    RiskAssessment.objects.filter(pk=assessment.pk).update(completed_at=timezone.now() - timedelta(days=340))
    with django_capture_on_commit_callbacks(execute=True):
        assert risk.remind() == 1
        assert risk.remind() == 0  # once
    [message] = mail.outbox
    assert message.to == [personas.members["compliance_officer"].email]
    assert "Security risk assessment due on" in message.subject and "164.308(a)(1)(ii)(A)" in message.body
    risk.start(access)  # next year's, started: a new completion resets the reminder for the year after
    assert RiskAssessment.objects.filter(reminded_on__isnull=True).count() == 1
