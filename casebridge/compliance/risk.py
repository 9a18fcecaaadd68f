"""The security risk assessment (issue 16, item 4): the Security Rule asks every covered entity and
business associate to assess the risks to the patient data it holds (45 CFR 164.308(a)(1)(ii)(A))
and to reduce them to a reasonable level (164.308(a)(1)(ii)(B)).

The questions are kept here as data, each with its citation, grouped by the rule's standards
(administrative 164.308, physical 164.310, technical 164.312). Where CaseBridge can know the
answer (MFA coverage, encryption at rest, audit log verification, restore tests, training,
removals, access reviews...) it is suggested from the same live checks the compliance checklist
shows, with their evidence, and frozen into the assessment when it is completed. Found risks go
to a register (likelihood x impact, owner, plan, due date, status). The assessment is repeated
yearly: the next is due a year after the last completion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance import access_reviews, documents
from casebridge.compliance.models import (
    AccessReview,
    RiskAnswer,
    RiskAssessment,
    RiskEntry,
    RiskEvidence,
    RiskStatus,
)
from casebridge.core.pdf import document, latin
from casebridge.orgs.models import Membership, Organization

NOTE_LIMIT = 2000
CADENCE = timedelta(days=365)

ANSWERS = {"yes": "Yes", "partly": "Partly", "no": "No", "na": "Not applicable"}

ADMINISTRATIVE, PHYSICAL, TECHNICAL = "administrative", "physical", "technical"
STANDARDS = (
    (ADMINISTRATIVE, "Administrative safeguards", "45 CFR 164.308"),
    (PHYSICAL, "Physical safeguards", "45 CFR 164.310"),
    (TECHNICAL, "Technical safeguards", "45 CFR 164.312"),
)

# The live checks of the compliance checklist (compliance/dashboard.py), by their title.
LIVE_OFFICERS = "Privacy and security officers named"
LIVE_MFA = "Multi-factor authentication for everyone"
LIVE_ENCRYPTION = "Encryption in transit and at rest"
LIVE_AGREEMENTS = "Agreements with everyone who handles PHI"
LIVE_AUDIT_LOG = "Tamper-evident audit log, verified"
LIVE_ACTIVITY_REVIEW = "Regular review of activity"
LIVE_REMOVALS = "Access ends when people leave"
LIVE_BACKUPS = "Backups that restore, tested"
LIVE_INCIDENTS = "Incidents assessed and notified in time"
LIVE_TRAINING = "Workforce training"
LIVE_ACCESS_REVIEWS = "access reviews"  # compliance/access_reviews.py, not a checklist line


@dataclass(frozen=True)
class Question:
    key: str
    standard: str
    text: str
    citation: str
    live: str = ""  # the live check that suggests an answer, if CaseBridge can know it


QUESTIONS: tuple[Question, ...] = (
    Question(
        "risk_management",
        ADMINISTRATIVE,
        "Does each risk you found have a plan to reduce it, someone responsible and a date?",
        "164.308(a)(1)(ii)(B)",
    ),
    Question(
        "sanctions",
        ADMINISTRATIVE,
        "Is there a written sanctions policy for team members who break privacy or security rules, and is it applied?",
        "164.308(a)(1)(ii)(C)",
    ),
    Question(
        "activity_review",
        ADMINISTRATIVE,
        "Does someone regularly review who opened, sent or downloaded patient data?",
        "164.308(a)(1)(ii)(D)",
        LIVE_ACTIVITY_REVIEW,
    ),
    Question(
        "security_official",
        ADMINISTRATIVE,
        "Is one person named as responsible for security?",
        "164.308(a)(2)",
        LIVE_OFFICERS,
    ),
    Question(
        "termination",
        ADMINISTRATIVE,
        "When someone leaves, is their access to patient data ended the same day?",
        "164.308(a)(3)(ii)(C)",
        LIVE_REMOVALS,
    ),
    Question(
        "access_review",
        ADMINISTRATIVE,
        "Do you review periodically who has access (members, links, connected offices) and remove what is no "
        "longer needed?",
        "164.308(a)(4)(ii)(B)-(C)",
        LIVE_ACCESS_REVIEWS,
    ),
    Question(
        "training",
        ADMINISTRATIVE,
        "Has everyone who works with patient data been trained on your policies, and retrained yearly?",
        "164.308(a)(5)(i)",
        LIVE_TRAINING,
    ),
    Question(
        "malware",
        ADMINISTRATIVE,
        "Are computers protected against malicious software and kept up to date?",
        "164.308(a)(5)(ii)(B)",
    ),
    Question(
        "passwords",
        ADMINISTRATIVE,
        "Are team members told how to choose and protect passwords, and are failed sign-ins watched?",
        "164.308(a)(5)(ii)(C)-(D)",
    ),
    Question(
        "incidents",
        ADMINISTRATIVE,
        "Do team members know how to report a security incident, and is each one assessed and documented?",
        "164.308(a)(6)",
        LIVE_INCIDENTS,
    ),
    Question(
        "backups",
        ADMINISTRATIVE,
        "Are patient data backed up, and has restoring a backup been tested?",
        "164.308(a)(7)(ii)(A), (D)",
        LIVE_BACKUPS,
    ),
    Question(
        "emergency",
        ADMINISTRATIVE,
        "Could you keep seeing patients and protect their records during an outage, fire or flood?",
        "164.308(a)(7)(ii)(B)-(C)",
    ),
    Question(
        "evaluation",
        ADMINISTRATIVE,
        "Do you re-check your safeguards when something changes (a new system, a move, new staff)?",
        "164.308(a)(8)",
    ),
    Question(
        "agreements",
        ADMINISTRATIVE,
        "Does every vendor and office that handles patient data for you have a business associate agreement?",
        "164.308(b)(1)",
        LIVE_AGREEMENTS,
    ),
    Question(
        "facility",
        PHYSICAL,
        "Are servers, network equipment and paper records locked away from people who do not need them?",
        "164.310(a)(1)",
    ),
    Question(
        "workstations",
        PHYSICAL,
        "Are screens out of patients' view, and are workstations locked when nobody is at them?",
        "164.310(b)-(c)",
    ),
    Question(
        "disposal",
        PHYSICAL,
        "Are old computers, drives, phones and scanners wiped or destroyed before they are thrown away or reused?",
        "164.310(d)(2)(i)-(ii)",
    ),
    Question(
        "devices",
        PHYSICAL,
        "Do you keep a list of the devices and media that hold patient data, and who has each?",
        "164.310(d)(2)(iii)",
    ),
    Question(
        "unique_logins",
        TECHNICAL,
        "Does everyone sign in with their own account on every system (no shared logins)?",
        "164.312(a)(2)(i)",
    ),
    Question(
        "auto_logoff",
        TECHNICAL,
        "Do workstations and applications lock themselves after a few minutes without use?",
        "164.312(a)(2)(iii)",
    ),
    Question(
        "encryption_at_rest",
        TECHNICAL,
        "Are patient data encrypted where they are stored?",
        "164.312(a)(2)(iv)",
        LIVE_ENCRYPTION,
    ),
    Question(
        "audit_log",
        TECHNICAL,
        "Is there a record of who did what with patient data, protected against tampering and checked?",
        "164.312(b), (c)(1)",
        LIVE_AUDIT_LOG,
    ),
    Question(
        "mfa",
        TECHNICAL,
        "Does everyone prove who they are with a second factor when they sign in?",
        "164.312(d)",
        LIVE_MFA,
    ),
    Question(
        "transmission",
        TECHNICAL,
        "Are patient data sent only over encrypted channels (never as plain e-mail attachments or on USB sticks)?",
        "164.312(e)(1)",
    ),
)
BY_KEY = {q.key: q for q in QUESTIONS}


@dataclass
class Suggestion:
    answer: str  # yes, partly or no
    evidence: str
    citation: str


def live_suggestions(organization: Organization) -> dict[str, Suggestion]:
    """What CaseBridge knows, by question: the checklist's own live checks (nothing queried
    again here) and the access review cadence. A check that cannot tell suggests nothing."""
    from casebridge.compliance import dashboard  # the checklist will show risk.last_completed()

    found: dict[str, Suggestion] = {}
    checks = {c.title: c for c in dashboard.checks(organization)}
    last_review = AccessReview.objects.filter(organization=organization, completed_at__isnull=False).first()
    due = cast(date, access_reviews.next_due(organization))  # typed loosely there
    for question in QUESTIONS:
        if question.live == LIVE_ACCESS_REVIEWS:
            late = due < timezone.localdate()
            found[question.key] = Suggestion(
                "yes" if last_review and not late else "partly" if last_review else "no",
                (
                    f"Last access review completed {last_review.completed_at:%Y-%m-%d}"
                    if last_review and last_review.completed_at
                    else "No access review completed yet"
                )
                + f"; next due {due:%Y-%m-%d}{' (overdue)' if late else ''}.",
                "45 CFR 164.308(a)(4)(ii)(B)-(C)",
            )
            continue
        check = checks.get(question.live)
        if check is None or check.state not in (dashboard.OK, dashboard.ATTENTION):
            continue
        found[question.key] = Suggestion(
            "yes" if check.state == dashboard.OK else "partly", check.evidence, check.citation
        )
    return found


def last_completed(organization: Organization) -> RiskAssessment | None:
    """The latest completed assessment (for the compliance checklist), or None."""
    return (
        RiskAssessment.objects.filter(organization=organization, completed_at__isnull=False)
        .order_by("-completed_at")
        .first()
    )


def current(organization: Organization) -> RiskAssessment | None:
    """The assessment in progress, if any."""
    return RiskAssessment.objects.filter(organization=organization, completed_at__isnull=True).first()


def next_due(organization: Organization) -> date:
    """A year after the last completion; today when there has never been one (the rule asks for
    an accurate and thorough assessment before anything else)."""
    last = last_completed(organization)
    if last is None or last.completed_at is None:
        return timezone.localdate()
    return timezone.localdate(last.completed_at + CADENCE)


REMIND_DAYS = 30


def remind() -> int:
    """E-mail the compliance officers once when the yearly assessment falls due within 30 days
    (run by the worker); starting the next one before then needs no reminder."""
    from django.urls import reverse

    from casebridge.core.mail import absolute_url, queue_mail
    from casebridge.orgs.queries import compliance_recipients

    today = timezone.localdate()
    latest = (
        RiskAssessment.objects.filter(completed_at__isnull=False, reminded_on__isnull=True)
        .select_related("organization")
        .order_by("organization_id", "-completed_at")
    )
    told = 0
    for assessment in latest:
        organization = assessment.organization
        if last_completed(organization) != assessment or current(organization) is not None:
            continue
        due = next_due(organization)
        if due - today > timedelta(days=REMIND_DAYS):
            continue
        queue_mail(
            compliance_recipients(organization),
            "risk_due",
            {
                "organization": organization.name,
                "due": due,
                "late": max(0, (today - due).days),
                "link": absolute_url(reverse("risk_assessments", args=[organization.slug])),
            },
        )
        RiskAssessment.objects.filter(pk=assessment.pk).update(reminded_on=today)
        told += 1
    return told


def overdue_days(organization: Organization) -> int:
    """Days past the yearly due date of the last completed assessment (0 when on time or when
    none was ever completed: the page then asks for the first one)."""
    last = last_completed(organization)
    if last is None:
        return 0
    return max(0, (timezone.localdate() - next_due(organization)).days)


def level(score: int) -> str:
    """The register's level of a likelihood x impact score (1-25)."""
    if score >= 15:
        return "critical"
    if score >= 10:
        return "high"
    if score >= 5:
        return "medium"
    return "low"


