"""The Files page as an inbox, in a real browser: a clinician uploads a scan there, attaches it
to a draft case with the keyboard, finds it on the case page; and deletes an upload made by
mistake after confirming with a reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas, build_personas
from casebridge.imaging.tests.cases import clinician_access, draft_case
from casebridge.vault.models import StoredObject
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.browser


@pytest.fixture
def practice(transactional_db: None, vault_home: Path) -> Personas:
    return build_personas()


def upload(page: Page, path: Path) -> None:
    page.locator("#uploader input[type=file]:not([webkitdirectory])").first.set_input_files(path)
    page.get_by_role("button", name=re.compile(r"^Upload 1 file")).click()
    expect(page.locator("#upload-status")).to_contain_text("Upload complete", timeout=30_000)


def test_an_upload_waits_on_the_files_page_is_attached_to_a_case_and_shows_on_the_case_page(
    page: Page, practice: Personas, tmp_path: Path
) -> None:
    case = draft_case(clinician_access(practice), patient_name="Rosa Carter")
    scan = tmp_path / "Rosa Carter 1961-04-02 upper.stl"  # a name with PHI, as exports often have
    scan.write_bytes(binary_stl(1500))
    sign_in(page, practice.members["clinician"])
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Files").click()
    expect(page.get_by_text("No files yet.")).to_be_visible()

    upload(page, scan)
    files = page.locator("#recent-files")
    row = files.get_by_role("row", name=re.compile("STL scan uploaded .* not on a case"))
    expect(row).to_be_visible()
    expect(row).to_contain_text("by you")
    expect(files).not_to_contain_text("Rosa Carter")  # the file's name never left the computer
    screenshot(page, "inbox-01-waiting")

    # Keyboard only: the row's link, then the form's fields in order, then Enter.
    row.get_by_role("link", name=re.compile("^Attach to a case")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Attach to a case")).to_be_visible()
    assert_no_inline_scripts(page)
    case_field = page.get_by_label("Case:", exact=True)
    case_field.focus()
    case_field.select_option(label=f"{case.number} · Rosa Carter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("The file is")).to_be_focused()
    page.get_by_label("The file is").select_option(label="Scan")
    page.keyboard.press("Tab")
    page.get_by_label("Label").select_option("upper")
    screenshot(page, "inbox-02-attach")
    page.get_by_role("button", name="Attach").press("Enter")

    expect(page.get_by_text(f"Attached to {case.number} as {case.number}_upper_1.stl.")).to_be_visible()
    row = files.get_by_role("row", name=re.compile(f"{case.number}_upper_1.stl"))
    expect(row).to_contain_text("files of a case are not deleted here")
    expect(row.get_by_role("link", name=re.compile("^Delete"))).to_have_count(0)
    screenshot(page, "inbox-03-attached")
    row.get_by_role("link", name=case.number, exact=True).click()

    expect(page.get_by_role("heading", name=re.compile(case.number))).to_be_visible()
    expect(page.locator("table.files")).to_contain_text(f"{case.number}_upper_1.stl")


def test_an_upload_made_by_mistake_is_deleted_after_confirming(page: Page, practice: Personas, tmp_path: Path) -> None:
    mistake = tmp_path / "wrong.stl"
    mistake.write_bytes(binary_stl(900))
    sign_in(page, practice.members["staff"])
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Files").click()
    upload(page, mistake)
    row = page.locator("#recent-files").get_by_role("row", name=re.compile("not on a case"))
    row.get_by_role("link", name=re.compile("^Delete")).click()

    expect(page.get_by_role("heading", name="Delete this file?")).to_be_visible()
    page.get_by_role("button", name="Delete for good").click()  # no reason yet: the field says so
    expect(page.get_by_label("Why delete it?")).to_be_focused()
    assert StoredObject.objects.get().destroyed_at is None
    page.get_by_label("Why delete it?").fill("Wrong file chosen")
    screenshot(page, "inbox-04-delete")
    page.get_by_role("button", name="Delete for good").click()

    expect(page.get_by_text("its key is destroyed")).to_be_visible()
    expect(page.get_by_text("No files yet.")).to_be_visible()
    assert StoredObject.objects.get().destroyed_at is not None
