"""Browser uploads: a staff member uploads a scan from the Files page through Uppy and our tus
endpoint; the connection drops mid-upload and the upload carries on from where it stopped."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, Route, expect

from casebridge.access.roles import Role
from casebridge.accounts.models import User
from casebridge.core.browser_testing import TIMEOUT_MS, assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import add_member, make_org, make_user
from casebridge.kernel.filetypes import ACCEPTED_TYPES_MESSAGE
from casebridge.kernel.tickets import internal_key, ticket_key
from casebridge.orgs.models import Organization
from casebridge.transfer import testing as transfer_testing
from casebridge.vault import api as vault
from casebridge.vault import transfer
from casebridge.vault.models import StoredObject, Upload
from casebridge.vault.tests.samples import binary_stl
from casebridge.vault.views import UPLOAD_CHUNK_BYTES

pytestmark = pytest.mark.browser

MiB = 1 << 20
# Identifying names, as real exports often have: they must stay in the browser.
SCAN_NAME = "Jane Doe 1961-04-02 lower arch.stl"
LETTER_NAME = "Jane Doe referral.html"


@dataclass
class TusTraffic:
    """What the page sent to /api/v1/uploads/, and a switch that drops the connection."""

    cut: bool = False
    dropped: list[int] = field(default_factory=list)
    answered: list[tuple[str, int | None, int]] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        request = route.request
        offset = request.headers.get("upload-offset")
        if self.cut and request.method == "PATCH" and offset not in (None, "0"):
            # The first slice went through; everything after it meets a dead network.
            self.dropped.append(int(offset))
            route.abort("internetdisconnected")
            return
        route.continue_()

    def response(self, response: Response) -> None:
        request = response.request
        if "/api/v1/uploads/" not in request.url and not urlsplit(request.url).path.startswith("/u/"):
            return
        offset = request.headers.get("upload-offset")
        self.answered.append((request.method, int(offset) if offset else None, response.status))
        if request.method == "POST":
            self.metadata.append(request.headers.get("upload-metadata", ""))

    def successful_patch_offsets(self) -> list[int | None]:
        return [offset for method, offset, status in self.answered if method == "PATCH" and status == 204]


@pytest.fixture
def staff_member(transactional_db: None, vault_home: Path) -> tuple[User, Organization]:
    org = make_org("Smile Dental")
    staff = make_user("sam@smile.test", full_name="Sam Staff")
    add_member(org, staff, Role.STAFF)
    return staff, org


@pytest.fixture(params=["by the application", "by the transfer server"])
def upload_page(request: pytest.FixtureRequest, browser: Browser, settings: Any) -> Iterator[Page]:
    """The Files page's uploads sent to the application itself (pytest-django's live server), or,
    as under `casebridge serve`, from an https page to a real transfer server on another port."""
    if request.param == "by the application":
        yield request.getfixturevalue("page")
        return
    site, _tmp = request.getfixturevalue("https_site")
    servers: list[transfer_testing.RunningTransferServer] = request.getfixturevalue("transfer_servers")
    transfer.use_transfer_server(servers[0].url)
    # The transfer server's certificate is self-signed, as `casebridge serve` makes it.
    context = browser.new_context(base_url=site, ignore_https_errors=True, viewport={"width": 1100, "height": 850})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
        transfer.use_transfer_server(None)


def _start_transfer_server(
    settings: Any, site: str, tmp: Path, port: int = 0
) -> transfer_testing.RunningTransferServer:
    return transfer_testing.start(
        tmp,
        ticket_key(settings.SECRET_KEY),
        settings.VAULT_STORAGE_URL,
        internal=internal_key(settings.SECRET_KEY),
        app_url=site,
        app_origin=site,
        port=port,
    )


@pytest.fixture
def transfer_servers(
    vault_home: Path, https_site: tuple[str, Path], settings: Any
) -> Iterator[list[transfer_testing.RunningTransferServer]]:
    """The real transfer server process the page's uploads go to (its successors, once a test
    killed it and started another on its port, come after it)."""
    site, tmp = https_site
    servers = [_start_transfer_server(settings, site, tmp)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def traffic(upload_page: Page) -> TusTraffic:
    watched = TusTraffic()
    upload_page.route("**/api/v1/uploads/**", watched.route)
    upload_page.route("**/u/**", watched.route)  # the transfer server's upload URLs
    upload_page.on("response", watched.response)
    return watched


@pytest.fixture
def csp_violations(upload_page: Page) -> list[str]:
    found: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    upload_page.on("console", note)
    return found


def open_files_page(page: Page, user: User) -> None:
    sign_in(page, user)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Files").click()
    expect(page.get_by_role("heading", name="Files", exact=True)).to_be_visible()
    expect(page.locator("#uploader .uppy-Dashboard")).to_be_visible()
    assert_no_inline_scripts(page)


def choose_file(page: Page, path: Path) -> None:
    page.locator("#uploader input[type=file]:not([webkitdirectory])").first.set_input_files(path)
    expect(page.locator("#uploader").get_by_text(path.name)).to_be_visible()


def decoded_metadata(header: str) -> dict[str, str]:
    pairs = (item.strip().partition(" ") for item in header.split(",") if item.strip())
    return {key: base64.b64decode(value).decode() for key, _, value in pairs}


def test_upload_survives_a_dropped_connection_and_resumes_where_it_stopped(
    upload_page: Page,
    staff_member: tuple[User, Organization],
    traffic: TusTraffic,
    csp_violations: list[str],
    tmp_path: Path,
) -> None:
    page, (staff, org) = upload_page, staff_member
    content = binary_stl(UPLOAD_CHUNK_BYTES * 3 // 2)
    scan = tmp_path / SCAN_NAME
    scan.write_bytes(content)
    assert len(content) > UPLOAD_CHUNK_BYTES  # at least two PATCH requests

    open_files_page(page, staff)
    expect(page.get_by_text("No files yet.")).to_be_visible()
    screenshot(page, "files-01-empty")
    choose_file(page, scan)
    screenshot(page, "files-02-chosen")

    # Start; the first slice is stored, then the network goes away before the next one.
    traffic.cut = True
    with page.expect_event("requestfailed", predicate=lambda r: r.method == "PATCH"):
        page.get_by_role("button", name=re.compile(r"^Upload 1 file")).click()
    page.context.set_offline(True)

    # The page says what happened, and the upload stalls past the first slice instead of failing.
    expect(page.locator("#upload-status")).to_contain_text("Connection lost")
    total = page.get_by_label("All files")
    expect(total).to_have_js_property("value", round(100 * UPLOAD_CHUNK_BYTES / len(content)))  # 67%
    assert traffic.dropped and set(traffic.dropped) == {UPLOAD_CHUNK_BYTES}
    upload = Upload.objects.get()
    assert (upload.offset, upload.completed_at) == (UPLOAD_CHUNK_BYTES, None)
    assert not StoredObject.objects.exists()
    screenshot(page, "files-03-offline")

    # The connection comes back: the upload carries on by itself, from the server's offset.
    traffic.cut = False
    page.context.set_offline(False)
    expect(page.locator("#upload-status")).to_contain_text("Upload complete", timeout=60_000)
    expect(total).to_have_js_property("value", 100)

    stored = StoredObject.objects.get()
    recent = page.locator("#recent-files")
    expect(recent.get_by_role("row", name=re.compile("not on a case"))).to_be_visible()
    expect(recent.get_by_role("link", name=re.compile(r"^STL scan uploaded "))).to_have_attribute(
        "href", f"/api/v1/files/{stored.pk}/content"
    )
    expect(recent).not_to_contain_text("Jane Doe")
    screenshot(page, "files-04-complete")

    # Byte for byte what was chosen, decrypted from the vault.
    version = vault.get_version(stored)
    assert version.size == len(content)
    assert b"".join(bytes(segment) for segment in vault.read_version(version)) == content
    assert (stored.file_type, stored.created_by_id) == ("stl", staff.pk)

    # One tus upload, created once, whose offset advanced over two PATCHes: it resumed at one slice.
    upload = Upload.objects.get()
    assert upload.object_id == stored.pk
    assert upload.offset == upload.length == len(content)
    assert upload.completed_at is not None
    assert [m for m, _, _ in traffic.answered].count("POST") == 1
    assert traffic.successful_patch_offsets() == [0, UPLOAD_CHUNK_BYTES]

    # The server never saw the file's name: the organization is the only metadata.
    assert [decoded_metadata(m) for m in traffic.metadata] == [{"organization": org.slug}]
    assert csp_violations == []


def test_a_file_of_another_type_is_refused_with_the_accepted_types(
    upload_page: Page,
    staff_member: tuple[User, Organization],
    traffic: TusTraffic,
    csp_violations: list[str],
    tmp_path: Path,
) -> None:
    page, (staff, _) = upload_page, staff_member
    open_files_page(page, staff)

    # Dropped onto the dashboard, as from the desktop.
    page.evaluate(
        """name => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["<!DOCTYPE html><html><body><p>Referral</p></body></html>"], name,
                                        {type: "text/html"}));
            const target = document.querySelector("#uploader .uppy-Dashboard-inner");
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        LETTER_NAME,
    )
    # Judged from its first bytes in the browser: refused before a byte is sent, named (the name
    # stays in this page), with what it looked like and what is accepted.
    problem = page.locator("#upload-problem")
    expect(problem).to_have_text(f"{LETTER_NAME}: Not uploaded: it is a web page. {ACCEPTED_TYPES_MESSAGE}")
    expect(problem).to_have_attribute("role", "alert")
    expect(page.locator("#uploader").get_by_text(LETTER_NAME)).to_have_count(0)  # nothing left to retry
    screenshot(page, "files-05-refused")

    assert traffic.answered == []  # no tus request at all
    assert not StoredObject.objects.exists()
    assert not Upload.objects.exists()
    expect(page.get_by_text("No files yet.")).to_be_visible()
    assert csp_violations == []