def _person(access: OrgAccess) -> User | None:
    return access.actor if isinstance(access.actor, User) else None


def _editable(access: OrgAccess, assessment: RiskAssessment) -> None:
    access.require(Perm.COMPLIANCE_MANAGE)
    if assessment.organization_id != access.organization.pk:
        raise ValidationError("This assessment belongs to another organization.")
    if assessment.completed_at is not None:
        raise ValidationError("This assessment is completed: it is the record. Start next year's to change answers.")


def start(access: OrgAccess) -> RiskAssessment:
    """Start an assessment; open risks of the last one are carried into its register."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if current(access.organization) is not None:
        raise ValidationError("An assessment is already in progress: finish it first.")
    previous = last_completed(access.organization)
    with transaction.atomic():
        assessment = RiskAssessment.objects.create(organization=access.organization, started_by=_person(access))
        carried = 0
        if previous is not None:
            for entry in previous.entries.exclude(status__in=[RiskStatus.DONE, RiskStatus.ACCEPTED]):
                entry.pk = None
                entry.id = None
                entry._state.adding = True
                entry.assessment = assessment
                entry.save()
                carried += 1
        record(
            "compliance.risk.started",
            actor=access.actor,
            organization=access.organization,
            details={"assessment": str(assessment.pk), "carried_risks": carried},
        )
    return assessment


def answer(access: OrgAccess, assessment: RiskAssessment, key: str, value: str, note: str) -> RiskAnswer:
    """Answer one question by hand (replacing any earlier answer to it)."""
    _editable(access, assessment)
    errors = {}
    if key not in BY_KEY:
        errors["question"] = "That question is not part of the assessment."
    if value not in ANSWERS:
        errors["answer"] = "Choose yes, partly, no or not applicable."
    if len(note) > NOTE_LIMIT:
        errors["note"] = f"Keep the note under {NOTE_LIMIT:,} characters."
    if value in ("partly", "no") and not note.strip():
        errors["note"] = "Say what is missing: it is where the risk register starts."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        saved, _ = RiskAnswer.objects.update_or_create(
            assessment=assessment,
            question=key,
            defaults={
                "answer": value,
                "note": note.strip(),
                "from_live_data": False,
                "answered_at": timezone.now(),
                "answered_by": _person(access),
            },
        )
        record(
            "compliance.risk.answered",
            actor=access.actor,
            organization=access.organization,
            details={"assessment": str(assessment.pk), "question": key, "answer": value},
        )
    return saved


def attach(
    access: OrgAccess, assessment: RiskAssessment, key: str, *, title: str, chunks: Any, length: int
) -> RiskEvidence:
    """Store a document as evidence for a question, encrypted in the vault (compliance.documents)."""
    _editable(access, assessment)
    errors = {} if key in BY_KEY else {"question": "That question is not part of the assessment."}
    stored = documents.store(
        access, title=title, chunks=chunks, length=length, errors=errors, kind="Evidence documents"
    )
    with transaction.atomic():
        evidence = RiskEvidence.objects.create(
            assessment=assessment,
            question=key,
            title=title.strip()[:150],
            stored_object=stored,
            added_by=_person(access),
        )
        record(
            "compliance.risk.evidence_attached",
            actor=access.actor,
            organization=access.organization,
            target=stored,
            details={"assessment": str(assessment.pk), "question": key, "evidence": str(evidence.pk), "size": length},
        )
    return evidence


def save_entry(
    access: OrgAccess,
    assessment: RiskAssessment,
    entry: RiskEntry | None,
    *,
    threat: str,
    vulnerability: str,
    likelihood: int,
    impact: int,
    owner: User | None,
    remediation: str,
    due_on: date | None,
    status: str,
) -> RiskEntry:
    """Add a risk to the register, or change one (its status as the plan progresses)."""
    _editable(access, assessment)
    errors = {}
    if entry is not None and entry.assessment_id != assessment.pk:
        raise ValidationError("This risk belongs to another assessment.")
    if not threat.strip():
        errors["threat"] = "Say what could happen (for example: a laptop with patient files is stolen)."
    if not vulnerability.strip():
        errors["vulnerability"] = "Say what makes it possible (for example: the laptop's disk is not encrypted)."
    for name, value in (("likelihood", likelihood), ("impact", impact)):
        if not 1 <= value <= 5:
            errors[name] = "Score it from 1 (lowest) to 5 (highest)."
    if status not in RiskStatus.values:
        errors["status"] = "Choose a status."
    if (
        owner is not None
        and not Membership.objects.filter(
            organization=access.organization, user=owner, is_active=True, user__is_active=True
        ).exists()
    ):
        errors["owner"] = "Choose an active member of the organization."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        if entry is None:
            entry = RiskEntry(assessment=assessment)
        entry.threat, entry.vulnerability = threat.strip()[:200], vulnerability.strip()[:300]
        entry.likelihood, entry.impact, entry.owner = likelihood, impact, owner
        entry.remediation, entry.due_on, entry.status = remediation.strip(), due_on, status
        entry.save()
        record(
            "compliance.risk.entry_saved",
            actor=access.actor,
            organization=access.organization,
            details={
                "assessment": str(assessment.pk),
                "entry": str(entry.pk),
                "score": entry.score,
                "level": level(entry.score),
                "status": status,
                "owner": str(owner.pk) if owner else None,
            },
        )
    return entry


@dataclass
class Row:
    question: Question
    answer: RiskAnswer | None
    suggestion: Suggestion | None
    evidence: list[RiskEvidence]

    @property
    def value(self) -> str:
        """The answer that counts: the one given, else the live one."""
        if self.answer is not None:
            return self.answer.answer
        return self.suggestion.answer if self.suggestion else ""

    @property
    def from_live_data(self) -> bool:
        return (self.answer is None and self.suggestion is not None) or bool(self.answer and self.answer.from_live_data)


def rows(assessment: RiskAssessment) -> list[Row]:
    """Every question with its answer, its live suggestion (only while in progress: a completed
    assessment keeps what was true then) and its evidence."""
    given = {a.question: a for a in assessment.answers.all()}
    live = live_suggestions(assessment.organization) if assessment.completed_at is None else {}
    evidence: dict[str, list[RiskEvidence]] = {}
    for item in assessment.evidence.all():
        evidence.setdefault(item.question, []).append(item)
    return [Row(q, given.get(q.key), live.get(q.key), evidence.get(q.key, [])) for q in QUESTIONS]


def complete(access: OrgAccess, assessment: RiskAssessment) -> RiskAssessment:
    """Complete the assessment: every question answered, by hand or from live data (live answers
    are frozen with their evidence, so the record says what was true that day)."""
    _editable(access, assessment)
    found = rows(assessment)
    missing = [r.question.key for r in found if not r.value]
    if missing:
        raise ValidationError(
            f"{len(missing)} question{'s are' if len(missing) != 1 else ' is'} not answered yet: answer each one "
            "(or mark it not applicable) before completing."
        )
    with transaction.atomic():
        now = timezone.now()
        for row in found:
            if row.answer is None and row.suggestion is not None:
                RiskAnswer.objects.create(
                    assessment=assessment,
                    question=row.question.key,
                    answer=row.suggestion.answer,
                    note=row.suggestion.evidence,
                    from_live_data=True,
                    answered_at=now,
                )
        assessment.completed_at, assessment.completed_by = now, _person(access)
        assessment.save(update_fields=["completed_at", "completed_by"])
        counts = {value: sum(1 for r in found if r.value == value) for value in ANSWERS}
        record(
            "compliance.risk.completed",
            actor=access.actor,
            organization=access.organization,
            details={
                "assessment": str(assessment.pk),
                "answers": counts,
                "from_live_data": sum(1 for r in found if r.from_live_data),
                "risks": assessment.entries.count(),
            },
        )
    return assessment


def report_pdf(access: OrgAccess, assessment: RiskAssessment) -> bytes:
    """The assessment as a PDF for the file and for an auditor: answers by standard with their
    notes and evidence, then the risk register. An assessment in progress prints as a draft."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if assessment.organization_id != access.organization.pk:
        raise ValidationError("This assessment belongs to another organization.")
    title = "Security risk assessment"
    pdf = document(title)
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, latin(title if assessment.completed_at else f"DRAFT - {title}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    state = "in progress"
    if assessment.completed_at:
        due = timezone.localdate(assessment.completed_at + CADENCE)
        state = f"completed {assessment.completed_at:%B %d, %Y}; next due {due:%B %d, %Y}"
    pdf.multi_cell(
        0,
        5,
        latin(f"{access.organization.name} - started {assessment.started_at:%B %d, %Y}, {state}."),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.multi_cell(
        0,
        5,
        "Risk analysis, 45 CFR 164.308(a)(1)(ii)(A); risk management, 164.308(a)(1)(ii)(B).",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    found = rows(assessment)
    for standard, heading, citation in STANDARDS:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 13)
        pdf.multi_cell(0, 7, latin(f"{heading} ({citation})"), new_x="LMARGIN", new_y="NEXT")
        for row in (r for r in found if r.question.standard == standard):
            pdf.set_font("Helvetica", "B", 10)
            pdf.multi_cell(0, 5, latin(f"{row.question.text} ({row.question.citation})"), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 10)
            said = ANSWERS.get(row.value, "Not answered")
            if row.from_live_data:
                said += " (from live data)"
            note = row.answer.note if row.answer else row.suggestion.evidence if row.suggestion else ""
            pdf.multi_cell(0, 5, latin(f"{said}. {note}".strip()), new_x="LMARGIN", new_y="NEXT")
            if row.evidence:
                names = "; ".join(e.title for e in row.evidence)
                pdf.multi_cell(0, 5, latin(f"Evidence: {names}"), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 13)
    pdf.multi_cell(0, 7, "Risk register (164.308(a)(1)(ii)(B))", new_x="LMARGIN", new_y="NEXT")
    entries = list(assessment.entries.select_related("owner"))
    if not entries:
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 5, "No risk recorded.", new_x="LMARGIN", new_y="NEXT")
    for entry in sorted(entries, key=lambda e: -e.score):
        pdf.set_font("Helvetica", "B", 10)
        pdf.multi_cell(
            0,
            5,
            latin(f"{entry.threat} - score {entry.score} ({level(entry.score)}), {entry.get_status_display()}"),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_font("Helvetica", "", 10)
        lines = [
            f"Vulnerability: {entry.vulnerability}",
            f"Likelihood {entry.likelihood} x impact {entry.impact}; owner: "
            f"{entry.owner.display_name if entry.owner else 'not named'}; due: "
            + (f"{entry.due_on:%Y-%m-%d}" if entry.due_on else "not set"),
        ]
        if entry.remediation:
            lines.append(f"Plan: {entry.remediation}")
        pdf.multi_cell(0, 5, latin("\n".join(lines)), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    record(
        "compliance.risk.report",
        actor=access.actor,
        organization=access.organization,
        details={"assessment": str(assessment.pk), "final": assessment.completed_at is not None},
    )
    return bytes(pdf.output())
