"""A lab with De-identification on receipt opens a received CBCT in Chromium: the viewer loads
every slice through DICOMweb by the case's de-identified UIDs, draws all three planes, and none
of its requests names an original UID."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import Page, Response, expect

from casebridge.access.policy import resolve
from casebridge.cases import actions as case_actions
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import build_personas
from casebridge.deid import export
from casebridge.deid.dicom import new_uid
from casebridge.imaging.models import Series
from casebridge.imaging.synthetic import cbct_series
from casebridge.imaging.tests.cases import attach, attach_what_sending_needs, connect_lab, draft_case, zipped
from casebridge.imaging.tests.test_cbct_viewer import _plane_pixels

pytestmark = pytest.mark.browser
SLICES, SIZE = 12, 64


def test_the_lab_views_a_received_cbct_by_its_de_identified_uids(
    page: Page, transactional_db: None, vault_home: Path
) -> None:
    p = build_personas()
    connect_lab(p)
    access = resolve(p.members["clinician"], p.practice)
    assert access is not None
    case = draft_case(access, lab=p.lab)
    slices = cbct_series("deid-viewer", slices=SLICES, size=SIZE, patient_name="CARTER^ROSA")
    attach(access, case, zipped({f"IM{i:04d}": data for i, data in enumerate(slices)}), kind="cbct")
    attach_what_sending_needs(access, case)
    case_actions.submit_case(access, case)
    p.lab.deidentify_on_receipt = True
    p.lab.save(update_fields=["deidentify_on_receipt"])
    series = Series.objects.get(study__case=case)
    originals = {series.study.study_uid, series.series_uid}
    originals |= {pydicom.dcmread(io.BytesIO(s)).SOPInstanceUID for s in slices}
    secret = export.case_secret(case)

    errors: list[str] = []
    dicomweb: list[Response] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: dicomweb.append(response) if "/dicomweb/" in response.url else None)
    sign_in(page, p.lab_manager)
    page.goto(f"/o/{p.lab.slug}/cases/{case.number}/imaging/{series.pk}/")

    viewer = page.locator("#cbct-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.get_by_role("status")).to_have_text(f"{SLICES} slices loaded.")
    assert_no_inline_scripts(page)
    for plane in ("axial", "coronal", "sagittal"):
        assert _plane_pixels(page, plane) > 100, plane
    screenshot(page, "cbct-viewer-deidentified")

    assert dicomweb and all(r.status == 200 for r in dicomweb), [(r.url, r.status) for r in dicomweb]
    assert any(r.url.endswith("/metadata") for r in dicomweb)
    assert all(uid not in r.url for r in dicomweb for uid in originals)
    expected = (
        f"/dicomweb/studies/{new_uid(series.study.study_uid, secret)}/series/{new_uid(series.series_uid, secret)}"
    )
    assert all(expected in r.url for r in dicomweb)
    assert errors == []
