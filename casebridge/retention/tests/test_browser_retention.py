"""In the browser: the owner of a practice in a state the table does not list records its rule
from the keyboard, then sets the case-file policy under it; a policy below the declared floor is
refused in place."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import build_personas
from casebridge.retention import policies
from casebridge.retention.models import DeclaredStateRule, RetentionPolicy

pytestmark = pytest.mark.browser


def test_an_owner_declares_a_states_rule_and_keeps_case_files_under_it(
    transactional_db: None, new_context: Callable[[], BrowserContext]
) -> None:
    personas = build_personas()
    code, name = sorted(policies.unlisted_states().items(), key=lambda kv: kv[1])[0]
    page = new_context().new_page()
    sign_in(page, personas.members["owner"])
    page.goto(f"/o/{personas.practice.slug}/retention/")
    assert_no_inline_scripts(page)

    page.get_by_label("State", exact=True).nth(1).select_option(label=name)
    page.get_by_label("Years after the last treatment").fill("7")
    page.get_by_label("A minor's records kept until age").fill("21")
    page.get_by_label("The rule (citation)").fill("Board Rule 12.3")
    page.get_by_label("I checked this rule with counsel").check()
    page.get_by_label("The rule (citation)").press("Enter")

    expect(page.get_by_text(f"{name}'s rule is recorded")).to_be_visible()
    expect(page.get_by_text(f"Declared: {name}, 7 years after the last treatment, minors until age 21")).to_be_visible()
    declared = DeclaredStateRule.objects.get()
    assert declared.state == code
    assert accessibility_violations(page) == []
    screenshot(page, "retention-01-declared")

    as_declared = f"Board Rule 12.3 (as declared by the organization on {declared.declared_at:%Y-%m-%d})"
    page.get_by_label("State", exact=True).first.select_option(label=f"{name}: 7 years ({as_declared})")
    page.get_by_label("Keep for").first.fill("5")
    page.get_by_label("Keep for").first.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("must be kept at least 2557 days")
    assert not RetentionPolicy.objects.exists()

    page.get_by_label("Keep for").first.fill("8")
    page.get_by_label("Keep for").first.press("Enter")
    expect(page.get_by_text("Retention policy saved.")).to_be_visible()
    assert RetentionPolicy.objects.get().preset == policies.DECLARED
