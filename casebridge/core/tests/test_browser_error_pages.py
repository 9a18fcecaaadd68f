"""A member who opens a page their role does not allow, or a case that is not theirs, sees why in
the site's layout and finds the way back without typing an address."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from casebridge.access.policy import resolve
from casebridge.cases import actions
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas, build_personas

pytestmark = pytest.mark.browser


@pytest.fixture
def people(transactional_db: None) -> Personas:
    return build_personas()


def test_403_and_404_pages_say_what_happened_and_lead_back(page: Page, people: Personas) -> None:
    outsider = resolve(people.outsider, people.other_practice)
    assert outsider is not None
    their_case = actions.create_case(outsider, patient_name="Rita Other", case_type="digital_crown").number

    sign_in(page, people.members["staff"])
    page.goto("/o/smile-dental/")
    page.goto("/o/smile-dental/audit/")  # the audit log is for owners, admins and compliance
    expect(page.get_by_role("heading", name="You are not allowed to do this")).to_be_visible()
    expect(page.get_by_role("navigation", name="Organization")).to_be_visible()
    assert_no_inline_scripts(page)
    screenshot(page, "error-403")
    page.get_by_role("link", name="Go to Smile Dental").click()
    expect(page).to_have_url(re.compile(r"/o/smile-dental/$"))

    page.goto(f"/o/smile-dental/cases/{their_case}/")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    not_theirs = page.locator("main").inner_text()
    assert "Rita" not in not_theirs
    screenshot(page, "error-404")
    page.goto("/o/smile-dental/cases/CB-2026-999999/")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert page.locator("main").inner_text() == not_theirs  # nothing tells the two apart
    page.get_by_role("link", name="Go to Smile Dental").click()
    expect(page).to_have_url(re.compile(r"/o/smile-dental/$"))
