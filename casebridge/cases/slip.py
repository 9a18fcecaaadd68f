"""The printable lab slip: one PDF page with only what the lab needs to make and return the work.

Minimum necessary (45 CFR 164.502(b)): the slip names the patient, because the lab matches the
physical work (impressions, models, the finished crown in its box) to a person with it, but it
leaves out the date of birth and the practice's chart number. The case number, printed and as a
QR code, already identifies the case uniquely, so a second identifier would only add PHI to a
piece of paper that travels through a lab's benches and a courier's van.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, case_for, case_side
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.cases import teeth
from casebridge.cases.models import Case, Status

NOTATION_LABELS = {"universal": "Universal", "fdi": "FDI", "palmer": "Palmer"}


@dataclass(frozen=True)
class SlipRow:
    fdi: str
    reader: str
    restoration: str
    material: str
    shade: str
    stump_shade: str


def slip_rows(case: Case, notation: str) -> list[SlipRow]:
    """Each restoration with its tooth in FDI and in the reader's notation (arch items by arch)."""
    rows = []
    for item in case.items.order_by("tooth", "arch", "pk"):
        if item.tooth:
            fdi, reader = str(item.tooth), teeth.display(item.tooth, notation)
        else:
            fdi = reader = f"{item.get_arch_display()} arch"
        rows.append(
            SlipRow(
                fdi,
                reader,
                item.get_restoration_display(),
                item.get_material_display() if item.material else "-",
                item.shade or "-",
                item.stump_shade or "-",
            )
        )
    return rows


def neutral_file_names(case: Case) -> list[str]:
    """The case's files by their neutral names (CB-2026-000123_upper_1.stl), as the case page
    numbers them; never the name a file was uploaded with."""
    attachments = case.attachments.filter(stored_object__destroyed_at__isnull=True).select_related("stored_object")
    seen: dict[tuple[str, str], int] = {}
    names = []
    for a in attachments.order_by("added_at", "pk"):
        key = (a.kind, a.label)
        seen[key] = seen.get(key, 0) + 1
        names.append(f"{case.number}_{a.label or a.kind}_{seen[key]}.{a.stored_object.extension}")
    return sorted(names)


def prescriber_line(case: Case) -> str:
    """The doctor as a prescription names them: "Dr. Ann Lee, license CA-12345" (the license as
    signed when the case was sent, else the doctor's current one)."""
    if case.doctor is None:
        return "-"
    name = case.signed_name or case.doctor.display_name
    if not name.lower().startswith("dr"):
        name = f"Dr. {name}"
    signed = case.signed_license
    if not signed:
        membership = case.practice.memberships.filter(user=case.doctor, is_prescriber=True).first()
        signed = membership.license if membership else ""
    return f"{name}, license {signed}" if signed else name


def signature_line(case: Case) -> str:
    """The electronic signature recorded when the practice sent the case, in words."""
    if case.signed_at is None:
        return "Not signed: the case has not been sent by the practice with a prescribing doctor."
    name = case.signed_name if case.signed_name.lower().startswith("dr") else f"Dr. {case.signed_name}"
    line = f"Electronically signed by {name}, license {case.signed_license}, on {case.signed_at:%Y-%m-%d %H:%M} UTC"
    # Often an assistant sends the case the doctor prescribed: say who, so the line claims no
    # more than what happened (the audit log has the same, case.submitted by its actor).
    sent = case.events.filter(status=Status.SUBMITTED).order_by("at", "pk").first()
    if sent is not None and sent.actor_id != case.doctor_id and sent.actor_label:
        line += f" (sent by {sent.actor_label})"
    return line


def _pdf_text(text: str) -> str:
    """The PDF's built-in fonts cover Latin-1: keep accents where they exist there, drop them
    (é -> e) where they do not, and mark anything else with "?" rather than fail to print."""
    text = unicodedata.normalize("NFC", text)
    out = []
    for char in text:
        if ord(char) < 256:
            out.append(char)
            continue
        base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
        out.append(base or "?")
    return "".join(out)


@require_GET
@org_permission(Perm.CASES_VIEW)
def case_slip(request: HttpRequest, number: str) -> HttpResponse:
    # fpdf2 (with fontTools) adds ~28 MiB to a process: only the processes that print pay for it.
    from casebridge.cases.slip_pdf import render_slip

    """Download the lab slip; printing is an audited disclosure of the patient reference. The
    slip is the prescription: the practice's and the lab's, not an imaging center's (404)."""
    access: OrgAccess = org_access_of(request)
    case = case_for(access, number)
    if case_side(access, case) == "imaging":
        raise Http404("no lab slip")
    content = render_slip(case, notation=getattr(request.user, "tooth_notation", "universal"))
    record(
        "case.slip.printed",
        actor=access.actor,
        organization=access.organization,
        target=case,
        patient_ref=str(case.patient_id),
        details={"case": case.number},
    )
    response = HttpResponse(content, content_type="application/pdf")
    # The file name carries the case number only: names end up in download folders and histories.
    response["Content-Disposition"] = f'attachment; filename="{case.number}_slip.pdf"'
    response["Cache-Control"] = "no-store"
    return response
