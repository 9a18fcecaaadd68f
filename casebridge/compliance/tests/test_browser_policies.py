"""In the browser: the compliance officer adapts the sanctions policy from its starting text,
approves it, a staff member acknowledges it, and the checklist takes an attestation; the pages
pass the accessibility checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, sign_in
from casebridge.core.testing import build_personas

pytestmark = pytest.mark.browser


def test_a_policy_is_written_approved_and_acknowledged(
    transactional_db: None, new_context: Callable[[], BrowserContext]
) -> None:
    personas = build_personas()
    slug = personas.practice.slug
    page = new_context().new_page()
    sign_in(page, personas.members["compliance_officer"])
    page.goto(f"/o/{slug}/compliance/")
    assert accessibility_violations(page) == []
    page.get_by_role("link", name="Policies", exact=True).first.click()
    assert accessibility_violations(page) == []
    page.get_by_role("link", name="Sanctions policy").click()
    text = page.get_by_label("Text")
    expect(text).to_contain_text("164.530(e)")
    text.fill("Sanctions policy of Smile Dental\nServes 45 CFR 164.530(e).\n1. Retraining, warning, termination.")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    page.get_by_role("button", name="Approve version 1").click()
    expect(page.get_by_text("Version 1 approved")).to_be_visible()
    assert accessibility_violations(page) == []
    assert_no_inline_scripts(page)
    page.goto(f"/o/{slug}/compliance/")
    item = page.locator("li", has_text="Devices and media encrypted")
    item.get_by_text("Attest", exact=True).click()
    item.get_by_label("What you checked, and where the evidence is").fill("Disk encryption on both laptops.")
    item.get_by_role("button", name="Attest today").click()
    expect(page.get_by_text("Attested: valid for a year.")).to_be_visible()
    page.goto(f"/o/{slug}/compliance/gdpr/")
    assert accessibility_violations(page) == []

    staff = new_context().new_page()
    sign_in(staff, personas.members["staff"])
    staff.goto(f"/o/{slug}/compliance/policies/sanctions/")
    expect(staff.get_by_text("1. Retraining, warning, termination.")).to_be_visible()
    staff.get_by_role("button", name="I have read this policy and will follow it").click()
    expect(staff.get_by_text("You acknowledged this version.")).to_be_visible()
    assert accessibility_violations(staff) == []
