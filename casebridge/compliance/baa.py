"""The BAA generator (issue 16, item 3): a business associate agreement between the two sides of
a connection, filled from both organizations' data, made of every provision 45 CFR 164.504(e)
requires, each with its citation. Compliance managers edit the sections; the checker refuses to
finalize a document that lacks any required provision (empty, a [[placeholder]] left, or text that
no longer says what the provision must say). Once final, each side signs in the app after
confirming its identity (the views' reauthentication); when both have signed, the signed PDF is
stored in the vault and the connection's agreement becomes a signed BAA (orgs.actions, the same
path as recording one by hand, so the BAA gate on the data plane follows it). An agreement with
one of the organization's vendors is generated the same way; the vendor signs outside CaseBridge,
so the organization's signature keeps the PDF on the vendor, whose BAA stays requested until the
countersigned copy is uploaded (compliance/vendors.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance import documents
from casebridge.compliance.models import BaaDocument, BaaSignature, BaaStatus, Vendor
from casebridge.core.pdf import document, latin
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Connection, ConnectionStatus, Organization, OrgKind

PLACEHOLDER = "[["
TEXT_LIMIT = 6000
REPORT_DAYS_DEFAULT = 10
# A business associate must tell the covered entity of a breach within 60 days of discovery at the
# latest (164.410(b)); the contract sets its own, shorter deadline.
REPORT_DAYS_MAX = 60
COVERED_ENTITY = "covered_entity"
BUSINESS_ASSOCIATE = "business_associate"
PARTY_LABELS = {COVERED_ENTITY: "Covered entity", BUSINESS_ASSOCIATE: "Business associate"}


@dataclass(frozen=True)
class Provision:
    key: str
    title: str
    citation: str
    text: str  # the template: {ce}, {ba} and {days} are filled in
    # Words the section must still contain (case-insensitive) to count as this provision.
    must_say: tuple[str, ...]


PROVISIONS: tuple[Provision, ...] = (
    Provision(
        "permitted_uses",
        "Permitted uses and disclosures",
        "45 CFR 164.504(e)(2)(i)",
        "{ba} may use and disclose protected health information (PHI) only to perform the services it "
        "provides to {ce} (dental laboratory, imaging or related services for {ce}'s patients), as this "
        "agreement permits or as required by law, and never in a manner that would violate Subpart E of "
        "45 CFR Part 164 if done by {ce}. {ba} limits its uses, disclosures and requests to the minimum "
        "necessary.",
        ("use", "disclos"),
    ),
    Provision(
        "no_other_use",
        "No other use or disclosure",
        "45 CFR 164.504(e)(2)(ii)(A)",
        "{ba} will not use or further disclose PHI other than as permitted or required by this agreement "
        "or as required by law.",
        ("not use", "disclos"),
    ),
    Provision(
        "safeguards",
        "Safeguards under the Security Rule",
        "45 CFR 164.504(e)(2)(ii)(B); 164.314(a)",
        "{ba} will use appropriate safeguards, and comply with Subpart C of 45 CFR Part 164 (the Security "
        "Rule) with respect to electronic PHI, to prevent use or disclosure of PHI other than as provided "
        "for by this agreement.",
        ("safeguard", "security rule"),
    ),
    Provision(
        "reporting",
        "Reporting of unauthorized uses, security incidents and breaches",
        "45 CFR 164.504(e)(2)(ii)(C); 164.314(a)(2)(i)(C); 164.410",
        "{ba} will report to {ce} any use or disclosure of PHI not provided for by this agreement of which "
        "it becomes aware, any security incident of which it becomes aware, and any breach of unsecured "
        "PHI as required by 45 CFR 164.410, without unreasonable delay and in no case later than {days} "
        "calendar days after discovery.",
        ("report", "security incident", "breach"),
    ),
    Provision(
        "subcontractors",
        "Subcontractors",
        "45 CFR 164.504(e)(2)(ii)(D); 164.502(e)(1)(ii); 164.314(a)(2)(i)(B)",
        "{ba} will ensure that any subcontractor that creates, receives, maintains or transmits PHI on its "
        "behalf agrees in writing to the same restrictions, conditions and requirements that apply to "
        "{ba} under this agreement.",
        ("subcontractor", "same restrictions"),
    ),
    Provision(
        "access",
        "Access by individuals",
        "45 CFR 164.504(e)(2)(ii)(E); 164.524",
        "{ba} will make PHI in a designated record set available to {ce} as necessary for {ce} to meet its "
        "obligations to give individuals access to their PHI under 45 CFR 164.524.",
        ("available", "164.524"),
    ),
    Provision(
        "amendment",
        "Amendment",
        "45 CFR 164.504(e)(2)(ii)(F); 164.526",
        "{ba} will make PHI in a designated record set available for amendment and incorporate any "
        "amendments as directed by {ce} in accordance with 45 CFR 164.526.",
        ("amend", "164.526"),
    ),
    Provision(
        "accounting",
        "Accounting of disclosures",
        "45 CFR 164.504(e)(2)(ii)(G); 164.528",
        "{ba} will document its disclosures of PHI and make available to {ce} the information required "
        "for {ce} to provide an accounting of disclosures in accordance with 45 CFR 164.528.",
        ("accounting", "164.528"),
    ),
    Provision(
        "hhs_books",
        "Books and records available to HHS",
        "45 CFR 164.504(e)(2)(ii)(I)",
        "{ba} will make its internal practices, books and records relating to the use and disclosure of "
        "PHI available to the Secretary of Health and Human Services for purposes of determining "
        "{ce}'s compliance with the HIPAA Rules.",
        ("books and records", "secretary"),
    ),
    Provision(
        "return_destroy",
        "Return or destruction at termination",
        "45 CFR 164.504(e)(2)(ii)(J)",
        "At termination of this agreement, {ba} will return or destroy all PHI received from, or created "
        "or received on behalf of, {ce} that it still maintains in any form, and retain no copies; where "
        "return or destruction is not feasible, it will extend the protections of this agreement to that "
        "PHI and limit further uses and disclosures to the purposes that make return or destruction "
        "infeasible.",
        ("return", "destroy"),
    ),
    Provision(
        "termination",
        "Termination for material breach",
        "45 CFR 164.504(e)(2)(iii)",
        "{ce} may terminate this agreement, and the services that involve PHI, if it determines that {ba} "
        "has violated a material term of this agreement and {ba} has not cured the breach or ended the "
        "violation within the time {ce} specifies.",
        ("terminat", "material"),
    ),
)
PROVISIONS_BY_KEY = {p.key: p for p in PROVISIONS}
# Not required by 164.504(e): whatever else the parties agree (term, governing law, notices).
ADDITIONAL = "additional"


def parties(connection: Connection) -> dict[str, Organization]:
    """Who is the covered entity: the practice; between two labs or centers (a sub-business
    associate chain), the side that asked for the connection stands where the practice would."""
    requester, recipient = connection.requester, connection.recipient
    if recipient.kind == OrgKind.PRACTICE and requester.kind != OrgKind.PRACTICE:
        requester, recipient = recipient, requester
    return {COVERED_ENTITY: requester, BUSINESS_ASSOCIATE: recipient}


def _party_line(org: Organization) -> str:
    address = ", ".join(line.strip() for line in org.address.splitlines() if line.strip())
    return f"{org.name} ({org.get_kind_display()}){', ' + address if address else ''}"


def prefill(ce: str, ba: str, days: int = REPORT_DAYS_DEFAULT) -> dict[str, str]:
    sections = {p.key: p.text.format(ce=ce, ba=ba, days=days) for p in PROVISIONS}
    sections[ADDITIONAL] = ""
    return sections


def problems(sections: dict[str, str], report_days: int) -> dict[str, str]:
    """Every required provision missing from the document, keyed by provision, in words that name
    the provision and its citation. Empty: the document may be made final."""
    found: dict[str, str] = {}
    for p in PROVISIONS:
        text = sections.get(p.key, "").strip()
        named = f"{p.title} ({p.citation})"
        if not text:
            found[p.key] = f"Missing required provision: {named}."
        elif PLACEHOLDER in text:
            found[p.key] = f"{named}: replace every [[...]] with the real terms."
        elif not all(word in text.lower() for word in p.must_say):
            said = ", ".join(f'"{w}"' for w in p.must_say)
            found[p.key] = f"Missing required provision: {named} (the section no longer says {said})."
        elif p.key == "reporting" and not re.search(rf"\b{report_days}\s+(calendar\s+|business\s+)?days?\b", text):
            found[p.key] = f"{named}: state the contractual deadline ({report_days} days) in the section."
        elif len(text) > TEXT_LIMIT:
            found[p.key] = f"{named}: keep it under {TEXT_LIMIT:,} characters."
    if len(sections.get(ADDITIONAL, "")) > TEXT_LIMIT:
        found[ADDITIONAL] = f"Additional terms: keep them under {TEXT_LIMIT:,} characters."
    return found


def _require_party(access: OrgAccess, doc: BaaDocument) -> None:
    if access.organization.pk not in (doc.covered_entity_id, doc.business_associate_id):
        raise ValidationError("This agreement belongs to other organizations.")


def _target(doc: BaaDocument) -> Any:
    return doc.connection if doc.connection_id else doc.vendor


def draft(access: OrgAccess, connection: Connection) -> BaaDocument:
    """Start an agreement for one of the organization's connections, pre-filled."""
    access.require(Perm.COMPLIANCE_MANAGE)
    org = access.organization
    if org.pk not in (connection.requester_id, connection.recipient_id):
        raise ValidationError("That connection is not one of this organization's.")
    if connection.status == ConnectionStatus.ENDED:
        raise ValidationError("This connection has ended: request a new one first.")
    sides = parties(connection)
    ce, ba = sides[COVERED_ENTITY], sides[BUSINESS_ASSOCIATE]
    return _create(access, connection, ba.name, connection=connection, covered_entity=ce, business_associate=ba)


