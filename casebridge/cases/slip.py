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

import qrcode
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from fpdf import FPDF
from qrcode.constants import ERROR_CORRECT_M

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, case_for
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.cases import teeth
from casebridge.cases.models import Case, Delivery
from casebridge.cases.templates import TEMPLATES

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


class _Slip(FPDF):
    def __init__(self, case_number: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="letter")
        self.case_number = case_number
        # Metadata names the case only: PDF properties are shown by viewers and indexed by desktops.
        self.set_title(f"Lab slip {case_number}")
        self.set_creator("CaseBridge")
        self.set_author("")
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("Helvetica", size=7)
        self.set_text_color(90)
        self.cell(
            0,
            4,
            f"{self.case_number} - contains protected health information: keep with the work, shred when done."
            f"   Page {self.page_no()}/{{nb}}",
            align="C",
        )


def _qr(pdf: FPDF, text: str, x: float, y: float, size: float) -> None:
    """The QR code drawn as vector squares: sharp at any printer resolution, no image library."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(text)
    code.make(fit=True)
    matrix = code.get_matrix()
    module = size / len(matrix)
    pdf.set_fill_color(0)
    for r, line in enumerate(matrix):
        for c, dark in enumerate(line):
            if dark:
                pdf.rect(x + c * module, y + r * module, module, module, style="F")


def render_slip(case: Case, *, notation: str) -> bytes:
    """The lab slip of ``case`` as PDF bytes. ``notation`` is the reader's tooth numbering."""
    pdf = _Slip(case.number)
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.epw

    _qr(pdf, case.number, pdf.l_margin + width - 30, 12, 30)
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(width - 34, 10, "Lab slip", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", "B", 18)
    pdf.cell(width - 34, 10, case.number, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(14)

    template = TEMPLATES.get(case.case_type)
    ship = case.delivery == Delivery.SHIP
    delivery = f"Ship to:\n{case.ship_to or '-'}" if ship else "Local pickup at the practice"
    fields = [
        ("Practice", case.practice.name),  # no phone or address is modelled for organizations yet
        ("Doctor", case.doctor.display_name if case.doctor else "-"),
        ("Lab", case.lab.name if case.lab else "-"),
        ("Patient", case.patient.name),
        ("Case type", template.label if template else case.case_type),
        ("Due date", case.due_date.isoformat() if case.due_date else "-"),
        ("Delivery", delivery),
    ]
    for label, value in fields:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(30, 6, label)
        pdf.set_font("Helvetica", size=10)
        pdf.multi_cell(width - 30, 6, _pdf_text(value), new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Restorations", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    reader = NOTATION_LABELS.get(notation, notation)
    headings = ["Tooth (FDI)"] + ([] if notation == "fdi" else [f"Tooth ({reader})"])
    headings += ["Restoration", "Material", "Shade", "Stump shade"]
    widths = (24, 32, 38, 52, 16, 23) if notation != "fdi" else (24, 70, 52, 16, 23)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=6, first_row_as_headings=True) as table:
        table.row(headings)
        for row in slip_rows(case, notation):
            cells = [row.fdi] + ([] if notation == "fdi" else [row.reader])
            cells += [row.restoration, row.material, row.shade, row.stump_shade]
            table.row([_pdf_text(c) for c in cells])

    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Prescription notes", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, _pdf_text(case.notes or "-"), new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Attached files", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", size=9)
    for name in neutral_file_names(case) or ["-"]:
        pdf.cell(0, 5, name, new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", size=7)
    pdf.cell(0, 4, f"Printed {timezone.now():%Y-%m-%d %H:%M} UTC", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@require_GET
@org_permission(Perm.CASES_VIEW)
def case_slip(request: HttpRequest, number: str) -> HttpResponse:
    """Download the lab slip; printing is an audited disclosure of the patient reference."""
    access: OrgAccess = request.org_access  # type: ignore[attr-defined]
    case = case_for(access, number)
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
