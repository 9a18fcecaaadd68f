"""Cases with imaging for the imaging tests: a practice's draft, a ZIP of DICOM files, storing
and attaching as the case page does."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

from django.utils import timezone

from casebridge.access.policy import OrgAccess, resolve
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case
from casebridge.core.testing import Personas
from casebridge.imaging.synthetic import photo, stl_mesh
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject


def clinician_access(personas: Personas, role: str = "clinician") -> OrgAccess:
    access = resolve(personas.members[role], personas.practice)
    assert access is not None
    return access


def draft_case(access: OrgAccess, patient_name: str = "Jane Roe", lab: object = None) -> Case:
    return actions.create_case(
        access,
        patient_name=patient_name,
        case_type="digital_crown",
        lab=lab,
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )


def zipped(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def stored(access: OrgAccess, content: bytes) -> StoredObject:
    return vault.put_stream(
        organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
    ).stored_object


def attach(access: OrgAccess, case: Case, content: bytes, kind: str, label: str = "") -> StoredObject:
    """Store `content` and attach it to `case` (a DICOM file or a ZIP as the CBCT queues its ingest)."""
    obj = stored(access, content)
    actions.attach_file(access, case, obj, kind=kind, label=label)
    return obj


def attach_what_sending_needs(access: OrgAccess, case: Case) -> None:
    """The scans (prep, opposing, bite) and shade photos a crown case needs before it can be sent."""
    for label in ("prep", "opposing", "bite"):
        attach(access, case, stl_mesh(label), kind="scan", label=label)
    for seed in ("a", "b"):
        attach(access, case, photo(seed), kind="photo", label="shade")


def connect_lab(personas: Personas) -> None:
    """The practice and the personas' lab connected under a BAA, so cases can go to the lab."""
    from casebridge.orgs import actions as org_actions
    from casebridge.orgs.models import AgreementBasis

    connection = org_actions.request_connection(
        clinician_access(personas, "owner"),
        other_slug=personas.lab.slug,
        basis=AgreementBasis.BAA,
        baa_signed_on=timezone.now().date(),
    )
    lab = resolve(personas.lab_manager, personas.lab)
    assert lab is not None
    org_actions.accept_connection(lab, connection)
