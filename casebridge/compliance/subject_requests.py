"""Patients' requests about their own data: a copy of everything held (HIPAA right of access, 45
CFR 164.524; GDPR Art. 15), erasure (GDPR Art. 17), restriction (HIPAA 164.522(a); GDPR Art.
18) and amendment (HIPAA 164.526; GDPR Art. 16). Each is registered with the date it was
received, its deadline by the law that applies, and a decision with its reason. The audit events
name the request and the patient's reference, never the patient's name or the reasons' words.

Deadlines (pure function, tested with frozen dates):

- HIPAA access: 30 days after receipt, one extension of at most 30 days with a written statement
  of the reasons and the date it will be done (164.524(b)(2));
- HIPAA amendment: 60 days after receipt, one extension of at most 30 days on the same terms
  (164.526(b)(2));
- GDPR (access, erasure, restriction, amendment): one month of receipt, extendable by two further months
  where necessary, the person told within the first month (Art. 12(3));
- HIPAA gives no right of erasure and no deadline to answer a request for restriction: without
  GDPR an erasure is refused with that reason, and a restriction has no legal deadline;
- both laws: the earlier date.

Whether the GDPR applies is the officer's call when registering the request, as for an incident
(compliance/incidents.py): the organization is established in the EU/EEA, or the patient was
there when offered the service (Art. 3).
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import date, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.cases.models import Message, Patient
from casebridge.compliance.models import RequestKind, RequestStatus, SubjectRequest
from casebridge.retention import policies
from casebridge.sharing import accounting
from casebridge.sharing.models import Disclosure
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion

TEXT_LIMIT = 4000
HIPAA_DAYS = 30
HIPAA_AMENDMENT_DAYS = 60
HIPAA_EXTENSION_DAYS = 30  # the one extension both 164.524(b)(2)(iii) and 164.526(b)(2)(ii) allow
GDPR_MONTHS = 1
GDPR_EXTENDED_MONTHS = 3  # one month and "two further months" (Art. 12(3))


@dataclass(frozen=True)
class Law:
    citation: str
    says: str


def add_months(day: date, months: int) -> date:
    """The same day `months` later; the month's last day when it has no such day (a month from
    31 January is 28 or 29 February)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_on(kind: str, received_on: date, *, under_gdpr: bool, extended: bool) -> date | None:
    """The last day to answer, by the laws that apply (None: no law sets one)."""
    found: list[date] = []
    hipaa_days = {RequestKind.ACCESS: HIPAA_DAYS, RequestKind.AMENDMENT: HIPAA_AMENDMENT_DAYS}.get(RequestKind(kind))
    if hipaa_days is not None:
        found.append(received_on + timedelta(days=hipaa_days + (HIPAA_EXTENSION_DAYS if extended else 0)))
    if under_gdpr:
        found.append(add_months(received_on, GDPR_EXTENDED_MONTHS if extended else GDPR_MONTHS))
    return min(found) if found else None


def due_of(request: SubjectRequest) -> date | None:
    return due_on(
        request.kind, request.received_on, under_gdpr=request.under_gdpr, extended=request.extended_at is not None
    )


