"""In the browser: an owner sets up the compliance baseline from the checklist's prompt, with the
keyboard where it matters, and watches the progress reach five of five."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, sign_in
from casebridge.core.testing import build_personas

pytestmark = pytest.mark.browser


def test_an_owner_sets_up_the_baseline(transactional_db: None, new_context: Callable[[], BrowserContext]) -> None:
    personas = build_personas()
    owner = personas.members["owner"]
    page = new_context().new_page()
    sign_in(page, owner)
    page.goto(f"/o/{personas.practice.slug}/compliance/")
    page.get_by_role("link", name="Set up your baseline").click()
    expect(page.get_by_text("0 of 5 steps done")).to_be_visible()
    assert accessibility_violations(page) == []
    officers = page.get_by_role("region", name="1. Name your privacy and security officers")
    officers.get_by_label("Privacy officer").select_option(label=owner.display_name)
    officers.get_by_label("Security officer").select_option(label=owner.display_name)
    officers.get_by_role("button", name="Save officers").click()
    expect(page.get_by_text("1 of 5 steps done")).to_be_visible()
    vendors = page.get_by_role("region", name="2. List the systems and vendors that touch patient data")
    vendors.get_by_label("E-mail provider").check()
    vendors.get_by_label("Cloud backup").focus()
    page.keyboard.press("Space")
    vendors.get_by_role("button", name="Add to the inventory").click()
    expect(page.get_by_text("2 systems added to your inventory.")).to_be_visible()
    baas = page.get_by_role("region", name="3. Record a BAA status for each of them")
    for _ in range(2):
        baas.get_by_label("BAA", exact=True).first.select_option(label="Requested")
        baas.get_by_role("button", name="Record").first.click()
        expect(page.get_by_text("BAA status recorded.")).to_be_visible()
    page.get_by_role("region", name="4. Start your first risk assessment").get_by_role(
        "button", name="Start the risk assessment"
    ).click()
    expect(page.get_by_text("Assessment started: answers")).to_be_visible()
    page.goto(f"/o/{personas.practice.slug}/compliance/setup/")
    expect(page.get_by_text("4 of 5 steps done")).to_be_visible()
    page.get_by_role("region", name="5. Assign training to your team").get_by_role(
        "button", name="Assign it to everyone"
    ).click()
    expect(page.get_by_text("5 of 5 steps done")).to_be_visible()
    expect(page.get_by_text("Baseline complete.")).to_be_visible()
    assert accessibility_violations(page) == []
    assert_no_inline_scripts(page)