def draft_for_vendor(access: OrgAccess, vendor: Vendor) -> BaaDocument:
    """Start an agreement between the organization (covered entity, or a business associate
    passing the terms down to its subcontractor) and one of its vendors, pre-filled."""
    access.require(Perm.COMPLIANCE_MANAGE)
    org = access.organization
    if vendor.organization_id != org.pk:
        raise ValidationError("That vendor is not one of this organization's.")
    return _create(access, vendor, vendor.name, vendor=vendor, covered_entity=org)


def _create(access: OrgAccess, target: Connection | Vendor, ba_name: str, **fields: Any) -> BaaDocument:
    """The draft, pre-filled with both parties' names, and its audit event."""
    org = access.organization
    with transaction.atomic():
        doc = BaaDocument.objects.create(
            organization=org,
            sections=prefill(fields["covered_entity"].name, ba_name),
            report_days=REPORT_DAYS_DEFAULT,
            created_by=_person(access),
            **fields,
        )
        kind = "connection" if isinstance(target, Connection) else "vendor"
        record(
            "compliance.baa.drafted",
            actor=access.actor,
            organization=org,
            target=target,
            details={"document": str(doc.pk), kind: str(target.pk)},
        )
    return doc


def save(
    access: OrgAccess,
    doc: BaaDocument,
    sections: dict[str, str],
    *,
    report_days: Any,
    expires_on: date | None,
    finalize: bool,
) -> BaaDocument:
    """Save the edited sections; with `finalize`, only a document with every required provision
    (problems() empty) becomes final, and a final document is not edited again."""
    access.require(Perm.COMPLIANCE_MANAGE)
    _require_party(access, doc)
    if doc.finalized_at is not None:
        raise ValidationError("This agreement is final: it is what the parties sign.")
    errors: dict[str, str] = {}
    try:
        days = int(report_days)
    except (TypeError, ValueError):
        days = 0
    if not 1 <= days <= REPORT_DAYS_MAX:
        errors["report_days"] = f"Enter the reporting deadline in days, 1 to {REPORT_DAYS_MAX} (164.410(b))."
    if expires_on is not None and expires_on <= timezone.localdate():
        errors["expires_on"] = "The agreement must end in the future (or leave the end date empty)."
    keys = [p.key for p in PROVISIONS] + [ADDITIONAL]
    cleaned = {k: str(sections.get(k, "")).replace("\r\n", "\n").strip() for k in keys}
    found = problems(cleaned, days) if days else {}
    errors.update({k: v for k, v in found.items() if finalize or "characters" in v})
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        doc.sections = cleaned
        doc.report_days = days
        doc.expires_on = expires_on
        doc.updated_at = timezone.now()
        if finalize:
            doc.finalized_at = doc.updated_at
            doc.finalized_by = _person(access)
        doc.save()
        record(
            "compliance.baa.finalized" if finalize else "compliance.baa.saved",
            actor=access.actor,
            organization=access.organization,
            target=_target(doc),
            details={"document": str(doc.pk), "report_days": days},
        )
    return doc


