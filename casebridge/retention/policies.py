"""Retention: how long each organization keeps each type of record, the legal floors no policy
may go below, legal holds that stop every deletion, and the enforcement run that crypto-shreds
what is due and signs a destruction certificate.

Rules, in the order they are applied to a record:

1. Nothing is destroyed without a policy: the default is to keep for ever.
2. A legal hold on the organization, the patient or the case stops everything it covers.
3. An owner's postponement stops the organization's whole run until its date.
4. A policy cannot be set below its floor: six years for audit events and compliance records
   (45 CFR 164.316(b)(2)); for the files of closed cases, the chosen state's dental-record rule
   (retention/data/us_state_dental_records.json, each entry with its source; for a state not
   listed, the rule the organization declared: DeclaredStateRule), counted from the
   case's closing as the last treatment the portal knows of; with a minors' rule, a patient under
   18 at closing is kept until the age the rule says, and a patient without a date of birth is
   kept (the rule cannot be checked) and shown as such in the preview.
5. Due files are crypto-shredded through the vault (its own audit event per file), and the run's
   certificate lists each one with its content hash, signed with the installation's key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from casebridge.retention import backup_window, compliance_records
from casebridge.retention.models import (
    DeclaredStateRule,
    DestructionCertificate,
    LegalHold,
    Postponement,
    RecordType,
    RetentionPolicy,
)


class UnderLegalHold(ValidationError):
    """A deletion refused because a legal hold covers the record."""


SIX_YEARS_DAYS = 6 * 365 + 2  # 45 CFR 164.316(b)(2): six years, counting the leap days
UPLOAD_FLOOR_DAYS = 7  # an upload not yet attached is given at least a week
# An external link's own record (codes, address, files) goes no sooner than a month after it
# ended; the accounting of disclosures keeps what it needs for its six years on its own row.
LINK_FLOOR_DAYS = 30
SIX_YEAR_TYPES = (RecordType.AUDIT_EVENTS, RecordType.COMPLIANCE_RECORDS)
ENFORCED_TYPES = (  # per organization; audit events go installation-wide (enforce_audit)
    RecordType.CASE_FILES,
    RecordType.MESSAGES,
    RecordType.EXTERNAL_LINKS,
    RecordType.UNATTACHED_UPLOADS,
    RecordType.COMPLIANCE_RECORDS,
)
ERASED_BY_POLICY = "[erased under the retention policy]"


# USPS codes of the states and the District of Columbia: a state the shipped table does not list
# can have its rule declared by the organization (DeclaredStateRule).
US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts",
    "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico",
    "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip
DECLARED = "declared"  # RetentionPolicy.preset: the organization's declared rule


@cache
def state_rules() -> dict[str, dict[str, Any]]:
    data = json.loads((Path(__file__).parent / "data" / "us_state_dental_records.json").read_text())
    return {code: rule for code, rule in data.items() if not code.startswith("_")}


def unlisted_states() -> dict[str, str]:
    """The states (USPS code: name) whose rule the shipped table does not hold."""
    return {code: name for code, name in US_STATES.items() if f"US-{code}" not in state_rules()}


def rule_for(preset: str, organization: Any = None) -> dict[str, Any] | None:
    """The dental-record rule a case-file policy's preset names, in the table's shape: a listed
    state's, or the organization's declared one (its source says so); None if there is none."""
    if preset != DECLARED:
        return state_rules().get(preset)
    return declared_rule(DeclaredStateRule.objects.filter(organization=organization).first() if organization else None)


def declared_rule(declared: DeclaredStateRule | None) -> dict[str, Any] | None:
    """An organization's declared rule in the table's shape (None: none, or its state is listed now)."""
    if declared is None or f"US-{declared.state}" in state_rules():
        return None  # a state since added to the table: its checked rule applies, not the declaration
    return {
        "state": US_STATES[declared.state],
        "years_after_last_treatment": declared.years_after_last_treatment,
        "minor_until_age": declared.minor_until_age,
        "source": f"{declared.source} (as declared by the organization on {declared.declared_at:%Y-%m-%d})",
        "url": declared.url,
    }


def floor_days(record_type: str, preset: str = "", organization: Any = None) -> int:
    """The shortest retention a policy of this type may have (before the minors' rule)."""
    if record_type in SIX_YEAR_TYPES:
        return SIX_YEARS_DAYS
    if record_type == RecordType.UNATTACHED_UPLOADS:
        return UPLOAD_FLOOR_DAYS
    if record_type == RecordType.EXTERNAL_LINKS:
        return LINK_FLOOR_DAYS
    if record_type == RecordType.MESSAGES:
        preset = _case_files_preset(organization)  # a case's messages are part of its record
    rule = rule_for(preset, organization)
    return int(rule["years_after_last_treatment"]) * 365 + 2 if rule else 0


def _case_files_preset(organization: Any) -> str:
    if organization is None:
        return ""
    policy = RetentionPolicy.objects.filter(organization=organization, record_type=RecordType.CASE_FILES).first()
    return policy.preset if policy is not None else ""


def set_policy(access: Any, record_type: str, keep_days: int | None, preset: str = "") -> RetentionPolicy:
    """Save one policy after checking its floor; raises ValidationError with the reason."""
    from casebridge.audit.api import record

    if record_type not in RecordType.values:
        raise ValidationError("Choose a type of record.")
    rule = rule_for(preset, access.organization) if preset else None
    if preset and rule is None:
        raise ValidationError(
            "Declare your state's rule first." if preset == DECLARED else "Choose a state from the list."
        )
    if record_type == RecordType.CASE_FILES and keep_days is not None and not preset:
        raise ValidationError(
            "Choose the state whose dental-record rule applies before setting a retention for case files."
        )
    if record_type == RecordType.MESSAGES:
        rule = rule_for(_case_files_preset(access.organization), access.organization)
        if keep_days is not None and rule is None:
            raise ValidationError(
                "Choose the state for the files of closed cases first: a case's messages keep to the same rule."
            )
    floor = floor_days(record_type, preset, access.organization)
    if keep_days is not None and keep_days < floor:
        under = rule is not None and record_type in (RecordType.CASE_FILES, RecordType.MESSAGES)
        raise ValidationError(
            f"{RecordType(record_type).label} must be kept at least {floor} days ({floor / 365:.1f} years)"
            + (f" under {rule['source']}" if under and rule is not None else "")
            + "."
        )
    policy, _ = RetentionPolicy.objects.update_or_create(
        organization=access.organization,
        record_type=record_type,
        defaults={"keep_days": keep_days, "preset": preset, "set_by": _user(access)},
    )
    record(
        "retention.policy_set",
        actor=access.actor,
        organization=access.organization,
        target=policy,
        details={"record_type": record_type, "keep_days": keep_days, "preset": preset},
    )
    return policy


def declare_state_rule(
    access: Any,
    *,
    state: str,
    years: int,
    minor_until_age: int | None,
    source: str,
    url: str = "",
) -> DeclaredStateRule:
    """Record the dental-record rule of a state the table does not list, as the organization
    confirmed it; it becomes the floor of a case-file policy whose preset is DECLARED. Only an
    owner or administrator declares (the caller checks ORG_SETTINGS); audited with every number.
    Raises ValidationError (nothing saved) for a listed state or numbers outside any state's."""
    from casebridge.audit.api import record

    state = state.strip().upper()
    source = " ".join(source.split())
    if f"US-{state}" in state_rules():
        raise ValidationError(f"{US_STATES[state]}'s rule is in the list: choose it there.")
    if state not in US_STATES:
        raise ValidationError("Choose the state.")
    if not 1 <= years <= 30:
        raise ValidationError("Enter the years after the last treatment the rule requires, from 1 to 30.")
    if minor_until_age is not None and not 18 <= minor_until_age <= 30:
        raise ValidationError("Enter the age until which a minor's records are kept, from 18 to 30, or leave it empty.")
    if len(source) < 5 or len(source) > 200:
        raise ValidationError("Name the rule (its citation, e.g. the code section), in 5 to 200 characters.")
    if url and (not url.startswith(("https://", "http://")) or len(url) > 500):
        raise ValidationError("Enter the rule's address as a web address (up to 500 characters), or leave it empty.")
    rule = {
        "state": state,
        "years_after_last_treatment": years,
        "minor_until_age": minor_until_age,
        "source": source,
        "url": url,
    }
    declared, _ = DeclaredStateRule.objects.update_or_create(
        organization=access.organization,
        defaults=rule | {"declared_by": _user(access), "declared_at": timezone.now()},
    )
    record(
        "retention.state_rule_declared",
        actor=access.actor,
        organization=access.organization,
        target=declared,
        details=rule,
    )
    return declared


def _user(access: Any) -> Any:
    from casebridge.accounts.models import User

    return access.actor if isinstance(access.actor, User) else None


# --- legal holds ----------------------------------------------------------------------------
def active_holds(organization: Any) -> list[LegalHold]:
    return list(LegalHold.objects.filter(organization=organization, lifted_at__isnull=True))


def place_hold(access: Any, *, reason: str, case: Any = None, patient: Any = None) -> LegalHold:
    from casebridge.audit.api import record

    if len(reason.strip()) < 5:
        raise ValidationError("Give the reason for the hold (a matter, a request) in a few words.")
    hold = LegalHold.objects.create(
        organization=access.organization, case=case, patient=patient, reason=reason.strip(), placed_by=_user(access)
    )
    record(
        "retention.hold_placed",
        actor=access.actor,
        organization=access.organization,
        target=hold,
        patient_ref=str(patient.pk) if patient is not None else (str(case.patient_id) if case is not None else ""),
        details={"scope": hold.scope, "case": case.number if case is not None else ""},
    )
    return hold


def lift_hold(access: Any, hold: LegalHold, *, reason: str) -> None:
    from casebridge.audit.api import record

    if len(reason.strip()) < 5:
        raise ValidationError("Say why the hold ends in a few words.")
    if hold.lifted_at is not None:
        raise ValidationError("This hold was already lifted.")
    hold.lifted_at, hold.lifted_by, hold.lift_reason = timezone.now(), _user(access), reason.strip()
    hold.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    record(
        "retention.hold_lifted",
        actor=access.actor,
        organization=access.organization,
        target=hold,
        details={"scope": hold.scope},
    )


def case_is_held(case: Any) -> bool:
    """Whether any active hold covers this case (its practice, its patient or itself)."""
    return LegalHold.objects.filter(
        Q(case=case) | Q(patient_id=case.patient_id) | Q(case__isnull=True, patient__isnull=True),
        organization_id=case.practice_id,
        lifted_at__isnull=True,
    ).exists()


def organization_is_held(organization_id: Any) -> bool:
    return LegalHold.objects.filter(
        organization_id=organization_id, case__isnull=True, patient__isnull=True, lifted_at__isnull=True
    ).exists()


def postponed_until(organization: Any, today: date) -> Postponement | None:
    return Postponement.objects.filter(organization=organization, until__gte=today).order_by("-until").first()


# --- what is due ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Due:
    kind: str  # "case_file", "upload", "message", "link" or "compliance_record"
    stored: Any  # the vault object of a file or an upload; None for the others
    case: Any  # None for uploads
    policy: RetentionPolicy
    since: datetime  # when the retention clock started (closing, upload, the link's end)
    record: Any = None  # the Message, ExternalLink or compliance_records.Ended


@dataclass(frozen=True)
class Kept:
    """A record whose policy period is over but that the rules keep, and why (for the preview)."""

    case_number: str
    why: str


def case_file_objects(case: Any) -> Any:
    """Every live vault object of a case's record: its attachments, the DICOM instances indexed
    from them (each stored on its own, carrying the patient's data in its header) and their
    series' metadata documents."""
    from casebridge.vault.models import StoredObject

    return StoredObject.objects.filter(
        Q(attachment__case=case)
        | Q(dicom_instance__series__study__case=case)
        | Q(metadata_of_series__study__case=case),
        destroyed_at__isnull=True,
    ).distinct()


def _closed_at(case: Any) -> datetime:
    return case.completed_at or case.lab_access_revoked_at or case.created_at


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _rule_named(preset: str, organization: Any) -> dict[str, Any]:
    """The rule a certificate names for its case-file policy: enough to find and check it."""
    rule = rule_for(preset, organization) or {}
    keys = ("state", "years_after_last_treatment", "minor_until_age", "source", "url")
    return {key: rule[key] for key in keys if key in rule}


def _kept_for_minor(case: Any, rule: dict[str, Any], now: datetime) -> str:
    """Why the state's minors' rule keeps this case now ("" when it does not)."""
    until_age = rule.get("minor_until_age")
    if not until_age:
        return ""
    born = case.patient.date_of_birth
    if born is None:
        return "the patient's date of birth is unknown: the minors' rule cannot be checked"
    if _age_on(born, _closed_at(case).date()) >= 18:
        return ""
    if _age_on(born, now.date()) < until_age:
        return f"a minor when treated: kept until age {until_age} ({rule['source']})"
    return ""


def due(organization: Any, now: datetime | None = None) -> tuple[list[Due], list[Kept]]:
    """What the next run would destroy for this organization, and what it keeps despite its
    policy period being over (with the reason)."""
    from casebridge.cases.models import Case, Status
    from casebridge.compliance.subject_requests import ERASED as ERASED_AT_REQUEST
    from casebridge.vault.models import StoredObject

    now = now or timezone.now()
    policies = {p.record_type: p for p in RetentionPolicy.objects.filter(organization=organization)}
    if postponed_until(organization, now.date()) is not None or organization_is_held(organization.pk):
        return [], []
    items: list[Due] = []
    kept: list[Kept] = []
    holds = active_holds(organization)
    held_cases = {h.case_id for h in holds if h.case_id}
    held_patients = {h.patient_id for h in holds if h.patient_id}
    policy = policies.get(RecordType.CASE_FILES)
    rule = rule_for(policy.preset, organization) if policy is not None else None
    # A policy whose rule is gone (a declaration for a state since added to the table) keeps
    # everything until it is saved again under the rule that now applies; messages keep to it too.
    case_floor = floor_days(RecordType.CASE_FILES, policy.preset, organization) if policy is not None else 0
    keeps = {
        typed: timedelta(days=max(typed.keep_days, case_floor))
        for typed in (policies.get(RecordType.CASE_FILES), policies.get(RecordType.MESSAGES))
        if typed is not None and typed.keep_days is not None
    }
    if keeps and rule is not None:
        closed = Case.objects.filter(practice=organization, status__in=[Status.COMPLETED, Status.CANCELLED])
        for case in closed.select_related("patient"):
            over = [typed for typed, keep in keeps.items() if _closed_at(case) + keep <= now]
            if not over:
                continue
            if case.pk in held_cases or case.patient_id in held_patients:
                kept.append(Kept(case.number, "under legal hold"))
                continue
            minor = _kept_for_minor(case, rule, now)
            if minor:
                kept.append(Kept(case.number, minor))
                continue
            for typed in over:  # one pass over the closed cases for the files and the messages
                if typed.record_type == RecordType.CASE_FILES:
                    items.extend(Due("case_file", s, case, typed, _closed_at(case)) for s in case_file_objects(case))
                else:
                    messages = case.messages.exclude(body__in=[ERASED_BY_POLICY, ERASED_AT_REQUEST])
                    items.extend(Due("message", None, case, typed, _closed_at(case), record=m) for m in messages)
    policy = policies.get(RecordType.EXTERNAL_LINKS)
    if policy is not None and policy.keep_days is not None:
        for link in _ended_links(organization, now - timedelta(days=max(policy.keep_days, LINK_FLOOR_DAYS))):
            if link.case_id in held_cases or link.case.patient_id in held_patients:
                kept.append(Kept(link.case.number, "under legal hold"))
                continue
            items.append(Due("link", None, link.case, policy, _link_ended(link), record=link))
    policy = policies.get(RecordType.COMPLIANCE_RECORDS)
    if policy is not None and policy.keep_days is not None:
        cutoff = now - timedelta(days=max(policy.keep_days, SIX_YEARS_DAYS))
        for record in compliance_records.ended(organization, cutoff):
            if record.patient_id is not None and record.patient_id in held_patients:
                kept.append(Kept(f"a patient's request ({str(record.record.pk)[:8]})", "under legal hold"))
                continue
            items.append(Due("compliance_record", None, None, policy, record.since, record=record))
    policy = policies.get(RecordType.UNATTACHED_UPLOADS)
    if policy is not None and policy.keep_days is not None:
        cutoff = now - timedelta(days=max(policy.keep_days, UPLOAD_FLOOR_DAYS))
        uploads = StoredObject.objects.filter(
            organization=organization, attached_at__isnull=True, destroyed_at__isnull=True, created_at__lte=cutoff
        )
        items.extend(Due("upload", stored, None, policy, stored.created_at) for stored in uploads)
    return items, list(dict.fromkeys(kept))


def _ended_links(organization: Any, cutoff: datetime) -> Any:
    """The organization's external links that ended (expired, revoked or locked) by `cutoff`."""
    from casebridge.sharing.models import ExternalLink

    return (
        ExternalLink.objects.filter(case__practice=organization)
        .filter(Q(expires_at__lte=cutoff) | Q(revoked_at__lte=cutoff) | Q(locked_at__lte=cutoff))
        .select_related("case")
        .order_by("expires_at", "pk")
    )


def _link_ended(link: Any) -> datetime:
    return min(t for t in (link.expires_at, link.revoked_at, link.locked_at) if t is not None)


# --- the run --------------------------------------------------------------------------------
def enforce(organization: Any, now: datetime | None = None) -> DestructionCertificate | None:
    """Destroy what is due for this organization and sign a certificate of it (None: nothing due)."""
    from casebridge.audit.api import record

    now = now or timezone.now()
    items, _kept = due(organization, now)
    if not items:
        return None
    destroyed = []
    for item in items:
        reason = f"retention policy: {RecordType(item.policy.record_type).label.lower()}, {item.policy.keep_days} days"
        since = item.since.isoformat()
        if item.kind == "message":
            destroyed.append(_erase_message(item.record, case=item.case, since=since))
        elif item.kind == "compliance_record":
            destroyed.append(compliance_records.destroy(item.record, organization, reason=reason))
        elif item.kind == "link":
            destroyed.append(_remove_link(item.record, case=item.case, since=since))
        else:
            destroyed.append(
                _shred(item.stored, organization, reason=reason, kind=item.kind, case=item.case, since=since)
            )
    policies = {
        p.record_type: {"keep_days": p.keep_days, "preset": p.preset}
        | ({"rule": _rule_named(p.preset, organization)} if p.preset else {})
        for p in RetentionPolicy.objects.filter(organization=organization)
    }
    certificate = _certify(
        organization,
        {"run_at": now.isoformat(), "actor": "system (retention enforcement)", "policies": policies},
        destroyed,
    )
    record(
        "retention.destroyed",
        actor=None,
        organization=organization,
        target=certificate,
        details=destroyed_counts(destroyed) | {"certificate": str(certificate.pk)},
    )
    return certificate


def destroyed_counts(destroyed: list[dict[str, Any]]) -> dict[str, int]:
    """How many of each kind a certificate's lines destroyed (audit events: inside the segments)."""
    return {
        "files": sum(1 for d in destroyed if d["kind"] in ("case_file", "upload")),
        "messages": sum(1 for d in destroyed if d["kind"] == "message"),
        "links": sum(1 for d in destroyed if d["kind"] == "link"),
        "compliance_records": sum(1 for d in destroyed if d["kind"] == "compliance_record"),
        "audit_events": sum(d.get("events", 0) for d in destroyed if d["kind"] == "audit_segment"),
    }


def _erase_message(message: Any, *, case: Any, since: str) -> dict[str, Any]:
    """Overwrite one message's text (the row stays, so the thread and its read marks keep their
    places); the certificate's line for it, with the SHA-256 of the text that was erased."""
    from casebridge.cases.models import Message

    body = message.body.encode()
    Message.objects.filter(pk=message.pk).update(body=ERASED_BY_POLICY)
    return {
        "kind": "message",
        "record": str(message.pk),
        "case": case.number,
        "retained_since": since,
        "versions": [{"version": 1, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}],
    }


def _remove_link(link: Any, *, case: Any, since: str) -> dict[str, Any]:
    """Delete an ended external link with its codes and its list of files. Its accounting of
    disclosures stays (six years, 164.528), keeping from the link what it shows: which copies
    and how many downloads."""
    from casebridge.sharing.models import Disclosure

    with transaction.atomic():
        Disclosure.objects.filter(link=link).update(
            link=None,
            copies="de-identified" if link.deidentify else "originals",
            downloads=f"{link.downloads_used} of {link.max_downloads}",
        )
        codes = link.codes.count()
        link_id = str(link.pk)
        link.delete()
    return {
        "kind": "link",
        "record": link_id,
        "case": case.number,
        "retained_since": since,
        "codes": codes,
        "versions": [],
    }


def _shred(stored: Any, organization: Any, *, reason: str, kind: str, case: Any, since: str) -> dict[str, Any]:
    """Crypto-shred one vault object (the vault records its own audit event) and its thumbnails;
    the certificate's line for it. Every destruction of a record's files comes through here."""
    from casebridge.imaging import studies
    from casebridge.vault import api as vault

    versions = [{"version": v.version, "sha256": v.sha256, "size": v.size} for v in stored.versions.order_by("version")]
    held = vault.destroy_object(
        stored,
        actor=None,
        reason=reason,
        record_in=organization.pk,
        patient_ref=str(case.patient_id) if case is not None else "",
        details={"case": case.number} if case is not None else {},
    )
    # held: instances stored inside it, each also due on its own
    studies.forget_destroyed([stored, *held], reason=reason)
    return {
        "kind": kind,
        "file": str(stored.pk),
        "case": case.number if case is not None else "",
        "retained_since": since,
        "versions": versions,
    }


def _certify(organization: Any, header: dict[str, Any], destroyed: list[dict[str, Any]]) -> DestructionCertificate:
    """The signed certificate of a destruction (Ed25519, keyring key), with until when copies may
    remain in backup sets (retention/backup_window.py)."""
    from casebridge.vault.keyring import get_keyring

    run_at = datetime.fromisoformat(header["run_at"])
    body = json.dumps(
        {
            "certificate": "casebridge-destruction/1",
            "organization": str(organization.pk),
            "method": "crypto-shredding: wrapped keys erased, then ciphertext deleted",
            **header,
            "destroyed": destroyed,
            "backups": backup_window.current().as_dict(run_at),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    key = get_keyring().signing_key()
    return DestructionCertificate.objects.create(
        organization=organization,
        body=body,
        key_id=key.key_id,
        signature=key.private.sign(body.encode()).hex(),
        items=len(destroyed),
    )


# --- erasure at the patient's request (GDPR Art. 17) -----------------------------------------
def erasure_refusals(patient: Any, now: datetime | None = None) -> list[str]:
    """Why the patient's records cannot be erased now, in plain words (empty: they can). The same
    rules as the enforcement run, applied to one patient: a legal hold keeps everything; an open
    case is still in treatment; a closed case is kept for the floor of the state's dental-record
    rule (and its minors' rule), which GDPR Art. 17(3)(b) and (e) let stand over an erasure."""
    from casebridge.cases.models import Status

    now = now or timezone.now()
    organization = patient.practice
    reasons: list[str] = []
    if organization_is_held(organization.pk):
        reasons.append("A legal hold covers all of the organization's records.")
    if LegalHold.objects.filter(patient=patient, lifted_at__isnull=True).exists():
        reasons.append("A legal hold covers this patient's records.")
    policy = RetentionPolicy.objects.filter(organization=organization, record_type=RecordType.CASE_FILES).first()
    for case in patient.cases.select_related("patient").order_by("created_at"):
        if LegalHold.objects.filter(case=case, lifted_at__isnull=True).exists():
            reasons.append(f"Case {case.number} is under a legal hold.")
            continue
        if case.status not in (Status.COMPLETED, Status.CANCELLED):
            reasons.append(f"Case {case.number} is still open: finish or cancel it first.")
            continue
        rule = rule_for(policy.preset, organization) if policy is not None and policy.preset else None
        if policy is None or rule is None:
            reasons.append(
                f"Case {case.number}: choose the state whose dental-record rule applies (Retention page) so the "
                "legal minimum can be checked; until then the records are kept."
            )
            continue
        floor = timedelta(days=floor_days(RecordType.CASE_FILES, policy.preset, organization))
        kept_until = _closed_at(case) + floor
        if kept_until > now:
            reasons.append(
                f"Case {case.number} must be kept until {kept_until.date().isoformat()} under {rule['source']}."
            )
            continue
        minor = _kept_for_minor(case, rule, now)
        if minor:
            reasons.append(f"Case {case.number}: {minor}.")
    return list(dict.fromkeys(reasons))


def erase_patient(patient: Any, *, reason: str, actor_label: str) -> DestructionCertificate:
    """Crypto-shred every file of the patient's cases after erasure_refusals found nothing, and
    sign a certificate of it; raises UnderLegalHold or ValidationError (nothing destroyed)."""
    refusals = erasure_refusals(patient)
    if refusals:
        raise (UnderLegalHold if any("legal hold" in r for r in refusals) else ValidationError)(refusals)
    organization = patient.practice
    destroyed = [
        _shred(stored, organization, reason=reason, kind="case_file", case=case, since=_closed_at(case).isoformat())
        for case in patient.cases.order_by("created_at")
        for stored in case_file_objects(case)
    ]
    return _certify(
        organization,
        {"run_at": timezone.now().isoformat(), "actor": actor_label, "reason": reason},
        destroyed,
    )


def verify_certificate(certificate: DestructionCertificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    from casebridge.vault.keyring import get_keyring

    key = get_keyring().verification_keys().get(certificate.key_id)
    if key is None:
        return False
    try:
        key.verify(bytes.fromhex(certificate.signature), certificate.body.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def enforce_all(now: datetime | None = None) -> int:
    """Every organization with an enforced policy, then the audit archive's oldest segments that
    every organization's policy lets go; the number of records destroyed."""
    from casebridge.orgs.models import Organization

    ids = RetentionPolicy.objects.filter(record_type__in=ENFORCED_TYPES, keep_days__isnull=False).values("organization")
    total = 0
    for organization in Organization.objects.filter(pk__in=ids):
        certificate = enforce(organization, now)
        total += certificate.items if certificate is not None else 0
    audit = enforce_audit(now)  # one certificate per organization, each listing the same segments
    return total + (audit[0].items if audit else 0)


# --- audit events ----------------------------------------------------------------------------
def audit_segments_due(now: datetime | None = None) -> tuple[list[Any], str]:
    """The audit archive's oldest live segments whose every event is older than every
    organization's audit-event policy (and the six-year floor), oldest first, or [] and why not.
    The audit log is one chain for the whole installation, its organizations' events interleaved:
    a segment goes only when all of them let it go, and never while any legal hold or
    postponement is in force anywhere (a hold's patient may be named inside)."""
    from casebridge.audit.models import ArchiveSegment
    from casebridge.orgs.models import Organization

    now = now or timezone.now()
    organizations = list(Organization.objects.values_list("pk", flat=True))
    keeps: dict[Any, int] = {
        organization: days
        for organization, days in RetentionPolicy.objects.filter(
            record_type=RecordType.AUDIT_EVENTS, keep_days__isnull=False
        ).values_list("organization_id", "keep_days")
        if days is not None
    }
    if not organizations or any(pk not in keeps for pk in organizations):
        return [], "an organization keeps its audit events for ever (the default)"
    if LegalHold.objects.filter(lifted_at__isnull=True).exists():
        return [], "a legal hold is in force"
    if Postponement.objects.filter(until__gte=now.date()).exists():
        return [], "an organization has postponed destruction"
    keep = timedelta(days=max(SIX_YEARS_DAYS, *(keeps[pk] for pk in organizations)))
    due: list[Any] = []
    for segment in ArchiveSegment.objects.filter(destroyed_at__isnull=True).order_by("first_seq"):
        if segment.last_at + keep > now:
            break  # the chain is destroyed from its start only
        due.append(segment)
    return due, "" if due else "no archive segment is old enough"


def enforce_audit(now: datetime | None = None) -> list[DestructionCertificate]:
    """Crypto-shred the audit archive segments that are due (audit/archive.destroy), and sign a
    certificate of it for every organization (each one's policy let them go)."""
    from casebridge.audit import archive
    from casebridge.audit.api import record
    from casebridge.orgs.models import Organization

    now = now or timezone.now()
    segments, _why = audit_segments_due(now)
    if not segments:
        return []
    destroyed = []
    for segment in segments:
        archive.destroy(segment, now=now)
        record(
            "audit.segment_destroyed",
            actor=None,
            details={
                "first_seq": segment.first_seq,
                "last_seq": segment.last_seq,
                "events": segment.events,
                "content_sha256": segment.content_sha256,
            },
        )
        destroyed.append(
            {
                "kind": "audit_segment",
                "record": str(segment.pk),
                "case": "",
                "retained_since": segment.last_at.isoformat(),
                "range": f"#{segment.first_seq}-#{segment.last_seq}",
                "events": segment.events,
                "versions": [{"version": 1, "sha256": segment.content_sha256, "size": segment.size}],
            }
        )
    certificates = []
    for organization in Organization.objects.order_by("pk"):
        keep = RetentionPolicy.objects.get(organization=organization, record_type=RecordType.AUDIT_EVENTS).keep_days
        header = {
            "run_at": now.isoformat(),
            "actor": "system (retention enforcement)",
            "policies": {RecordType.AUDIT_EVENTS.value: {"keep_days": keep, "preset": ""}},
        }
        certificate = _certify(organization, header, destroyed)
        record(
            "retention.destroyed",
            actor=None,
            organization=organization,
            target=certificate,
            details=destroyed_counts(destroyed) | {"certificate": str(certificate.pk)},
        )
        certificates.append(certificate)
    return certificates


def postpone(access: Any, *, until: date, reason: str) -> Postponement:
    """An owner stops the organization's enforcement until `until` (at most a year ahead)."""
    from casebridge.audit.api import record

    today = timezone.now().date()
    if until <= today or until > today + timedelta(days=366):
        raise ValidationError("Choose a date after today and within a year.")
    if len(reason.strip()) < 5:
        raise ValidationError("Say why the destruction waits, in a few words.")
    postponement = Postponement.objects.create(
        organization=access.organization, until=until, reason=reason.strip(), decided_by=_user(access)
    )
    record(
        "retention.postponed",
        actor=access.actor,
        organization=access.organization,
        target=postponement,
        details={"until": until.isoformat()},
    )
    return postponement


ENFORCE_EVERY = timedelta(hours=6)
_RUN_LOCK_KEY = 0x43425245  # "CBRE": the advisory lock that lets one worker claim a run


def run_if_due() -> None:
    """The worker's tick: an enforcement run when the last one is older than ENFORCE_EVERY."""
    from casebridge.retention.models import EnforcementRun

    now = timezone.now()
    with transaction.atomic():  # one worker claims the run: the others see it and return
        if connection.vendor == "postgresql":  # SQLite's IMMEDIATE transaction already serialises
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_RUN_LOCK_KEY])
        last = EnforcementRun.objects.order_by("-started_at").first()
        if last is not None and now - last.started_at < ENFORCE_EVERY:
            return
        run = EnforcementRun.objects.create(started_at=now)
    run.destroyed = enforce_all(now)
    run.finished_at = timezone.now()
    run.save(update_fields=["destroyed", "finished_at"])
