"""Pixel masks in the browser (issue 14, item 2): the practice's owner, asked to confirm their
identity once the sign-in is no longer fresh, defines a rectangle for a device model on the
settings page by keyboard, sees it drawn on the preview of a real image of the case, and downloads
the case de-identified with the masks applied: the rectangle is black in the file, the rest of
the image as it was, and Burned In Annotation says NO. A clinician is refused the settings page."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.contrib.sessions.models import Session
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect

from casebridge.access.policy import resolve
from casebridge.accounts.middleware import SESSION_AUTH_AT
from casebridge.cases.models import Case
from casebridge.cases.tests import test_browser_case
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import PASSWORD, Personas
from casebridge.imaging.models import PixelMask, Series
from casebridge.imaging.synthetic import xray_set
from casebridge.imaging.tests.cases import attach, draft_case

pytestmark = pytest.mark.browser

connected = test_browser_case.connected  # the fixture: practice and lab connected under a BAA

# x, y, width, height: the top-left strip where the synthetic sensor would write the name
RECTANGLE = (0, 0, 60, 20)


@pytest.fixture
def panoramic(connected: Personas) -> tuple[Case, bytes]:
    """A practice's case holding one panoramic X-ray of the synthetic sensor, indexed (tasks run
    inline under the test settings), and the original file."""
    access = resolve(connected.members["clinician"], connected.practice)
    assert access is not None
    case = draft_case(access)
    original = xray_set("browser-mask", images=1, modality="PX")[0]
    attach(access, case, original, kind="cbct", label="xray")
    assert Series.objects.filter(study__case=case, model="Synthetic sensor").exists()
    return case, original


def _age_sign_in(context: BrowserContext, seconds: int) -> None:
    """Move the browser's sign-in `seconds` into the past (within the session's absolute limit),
    so that a sensitive page asks for the identity again, as it would later in a working day."""
    key = next(c["value"] for c in context.cookies() if c["name"].endswith("cb_session"))
    stored = Session.objects.get(session_key=key)
    data = stored.get_decoded()
    data[SESSION_AUTH_AT] = time.time() - seconds
    for method in data.get("account_authentication_methods", []):
        method["at"] = time.time() - seconds
    stored.session_data = Session.objects.encode(data)
    stored.save(update_fields=["session_data"])


def test_the_owner_masks_a_device_previews_it_and_downloads_the_images_blanked(
    new_context: Callable[[], BrowserContext],
    connected: Personas,
    panoramic: tuple[Case, bytes],
    server_idle: Callable[[], AbstractContextManager[object]],
    tmp_path: Path,
) -> None:
    p = connected
    case, original = panoramic
    context = new_context()
    page = context.new_page()
    sign_in(page, p.members["owner"])
    expect(page.get_by_role("navigation", name="Organization")).to_be_visible()
    with server_idle():
        _age_sign_in(context, 600)

    # --- Settings -> Pixel masks ----------------------------------------------------------------
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Pixel masks for burned-in text").click()
    expect(page.get_by_role("heading", name="Pixel masks for burned-in text")).to_be_visible()
    assert_no_inline_scripts(page)
    expect(page.get_by_text("No masks yet.")).to_be_visible()
    expect(page.get_by_text("Devices in your studies: CaseBridge Synthetic sensor")).to_be_visible()

    # --- the form by keyboard: a wrong line first, refused naming it, nothing saved ---------
    page.get_by_label("Manufacturer (DICOM Manufacturer)").focus()
    page.keyboard.type("CaseBridge")
    page.keyboard.press("Tab")
    page.keyboard.type("Synthetic sensor")
    page.keyboard.press("Tab")
    page.keyboard.type("0, 0, sixty, 20")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Save mask")).to_be_focused()
    page.keyboard.press("Enter")
    # the sign-in is no longer fresh: changing a setting asks for the identity again first,
    # then the form goes on as sent
    expect(page).to_have_url(re.compile(r"/reauthenticate/"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("line 1: write x, y, width, height")
    assert not PixelMask.objects.exists()
    # the refused form came back under the re-authentication's address (page.url): it must still
    # post to the masks page; what was typed is kept, only the rectangle is written again
    expect(page.get_by_label("Model (DICOM Manufacturer's Model Name)")).to_have_value("Synthetic sensor")
    regions = page.get_by_label("Rectangles, one per line: x, y, width, height")
    regions.focus()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(", ".join(str(v) for v in RECTANGLE))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Mask saved.")).to_be_visible()
    row = page.get_by_role("row", name=re.compile("Synthetic sensor"))
    expect(row).to_contain_text("CaseBridge")
    expect(row).to_contain_text("0, 0, 60, 20")
    mask = PixelMask.objects.get(organization=p.practice)
    assert (mask.manufacturer, mask.model, mask.regions) == ("CaseBridge", "Synthetic sensor", [list(RECTANGLE)])
    screenshot(page, "pixel-masks-saved")

    # --- the case page: the preview of the real image with the rectangle drawn -------------
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    with context.expect_page() as opened:
        page.get_by_role("link", name="Pixel mask preview").click()
    preview = opened.value
    preview.wait_for_load_state()
    assert re.search(rf"/cases/{case.number}/images/[0-9a-f-]+/mask\.png$", preview.url)
    shown = preview.request.get(preview.url)
    assert shown.status == 200 and shown.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(shown.body())).convert("RGB")
    assert picture.size == (200, 160)
    red, green, blue = picture.getpixel((30, 10))  # inside the rectangle: tinted red
    assert red > 2 * green and red > 2 * blue
    outside = picture.getpixel((100, 100))
    assert outside[0] == outside[1] == outside[2]  # grey, as the image is
    preview.close()

    # --- Download de-identified, pixel masks applied -----------------------------------------
    with page.expect_download() as download:
        page.get_by_role("link", name="Download de-identified, pixel masks applied").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dcm"))
        data = archive.read(name)
        assert "Clean Pixel Data: 1 rectangle(s)" in archive.read("deidentification-report.txt").decode()
    ds = pydicom.dcmread(io.BytesIO(data))
    before = pydicom.dcmread(io.BytesIO(original)).pixel_array
    after = ds.pixel_array
    x, y, width, height = RECTANGLE
    assert before[y : y + height, x : x + width].min() > 0  # there was something to blank
    assert after[y : y + height, x : x + width].max() == 0
    untouched = np.ones(after.shape, dtype=bool)
    untouched[y : y + height, x : x + width] = False
    assert (after[untouched] == before[untouched]).all()
    assert ds.BurnedInAnnotation == "NO" and ds.PatientIdentityRemoved == "YES"
    assert "113101" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert b"DEMO^PATIENT" not in data


def test_a_clinician_is_refused_the_pixel_mask_settings(page: Page, connected: Personas) -> None:
    p = connected
    sign_in(page, p.members["clinician"])
    expect(page.get_by_role("navigation", name="Organization")).to_be_visible()
    # no way there in the navigation ...
    expect(page.get_by_role("navigation", name="Organization").get_by_role("link", name="Settings")).to_have_count(0)
    # ... and the address itself is refused, with nothing to fill in
    response = page.goto(f"/o/{p.practice.slug}/settings/pixel-masks/")
    assert response is not None and response.status == 403
    expect(page.get_by_label("Rectangles, one per line: x, y, width, height")).to_have_count(0)
    assert not PixelMask.objects.exists()