def party_of(access: OrgAccess, doc: BaaDocument) -> str:
    if access.organization.pk == doc.covered_entity_id:
        return COVERED_ENTITY
    if access.organization.pk == doc.business_associate_id:
        return BUSINESS_ASSOCIATE
    raise ValidationError("This agreement belongs to other organizations.")


def sign(access: OrgAccess, doc: BaaDocument, *, name: str, title: str) -> BaaSignature:
    """One side signs (the view has just confirmed the person's identity). The second signature
    stores the signed PDF in the vault and records the connection's agreement as a signed BAA."""
    access.require(Perm.CONNECTIONS_MANAGE)  # whoever records agreements signs them
    party = party_of(access, doc)
    errors = {}
    if not name.strip():
        errors["name"] = "Type your full name as your signature."
    if not title.strip():
        errors["title"] = "Enter your title (for example: Owner, Practice administrator)."
    if errors:
        raise ValidationError(errors)
    if doc.finalized_at is None:
        raise ValidationError("Only a final agreement can be signed: finalize it first.")
    if not isinstance(access.actor, User):
        raise ValidationError("A person signs, not an integration.")
    with transaction.atomic():
        locked = BaaDocument.objects.select_for_update().get(pk=doc.pk)
        if locked.signatures.filter(party=party).exists():
            raise ValidationError(f"The {PARTY_LABELS[party].lower()} has already signed.")
        signature = BaaSignature.objects.create(
            document=locked,
            party=party,
            organization=access.organization,
            user=access.actor,
            name=name.strip()[:150],
            title=title.strip()[:150],
            signed_at=timezone.now(),
        )
        record(
            "compliance.baa.signed",
            actor=access.actor,
            organization=access.organization,
            target=_target(locked),
            details={
                "document": str(locked.pk),
                "party": party,
                "signer": signature.name,
                "signer_title": signature.title,
                "signed_at": signature.signed_at.isoformat(),
            },
        )
        if locked.vendor_id is not None:
            _sent_to_vendor(access, locked)
        elif locked.signatures.count() == 2:
            _complete(access, locked)
    doc.refresh_from_db()
    return signature


