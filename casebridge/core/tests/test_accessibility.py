"""Every main page, as each kind of person sees it, at phone, tablet and desktop widths: axe-core
finds no serious or critical problem, nothing scrolls sideways from 360 px up, and the tooth
chart shows every tooth."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from casebridge.access.policy import resolve
from casebridge.cases.models import Case, Status
from casebridge.core.browser_testing import accessibility_violations, overflow, screenshot, sign_in
from casebridge.core.testing import Personas, build_personas
from casebridge.imaging.tests.cases import attach, draft_case, stored
from casebridge.imaging.tests.test_sanitize import identifying_jpeg
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis
from casebridge.sharing import actions as share_actions
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.browser
WIDTHS = {"phone": (360, 740), "tablet": (768, 1024), "desktop": (1280, 800)}
# For the failure message: the first element reaching past the screen, with its ancestors'
# widths and overflow (where a wide table or a fixed width pushes the page).
WIDEST = """() => {
  const past = e => e.getBoundingClientRect().right > window.innerWidth + 1;
  const leaf = [...document.querySelectorAll('body *')].find(e => past(e) && ![...e.children].some(past));
  const chain = [];
  for (let n = leaf; n && n !== document.body; n = n.parentElement) {
    chain.push(`${n.tagName.toLowerCase()}.${n.className}:${Math.round(n.getBoundingClientRect().width)}`);
  }
  return chain;
}"""


@dataclass
class World:
    personas: Personas
    case: Case
    link_token: str


@pytest.fixture
def world(transactional_db: None, vault_home: Path) -> World:
    p = build_personas()
    owner = resolve(p.members["owner"], p.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug=p.lab.slug, basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    lab = resolve(p.lab_manager, p.lab)
    assert lab is not None
    org_actions.accept_connection(lab, connection)
    clinician = resolve(p.members["clinician"], p.practice)
    assert clinician is not None
    case = draft_case(clinician, lab=p.lab)
    attach(clinician, case, binary_stl(900), kind="scan", label="upper")
    attach(clinician, case, identifying_jpeg(), kind="photo", label="shade")
    Case.objects.filter(pk=case.pk).update(status=Status.SUBMITTED)  # as if sent: shareable, the lab sees it
    case.refresh_from_db()
    share_actions.create_link(
        clinician,
        case,
        attachments=list(case.attachments.all()),
        recipient_email="patient@example.com",
        purpose="Second opinion requested by the patient",
    )
    token = re.search(r"/s/([^/\s]+)/", mail.outbox[-1].body)
    assert token is not None
    return World(p, case, token.group(1))


def check(page: Page, url: str, problems: list[str]) -> None:
    page.goto(url)
    for name, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        extra = overflow(page)
        if extra > 0:
            culprits = page.evaluate(WIDEST)
            problems.append(f"{url} at {name} ({width}px): {extra}px wider than the screen ({' < '.join(culprits)})")
        outside = page.evaluate(
            """() => [...document.querySelectorAll('.tooth')].filter(t => t.offsetParent !== null)
                .filter(t => { const r = t.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth; })
                .map(t => t.textContent.trim())"""
        )
        if outside:
            problems.append(f"{url} at {name}: teeth outside the screen: {outside}")
        if name == "phone" and url.endswith("/cases/new/"):
            screenshot(page, "case-new-phone")
        if name in ("phone", "desktop"):
            problems.extend(f"{url} at {name}: {v}" for v in accessibility_violations(page))


def test_the_practices_pages(page: Page, world: World) -> None:
    p, number = world.personas, world.case.number
    owner = resolve(p.members["owner"], p.practice)
    assert owner is not None
    draft_case(owner, lab=p.lab)  # a case the Files page can attach to
    upload = stored(owner, binary_stl(700))
    on_case = world.case.attachments.first()
    assert on_case is not None
    sign_in(page, p.members["owner"])
    problems: list[str] = []
    for url in (
        f"/o/{p.practice.slug}/files/{upload.pk}/attach/",
        f"/o/{p.practice.slug}/files/{upload.pk}/delete/",
        f"/o/{p.practice.slug}/files/{on_case.stored_object_id}/delete/",  # says why it cannot be deleted
        f"/o/{p.practice.slug}/",
        f"/o/{p.practice.slug}/cases/",
        f"/o/{p.practice.slug}/cases/new/",
        f"/o/{p.practice.slug}/cases/{number}/",
        f"/o/{p.practice.slug}/files/",
        f"/o/{p.practice.slug}/members/",
        f"/o/{p.practice.slug}/connections/",
        f"/o/{p.practice.slug}/settings/",
        f"/o/{p.practice.slug}/audit/",
        f"/o/{p.practice.slug}/disclosures/",
        f"/o/{p.practice.slug}/backups/",
        f"/o/{p.practice.slug}/retention/",
        "/account/security/",
    ):
        check(page, url, problems)
    assert problems == [], "\n".join(problems)


def test_the_labs_pages(page: Page, world: World) -> None:
    p, number = world.personas, world.case.number
    sign_in(page, p.lab_manager)
    problems: list[str] = []
    for url in (f"/o/{p.lab.slug}/", f"/o/{p.lab.slug}/cases/", f"/o/{p.lab.slug}/cases/{number}/"):
        check(page, url, problems)
    assert problems == [], "\n".join(problems)


def test_the_external_recipients_pages(page: Page, world: World) -> None:
    token = world.link_token
    problems: list[str] = []
    check(page, f"/s/{token}/", problems)
    page.set_viewport_size({"width": 360, "height": 740})
    page.get_by_role("button", name=re.compile("code", re.I)).first.click()
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert code is not None
    page.get_by_label(re.compile("code", re.I)).fill(code.group(1))
    page.get_by_role("button", name=re.compile("Verify|Continue|Open", re.I)).click()
    expect(page.get_by_role("heading", name="Shared files")).to_be_visible()
    check(page, f"/s/{token}/files/", problems)
    assert problems == [], "\n".join(problems)
