"""The whole story in two browsers: a clinician sends a night guard case with three scans; the lab
confirms receipt, asks a question, gets the answer, uploads a design the practice approves, makes,
ships, delivers and completes it; once the grace period is over the lab gets the 404 page.

Every wait ends on a condition (a status badge, a row state), never on a fixed sleep."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from casebridge.audit.models import Event
from casebridge.cases.models import Case, Status
from casebridge.cases.tests import test_browser_case
from casebridge.core.browser_testing import screenshot, sign_in
from casebridge.core.testing import Personas
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.browser
connected = test_browser_case.connected  # the fixture: clinician and lab connected under a BAA

PATIENT = "Jane Roe"


def _status(page: Page) -> object:
    return expect(page.locator("h1 + p > .badge"))


def _act(page: Page, button: str, text: str = "") -> None:
    if text:
        page.get_by_label("Note, question or message").fill(text)
    page.get_by_role("button", name=button, exact=True).click()


def _move(page: Page, status: str, label: str, tracking: str = "") -> None:
    page.get_by_label("Move to").select_option(status)
    if tracking:
        page.get_by_label("Tracking number (when shipping)").fill(tracking)
    page.get_by_role("button", name="Update status").click()
    _status(page).to_have_text(label)  # type: ignore[attr-defined]


def _upload(page: Page, files: list[Path], done: int) -> None:
    page.locator("#uploader input[type=file]:not([webkitdirectory])").first.set_input_files(files)
    rows = page.locator("#attach-list .attach-row")
    expect(rows).to_have_count(done)


def test_a_case_goes_from_practice_to_lab_and_back_and_the_lab_loses_it_after_the_grace_period(
    new_context: object, connected: Personas, tmp_path: Path, server_idle: Callable[[], Any]
) -> None:
    p = connected
    make = new_context  # type: ignore[assignment]
    practice_ctx: BrowserContext = make()  # type: ignore[operator]
    lab_ctx: BrowserContext = make()  # type: ignore[operator]
    practice, lab = practice_ctx.new_page(), lab_ctx.new_page()

    # --- the practice drafts the case and adds three scans on the case page -----------------
    sign_in(practice, p.members["clinician"])
    practice.goto(f"/o/{p.practice.slug}/cases/new/")
    practice.get_by_label("Patient name").fill(PATIENT)
    practice.get_by_label("Date of birth").fill("1961-04-02")
    practice.get_by_label("Chart number").fill("A-77")
    practice.get_by_label("Case type").select_option("night_guard")
    practice.get_by_label("Lab").select_option(label="Precision Lab")
    practice.get_by_label("Due date").fill((timezone.now().date() + timedelta(days=7)).isoformat())
    practice.get_by_label("Shipping address").fill("1 Main St, Springfield")
    arch = practice.locator("#arch-part")
    expect(arch).to_be_visible()
    arch.get_by_label("Both").check()
    practice.locator("#arch_restoration").select_option("night_guard")
    practice.locator("#arch_material").select_option("acrylic")
    practice.get_by_role("button", name="Create case").click()
    expect(practice.get_by_role("heading", name=re.compile(r"CB-\d{4}-\d{6}"))).to_be_visible()
    case = Case.objects.get()
    assert case.case_type == "night_guard" and case.patient.name == PATIENT

    scans = []
    for label in ("upper", "lower", "bite"):
        path = tmp_path / f"ROE_JANE_19610402_{label}.stl"
        path.write_bytes(binary_stl(3000, header=b"Jane Roe 1961-04-02"))
        scans.append(path)
    _upload(practice, scans, 3)
    practice.get_by_role("button", name=re.compile(r"^Upload 3 files")).click()
    expect(practice.locator("#attach-list .attach-row[data-state=done]")).to_have_count(3, timeout=60_000)
    expect(practice.locator("#case-readiness")).to_contain_text("Ready to send")
    practice.get_by_role("button", name="Send to lab").click()
    expect(practice.get_by_text(f"{case.number} was sent to Precision Lab.")).to_be_visible()
    _status(practice).to_have_text("Submitted")  # type: ignore[attr-defined]

    # --- the lab finds it on its dashboard, confirms receipt and asks a question -----------
    sign_in(lab, p.lab_manager)
    lab.goto(f"/o/{p.lab.slug}/cases/")
    lab.get_by_role("link", name=case.number).click()
    _status(lab).to_have_text("Submitted")  # type: ignore[attr-defined]
    expect(lab.locator("#case-files")).to_contain_text(f"{case.number}_upper_1.stl")
    expect(lab.locator("#case-files")).not_to_contain_text("ROE")
    _act(lab, "Confirm receipt")
    _status(lab).to_have_text("Received by lab")  # type: ignore[attr-defined]
    _act(lab, "Ask a question (put on hold)", "Hard or soft splint?")
    _status(lab).to_have_text("On hold: question to the practice")  # type: ignore[attr-defined]

    # --- the practice sees the unread question and answers it ------------------------------
    practice.goto(f"/o/{p.practice.slug}/cases/")
    row = practice.get_by_role("row").filter(has_text=case.number)
    expect(row).to_contain_text("1 unread")
    row.get_by_role("link", name=case.number).click()
    question = practice.locator("#conversation li").filter(has_text="Hard or soft splint?")
    expect(question.locator(".badge", has_text="new")).to_be_visible()
    _act(practice, "Answer and continue", "Hard, please.")
    _status(practice).to_have_text("Received by lab")  # type: ignore[attr-defined]

    # --- the lab designs, uploads the design and asks for approval -------------------------
    lab.reload()
    expect(lab.locator("#conversation")).to_contain_text("Hard, please.")
    _move(lab, "in_design", "In design")
    design = tmp_path / "splint_design.stl"
    design.write_bytes(binary_stl(2000))
    _upload(lab, [design], 1)
    lab.locator("#attach-list .attach-row").first.get_by_label("Kind").select_option("design")
    lab.get_by_role("button", name=re.compile(r"^Upload 1 file")).click()
    expect(lab.locator("#attach-list .attach-row[data-state=done]")).to_have_count(1, timeout=60_000)
    expect(lab.locator("#case-files")).to_contain_text("Design for approval")
    _act(lab, "Send design for approval")
    _status(lab).to_have_text("Design approval requested")  # type: ignore[attr-defined]

    # --- the practice approves -------------------------------------------------------------
    practice.reload()
    expect(practice.locator("#case-files")).to_contain_text("Design for approval")
    _act(practice, "Approve design", "Looks good.")
    _status(practice).to_have_text("Design approved")  # type: ignore[attr-defined]

    # --- the lab makes, checks, ships, delivers and completes ------------------------------
    lab.reload()
    _move(lab, "in_production", "In production")
    _move(lab, "quality_check", "Quality check")
    _move(lab, "shipped", "Shipped", tracking="1Z999AA10123456784")
    expect(lab.get_by_text("tracking 1Z999AA10123456784")).to_be_visible()
    _move(lab, "delivered", "Delivered")
    _act(lab, "Complete")
    _status(lab).to_have_text("Completed")  # type: ignore[attr-defined]
    screenshot(lab, "story-01-completed")
    practice.reload()
    _status(practice).to_have_text("Completed")  # type: ignore[attr-defined]

    case.refresh_from_db()
    assert case.status == Status.COMPLETED and case.tracking_number == "1Z999AA10123456784"
    assert case.lab_access_until is not None
    actions_done = set(Event.objects.filter(patient_ref=str(case.patient_id)).values_list("action", flat=True))
    assert {"case.submitted", "case.received", "case.on_hold", "case.design.approved", "case.completed"} <= actions_done

    # --- after the grace period the lab gets the 404 page ----------------------------------
    with server_idle():  # the pages may still be polling
        Case.objects.filter(pk=case.pk).update(lab_access_until=timezone.now() - timedelta(seconds=1))
    response = lab.goto(f"/o/{p.lab.slug}/cases/{case.number}/")
    assert response is not None and response.status == 404
    expect(lab.locator("body")).not_to_contain_text(PATIENT)
    lab.goto(f"/o/{p.lab.slug}/cases/?view=all")
    expect(lab.get_by_role("link", name=case.number)).to_have_count(0)
    screenshot(lab, "story-02-lab-lost-access")