def laws(kind: str, under_gdpr: bool) -> list[Law]:
    """What the law asks for this kind of request, in plain words, with the citation."""
    found: list[Law] = []
    if kind == RequestKind.ACCESS:
        found.append(
            Law(
                "45 CFR 164.524",
                "The patient may inspect and get a copy of their records. Act within 30 days of the request; "
                "one extension of up to 30 more days is allowed if you tell them in writing, within the first "
                "30 days, why and when you will answer.",
            )
        )
    elif kind == RequestKind.ERASURE:
        found.append(
            Law(
                "45 CFR 164.526",
                "HIPAA gives no right to have records erased: the patient may ask to amend them instead, and the "
                "practice keeps them as long as its state's dental-record rule requires.",
            )
        )
    elif kind == RequestKind.AMENDMENT:
        found.append(
            Law(
                "45 CFR 164.526",
                "The patient may ask you to amend their record. Act within 60 days (one extension of up to 30 "
                "days, told in writing with why and when). Accept: amend the record, tell the patient, and tell "
                "the people they name and those you know hold the information. Deny only because you did not "
                "create it, it is not part of the record set, it is not open to their inspection, or it is "
                "accurate and complete: in writing, with the basis, how to file a statement of disagreement "
                "and how to complain.",
            )
        )
    else:
        found.append(
            Law(
                "45 CFR 164.522(a)",
                "The patient may ask you to restrict uses and disclosures of their information. You need not "
                "agree (except for a health plan when they paid in full themselves), but once you agree you "
                "must keep to it. HIPAA sets no deadline to answer.",
            )
        )
    if under_gdpr:
        article = {
            RequestKind.ACCESS: (
                "GDPR Art. 15",
                "The person may obtain a copy of their personal data, with the purposes, recipients, storage "
                "period and their other rights.",
            ),
            RequestKind.ERASURE: (
                "GDPR Art. 17",
                "The person may have their data erased when it is no longer needed, unless keeping it is a "
                "legal obligation or needed for legal claims (Art. 17(3)(b) and (e)): then refuse and say why.",
            ),
            RequestKind.AMENDMENT: (
                "GDPR Art. 16",
                "The person may have inaccurate personal data rectified without undue delay, and incomplete "
                "data completed, including by a supplementary statement.",
            ),
            RequestKind.RESTRICTION: (
                "GDPR Art. 18",
                "The person may have the processing of their data restricted: it is then stored but not shared "
                "without their consent.",
            ),
        }[RequestKind(kind)]
        found.append(Law(*article))
        found.append(
            Law(
                "GDPR Art. 12(3)",
                "Answer within one month of receipt. It may be extended by two further months for complex or "
                "numerous requests, telling the person within the first month and why.",
            )
        )
    return found


def patients_of(access: OrgAccess) -> list[Patient]:
    """The patients a request can be about: the organization's own (a lab or an imaging center
    holds the practices' patients for them: their requests go to the practice)."""
    return list(Patient.objects.filter(practice=access.organization).order_by("name", "pk"))


def in_effect(request: SubjectRequest) -> bool:
    return (
        request.kind == RequestKind.RESTRICTION
        and request.status == RequestStatus.COMPLETED
        and request.lifted_at is None
    )


def _user(access: OrgAccess) -> User | None:
    return access.actor if isinstance(access.actor, User) else None


def _audit(action: str, access: OrgAccess, request: SubjectRequest, **details: object) -> None:
    record(
        action,
        actor=access.actor,
        organization=access.organization,
        target=request,
        patient_ref=str(request.patient_id),
        details={"request": str(request.pk), "kind": request.kind, **details},
    )


def _reason(text: str, what: str) -> str:
    text = text.strip()
    if len(text) < 5:
        raise ValidationError(f"Write {what} in a few words.")
    if len(text) > TEXT_LIMIT:
        raise ValidationError(f"Keep it under {TEXT_LIMIT:,} characters.")
    return text


def _open(request: SubjectRequest) -> None:
    if request.status not in (RequestStatus.OPEN, RequestStatus.EXTENDED):
        raise ValidationError("This request is already decided.")


def register(
    access: OrgAccess, *, patient: Patient | None, kind: str, received_on: date | None, under_gdpr: bool
) -> SubjectRequest:
    access.require(Perm.COMPLIANCE_MANAGE)
    errors: dict[str, str] = {}
    if patient is None or patient.practice_id != access.organization.pk:
        errors["patient"] = "Choose one of your organization's patients."
    if kind not in RequestKind.values:
        errors["kind"] = "Choose what the patient asks for."
    if received_on is None:
        errors["received_on"] = "Enter the date the request was received: the deadline runs from it."
    elif received_on > timezone.localdate():
        errors["received_on"] = "A request cannot be received in the future."
    if errors:
        raise ValidationError(errors)
    assert patient is not None and received_on is not None
    with transaction.atomic():
        request = SubjectRequest.objects.create(
            organization=access.organization,
            patient=patient,
            kind=kind,
            received_on=received_on,
            under_gdpr=under_gdpr,
            created_by=_user(access),
        )
        due = due_of(request)
        _audit(
            "compliance.request.registered",
            access,
            request,
            gdpr=under_gdpr,
            received_on=received_on.isoformat(),
            due_on=due.isoformat() if due else None,
        )
    return request


def extend(access: OrgAccess, request: SubjectRequest, reason: str) -> SubjectRequest:
    """The one extension the law allows, with the written reason, told within the first period."""
    access.require(Perm.COMPLIANCE_MANAGE)
    _open(request)
    if request.extended_at is not None:
        raise ValidationError("The deadline was already extended once: the law allows one extension.")
    first = due_of(request)
    if first is None:
        raise ValidationError("No law sets a deadline for this request: there is nothing to extend.")
    if timezone.localdate() > first:
        raise ValidationError("The deadline has passed: an extension must be given before it.")
    text = _reason(reason, "why more time is needed")
    with transaction.atomic():
        request.extension_reason = text
        request.extended_at = timezone.now()
        request.status = RequestStatus.EXTENDED
        request.save(update_fields=["extension_reason", "extended_at", "status"])
        due = due_of(request)
        _audit("compliance.request.extended", access, request, due_on=due.isoformat() if due else None)
    return request


