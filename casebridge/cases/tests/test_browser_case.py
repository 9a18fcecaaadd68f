"""A clinician creates a case on the tooth chart (keyboard and mouse), adds the scans and photos
on the case page, watches the missing list shrink and sends the case to the lab."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from casebridge.access.policy import resolve
from casebridge.cases.models import Case, Status
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas, build_personas
from casebridge.imaging.tests.test_sanitize import identifying_jpeg
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.browser


@pytest.fixture
def connected(transactional_db: None, vault_home: Path, settings: pytest.FixtureRequest) -> Personas:
    # The live server shares one in-memory SQLite connection between threads: no parallel writes.
    settings.VAULT_BROWSER_PARALLEL_UPLOADS = 1  # type: ignore[attr-defined]
    p = build_personas()
    owner = resolve(p.members["owner"], p.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug=p.lab.slug, basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    lab = resolve(p.lab_manager, p.lab)
    assert lab is not None
    org_actions.accept_connection(lab, connection)
    clinician = p.members["clinician"]
    clinician.full_name = "Dr. Clara Smile"
    clinician.save(update_fields=["full_name"])
    return p


def test_a_clinician_creates_a_case_on_the_chart_adds_files_and_sends_it(
    page: Page, connected: Personas, tmp_path: Path
) -> None:
    p = connected
    sign_in(page, p.members["clinician"])
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Cases").click()
    page.get_by_role("link", name="New case").click()
    expect(page.get_by_role("heading", name="New case")).to_be_visible()
    assert_no_inline_scripts(page)

    page.get_by_label("Patient name").fill("Jane Roe")
    page.get_by_label("Date of birth").fill("1961-04-02")
    page.get_by_label("Chart number").fill("A-77")
    page.get_by_label("Case type").select_option(label="Digital single crown")
    expect(page.locator("#case-type-needs")).to_contain_text("two shade photos with the shade tab in view")
    page.get_by_label("Lab").select_option(label="Precision Lab")
    expect(page.get_by_label("Doctor")).to_have_value(str(p.members["clinician"].pk))
    page.get_by_label("Due date").fill((timezone.now().date() + timedelta(days=7)).isoformat())
    page.get_by_label("Shipping address").fill("1 Main St, Springfield")

    # Mouse on Universal 30 (lower right first molar); keyboard for 19: arrows along the row, Space.
    tooth_30 = page.get_by_role("button", name="30, lower right first molar")
    tooth_30.click()
    expect(tooth_30).to_have_attribute("aria-pressed", "true")
    tooth_19 = page.get_by_role("button", name="19, lower left first molar")
    page.get_by_role("button", name="18, lower left second molar").focus()
    # The chart faces the patient: their left is on our right, so 19 is left of 18.
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("button", name="20, lower left second premolar")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(tooth_19).to_be_focused()
    page.keyboard.press("Space")
    expect(tooth_19).to_have_attribute("aria-pressed", "true")
    rows = page.locator("#tooth-rows tr")
    expect(rows).to_have_count(2)
    # Only crowns fit a single-crown case; material and shade carry over to the next tooth.
    first = rows.nth(0)
    first.get_by_label("Material").select_option(label="Zirconia, full-contour")
    first.get_by_label("Shade", exact=True).select_option("A2")
    second = rows.nth(1)
    second.get_by_label("Material").select_option(label="Lithium disilicate (e.max)")
    second.get_by_label("Shade", exact=True).select_option("2M2")
    second.get_by_label("Stump shade").select_option("ND3")
    # Pressing a tooth again takes it off; once more puts it back.
    tooth_30.click()
    expect(rows).to_have_count(1)
    tooth_30.click()
    expect(rows).to_have_count(2)
    again = page.locator("#tooth-rows tr[data-fdi='46']")
    expect(again.get_by_label("Material")).to_have_value("emax")  # carried over from tooth 19
    again.get_by_label("Material").select_option(label="Zirconia, full-contour")
    again.get_by_label("Shade", exact=True).select_option("A2")
    again.get_by_label("Stump shade").select_option("")
    screenshot(page, "case-new-01-filled")
    page.get_by_role("button", name="Create case").click()

    case = Case.objects.get()
    expect(page.get_by_role("heading", name=re.compile(case.number))).to_be_visible()
    assert sorted(case.items.values_list("tooth", "material", "shade", "stump_shade")) == [
        (36, "emax", "2M2", "ND3"),
        (46, "zirconia_full", "A2", ""),
    ]
    missing = page.locator("#case-readiness")
    expect(missing).to_contain_text("Add 3 more scan file(s)")
    send = page.get_by_role("button", name="Send to lab")
    expect(send).to_be_disabled()
    assert_no_inline_scripts(page)
    screenshot(page, "case-detail-01-draft")

    scans = []
    for label in ("upper", "lower", "bite"):
        path = tmp_path / f"ROE_JANE_19610402_{label}.stl"
        path.write_bytes(binary_stl(4000, header=b"Jane Roe 1961-04-02"))
        scans.append(path)
    page.locator("#uploader input[type=file]:not([webkitdirectory])").first.set_input_files(scans)
    attach_rows = page.locator("#attach-list .attach-row")
    expect(attach_rows).to_have_count(3)
    expect(attach_rows.nth(2).get_by_label("Label")).to_have_value("bite")
    expect(attach_rows.nth(0).get_by_label("Kind")).to_have_value("scan")
    screenshot(page, "case-detail-02-chosen")
    page.get_by_role("button", name=re.compile(r"^Upload 3 files")).click()
    expect(page.locator("#attach-list .attach-row[data-state=done]")).to_have_count(3, timeout=60_000)
    expect(missing).not_to_contain_text("scan file")
    expect(missing).to_contain_text("Add 2 more photo file(s)")
    expect(send).to_be_disabled()
    files = page.locator("#case-files")
    expect(files).to_contain_text(f"{case.number}_upper_1.stl")
    expect(files).not_to_contain_text("ROE")
    screenshot(page, "case-detail-03-scans")

    photos = []
    for n in (1, 2):
        path = tmp_path / f"jane roe shade {n}.jpg"
        path.write_bytes(identifying_jpeg())
        photos.append(path)
    page.locator("#uploader input[type=file]:not([webkitdirectory])").first.set_input_files(photos)
    expect(attach_rows).to_have_count(5)
    expect(attach_rows.nth(4).get_by_label("Kind")).to_have_value("photo")
    expect(attach_rows.nth(4).get_by_label("Label")).to_have_value("shade")
    page.get_by_role("button", name=re.compile(r"^Upload 2 files")).click()
    expect(page.locator("#attach-list .attach-row[data-state=done]")).to_have_count(5, timeout=60_000)
    expect(missing).to_contain_text("Ready to send")
    expect(send).to_be_enabled()
    screenshot(page, "case-detail-04-ready")
    send.click()
    expect(page.get_by_text(f"{case.number} was sent to Precision Lab.")).to_be_visible()
    case.refresh_from_db()
    assert case.status == Status.SUBMITTED
    assert all(a.stored_object.current_version == 2 for a in case.attachments.select_related("stored_object"))


def test_a_search_typed_on_the_open_tab_finds_a_completed_case_and_keeps_the_name_out_of_the_url(
    page: Page, connected: Personas
) -> None:
    p = connected
    access = resolve(p.members["clinician"], p.practice)
    assert access is not None
    from casebridge.cases import actions

    done = actions.create_case(access, patient_name="Rosa Carter", case_type="digital_crown")
    Case.objects.filter(pk=done.pk).update(status=Status.COMPLETED)
    actions.create_case(access, patient_name="Ann Other", case_type="digital_crown")
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/?view=open")
    expect(page.get_by_role("table")).not_to_contain_text(done.number)  # completed: not an open case

    page.get_by_label("Search all cases").fill("Carter")
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_contain_text("1 case found in all cases")
    table = page.get_by_role("table")
    expect(table).to_contain_text(done.number)
    expect(table).to_contain_text("Completed")
    expect(table).not_to_contain_text("Ann Other")
    assert "Carter" not in page.url
    page.get_by_role("link", name="Clear search").click()
    expect(page.get_by_role("table")).to_contain_text("Ann Other")


def test_download_all_saves_one_zip_with_the_case_names(page: Page, connected: Personas, tmp_path: Path) -> None:
    import zipfile

    from casebridge.imaging.tests.cases import attach, draft_case

    p = connected
    access = resolve(p.members["clinician"], p.practice)
    assert access is not None
    case = draft_case(access)
    attach(access, case, binary_stl(900), kind="scan", label="upper")
    attach(access, case, binary_stl(950), kind="scan", label="lower")
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")

    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download all")).click()

    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"{case.number}.zip"
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == [f"{case.number}_lower_1.stl", f"{case.number}_upper_1.stl"]


def test_download_de_identified_saves_the_files_and_the_report(page: Page, connected: Personas, tmp_path: Path) -> None:
    import zipfile

    from casebridge.imaging import synthetic
    from casebridge.imaging.tests.cases import attach, draft_case

    p = connected
    access = resolve(p.members["clinician"], p.practice)
    assert access is not None
    case = draft_case(access)
    attach(access, case, synthetic.dicom_image("browser", patient_name="ROE^JANE"), kind="cbct", label="cbct")
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")

    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download de-identified")).click()

    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"{case.number}_deidentified.zip"
    with zipfile.ZipFile(saved) as archive:
        names = sorted(archive.namelist())
        assert names == [f"{case.number}_cbct_1.dcm", "deidentification-report.json", "deidentification-report.txt"]
        assert b"ROE^JANE" not in archive.read(f"{case.number}_cbct_1.dcm")


def test_the_tooth_chart_is_one_tab_stop_with_arrows_inside(page: Page, connected: Personas) -> None:
    p = connected
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/new/")
    teeth = page.locator("#tooth-chart button.tooth")
    assert page.locator("#tooth-chart button.tooth[tabindex='0']").count() == 1
    assert teeth.count() > 30

    # Tab into the chart: one stop, on the first tooth; one more Tab leaves it.
    first = teeth.first
    first.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    expect(first).to_be_focused()
    page.keyboard.press("ArrowRight")
    second = teeth.nth(1)
    expect(second).to_be_focused()
    page.keyboard.press("ArrowDown")  # to the lower arch, same place
    focused = page.evaluate("() => document.activeElement.closest('.chart-row').classList.contains('lower')")
    assert focused
    page.keyboard.press("Space")
    expect(page.locator("#tooth-rows tr")).to_have_count(1)
    page.keyboard.press("Tab")
    assert page.evaluate("() => !document.activeElement.classList.contains('tooth')")
    # Coming back lands on the tooth last used, not on the first one.
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.closest('.chart-row').classList.contains('lower')")
