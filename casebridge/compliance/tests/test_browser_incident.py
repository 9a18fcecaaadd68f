"""In the browser: a compliance officer records an incident, assesses the four factors, decides
it is a breach, sees the clocks and marks the individuals' notice sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, expect

from casebridge.compliance.models import Incident
from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, sign_in
from casebridge.core.testing import build_personas

pytestmark = pytest.mark.browser


def test_an_officer_records_assesses_and_follows_an_incident(
    transactional_db: None, new_context: Callable[[], BrowserContext]
) -> None:
    personas = build_personas()
    page = new_context().new_page()
    sign_in(page, personas.members["compliance_officer"])
    page.goto(f"/o/{personas.practice.slug}/")
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Incidents").click()
    page.get_by_label("Title").fill("Misdirected e-mail")
    page.get_by_label("What happened").fill("Scans sent to the wrong lab address.")
    discovered = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("Discovered").fill(discovered)
    page.get_by_role("button", name="Record the incident").click()
    expect(page.get_by_role("heading", name="Misdirected e-mail")).to_be_visible()
    expect(page.get_by_text("The clocks appear once the incident is decided a breach")).to_be_visible()
    page.get_by_label("1. The PHI involved").fill("Intraoral scans and a name.")
    page.get_by_label("2. Who used it or received it").fill("Another lab, under a BAA with us.")
    page.get_by_label("3. Was it actually acquired or viewed?").fill("Opened, then deleted.")
    page.get_by_label("4. How far the risk was mitigated").fill("Deletion attested in writing.")
    page.get_by_label("Individuals affected").fill("1")
    page.get_by_label("Most in one State").fill("1")
    page.locator("#id_decision").select_option(label="Breach: notification required")
    page.get_by_label("Why").fill("Viewed by an unauthorized recipient.")
    page.get_by_role("button", name="Save the assessment").click()
    clocks = page.get_by_role("region", name="Notification clocks")
    expect(clocks.get_by_text("Each affected individual")).to_be_visible()
    expect(clocks.get_by_text("HHS (annual log of small breaches)")).to_be_visible()
    clocks.get_by_role("button", name="Mark sent").first.click()
    expect(page.get_by_text("Notice marked sent.")).to_be_visible()
    assert accessibility_violations(page) == []
    assert_no_inline_scripts(page)
    assert "individuals" in Incident.objects.get().notices
