"""The work-queue part of the organization's home page: what needs this person, and for a lab
the production board. Kept out of orgs.views so the overview stays the organization's page."""

from __future__ import annotations

from typing import Any

from casebridge.access.policy import OrgAccess
from casebridge.audit.api import record
from casebridge.cases import queue
from casebridge.orgs.models import OrgKind


def work_queue(access: OrgAccess) -> dict[str, Any]:
    """The home page's queue context. The lists show patient names, so showing them is audited
    (case numbers and patient ids, never the names); the board shows no patient data."""
    data = queue.home(access, access.actor.pk)
    board = queue.production_board(access) if access.organization.kind == OrgKind.LAB else []
    shown = {case.number: str(case.patient_id) for section in data["sections"] for case in section.cases}
    if shown:
        # One event for the page; the patients' internal ids let "who saw this patient" find it.
        record(
            "case.queue.viewed",
            actor=access.actor,
            organization=access.organization,
            details={"cases": sorted(shown), "patients": sorted(set(shown.values()))},
        )
    return {"queue": data, "board": board}
