"""In the browser: a clinician orders a CBCT for a case from the keyboard; the imaging center's
technologist finds it waiting, opens it (patient and order, no prescription), confirms it and is
offered the drop zone and the STOW-RS address; no accessibility violations on either side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from casebridge.access.policy import resolve
from casebridge.accounts.models import User
from casebridge.cases.models import ImagingOrder, ImagingOrderStatus
from casebridge.cases.tests.test_workflow import _ready_crown
from casebridge.core.browser_testing import accessibility_violations, assert_no_inline_scripts, sign_in
from casebridge.core.testing import Personas, add_member, build_personas, make_org, make_user
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, OrgKind

pytestmark = pytest.mark.browser


@pytest.fixture
def world(transactional_db: None, vault_home: Path) -> tuple[Personas, User]:
    p = build_personas()
    center = make_org("Clear Imaging", OrgKind.IMAGING, slug="clear-imaging")
    owner = make_user("owner@clear.test")
    add_member(center, owner, "owner")
    technologist = make_user("tech@clear.test", full_name="Tess Technologist")
    add_member(center, technologist, "staff")
    practice_owner = resolve(p.members["owner"], p.practice)
    assert practice_owner is not None
    for other, manager in ((p.lab, p.lab_manager), (center, owner)):
        connection = org_actions.request_connection(
            practice_owner, other_slug=other.slug, basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
        )
        accepting = resolve(manager, other)
        assert accepting is not None
        org_actions.accept_connection(accepting, connection)
    return p, technologist


def test_a_clinician_orders_a_cbct_and_the_center_confirms_it(
    world: tuple[Personas, User], new_context: Callable[[], BrowserContext]
) -> None:
    p, technologist = world
    case = _ready_crown(p)
    page: Page = new_context().new_page()
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    section = page.get_by_role("region", name="Imaging orders")
    expect(section.get_by_text("Order a CBCT or X-ray from an imaging center")).to_be_visible()
    section.get_by_label("Imaging center").select_option(label="Clear Imaging")
    section.get_by_label("Study").select_option(label="CBCT (cone beam CT)")
    section.get_by_label("Region").select_option(label="Localized (the teeth named)")
    section.get_by_label("Teeth").fill("36 37")
    section.get_by_label("Clinical question").fill("Bone volume at 36 before an implant.")
    section.get_by_role("button", name="Send the order").press("Enter")
    expect(page.get_by_text("CBCT (cone beam CT) ordered from Clear Imaging.")).to_be_visible()
    expect(section.get_by_text("Sent to the imaging center")).to_be_visible()
    assert accessibility_violations(page) == []
    assert_no_inline_scripts(page)

    center_page: Page = new_context().new_page()
    sign_in(center_page, technologist)
    center_page.goto("/o/clear-imaging/cases/?view=waiting")
    center_page.get_by_role("link", name=case.number).click()
    expect(center_page.get_by_role("heading", name="Patient")).to_be_visible()
    expect(center_page.get_by_text("Jane Roe")).to_be_visible()
    expect(center_page.get_by_role("heading", name="Prescription")).to_have_count(0)
    expect(center_page.get_by_text("Bone volume at 36 before an implant.")).to_be_visible()
    center_page.get_by_role("button", name="Confirm order").click()
    expect(center_page.get_by_role("button", name="Deliver to the practice")).to_be_visible()
    expect(center_page.get_by_text(f"/dicomweb/cases/{case.number}/studies")).to_be_visible()
    assert accessibility_violations(center_page) == []
    assert ImagingOrder.objects.get().status == ImagingOrderStatus.RECEIVED
