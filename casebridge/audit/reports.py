"""Reports from the audit log (issue 15, item 5): the per-patient access report — who saw or did
what concerning one patient, and when — as a page, CSV and PDF.

A patient is named in the log by internal reference only: as `patient_ref` of the events about
one patient (a case opened, a file downloaded, a link shared...), and inside `details.patients`
of the events that showed a list of patients (`patient.viewed`, disclosures viewed). Both are
collected, from the organization's own log only: the hot tables and the archive segments
(events older than 13 months, audit/history.py), so the report covers the whole log. The
report itself names the patient by reference; the person asking already knows whom they asked
about."""

from __future__ import annotations

import csv
import io
import uuid

from django.db.models import Q

from casebridge.audit import history
from casebridge.audit.archive import Filters
from casebridge.audit.models import Event
from casebridge.core.pdf import document, latin
from casebridge.orgs.models import Organization

LIMIT = 5000
LISTS = ("patient.viewed", "share.disclosures.viewed")


def patient_events(organization: Organization, patient_ref: uuid.UUID) -> history.Reading:
    ref = str(patient_ref)
    direct = list(
        Event.objects.filter(organization_id=organization.pk, patient_ref=ref).order_by("-occurred_at", "-id")[:LIMIT]
    )
    listed = [
        e
        for e in Event.objects.filter(Q(organization_id=organization.pk), action__in=LISTS)
        .exclude(patient_ref=ref)
        .order_by("-id")[:LIMIT]
        if ref in (e.details.get("patients") or [])
    ]
    # The same question of the segments: its patient filter also finds the lists that showed them.
    return history.combined(direct + listed, Filters(organization=str(organization.pk), patient=ref), limit=LIMIT)


COLUMNS = ("occurred_at", "action", "outcome", "actor", "ip", "case", "via", "event_id", "archived")


def _row(event: Event) -> list[str]:
    details = event.details if isinstance(event.details, dict) else {}
    return [
        event.occurred_at.isoformat(),
        event.action,
        event.outcome,
        event.actor_label or event.actor_type,
        event.ip or "",
        str(details.get("case", "")),
        str(details.get("via", "")),
        str(event.pk),
        "yes" if getattr(event, "archived", False) else "",
    ]


def as_csv(events: list[Event]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for event in events:
        writer.writerow(_row(event))
    return out.getvalue()


def as_pdf(organization: Organization, patient_ref: uuid.UUID, events: list[Event], note: str = "") -> bytes:
    pdf = document(f"Access report for patient {patient_ref}", landscape=True, margin=12)
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, "Patient access report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for line in (
        f"Organization: {organization.name}",
        f"Patient reference: {patient_ref}",
        f"Events: {len(events)} (from the organization's tamper-evident audit log)" + (f"; {note}" if note else ""),
    ):
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    widths = (42, 52, 16, 60, 28, 32, 26)
    pdf.set_font("Helvetica", "B", 8)
    for width, title in zip(widths, ("When (UTC)", "Action", "Outcome", "Who", "IP", "Case", "Via"), strict=True):
        pdf.cell(width, 5, title, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", size=7)
    for event in events:
        cells = _row(event)[:7]
        cells[0] = cells[0][:19].replace("T", " ")
        for width, text in zip(widths, cells, strict=True):
            pdf.cell(width, 4.5, latin(text)[:60], border=1)
        pdf.ln()
    return bytes(pdf.output())
