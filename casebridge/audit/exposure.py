"""What a page or response showed of patients. `record_case_opened`: one case opened (its page,
its files, a viewer). `patient.viewed`: one event per page or response that lists patients (case lists, the
dashboard's views, search results, the API's list), naming every patient reference shown.

One event per page rather than one per row: a 50-row page is one event, not 50, and the event
still says exactly which patients the actor saw. `patient_ref` (the indexed column) is set when
the page shows a single patient; otherwise the references are in `details.patients`, which a
patient's access report searches as well (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from casebridge.audit.api import record


def record_patients_shown(
    *,
    actor: Any,
    organization: Any,
    cases: Sequence[Any],
    via: str,
    **details: Any,
) -> None:
    """Audit a page showing these cases' patients; nothing when it shows none.

    `details` must hold internal values only (which list, whether it was filtered), never the
    search text: a patient's name typed into a search box is PHI."""
    if not cases:
        return
    patients = list(dict.fromkeys(str(case.patient_id) for case in cases))
    record(
        "patient.viewed",
        actor=actor,
        organization=organization,
        patient_ref=patients[0] if len(patients) == 1 else "",
        details={
            "via": via,
            "patients": patients,
            "cases": [case.number for case in cases],
            **details,
        },
    )


def record_case_opened(access: Any, case: Any, action: str = "case.viewed", **details: Any) -> None:
    """Audit one case (and so one patient) shown to `access`: its page, a view of its files, an
    API answer. The event names the case by number and the patient by reference."""
    record(
        action,
        actor=access.actor,
        organization=access.organization,
        target=case,
        patient_ref=str(case.patient_id),
        details={"case": case.number, **details},
    )
