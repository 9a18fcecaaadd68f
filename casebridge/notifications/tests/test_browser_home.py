"""In two browsers: the lab lands on its work queue and production board, follows the bell to a
new case by keyboard and confirms receipt; the practice's open case page and bell update by
themselves, without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.cases.tests import test_browser_case
from casebridge.cases.tests.test_workflow import _access, _ready_crown
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas

pytestmark = pytest.mark.browser
connected = test_browser_case.connected  # the fixture: clinician and lab connected under a BAA


def _bell(page: Page) -> object:
    return page.get_by_role("link", name=re.compile(r"^Notifications"))


def test_the_lab_works_from_its_queue_and_bell_and_the_practice_sees_it_live(
    new_context: object, connected: Personas, settings: pytest.FixtureRequest
) -> None:
    p = connected
    settings.CASE_LIVE_POLL_SECONDS = 1
    settings.NOTIFICATION_POLL_SECONDS = 1
    case: Case = _ready_crown(p)
    actions.submit_case(_access(p), case)
    make = new_context
    lab: Page = make().new_page()
    practice: Page = make().new_page()

    # --- the lab lands on what needs it ------------------------------------------------------
    sign_in(lab, p.lab_manager)
    expect(lab.get_by_role("heading", name="What needs you")).to_be_visible()
    assert_no_inline_scripts(lab)
    waiting = lab.get_by_role("region", name=re.compile(r"^Waiting on you"))
    expect(waiting.get_by_role("link", name=case.number)).to_be_visible()
    expect(waiting).to_contain_text("Jane Roe")
    submitted = lab.get_by_role("region", name=re.compile(r"^Submitted"))
    expect(submitted.get_by_role("link", name=case.number)).to_be_visible()
    expect(
        lab.get_by_role("navigation", name="Organization").get_by_role("link", name=re.compile("^Cases"))
    ).to_contain_text("1 waiting on you")
    expect(_bell(lab)).to_have_accessible_name(re.compile(r"Notifications\s*1 unread"))
    screenshot(lab, "home-lab-queue")

    # --- the practice has the case open meanwhile --------------------------------------------
    sign_in(practice, p.members["clinician"])
    practice.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    expect(practice.locator("h1 + p > .badge")).to_have_text("Submitted")
    expect(_bell(practice)).to_have_accessible_name(re.compile(r"Notifications\s*0 unread"))

    # --- the lab follows the bell by keyboard and confirms receipt ----------------------------
    _bell(lab).focus()
    lab.keyboard.press("Enter")
    expect(lab.get_by_role("heading", name="Notifications")).to_be_visible()
    item = lab.locator(".notification.unread")
    expect(item).to_contain_text(f"{case.number}: New case for your lab")
    expect(item).not_to_contain_text("Jane")
    screenshot(lab, "notifications-page")
    open_button = lab.get_by_role("button", name=f"Open {case.number}")
    open_button.focus()
    lab.keyboard.press("Enter")
    expect(lab.get_by_role("heading", name=re.compile(case.number))).to_be_visible()
    expect(_bell(lab)).to_have_accessible_name(re.compile(r"Notifications\s*0 unread"))
    lab.get_by_role("button", name="Confirm receipt").click()
    expect(lab.locator("h1 + p > .badge")).to_have_text("Received by lab")

    # --- the practice's page and bell tell it, without a reload ------------------------------
    live = practice.locator("#case-live")
    expect(live).to_contain_text("This case is now Received by lab")
    expect(_bell(practice)).to_have_accessible_name(re.compile(r"Notifications\s*1 unread"))
    screenshot(practice, "case-live-update")
    practice.get_by_role("link", name="Reload to see what changed").click()
    expect(practice.locator("h1 + p > .badge")).to_have_text("Received by lab")
    expect(practice.locator("#case-live")).not_to_contain_text("now")
    # Opening the case counted as reading its notification.
    expect(_bell(practice)).to_have_accessible_name(re.compile(r"Notifications\s*0 unread"))