def _decide(access: OrgAccess, request: SubjectRequest, status: str, reason: str, **details: object) -> None:
    request.status = status
    request.decision_reason = reason
    request.decided_at = timezone.now()
    request.decided_by = _user(access)
    request.save(update_fields=["status", "decision_reason", "decided_at", "decided_by"])
    _audit(
        "compliance.request.completed" if status == RequestStatus.COMPLETED else "compliance.request.refused",
        access,
        request,
        **details,
    )


def refuse(access: OrgAccess, request: SubjectRequest, reason: str) -> SubjectRequest:
    """A refusal the officer decides (identity not verified, a ground the law gives), with why."""
    access.require(Perm.COMPLIANCE_MANAGE)
    _open(request)
    text = _reason(reason, "why the request is refused (the patient is told)")
    with transaction.atomic():
        _decide(access, request, RequestStatus.REFUSED, text, by="officer")
    return request


def _complete(access: OrgAccess, request: SubjectRequest, kind: str, note: str, what: str) -> SubjectRequest:
    access.require(Perm.COMPLIANCE_MANAGE)
    _open(request)
    if request.kind != kind:
        raise ValidationError(f"This is not a request for {RequestKind(kind).label.lower()}.")
    text = _reason(note, what)
    with transaction.atomic():
        _decide(access, request, RequestStatus.COMPLETED, text)
    return request


def complete_access(access: OrgAccess, request: SubjectRequest, note: str) -> SubjectRequest:
    """The copy was given to the patient (downloaded from here and handed over)."""
    return _complete(access, request, RequestKind.ACCESS, note, "how the copy was given (e-mail, portal, in person)")


def restrict(access: OrgAccess, request: SubjectRequest, note: str) -> SubjectRequest:
    """Agree to the restriction: from now on no new sharing of the patient's cases (external
    links, sending to a lab, imaging orders) is allowed (access/policy.py sharing_refusal)."""
    return _complete(access, request, RequestKind.RESTRICTION, note, "what was agreed with the patient")


