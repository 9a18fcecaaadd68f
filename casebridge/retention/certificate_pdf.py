"""A destruction certificate as a PDF for the compliance file (fpdf2): what was destroyed, when,
under which policy, with the content hashes and the signature that proves the record unchanged.
It names case numbers and file ids only, never a patient."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from casebridge.core.pdf import document
from casebridge.retention.models import DestructionCertificate
from casebridge.retention.policies import destroyed_counts


def render_certificate(certificate: DestructionCertificate, signature_ok: bool) -> bytes:
    body = json.loads(certificate.body)
    pdf = document(f"Destruction certificate {certificate.pk}")
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, "Certificate of destruction", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    lines = [
        f"Certificate: {certificate.pk}",
        f"Run at: {body['run_at']}",
        f"Performed by: {body['actor']}",
        f"Method: {body['method']}",
        "Policies: "
        + "; ".join(
            f"{name} {p['keep_days']} days"
            + (f" ({p['preset']}: {p['rule'].get('source', 'no rule')})" if p.get("rule") is not None else "")
            + (f" ({p['preset']})" if p.get("preset") and "rule" not in p else "")
            for name, p in sorted(body["policies"].items())
            if p["keep_days"] is not None
        ),
        f"Records destroyed: {len(body['destroyed'])} ({_counts(body['destroyed'])})",
        *_backup_lines(body),
        f"Signature (Ed25519, key {certificate.key_id}): "
        + ("verified against this installation's key" if signature_ok else "DOES NOT VERIFY"),
    ]
    for line in lines:
        # The core fonts are Latin-1; a declared rule's citation is typed text (a dash, a quote).
        pdf.multi_cell(0, 5, line.encode("latin-1", "replace").decode("latin-1"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(0, 6, "Destroyed", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", size=7)
    for item in body["destroyed"]:
        where = (
            f"case {item['case']}"
            if item["case"]
            else f"audit events {item['range']}"
            if item["kind"] == "audit_segment"
            else "compliance record"
            if item["kind"] == "compliance_record"
            else "upload never attached"
        )
        what = item["file"] if "file" in item else f"{item['kind']} {item['record']}"
        pdf.multi_cell(
            0, 3.6, f"{what}  {where}  kept since {item['retained_since'][:10]}", new_x="LMARGIN", new_y="NEXT"
        )
        for version in item["versions"]:
            pdf.multi_cell(
                0,
                3.6,
                f"    v{version['version']}  {version['size']} bytes  sha256 {version['sha256']}",
                new_x="LMARGIN",
                new_y="NEXT",
            )
    pdf.ln(3)
    pdf.set_font("Helvetica", size=7)
    pdf.multi_cell(0, 3.5, f"Signature: {certificate.signature}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _counts(destroyed: list[dict[str, Any]]) -> str:
    counts = destroyed_counts(destroyed)
    return (
        f"files {counts['files']}, message texts {counts['messages']}, external links {counts['links']}, "
        f"audit events {counts['audit_events']}, compliance records {counts['compliance_records']}"
    )


def _backup_lines(body: dict[str, Any]) -> list[str]:
    """Until when copies of the destroyed files may remain in backup sets, and from when they are
    unrecoverable from backups too (retention/backup_window.py); signed with the rest."""
    backups = body.get("backups")
    if backups is None:
        return ["Backups: this certificate predates the statement of the backup window."]
    until = backups["copies_may_remain_until"]
    if until is None:
        return [
            f"Backups: {backups['rule']}",
            "Copies may remain in backup sets: without an end date under these settings; the files stay "
            "recoverable from those sets until they are removed.",
        ]
    day = datetime.fromisoformat(until).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"Backups: {backups['rule']}",
        f"Copies may remain in backup sets until: {day} (at most {backups['window_days']} days and one backup "
        "interval after this run).",
        f"Unrecoverable from backups too after: {day}: the last set holding the wrapped keys is gone by then.",
    ]