@pytest.mark.parametrize("upload_page", ["by the transfer server"], indirect=True)
def test_an_upload_from_an_https_page_goes_through_the_transfer_server_and_comes_back(
    upload_page: Page, staff_member: tuple[User, Organization], csp_violations: list[str], tmp_path: Path
) -> None:
    """As under `casebridge serve`: the page on the application's origin, the tus Location on the
    transfer server's (another port), CORS with the session cookie, the lease and commit over
    TLS back to the application, then the download handed over with a ticket."""
    page, (staff, _org) = upload_page, staff_member
    server_url = transfer.transfer_server()
    bodies: list[tuple[str, int]] = []
    page.on("response", lambda r: bodies.append((r.url, r.status)) if r.request.method == "PATCH" else None)
    content = binary_stl(UPLOAD_CHUNK_BYTES * 3 // 2)
    scan = tmp_path / SCAN_NAME
    scan.write_bytes(content)

    open_files_page(page, staff)
    choose_file(page, scan)
    page.get_by_role("button", name=re.compile(r"^Upload 1 file")).click()
    expect(page.locator("#upload-status")).to_contain_text("Upload complete", timeout=60_000)

    stored = StoredObject.objects.get()
    assert b"".join(bytes(s) for s in vault.read_version(vault.get_version(stored))) == content
    assert [status for _, status in bodies] == [204, 204]  # two slices
    assert all(url.startswith(f"{server_url}/u/") for url, _ in bodies)
    assert csp_violations == []

    with page.expect_download() as info:
        page.locator("#recent-files").get_by_role("link", name=re.compile(r"^STL scan uploaded ")).click()
    assert info.value.url.startswith(f"{server_url}/d/")
    assert Path(info.value.path()).read_bytes() == content


@pytest.mark.parametrize("upload_page", ["by the transfer server"], indirect=True)
def test_a_large_file_of_another_type_is_refused_with_its_reason_not_retried(
    upload_page: Page, staff_member: tuple[User, Organization], traffic: TusTraffic, tmp_path: Path
) -> None:
    """Random bytes named .stl, larger than one slice: the transfer server refuses the type after
    the first MiB, while Chromium is still sending the rest of the 32 MiB slice (far beyond the
    socket buffers), then drains it. Uppy shows the 415's reason and does not retry. (Chromium
    also reads an early answer on a connection reset mid-upload, so unlike tuspy in
    test_tus_client.py this holds without the drain too: it guards the drain's effect on Uppy.)"""
    page, (staff, _) = upload_page, staff_member
    noise = tmp_path / "x.stl"
    noise.write_bytes(os.urandom(UPLOAD_CHUNK_BYTES + 3 * MiB))
    open_files_page(page, staff)
    choose_file(page, noise)
    page.get_by_role("button", name=re.compile(r"^Upload 1 file")).click()

    problem = page.locator("#upload-problem")
    expect(problem).to_have_text(f"x.stl: Not uploaded: its type is not one CaseBridge knows. {ACCEPTED_TYPES_MESSAGE}")
    row = page.locator("#file-progress li").filter(has_text="x.stl")
    expect(row).to_contain_text("refused")
    expect(page.locator("#uploader").get_by_role("button", name=re.compile("Retry", re.I))).to_have_count(0)
    patches = [(offset, status) for method, offset, status in traffic.answered if method == "PATCH"]
    assert patches == [(0, 415)]  # answered once, never retried
    assert not StoredObject.objects.exists()
    assert not Upload.objects.exists()


@pytest.mark.parametrize("upload_page", ["by the transfer server"], indirect=True)
def test_an_upload_in_flight_when_the_transfer_server_is_killed_finishes_after_its_restart(
    upload_page: Page,
    staff_member: tuple[User, Organization],
    traffic: TusTraffic,
    transfer_servers: list[transfer_testing.RunningTransferServer],
    https_site: tuple[str, Path],
    settings: Any,
    tmp_path: Path,
) -> None:
    """A 40 MiB scan sent at 8 MiB/s (Chromium's own throttling). Mid-slice the transfer server is
    killed (SIGKILL) and another starts on its port. Uppy's retries (0, 1, 3, 5... s) reach it,
    the dead request's lease is taken over at once, and the upload goes on from the offset
    checkpointed while the slice flowed, not from the slice's start."""
    page, (staff, _) = upload_page, staff_member
    content = binary_stl(40 * MiB)
    scan = tmp_path / SCAN_NAME
    scan.write_bytes(content)
    open_files_page(page, staff)
    throttle = page.context.new_cdp_session(page)
    throttle.send("Network.enable")
    throttle.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 8 * MiB},
    )
    choose_file(page, scan)
    page.get_by_role("button", name=re.compile(r"^Upload 1 file")).click()

    deadline = time.monotonic() + 30
    checkpointed = 0
    while time.monotonic() < deadline and not checkpointed:
        page.wait_for_timeout(250)
        checkpointed = Upload.objects.values_list("offset", flat=True).first() or 0
    assert 0 < checkpointed < UPLOAD_CHUNK_BYTES, "no checkpoint while the first slice flowed"
    killed = transfer_servers[0]
    killed.kill()
    killed_at = time.monotonic()
    site, tmp = https_site
    transfer_servers.append(_start_transfer_server(settings, site, tmp, port=killed.port))
    throttle.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )

    expect(page.locator("#upload-status")).to_contain_text("Upload complete", timeout=60_000)
    # Uppy's retries come 0, 1, 4, 9, 19... s after the failure, and the dead request's lease would
    # hold until at least 13 s after the kill: without the takeover a retry meets 423 and only the
    # one at 19 s gets on.
    assert 423 not in [status for method, _, status in traffic.answered if method == "PATCH"]
    assert time.monotonic() - killed_at < 17
    stored = StoredObject.objects.get()
    assert b"".join(bytes(s) for s in vault.read_version(vault.get_version(stored))) == content
    resumed_at = [offset for offset in traffic.successful_patch_offsets() if offset]
    assert resumed_at and resumed_at[0] >= checkpointed  # from the checkpoint, not from 0