def lift(access: OrgAccess, request: SubjectRequest, reason: str) -> SubjectRequest:
    """End a restriction in effect (the patient consents, or withdraws it: Art. 18(3))."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if not in_effect(request):
        raise ValidationError("This restriction is not in effect.")
    _reason(reason, "why the restriction ends")
    with transaction.atomic():
        request.lifted_at = timezone.now()
        request.save(update_fields=["lifted_at"])
        _audit("compliance.request.restriction_lifted", access, request)
    return request


# --- amendment ----------------------------------------------------------------------------
def holders(request: SubjectRequest) -> list[str]:
    """Who the practice knows holds the patient's information and must be told of an amendment
    (164.526(c)(3)(ii)): the labs and imaging centers of the patient's cases and the recipients
    of its external links (from the accounting of disclosures), each once."""
    from casebridge.cases.models import ImagingOrder
    from casebridge.orgs.models import Organization

    cases = request.patient.cases.all()
    organizations = Organization.objects.filter(
        Q(cases_received__in=cases) | Q(pk__in=ImagingOrder.objects.filter(case__in=cases).values("center"))
    ).exclude(pk=request.organization_id)
    found = sorted({org.name for org in organizations})
    emails = Disclosure.objects.filter(patient=request.patient).values_list("recipient_email", flat=True)
    return found + sorted(set(emails))


def _append_to_record(access: OrgAccess, request: SubjectRequest, text: str) -> int:
    """Append `text` to every case of the patient as a message from the practice (the record's
    own thread, which the case's lab sees too); how many cases."""
    cases = list(request.patient.cases.all())
    Message.objects.bulk_create(
        [Message(case=case, author=_user(access), author_org=access.organization, body=text) for case in cases]
    )
    return len(cases)


def amend(access: OrgAccess, request: SubjectRequest, amendment: str) -> SubjectRequest:
    """Accept an amendment: the amendment is appended to each of the patient's cases (the
    record is amended by addition, never rewritten, 164.526(c)(1)), the request completed with
    it; the page then lists who must be told."""
    access.require(Perm.COMPLIANCE_MANAGE)
    _open(request)
    if request.kind != RequestKind.AMENDMENT:
        raise ValidationError("This is not a request for an amendment.")
    text = _reason(amendment, "the amendment: what the record now says, and what it corrects")
    with transaction.atomic():
        cases = _append_to_record(
            access,
            request,
            f"Amendment to the record, accepted {timezone.localdate():%Y-%m-%d} at the patient's request: {text}",
        )
        _decide(access, request, RequestStatus.COMPLETED, text, cases=cases)
    return request


def disagree(access: OrgAccess, request: SubjectRequest, statement: str) -> SubjectRequest:
    """Record the patient's statement of disagreement with a refused amendment and append it,
    with the refusal, to each of the patient's cases (164.526(d)(1)(iii), (d)(4))."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if request.kind != RequestKind.AMENDMENT or request.status != RequestStatus.REFUSED:
        raise ValidationError("A statement of disagreement answers a refused amendment.")
    if request.disagreement:
        raise ValidationError("The patient's statement of disagreement is already recorded.")
    text = _reason(statement, "the patient's statement of disagreement")
    with transaction.atomic():
        request.disagreement = text
        request.save(update_fields=["disagreement"])
        cases = _append_to_record(
            access,
            request,
            f"The patient asked to amend this record; refused on {request.decided_at:%Y-%m-%d}: "
            f"{request.decision_reason}\nThe patient's statement of disagreement: {text}",
        )
        _audit("compliance.request.disagreement", access, request, cases=cases)
    return request


def erasure_refusals(request: SubjectRequest) -> list[str]:
    """Why the law or the retention rules stop this erasure now (empty: it may go ahead)."""
    if not request.under_gdpr:
        return [
            "HIPAA gives no right of erasure (45 CFR 164.526 gives a right to amend): "
            "the records are kept as the retention rules require."
        ]
    return policies.erasure_refusals(request.patient)


def erase(access: OrgAccess, request: SubjectRequest) -> SubjectRequest:
    """Erase the patient's files if the law and the retention rules allow it, through the
    retention shred path (crypto-shredding and a signed certificate); otherwise refuse the
    request with the reasons, changing nothing else."""
    access.require(Perm.COMPLIANCE_MANAGE)
    _open(request)
    if request.kind != RequestKind.ERASURE:
        raise ValidationError("Only an erasure request erases.")
    refusals = erasure_refusals(request)
    with transaction.atomic():
        if refusals:
            _decide(access, request, RequestStatus.REFUSED, "\n".join(refusals), by="law_or_retention")
            return request
        certificate = policies.erase_patient(
            request.patient,
            reason=f"erasure at the patient's request {request.pk}",
            actor_label=f"erasure request {request.pk} (GDPR Art. 17)",
        )
        texts = _erase_identifiers(request)
        _decide(
            access,
            request,
            RequestStatus.COMPLETED,
            f"Every file of the patient's cases was crypto-shredded ({certificate.items} files; destruction "
            f"certificate {certificate.pk}); the patient's name, date of birth and chart number, the cases' "
            f"notes and {texts} messages were erased. The cases' numbers, dates and the audit log remain.",
            files=certificate.items,
            certificate=str(certificate.pk),
            messages=texts,
        )
    return request


ERASED = "[erased at the patient's request]"


def _erase_identifiers(request: SubjectRequest) -> int:
    """After the files: what identifies the patient in the records' text (name, date of birth,
    chart number, case notes, messages). The rows stay, so case numbers, the accounting of
    disclosures and the audit log keep their references; the number of messages erased."""
    patient = request.patient
    patient.name = f"Erased patient {str(request.pk)[:8]}"
    patient.date_of_birth = None
    patient.chart_number = ""
    patient.save(update_fields=["name", "date_of_birth", "chart_number"])
    cases = patient.cases.all()
    cases.exclude(notes="").update(notes=ERASED)
    cases.exclude(ship_to="").update(ship_to=ERASED)
    return Message.objects.filter(case__in=cases).exclude(body=ERASED).update(body=ERASED)


# --- the copy given for an access request --------------------------------------------------
def _file_entries(patient: Patient) -> tuple[list[tuple[str, ObjectVersion]], list[dict[str, object]]]:
    entries: list[tuple[str, ObjectVersion]] = []
    listed: list[dict[str, object]] = []
    for case in patient.cases.order_by("created_at"):
        for attachment in case.attachments.select_related("stored_object", "case").order_by("kind", "added_at", "pk"):
            try:
                version = vault.get_version(attachment.stored_object)
            except vault.ObjectUnavailable:
                listed.append({"case": case.number, "kind": attachment.kind, "state": "destroyed"})
                continue
            name = f"{case.number}/files/{attachment.download_name(version.version)}"
            entries.append((name, version))
            listed.append(
                {"name": name, "kind": attachment.kind, "size": version.size, "sha256": version.sha256, "state": "in"}
            )
    return entries, listed


def _case_record(case: object) -> dict[str, object]:
    from casebridge.cases.models import Case

    assert isinstance(case, Case)
    return {
        "case": case.number,
        "practice": case.practice.name,
        "lab": case.lab.name if case.lab else "",
        "type": case.case_type,
        "status": case.get_status_display(),
        "created_at": case.created_at.isoformat(),
        "submitted_at": case.submitted_at.isoformat() if case.submitted_at else None,
        "completed_at": case.completed_at.isoformat() if case.completed_at else None,
        "due_date": case.due_date.isoformat() if case.due_date else None,
        "notes": case.notes,
        "prescribed_by": case.signed_name,
        "restorations": [
            {
                "tooth": item.tooth,
                "arch": item.arch,
                "restoration": item.get_restoration_display(),
                "material": item.get_material_display() if item.material else "",
                "shade": item.shade,
            }
            for item in case.items.all()
        ],
        "history": [
            {"at": e.at.isoformat(), "status": e.get_status_display(), "by": e.actor_label, "note": e.note}
            for e in case.events.all()
        ],
        "messages": [
            {
                "at": m.created_at.isoformat(),
                "from": m.author_org.name,
                "by": m.author.display_name if m.author else "",
                "text": m.body,
            }
            for m in case.messages.select_related("author", "author_org")
        ],
    }


README = """A copy of the records {organization} holds about you, as asked on {received}.

