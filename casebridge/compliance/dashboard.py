"""The compliance dashboard and checklist (issue 16, item 10): the file-sharing checklist and the
security checklist of the seeds, each item checked from live evidence where CaseBridge can know
it, and otherwise by a person's attestation (a note and a date, audited, valid a year): never a
green light without evidence. Each item has a stable key; an item's evidence comes from one
function, so a live source can replace an attestation (see risk_assessment_evidence)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

from allauth.mfa.models import Authenticator
from django.core.exceptions import ValidationError
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit import reviews
from casebridge.audit.api import record
from casebridge.audit.models import Event, PendingSeal
from casebridge.compliance import access_reviews, gdpr, policies
from casebridge.compliance.models import (
    AccessReview,
    Attestation,
    BaaStatus,
    Decision,
    ImpactAssessment,
    Incident,
    Officers,
    Vendor,
)
from casebridge.compliance.training import coverage as training_coverage
from casebridge.core.pdf import document, latin
from casebridge.orgs.models import Membership, Organization
from casebridge.orgs.queries import connections_of
from casebridge.retention.models import BackupRun, RunKind

OK, ATTENTION, UNKNOWN = "ok", "attention", "unknown"


ATTESTATION_VALID = timedelta(days=365)
RISK_ASSESSMENT = "risk_assessment"
MAX_NOTE = 2000


@dataclass
class Check:
    title: str
    state: str  # OK, ATTENTION or UNKNOWN
    evidence: str
    citation: str
    key: str = ""
    attestable: bool = False  # checked by a person's attestation, not by CaseBridge
    attestation: Attestation | None = None
    checked_on: date | None = None  # the date of the evidence, where there is one


@dataclass(frozen=True)
class Attestable:
    """An item CaseBridge cannot see for itself: a person attests it, with a note."""

    key: str
    title: str
    citation: str
    asks: str  # what the person confirms, in plain words


ATTESTABLE = (
    Attestable(
        "file_names",
        "File names carry only the identifiers needed",
        "45 CFR 164.502(b), 164.514(d)",
        "Scans, photographs and exports are named without patient names or dates of birth, here and on any "
        "computer or drive that holds them.",
    ),
    Attestable(
        "case_contents",
        "A standard set of what is sent per case type",
        "45 CFR 164.502(b), 164.514(d)",
        "For each kind of case (crown, aligner, denture...) the team sends the same minimum: prescription, scans, "
        "photographs, bite, shade; nothing else.",
    ),
    Attestable(
        "one_channel",
        "Case conversations stay in the portal",
        "45 CFR 164.312(b), (e)(1)",
        "Questions and files about cases go through CaseBridge messages, not e-mail, text messages or messaging "
        "apps, so the record stays in one audited place.",
    ),
    Attestable(
        "no_consumer_links",
        "No consumer cloud links or messaging apps for patient data",
        "45 CFR 164.502(e), 164.308(b)",
        "No one shares patient data through consumer services (personal cloud links, WhatsApp, ordinary e-mail) "
        "that sign no business associate agreement.",
    ),
    Attestable(
        "facility",
        "Physical safeguards of the premises and workstations",
        "45 CFR 164.310(a)(1), (b), (c)",
        "Rooms with computers, models and paper prescriptions are locked when unattended; screens lock "
        "automatically; visitors are accompanied.",
    ),
    Attestable(
        "devices",
        "Devices and media encrypted, wiped before disposal",
        "45 CFR 164.310(d)(1), (d)(2)(i)-(iii)",
        "Laptops and phones that open patient data are encrypted; drives and devices are wiped or destroyed "
        "before re-use or disposal, and a list says who holds which device.",
    ),
    Attestable(
        RISK_ASSESSMENT,
        "Security risk assessment, yearly",
        "45 CFR 164.308(a)(1)(ii)(A), (B)",
        "A risk analysis of the threats to patient data was carried out (or reviewed) in the last twelve months, "
        "and the risks found have owners and a plan.",
    ),
)
ATTESTABLE_BY_KEY = {a.key: a for a in ATTESTABLE}


def checks(organization: Organization) -> list[Check]:
    now = timezone.now()
    found: list[Check] = []
    officers = officers_of(organization)
    found.append(
        Check(
            "Privacy and security officers named",
            OK if officers.privacy_officer_id and officers.security_officer_id else ATTENTION,
            "Privacy officer: "
            + (officers.privacy_officer.display_name if officers.privacy_officer else "not named")
            + "; security officer: "
            + (officers.security_officer.display_name if officers.security_officer else "not named")
            + ".",
            "45 CFR 164.308(a)(2), 164.530(a)",
            key="officers",
            checked_on=officers.named_at.date() if officers.named_at else None,
        )
    )

    members = Membership.objects.filter(organization=organization, is_active=True, user__is_active=True)
    total = members.count()
    enrolled = (
        members.filter(user__authenticator__type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN])
        .values("user")
        .distinct()
        .count()
    )
    found.append(
        Check(
            "Multi-factor authentication for everyone",
            OK if total and enrolled == total else ATTENTION,
            f"{enrolled} of {total} active members have a second factor (CaseBridge lets no one in without one).",
            "45 CFR 164.312(d); proposed 2025 rule",
            key="mfa",
            checked_on=now.date(),
        )
    )
    found.append(
        Check(
            "Encryption in transit and at rest",
            OK,
            "HTTPS only; every file encrypted at rest under its own key (envelope encryption), by construction.",
            "45 CFR 164.312(a)(2)(iv), (e)(2)(ii)",
            key="encryption",
        )
    )
    connections = connections_of(organization, active=True)
    carrying = sum(1 for c in connections if c.can_carry_phi)
    vendors = Vendor.objects.filter(organization=organization)
    unsigned = vendors.exclude(baa_status__in=[BaaStatus.SIGNED, BaaStatus.NOT_NEEDED]).count()
    found.append(
        Check(
            "Agreements with everyone who handles PHI",
            OK if carrying == connections.count() and vendors.exists() and not unsigned else ATTENTION,
            f"{carrying} of {connections.count()} connections carry patient data under a recorded agreement; "
            f"{vendors.count()} vendors listed, {unsigned} without a signed BAA"
            + ("" if vendors.exists() else " (list your vendors under Vendors)")
            + ".",
            "45 CFR 164.502(e), 164.504(e)",
            key="agreements",
            checked_on=now.date(),
        )
    )
    pending = PendingSeal.objects.count()
    verified = Event.objects.filter(action="audit.verified").order_by("-occurred_at").first()
    found.append(
        Check(
            "Tamper-evident audit log, verified",
            OK if verified and now - verified.occurred_at < timedelta(days=8) else ATTENTION,
            (f"Last verified {verified.occurred_at:%Y-%m-%d}" if verified else "Never verified")
            + f"; {pending} events waiting to be chained. Run `casebridge audit verify` (weekly at least).",
            "45 CFR 164.312(b), (c)(1)",
            key="audit_log",
            checked_on=verified.occurred_at.date() if verified else None,
        )
    )
    late = reviews.overdue_days(organization)
    found.append(
        Check(
            "Regular review of activity",
            OK if not late else ATTENTION,
            f"Next review due {reviews.next_due(organization):%Y-%m-%d}"
            + (f"; overdue by {late} days." if late else "."),
            "45 CFR 164.308(a)(1)(ii)(D)",
            key="log_review",
        )
    )
    measured = reviews.metrics(organization)
    found.append(
        Check(
            "Access ends when people leave",
            OK if measured.actions_after_removal == 0 else ATTENTION,
            f"{measured.members_removed} members removed in 12 months; {measured.actions_after_removal} actions "
            "by them afterwards.",
            "45 CFR 164.308(a)(3)(ii)(C)",
            key="offboarding",
        )
    )
    restore = BackupRun.objects.filter(kind=RunKind.RESTORE_TEST).order_by("-started_at").first()
    found.append(
        Check(
            "Backups that restore, tested",
            OK if restore and restore.ok and now - restore.started_at < timedelta(days=8) else ATTENTION,
            (
                f"Last restore test {restore.started_at:%Y-%m-%d}: {'passed' if restore.ok else 'FAILED'}"
                + (f" in {restore.rto_seconds:.0f} s" if restore.rto_seconds else "")
                if restore
                else "No restore test yet: `casebridge backup verify`."
            ),
            "45 CFR 164.308(a)(7)(ii)(A), (D)",
            key="restore_test",
            checked_on=restore.started_at.date() if restore else None,
        )
    )
    open_incidents = Incident.objects.filter(organization=organization, closed_at__isnull=True).exclude(
        decision=Decision.NOT_BREACH
    )
    found.append(
        Check(
            "Incidents assessed and notified in time",
            OK if not open_incidents.exists() else ATTENTION,
            f"{open_incidents.count()} incidents undecided or with notices to follow.",
            "45 CFR 164.308(a)(6), 164.404-410",
            key="incidents",
        )
    )
    taught = training_coverage(organization)
    found.append(
        Check(
            "Workforce training",
            UNKNOWN if not taught.required else OK if taught.done == taught.required else ATTENTION,
            (
                f"{taught.done} of {taught.required} assigned trainings complete, {taught.overdue} overdue."
                if taught.required
                else "No training module assigned yet: write one under Training."
            ),
            "45 CFR 164.308(a)(5)",
            key="training",
        )
    )
    found.extend(_inventory_and_policies(organization))
    found.append(_access_review(organization, now))
    found.append(_exercise(organization, now))
    found.extend(_gdpr(organization))
    attested = latest_attestations(organization)
    for item in ATTESTABLE:
        live = risk_assessment_evidence(organization) if item.key == RISK_ASSESSMENT else None
        found.append(live or attested_check(item, attested.get(item.key), now))
    return found


def _inventory_and_policies(organization: Organization) -> list[Check]:
    vendors = Vendor.objects.filter(organization=organization)
    listed, owned = vendors.count(), vendors.filter(owner__isnull=False).count()
    statuses = policies.statuses(organization)
    approved = [s for s in statuses if s.current is not None]
    unread = sum(s.members - s.acknowledged for s in approved)
    return [
        Check(
            "Inventory of the systems that hold or move PHI",
            OK if listed and owned == listed else ATTENTION,
            f"{listed} systems and vendors listed, {owned} with an owner"
            + ("" if listed else " (list e-mail, cloud storage, scanners, lab software, backups under Vendors)")
            + ".",
            "45 CFR 164.308(a)(1)(ii)(A), 164.310(d)(2)(iii)",
            key="inventory",
        ),
        Check(
            "Written policies approved and acknowledged",
            OK if len(approved) == len(statuses) and not unread else ATTENTION,
            f"{len(approved)} of {len(statuses)} policies approved"
            + (f"; {unread} acknowledgements of the versions in effect missing." if approved else "."),
            "45 CFR 164.316(a), 164.530(i), 164.308(a)(5)",
            key="policies",
            checked_on=max(
                (s.current.approved_at.date() for s in approved if s.current and s.current.approved_at), default=None
            ),
        ),
    ]


def _access_review(organization: Organization, now: datetime) -> Check:
    """Access reviewed on schedule, and how long the last campaign took from start to the last
    keep-or-revoke (revocations act at once)."""
    last = AccessReview.objects.filter(organization=organization, completed_at__isnull=False).first()
    due = cast(date, access_reviews.next_due(organization))
    late = last is None or due < now.date()
    if last is not None and last.completed_at is not None:
        hours = (last.completed_at - last.started_at).total_seconds() / 3600
        revoked = last.items.filter(decision="revoke").count()
        evidence = (
            f"Last review completed {last.completed_at:%Y-%m-%d}: {revoked} revoked, decided within {hours:.0f} h; "
            f"next due {due:%Y-%m-%d}."
        )
    else:
        evidence = "No access review completed yet: start one from the Members page."
    return Check(
        "Access reviewed every quarter",
        ATTENTION if late else OK,
        evidence,
        "45 CFR 164.308(a)(3)(ii)(B), (a)(4)(ii)(C)",
        key="access_review",
        checked_on=last.completed_at.date() if last and last.completed_at else None,
    )


def _exercise(organization: Organization, now: datetime) -> Check:
    """Incident response tested: a tabletop exercise (lost device, wrong recipient) recorded in the
    incident register in the last twelve months."""
    last = (
        Incident.objects.filter(organization=organization, is_exercise=True)
        .order_by("-discovered_at")
        .only("discovered_at")
        .first()
    )
    recent = last is not None and now - last.discovered_at < ATTESTATION_VALID
    return Check(
        "Incident response tested and documented",
        OK if recent else ATTENTION,
        (f"Last tabletop exercise {last.discovered_at:%Y-%m-%d}." if last else "No tabletop exercise recorded yet.")
        + ("" if recent else " Record one (lost device, wrong recipient) under Incidents as an exercise."),
        "45 CFR 164.308(a)(6), (a)(7)(ii)(D)",
        key="incident_test",
        checked_on=last.discovered_at.date() if last else None,
    )


def _gdpr(organization: Organization) -> list[Check]:
    """Only for an organization that declared it processes data under the GDPR."""
    profile = gdpr.profile_of(organization)
    if profile is None or not profile.applies:
        return []
    last = ImpactAssessment.objects.filter(organization=organization).order_by("-recorded_at").first()
    return [
        Check(
            "Record of processing activities (GDPR)",
            OK if profile.contact else ATTENTION,
            "Written from your connections and vendor inventory; contact "
            + ("named." if profile.contact else "missing: name it under GDPR records."),
            "GDPR Art. 30",
            key="gdpr_record",
            checked_on=profile.updated_at.date(),
        ),
        Check(
            "Data-protection impact assessment (GDPR)",
            OK if last else ATTENTION,
            f"Last recorded {last.recorded_at:%Y-%m-%d}."
            if last
            else "None recorded: health data processed on a large scale needs one (Art. 35(3)(b)).",
            "GDPR Art. 35",
            key="gdpr_dpia",
            checked_on=last.recorded_at.date() if last else None,
        ),
    ]


def risk_assessment_evidence(organization: Organization) -> Check | None:
    """The live evidence of the yearly risk assessment (compliance/risk.py), or None when none was
    ever started in CaseBridge: an organization that assessed its risks elsewhere (HHS's SRA tool,
    a consultant) then attests it instead."""
    from casebridge.compliance import risk  # risk pre-fills its answers from checks(): import late

    item = ATTESTABLE_BY_KEY[RISK_ASSESSMENT]
    last, running = risk.last_completed(organization), risk.current(organization)
    if last is None and running is None:
        return None
    if last is None or last.completed_at is None:
        state, checked_on = ATTENTION, None
        evidence = "The first assessment is in progress: complete it to meet the rule."
    else:
        checked_on = timezone.localdate(last.completed_at)
        late = risk.overdue_days(organization)
        state = ATTENTION if late else OK
        evidence = f"Completed {checked_on:%Y-%m-%d}; " + (
            f"the yearly review is {late} day{'s' if late != 1 else ''} overdue."
            if late
            else f"next due {risk.next_due(organization):%Y-%m-%d}."
        )
        if running is not None:
            evidence += " The next one is in progress."
    return Check(item.title, state, evidence, item.citation, key=RISK_ASSESSMENT, checked_on=checked_on)


def latest_attestations(organization: Organization) -> dict[str, Attestation]:
    found: dict[str, Attestation] = {}
    for attestation in Attestation.objects.filter(organization=organization).select_related("attested_by"):
        found.setdefault(attestation.item, attestation)  # newest first
    return found


def attested_check(item: Attestable, attestation: Attestation | None, now: datetime) -> Check:
    if attestation is None:
        state, evidence = UNKNOWN, "Not attested yet: CaseBridge cannot see this; a person confirms it."
    else:
        who = attestation.attested_by.display_name if attestation.attested_by else "a former member"
        expires = attestation.attested_at + ATTESTATION_VALID
        state = OK if now < expires else ATTENTION
        evidence = f"Attested {attestation.attested_at:%Y-%m-%d} by {who}" + (
            f", valid until {expires:%Y-%m-%d}." if state == OK else f"; expired {expires:%Y-%m-%d}: attest again."
        )
    return Check(
        item.title,
        state,
        evidence,
        item.citation,
        key=item.key,
        attestable=True,
        attestation=attestation,
        checked_on=attestation.attested_at.date() if attestation else None,
    )


def attest(access: OrgAccess, key: str, note: str) -> Attestation:
    """A compliance manager attests an item CaseBridge cannot check, with a note; audited (the
    item's key only: the note stays in the record, out of the audit details)."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if key not in ATTESTABLE_BY_KEY or (key == RISK_ASSESSMENT and risk_assessment_evidence(access.organization)):
        raise ValidationError({"item": "This item is not checked by attestation."})
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say what you checked and where the evidence is."})
    if len(note) > MAX_NOTE:
        raise ValidationError({"note": f"Keep the note under {MAX_NOTE} characters."})
    attestation = Attestation.objects.create(
        organization=access.organization,
        item=key,
        note=note,
        attested_by=access.actor if isinstance(access.actor, User) else None,
    )
    record(
        "compliance.attestation.recorded",
        actor=access.actor,
        organization=access.organization,
        details={"item": key},
    )
    return attestation


def officers_of(organization: Organization) -> Officers:
    officers, _ = Officers.objects.get_or_create(organization=organization)
    return officers


def name_officers(access: OrgAccess, *, privacy: User | None, security: User | None) -> Officers:
    """Name the officers: active members of the organization only; audited."""
    access.require(Perm.COMPLIANCE_MANAGE)
    allowed = set(
        Membership.objects.filter(organization=access.organization, is_active=True, user__is_active=True).values_list(
            "user_id", flat=True
        )
    )
    errors = {
        field: "Choose an active member of the organization."
        for field, person in (("privacy", privacy), ("security", security))
        if person is not None and person.pk not in allowed
    }
    if errors:
        raise ValidationError(errors)
    officers = officers_of(access.organization)
    officers.privacy_officer, officers.security_officer, officers.named_at = privacy, security, timezone.now()
    officers.save()
    record(
        "compliance.officers.named",
        actor=access.actor,
        organization=access.organization,
        details={
            "privacy": str(privacy.pk) if privacy else None,
            "security": str(security.pk) if security else None,
        },
    )
    return officers


STATE_WORDS = {OK: "in place", ATTENTION: "attention", UNKNOWN: "not known"}


def report_pdf(access: OrgAccess) -> bytes:
    """The checklist on one page for an auditor: each item, its state, the evidence and its date,
    whether CaseBridge checked it or a person attested it. Audited."""
    access.require(Perm.COMPLIANCE_MANAGE)
    found = checks(access.organization)
    now = timezone.now()
    doc = document("Compliance checklist")
    doc.set_auto_page_break(True, margin=10)
    doc.set_font("Helvetica", "B", 13)
    doc.cell(0, 7, latin(f"Compliance checklist - {access.organization.name}"), new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 8)
    attention = sum(1 for c in found if c.state != OK)
    doc.multi_cell(
        0,
        4,
        latin(
            f"Printed {now:%Y-%m-%d %H:%M} UTC from CaseBridge. {len(found) - attention} of {len(found)} items in "
            "place. 'Live' items are read from the system's own records; 'attested' items were confirmed by the "
            "named person on the date shown and lapse after a year."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    doc.ln(2)
    widths = (58, 18, 14, 18)
    for c in found:
        doc.set_font("Helvetica", "B", 8)
        y = doc.get_y()
        doc.multi_cell(widths[0], 3.6, latin(c.title), new_x="RIGHT", new_y="TOP")
        doc.set_font("Helvetica", "", 8)
        doc.cell(widths[1], 3.6, STATE_WORDS[c.state])
        doc.cell(widths[2], 3.6, "attested" if c.attestable else "live")
        doc.cell(widths[3], 3.6, f"{c.checked_on:%Y-%m-%d}" if c.checked_on else "-")
        doc.multi_cell(0, 3.6, latin(f"{c.evidence} ({c.citation})"), new_x="LMARGIN", new_y="NEXT")
        doc.set_y(max(doc.get_y(), y + 7.2) + 0.8)
    record(
        "compliance.attestation.report_printed",
        actor=access.actor,
        organization=access.organization,
        details={"items": len(found), "attention": attention},
    )
    return bytes(doc.output())
