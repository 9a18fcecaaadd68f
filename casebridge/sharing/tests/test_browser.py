"""A recipient in a real browser: opens the e-mailed link, asks for a code, types the code from
the second e-mail, sees only the shared files and downloads one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from playwright.sync_api import Browser, Page, expect

from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas
from casebridge.kernel.tickets import ticket_key
from casebridge.sharing import actions
from casebridge.sharing.models import ExternalLink
from casebridge.sharing.tests.conftest import PATIENT, RECIPIENT, build_case, last_code, last_token
from casebridge.transfer import testing
from casebridge.vault import transfer

pytestmark = pytest.mark.browser


def test_a_recipient_opens_a_link_and_downloads_a_file(page: Page, site: str, connected: Personas) -> None:
    shared = build_case(connected)
    chosen = list(shared.case.attachments.select_related("stored_object")[:2])
    actions.create_link(
        shared.access, shared.case, attachments=chosen, recipient_email=RECIPIENT, purpose="Second opinion"
    )
    token = last_token()

    page.goto(f"/s/{token}/")
    expect(page.get_by_role("heading", name="Files shared with you")).to_be_visible()
    expect(page.get_by_text("j***@example.com")).to_be_visible()
    assert PATIENT not in page.content() and shared.case.number not in page.content()
    assert_no_inline_scripts(page)

    sent_before = len(mail.outbox)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_text("We sent a code to j***@example.com")).to_be_visible()
    assert len(mail.outbox) == sent_before + 1 and mail.outbox[-1].to == [RECIPIENT]
    page.get_by_label("Code from the e-mail").fill(last_code())
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Shared files")).to_be_visible()
    screenshot(page, "sharing-recipient-files")
    name = chosen[0].display_name
    with page.expect_download() as info:
        page.get_by_role("link", name=name).click()
    downloaded = Path(info.value.path()).read_bytes()
    assert downloaded == shared.contents[str(chosen[0].stored_object_id)]
    link = ExternalLink.objects.get()
    assert link.downloads_used == 1


def test_a_download_reaches_the_browser_from_the_transfer_server(
    browser: Browser, site: str, connected: Personas, tmp_path: Path, settings: Any
) -> None:
    """The whole hand-over in a real browser: the link's 307, the ticket, TLS on the transfer
    server's own port, the attachment saved as a download."""
    shared = build_case(connected)
    chosen = list(shared.case.attachments.select_related("stored_object")[:1])
    # Originals: the transfer server hands over stored versions; de-identified copies stream from
    # the application (test_deidentified_links.py).
    actions.create_link(
        shared.access,
        shared.case,
        attachments=chosen,
        recipient_email=RECIPIENT,
        purpose="Second opinion",
        deidentify=False,
        reason="The surgeon needs the original scan",
    )
    token = last_token()
    server = testing.start(tmp_path / "transfer", ticket_key(settings.SECRET_KEY), settings.VAULT_STORAGE_URL)
    transfer.use_transfer_server(server.url)
    # The transfer server's certificate is self-signed, as `casebridge serve` makes it.
    context = browser.new_context(base_url=site, ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(f"/s/{token}/")
        page.get_by_role("button", name="Send me a code").click()
        page.get_by_label("Code from the e-mail").fill(last_code())
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="Shared files")).to_be_visible()
        with page.expect_download() as info:
            page.get_by_role("link", name=chosen[0].display_name).click()
        assert info.value.url.startswith(f"{server.url}/d/")
        assert Path(info.value.path()).read_bytes() == shared.contents[str(chosen[0].stored_object_id)]
        name = info.value.suggested_filename  # the case's name of the file: which scan it is, no patient
        assert name == chosen[0].display_name and PATIENT not in name
    finally:
        context.close()
        transfer.use_transfer_server(None)
        server.stop()


def test_sharing_with_no_file_chosen_is_refused_in_place_on_the_case_page(
    page: Page, site: str, connected: Personas
) -> None:
    shared = build_case(connected)
    sign_in(page, connected.members["clinician"])
    case_url = f"/o/{connected.practice.slug}/cases/{shared.case.number}/"
    page.goto(case_url)
    section = page.locator("#sharing")
    section.get_by_label("Recipient's e-mail").fill(RECIPIENT)
    section.get_by_label("Purpose (for the patient's accounting of disclosures)").fill("Second opinion")
    section.get_by_role("button", name="Share and e-mail the link").click()

    files = section.get_by_role("group", name="Files to share")
    expect(files.get_by_text("Choose at least one file to share.")).to_be_visible()
    assert page.url.endswith(case_url)  # still the case page: htmx replaced the section alone
    expect(section.get_by_label("Recipient's e-mail")).to_have_value(RECIPIENT)
    first_file = files.get_by_role("checkbox").first
    expect(first_file).to_be_focused()  # the keyboard is where the fix is needed
    # Styled as an error (the danger colour), not plain grey text.
    colour = files.locator(".error").evaluate("el => getComputedStyle(el).color")
    assert colour != section.locator("h2").evaluate("el => getComputedStyle(el).color")
    screenshot(page, "sharing-no-file-chosen")
    assert not ExternalLink.objects.exists()

    first_file.check()
    section.get_by_role("button", name="Share and e-mail the link").click()
    expect(section.get_by_role("status")).to_contain_text("The link was e-mailed to j***@example.com")
    expect(section.get_by_role("cell", name=RECIPIENT)).to_be_visible()
    assert page.url.endswith(case_url)
    assert ExternalLink.objects.count() == 1