def _sent_to_vendor(access: OrgAccess, doc: BaaDocument) -> None:
    """The organization signed an agreement with a vendor, who signs outside CaseBridge: the PDF
    with the organization's signature is kept in the vault and on the vendor, whose BAA is now
    requested until its countersigned copy is uploaded on the vendor's page."""
    content = pdf_bytes(doc)
    version = documents.put(access, [content], len(content))
    doc.signed_pdf = version.stored_object
    doc.save(update_fields=["signed_pdf"])
    assert doc.vendor_id is not None
    vendor = Vendor.objects.select_for_update().get(pk=doc.vendor_id)
    vendor.baa_document = version.stored_object
    if vendor.baa_status != BaaStatus.SIGNED:
        vendor.baa_status = BaaStatus.REQUESTED
    vendor.save(update_fields=["baa_document", "baa_status"])
    record(
        "compliance.baa.completed",
        actor=access.actor,
        organization=access.organization,
        target=vendor,
        details={"document": str(doc.pk), "stored_object": str(version.stored_object.pk), "vendor": str(vendor.pk)},
    )


def _complete(access: OrgAccess, doc: BaaDocument) -> None:
    """Both signed: keep the signed PDF in the vault, and record the connection's agreement."""
    content = pdf_bytes(doc)
    version = documents.put(access, [content], len(content))
    doc.signed_pdf = version.stored_object
    doc.signed_at = timezone.now()
    doc.save(update_fields=["signed_pdf", "signed_at"])
    assert doc.connection_id is not None
    connection = Connection.objects.select_for_update().get(pk=doc.connection_id)
    org_actions.change_connection_basis(
        access,
        connection,
        basis=AgreementBasis.BAA,
        baa_signed_on=timezone.localdate(),
        baa_expires_on=doc.expires_on,
        note=f"Signed in CaseBridge (BAA generator, document {str(doc.pk)[:8]})",
    )
    record(
        "compliance.baa.completed",
        actor=access.actor,
        organization=access.organization,
        target=connection,
        details={"document": str(doc.pk), "stored_object": str(version.stored_object.pk)},
    )


