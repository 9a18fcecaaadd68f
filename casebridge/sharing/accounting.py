"""The accounting of disclosures (45 CFR 164.528) for one patient, as CSV and PDF: for each
disclosure the date, the recipient, a brief description of what was disclosed and the purpose."""

from __future__ import annotations

import csv
import io

from casebridge.core.pdf import document, latin
from casebridge.orgs.models import Organization
from casebridge.sharing.models import Disclosure

COLUMNS = (
    "disclosed_at",
    "patient",
    "date_of_birth",
    "case",
    "recipient",
    "files",
    "purpose",
    "disclosed_by",
    "copies",
)


def _row(d: Disclosure) -> list[str]:
    return [
        d.disclosed_at.isoformat(),
        d.patient.name,
        d.patient.date_of_birth.isoformat() if d.patient.date_of_birth else "",
        d.case.number,
        d.recipient_email,
        "; ".join(str(f.get("name", "")) for f in d.files if isinstance(f, dict)),
        d.purpose,
        d.disclosed_by_label,
        _copies(d),
    ]


def _copies(d: Disclosure) -> str:
    """What the recipient could get: de-identified copies (external links' default) or originals."""
    if d.link is None:
        return d.copies  # the link's own words, kept when a retention policy removed it
    return "de-identified" if d.link.deidentify else "originals"


def as_csv(rows: list[Disclosure]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for d in rows:
        writer.writerow(_row(d))
    return out.getvalue()


def as_pdf(organization: Organization, rows: list[Disclosure]) -> bytes:
    pdf = document("Accounting of disclosures")
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, "Accounting of disclosures", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(
        0,
        5,
        latin(
            f"{organization.name}. Disclosures of protected health information outside CaseBridge in the six years "
            "before this report (45 CFR 164.528): date, recipient, what was disclosed and why."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    if not rows:
        pdf.cell(0, 6, "No disclosures recorded.", new_x="LMARGIN", new_y="NEXT")
    for d in rows:
        date_text, patient, dob, case, recipient, files, purpose, by, copies = _row(d)
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(
            0, 5, latin(f"{date_text[:16].replace('T', ' ')} UTC - {patient} {dob}"), new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_font("Helvetica", size=8)
        shared = f"Files ({copies} copies): {files}" if copies else f"Files: {files}"
        for line in (f"Case {case}; to {recipient}; by {by}", shared, f"Purpose: {purpose}"):
            pdf.multi_cell(0, 4.2, latin(line), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)
    return bytes(pdf.output())