index.json          what this archive holds, with each file's SHA-256 to check it
patient.json        the details we keep to identify you
<case>/case.json    each case: what was prescribed, its history and the messages about it
<case>/files/       the case's files (scans, photos, X-rays, designs) as stored
disclosures.csv     the accounting of disclosures: who outside received your information, when
                    and why (45 CFR 164.528)

Your rights: 45 CFR 164.524 (access){gdpr}.
"""


def access_archive(
    access: OrgAccess, request: SubjectRequest
) -> tuple[list[tuple[str, ObjectVersion]], list[tuple[str, bytes]]]:
    """Everything the organization holds about the patient of an access request: the files to
    decrypt into the archive and the documents made for it (index, records, disclosures); the
    download is recorded (the request and the patient's reference, the files' ids)."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if request.kind != RequestKind.ACCESS:
        raise ValidationError("Only an access request is answered with a copy.")
    patient = request.patient
    entries, listed = _file_entries(patient)
    cases = list(patient.cases.select_related("practice", "lab").order_by("created_at"))
    disclosures = list(
        Disclosure.objects.filter(practice=access.organization, patient=patient)
        .select_related("patient", "case", "link")
        .order_by("disclosed_at", "pk")
    )
    documents: list[tuple[str, bytes]] = [
        (
            "README.txt",
            README.format(
                organization=access.organization.name,
                received=request.received_on.isoformat(),
                gdpr="; GDPR Art. 15 (access)" if request.under_gdpr else "",
            ).encode(),
        ),
        (
            "patient.json",
            _json(
                {
                    "name": patient.name,
                    "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
                    "chart_number": patient.chart_number,
                }
            ),
        ),
    ]
    documents += [(f"{case.number}/case.json", _json(_case_record(case))) for case in cases]
    documents.append(("disclosures.csv", accounting.as_csv(disclosures).encode()))
    index = {
        "archive": "casebridge-subject-access/1",
        "organization": access.organization.name,
        "request": str(request.pk),
        "received_on": request.received_on.isoformat(),
        "made_at": timezone.now().isoformat(),
        "cases": [case.number for case in cases],
        "files": listed,
        "documents": [name for name, _ in documents],
        "disclosures": len(disclosures),
    }
    documents.insert(0, ("index.json", _json(index)))
    _audit(
        "compliance.request.exported",
        access,
        request,
        cases=[case.number for case in cases],
        files=[str(v.stored_object_id) for _, v in entries],
        size=sum(v.size for _, v in entries),
    )
    return entries, documents


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()