def pdf_bytes(doc: BaaDocument) -> bytes:
    """The agreement as a PDF: a draft says so; signatures are printed with name, title and time."""
    title = "Business Associate Agreement"
    out = document(title)
    out.set_font("Helvetica", "B", 14)
    out.multi_cell(0, 8, latin(title if doc.finalized_at else f"DRAFT - {title}"), new_x="LMARGIN", new_y="NEXT")
    out.set_font("Helvetica", "", 10)
    for line in _preamble(doc):
        out.multi_cell(0, 5, latin(line), new_x="LMARGIN", new_y="NEXT")
    out.ln(3)
    for number, heading, citation, text in _sections(doc):
        out.set_font("Helvetica", "B", 11)
        out.multi_cell(0, 6, latin(f"{number}. {heading}"), new_x="LMARGIN", new_y="NEXT")
        if citation:
            out.set_font("Helvetica", "I", 8)
            out.multi_cell(0, 4, latin(citation), new_x="LMARGIN", new_y="NEXT")
        out.set_font("Helvetica", "", 10)
        out.multi_cell(0, 5, latin(text), new_x="LMARGIN", new_y="NEXT")
        out.ln(2)
    out.ln(4)
    out.set_font("Helvetica", "B", 11)
    out.multi_cell(0, 6, "Signatures", new_x="LMARGIN", new_y="NEXT")
    out.set_font("Helvetica", "", 10)
    for line in _signature_lines(doc):
        out.multi_cell(0, 5, latin(line), new_x="LMARGIN", new_y="NEXT")
    return bytes(out.output())


def _preamble(doc: BaaDocument) -> list[str]:
    ba = doc.business_associate
    lines = [
        f"Covered entity: {_party_line(doc.covered_entity)}",
        f"Business associate: {_party_line(ba) if ba else doc.business_associate_name}",
        "This agreement sets out the terms 45 CFR 164.504(e) requires of a business associate that "
        "creates, receives, maintains or transmits protected health information for the covered entity.",
    ]
    if doc.expires_on:
        lines.append(f"Term: until {doc.expires_on:%B %d, %Y}, unless terminated earlier.")
    return lines


def _sections(doc: BaaDocument) -> list[tuple[int, str, str, str]]:
    rows = [(i, p.title, p.citation, doc.sections.get(p.key, "")) for i, p in enumerate(PROVISIONS, start=1)]
    if doc.sections.get(ADDITIONAL):
        rows.append((len(rows) + 1, "Additional terms", "", doc.sections[ADDITIONAL]))
    return rows


def _signature_lines(doc: BaaDocument) -> list[str]:
    signed = {s.party: s for s in doc.signatures.all()}
    lines = []
    names = ((COVERED_ENTITY, doc.covered_entity.name), (BUSINESS_ASSOCIATE, doc.business_associate_name))
    for party, name in names:
        s = signed.get(party)
        if s is None:
            lines.append(
                f"{PARTY_LABELS[party]} ({name}): "
                + (
                    "sign here: ______________________  Title: ____________  Date: ________"
                    if doc.vendor_id and party == BUSINESS_ASSOCIATE
                    else "not signed yet"
                )
            )
        else:
            lines.append(
                f"{PARTY_LABELS[party]} ({name}): signed electronically by {s.name}, {s.title}, "
                f"on {s.signed_at:%Y-%m-%d %H:%M} UTC after confirming identity"
            )
    return lines


def docx_bytes(doc: BaaDocument) -> bytes:
    """The same agreement as a Word document, for parties who mark it up outside CaseBridge."""
    import io

    from docx import Document

    out = Document()
    out.core_properties.author = ""
    out.core_properties.title = "Business Associate Agreement"
    out.add_heading("Business Associate Agreement" if doc.finalized_at else "DRAFT - Business Associate Agreement", 0)
    for line in _preamble(doc):
        out.add_paragraph(line)
    for number, heading, citation, text in _sections(doc):
        out.add_heading(f"{number}. {heading}", level=2)
        if citation:
            out.add_paragraph().add_run(citation).italic = True
        out.add_paragraph(text)
    out.add_heading("Signatures", level=2)
    for line in _signature_lines(doc):
        out.add_paragraph(line)
    buffer = io.BytesIO()
    out.save(buffer)
    return buffer.getvalue()


def printed(access: OrgAccess, doc: BaaDocument, kind: str) -> None:
    record(
        "compliance.baa.downloaded",
        actor=access.actor,
        organization=access.organization,
        target=_target(doc),
        details={"document": str(doc.pk), "format": kind, "signed": doc.signed_pdf_id is not None},
    )


def _person(access: OrgAccess) -> User | None:
    return access.actor if isinstance(access.actor, User) else None
