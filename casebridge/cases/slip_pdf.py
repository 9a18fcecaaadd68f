"""Drawing the lab slip with fpdf2 (imported only when a slip is printed: see slip.py)."""

from __future__ import annotations

import qrcode
from django.utils import timezone
from fpdf import FPDF
from qrcode.constants import ERROR_CORRECT_M

from casebridge.cases.models import Case, Delivery
from casebridge.cases.slip import (
    NOTATION_LABELS,
    _pdf_text,
    neutral_file_names,
    prescriber_line,
    signature_line,
    slip_rows,
)
from casebridge.cases.templates import TEMPLATES


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
    practice = "\n".join(part for part in (case.practice.name, case.practice.address, case.practice.phone) if part)
    fields = [
        ("Practice", practice),  # where questions go: the lab calls the number on the slip
        ("Doctor", prescriber_line(case)),
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
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(0, 5, _pdf_text(signature_line(case)), new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", size=7)
    pdf.cell(0, 4, f"Printed {timezone.now():%Y-%m-%d %H:%M} UTC", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
