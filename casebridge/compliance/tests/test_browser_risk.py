"""In the browser: a compliance officer starts the risk assessment, sees what CaseBridge filled in
from live data, answers one question by hand and adds a risk to the register."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from casebridge.compliance.models import RiskAnswer, RiskEntry
from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, sign_in
from casebridge.core.testing import build_personas

pytestmark = pytest.mark.browser


def test_an_officer_answers_a_question_and_records_a_risk(
    transactional_db: None, new_context: Callable[[], BrowserContext]
) -> None:
    personas = build_personas()
    officer = personas.members["compliance_officer"]
    page = new_context().new_page()
    sign_in(page, officer)
    page.goto(f"/o/{personas.practice.slug}/compliance/")
    page.get_by_role("link", name="Risk assessment").click()
    expect(page.get_by_text("the first one is due now")).to_be_visible()
    assert accessibility_violations(page) == []
    page.get_by_role("button", name="Start a risk assessment").click()
    expect(page.get_by_text("Assessment started: answers")).to_be_visible()
    expect(page.locator("#q-mfa").get_by_text("from live data")).to_be_visible()
    assert accessibility_violations(page) == []

    sanctions = page.locator("#q-sanctions")
    sanctions.get_by_label("Partly").check()
    sanctions.get_by_label("Note").fill("Written, never signed by the team.")
    sanctions.get_by_role("button", name="Save answer").click()
    expect(page.get_by_text("Answer saved.")).to_be_visible()
    expect(page.locator("#q-sanctions").get_by_label("Partly")).to_be_checked()

    register = page.get_by_role("region", name="Risk register")
    register.get_by_label("Threat").fill("Phishing e-mail steals a password")
    register.get_by_label("Vulnerability").fill("Staff not trained to spot phishing")
    register.get_by_label("Likelihood (1-5)").select_option("4")
    register.get_by_label("Impact (1-5)").select_option("3")
    register.get_by_label("Owner").select_option(label=officer.display_name)
    register.get_by_role("button", name="Add to the register").click()
    expect(page.get_by_text("Risk register saved.")).to_be_visible()
    expect(page.get_by_text("4 \u00d7 3 = 12")).to_be_visible()
    assert accessibility_violations(page) == []
    assert_no_inline_scripts(page)

    answer = RiskAnswer.objects.get()
    assert (answer.question, answer.answer, answer.from_live_data) == ("sanctions", "partly", False)
    entry = RiskEntry.objects.get()
    assert entry.score == 12 and entry.owner == officer
