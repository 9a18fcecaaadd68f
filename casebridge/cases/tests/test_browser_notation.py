"""A clinician half-way through a new case switches the tooth numbering on the chart: the labels
change in place, the preference is saved without leaving the page, nothing typed is lost, and
the case is created with the right teeth."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from casebridge.cases.models import Case
from casebridge.cases.tests import test_browser_case
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas

pytestmark = pytest.mark.browser
connected = test_browser_case.connected  # the fixture: a practice connected to its lab under a BAA


def test_switching_numbering_keeps_the_half_filled_form(page: Page, connected: Personas) -> None:
    clinician = connected.members["clinician"]
    assert clinician.tooth_notation == "universal"
    sign_in(page, clinician)
    page.goto("/o/smile-dental/cases/new/")
    page.get_by_label("Patient name").fill("Jane Roe")
    page.get_by_label("Chart number").fill("A-77")
    page.get_by_label("Case type").select_option(label="Digital single crown")
    page.get_by_label("Lab").select_option(label="Precision Lab")
    page.get_by_label("Due date").fill((timezone.now().date() + timedelta(days=7)).isoformat())
    page.get_by_label("Shipping address").fill("1 Main St, Springfield")
    page.get_by_role("button", name="3, upper right first molar").click()
    row = page.locator("#tooth-rows tr[data-fdi='16']")
    expect(row.locator(".tooth-badge")).to_have_text("3")
    row.get_by_label("Material").select_option(label="Zirconia, full-contour")
    row.get_by_label("Shade", exact=True).select_option("A2")
    form_url = page.url

    with page.expect_request(lambda r: r.url.endswith("/account/preferences/notation/")) as saving:
        page.get_by_label("Tooth numbering").select_option("fdi")
    sent = saving.value.post_data or ""
    assert "tooth_notation=fdi" in sent and "Jane" not in sent and "A-77" not in sent  # the choice alone
    expect(page.locator("#notation-saved")).to_contain_text("Saved")
    expect(page.get_by_role("button", name="16, upper right first molar")).to_have_attribute("aria-pressed", "true")
    expect(row.locator(".tooth-badge")).to_have_text("16")
    expect(row.get_by_role("button", name="Remove tooth 16")).to_be_visible()
    assert page.url == form_url  # never left the page
    expect(page.get_by_label("Patient name")).to_have_value("Jane Roe")
    expect(page.get_by_label("Chart number")).to_have_value("A-77")
    expect(row.get_by_label("Material")).to_have_value("zirconia_full")
    clinician.refresh_from_db()
    assert clinician.tooth_notation == "fdi"  # the preference, for the next case too
    assert_no_inline_scripts(page)
    screenshot(page, "case-new-notation-fdi")

    page.get_by_label("Tooth numbering").select_option("palmer")
    expect(page.locator("#notation-saved")).to_contain_text("Palmer")
    expect(row.locator(".tooth-badge")).to_have_text("UR6")
    page.get_by_role("button", name="Create case").click()
    case = Case.objects.get()
    expect(page.get_by_role("heading", name=re.compile(case.number))).to_be_visible()
    assert list(case.items.values_list("tooth", flat=True)) == [16]


def test_when_saving_the_numbering_fails_the_form_still_uses_it_and_says_so(
    page: Page,
    connected: Personas,
) -> None:
    clinician = connected.members["clinician"]
    sign_in(page, clinician)
    page.goto("/o/smile-dental/cases/new/")
    page.route("**/account/preferences/notation/", lambda route: route.fulfill(status=500, body="down"))
    page.get_by_label("Patient name").fill("Jane Roe")
    page.get_by_label("Case type").select_option(label="Digital single crown")
    page.get_by_role("button", name="3, upper right first molar").click()
    page.get_by_label("Tooth numbering").select_option("fdi")
    expect(page.locator("#notation-saved")).to_contain_text("saving it as your default failed")
    expect(page.locator("#tooth-rows tr[data-fdi='16'] .tooth-badge")).to_have_text("16")
    expect(page.get_by_label("Patient name")).to_have_value("Jane Roe")
    clinician.refresh_from_db()
    assert clinician.tooth_notation == "universal"
