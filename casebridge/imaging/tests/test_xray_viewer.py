"""The X-ray viewer and the photo gallery: a full-mouth set of intraoral X-rays (DICOM through
WADO-RS) and a plain PNG X-ray open in one strip, zoom, invert, measure 10 mm between two markers
0.1 mm pixels apart and pixels on the uncalibrated PNG; the case's photos open full size and are
walked by keyboard. Nobody outside the case gets a page or an image."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.core.browser_testing import (
    accessibility_violations,
    assert_no_inline_scripts,
    screenshot,
    sign_in,
)
from casebridge.core.testing import Personas, build_personas, signed_in_client
from casebridge.imaging.models import IngestJob, IngestState
from casebridge.imaging.synthetic import XRAY_MARKER_DISTANCE_MM, photo, xray_set
from casebridge.imaging.tests.cases import attach, clinician_access, connect_lab, draft_case, zipped

SET = 4  # intraoral images in the DICOM series
PLAIN_GAP_PX = 120  # between the two markers of the plain PNG X-ray
INVERTED = "() => window.caseBridgeViewer.engine.getViewport('xray').getProperties().invert"


def plain_xray() -> bytes:
    """A greyscale PNG 'film' with two white dots PLAIN_GAP_PX apart on its middle row."""
    image = Image.new("L", (300, 200), 40)
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 40, 170, 150), fill=180)
    for cx in (150 - PLAIN_GAP_PX // 2, 150 + PLAIN_GAP_PX // 2):
        draw.ellipse((cx - 3, 97, cx + 3, 103), fill=255)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def tiff_photo() -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(photo("tiff"))).save(out, format="TIFF")
    return out.getvalue()


def heic_stub() -> bytes:
    """What the upload check takes for HEIC (an ftyp box of brand heic): no browser shows it."""
    box = b"ftypheic" + b"\0\0\0\0" + b"mif1heic"
    return len(box + b"\0\0\0\0").to_bytes(4, "big") + box + b"\0" * 64


def _imaging_case(p: Personas) -> Case:
    access = clinician_access(p)
    connect_lab(p)
    case = draft_case(access, lab=p.lab)
    attach(access, case, zipped({f"IO{i}": d for i, d in enumerate(xray_set("fmx", images=SET))}), kind="cbct")
    attach(access, case, plain_xray(), kind="cbct", label="xray")
    attach(access, case, photo("front", width=640, height=480), kind="photo", label="face")
    attach(access, case, photo("smile", fmt="PNG"), kind="photo")
    attach(access, case, tiff_photo(), kind="photo", label="shade")
    return case


@pytest.fixture
def imaging_case(transactional_db: None, vault_home: Path) -> tuple[Personas, Case]:
    p = build_personas()
    case = _imaging_case(p)
    assert IngestJob.objects.get(case=case).state == IngestState.DONE  # run at commit by the test backend
    return p, case


def _errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def _lit_pixels(page: Page) -> int:
    return int(
        page.evaluate(
            """() => {
                const canvas = document.querySelector('[data-image] canvas');
                const copy = document.createElement('canvas');
                copy.width = canvas.width; copy.height = canvas.height;
                const ctx = copy.getContext('2d');
                ctx.drawImage(canvas, 0, 0);
                const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
                let lit = 0;
                for (let i = 0; i < data.length; i += 4) if (data[i] > 128) lit++;
                return lit;
            }"""
        )
    )


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.1)


def _measure(page: Page, a: tuple[float, float], b: tuple[float, float]) -> None:
    """Drag the distance tool from image pixel `a` to image pixel `b` (column, row)."""
    ends = page.evaluate(
        """([a, b]) => {
            const viewport = window.caseBridgeViewer.engine.getViewport(window.caseBridgeViewer.viewportId);
            const { imageData } = viewport.getImageData();
            return [a, b].map(([x, y]) => viewport.worldToCanvas(imageData.indexToWorld([x, y, 0])));
        }""",
        [list(a), list(b)],
    )
    box = page.locator("[data-image]").bounding_box()
    assert box is not None
    (x1, y1), (x2, y2) = ends
    page.mouse.move(box["x"] + x1, box["y"] + y1)
    page.mouse.down()
    page.mouse.move(box["x"] + (x1 + x2) / 2, box["y"] + (y1 + y2) / 2, steps=5)
    page.mouse.move(box["x"] + x2, box["y"] + y2, steps=5)
    page.wait_for_timeout(300)  # the tool moves its handle once per animation frame
    page.mouse.move(box["x"] + x2 + 0.5, box["y"] + y2)
    page.wait_for_timeout(300)
    page.mouse.up()


@pytest.mark.browser
def test_a_clinician_steps_through_the_xrays_zooms_inverts_and_measures(
    page: Page, imaging_case: tuple[Personas, Case]
) -> None:
    p, case = imaging_case
    errors = _errors(page)
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    imaging = page.get_by_role("region", name="Imaging")
    expect(imaging.get_by_role("list", name="Pictures").get_by_role("img")).to_have_count(1 + SET + 1 + 3 - SET)
    screenshot(page, "case-page-pictures")
    imaging.get_by_role("link", name="View X-rays").click()

    viewer = page.locator("#xray-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    status = page.get_by_role("status")
    expect(status).to_contain_text(f"image 1 of {SET + 1}")
    expect(status).to_contain_text("calibrated from the pixel spacing")
    assert_no_inline_scripts(page)
    assert _lit_pixels(page) > 500
    strip = page.get_by_role("navigation", name="Images of the set")
    expect(strip.get_by_role("button")).to_have_count(SET + 1)
    expect(strip.locator("img")).to_have_count(SET + 1)  # each image's thumbnail

    zoom = float(viewer.get_attribute("data-zoom") or "0")
    page.get_by_role("button", name="Zoom in").click()
    assert float(viewer.get_attribute("data-zoom") or "0") == pytest.approx(zoom * 1.25, rel=0.01)

    before = _lit_pixels(page)
    page.get_by_role("button", name="Invert").click()
    expect(page.get_by_role("button", name="Invert")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(INVERTED), "the viewport is inverted"
    _until(lambda: _lit_pixels(page) > before)  # the dark background turned light (next frame)

    # The markers of the DICOM set: centred on the middle row, 10 mm apart at 0.1 mm a pixel.
    page.get_by_role("button", name="Distance").click()
    gap = XRAY_MARKER_DISTANCE_MM / 0.1
    _measure(page, (100 - gap / 2, 80), (100 + gap / 2, 80))
    expect(page.locator("[data-measurement]")).to_contain_text("mm")
    assert viewer.get_attribute("data-measured-unit") == "mm"
    assert float(viewer.get_attribute("data-measured") or "0") == pytest.approx(XRAY_MARKER_DISTANCE_MM, abs=0.5)

    # The strip by keyboard: the next image, the last (the plain PNG), the first again.
    page.locator("[data-image]").focus()
    page.keyboard.press("ArrowRight")
    expect(viewer).to_have_attribute("data-index", "1")
    strip.get_by_role("button").nth(1).focus()
    page.keyboard.press("End")
    expect(viewer).to_have_attribute("data-index", str(SET))
    expect(strip.get_by_role("button").nth(SET)).to_be_focused()
    expect(strip.get_by_role("button").nth(SET)).to_have_attribute("aria-current", "true")
    expect(status).to_contain_text("uncalibrated")
    expect(viewer).to_have_attribute("data-state", "ready")
    assert page.evaluate(INVERTED), "the plain image is shown inverted too"
    _until(lambda: _lit_pixels(page) > 100_000)  # its dark film shows light
    _measure(page, (150 - PLAIN_GAP_PX / 2, 100), (150 + PLAIN_GAP_PX / 2, 100))
    expect(page.locator("[data-measurement]")).to_contain_text("px (uncalibrated)")
    assert float(viewer.get_attribute("data-measured") or "0") == pytest.approx(PLAIN_GAP_PX, abs=2)
    page.keyboard.press("Home")
    expect(viewer).to_have_attribute("data-index", "0")
    strip.get_by_role("button").nth(2).click()
    expect(viewer).to_have_attribute("data-index", "2")

    page.get_by_label("Window").select_option("high contrast")
    page.get_by_role("button", name="Reset").click()
    expect(page.get_by_role("button", name="Invert")).to_have_attribute("aria-pressed", "false")
    assert float(viewer.get_attribute("data-zoom") or "0") == pytest.approx(zoom, rel=0.01)
    screenshot(page, "xray-viewer")
    assert errors == []
    assert Event.objects.filter(action="imaging.xrays_viewed", patient_ref=str(case.patient_id)).count() == 1


@pytest.mark.browser
def test_a_clinician_walks_the_photo_gallery_by_keyboard(page: Page, imaging_case: tuple[Personas, Case]) -> None:
    p, case = imaging_case
    errors = _errors(page)
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    page.get_by_role("region", name="Imaging").get_by_role("link", name="Photo gallery").click()
    gallery = page.locator("#photo-gallery")
    photos = gallery.locator("[data-photo]")
    expect(photos).to_have_count(3)
    expect(gallery.get_by_role("img", name="Photo 1 of 3 (face)")).to_be_visible()
    assert "Roe" not in (gallery.inner_html())  # alt text and labels name no patient
    assert accessibility_violations(page) == []

    photos.first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    full = dialog.locator("[data-full-image]")
    expect(full).to_have_attribute("alt", "Photo 1 of 3 (face)")
    page.wait_for_function("() => document.querySelector('[data-full-image]').naturalWidth === 640")
    page.keyboard.press("ArrowRight")
    expect(dialog.get_by_role("heading")).to_have_text("Photo 2 of 3")
    page.keyboard.press("End")
    expect(dialog.get_by_role("heading")).to_have_text("Photo 3 of 3 (shade)")
    # The TIFF comes as a PNG the browser can show.
    page.wait_for_function("() => document.querySelector('[data-full-image]').naturalWidth === 320")
    page.keyboard.press("ArrowRight")  # the last stays the last
    expect(dialog.get_by_role("heading")).to_have_text("Photo 3 of 3 (shade)")
    page.keyboard.press("Home")
    expect(dialog.get_by_role("heading")).to_have_text("Photo 1 of 3 (face)")
    assert accessibility_violations(page) == []
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(photos.first).to_be_focused()
    screenshot(page, "photo-gallery")
    assert errors == []
    assert Event.objects.filter(action="imaging.photos_viewed", patient_ref=str(case.patient_id)).count() == 1


# --- the pages and images without a browser -------------------------------------------------
@pytest.fixture
def case_with_images(personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any) -> Case:
    with django_capture_on_commit_callbacks(execute=True):
        return _imaging_case(personas)


def _file_id(case: Case, label: str) -> str:
    return str(case.attachments.get(label=label).stored_object_id)


def test_opening_a_viewer_is_one_event_and_each_full_image_a_download(
    personas: Personas, case_with_images: Case
) -> None:
    case = case_with_images
    client = signed_in_client(personas.members["clinician"])
    base = f"/o/{personas.practice.slug}/cases/{case.number}"
    page = client.get(f"{base}/xrays/")
    assert page.status_code == 200
    assert b"xray-config" in page.content and b"Roe" not in page.content.split(b"xray-config")[1]
    gallery = client.get(f"{base}/photos/")
    assert gallery.status_code == 200 and gallery.content.count(b"data-photo=") == 3
    assert Event.objects.filter(action="imaging.xrays_viewed").count() == 1
    viewed = Event.objects.get(action="imaging.photos_viewed")
    assert viewed.patient_ref == str(case.patient_id) and len(viewed.details["files"]) == 3

    downloads = Event.objects.filter(action="file.downloaded").count()
    png = client.get(f"{base}/images/{_file_id(case, 'xray')}/")
    assert png.status_code == 200 and png["Content-Type"] == "image/png" and png.content == plain_xray()
    tiff = client.get(f"{base}/images/{_file_id(case, 'shade')}/")
    assert tiff.status_code == 200 and tiff["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(tiff.content)).format == "PNG"
    assert np.asarray(Image.open(io.BytesIO(tiff.content))).shape[:2] == (240, 320)
    assert Event.objects.filter(action="file.downloaded").count() == downloads + 2


def test_a_heic_photo_is_in_the_gallery_to_download_but_has_no_browser_image(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> None:
    access = clinician_access(personas)
    case = draft_case(access)
    with django_capture_on_commit_callbacks(execute=True):
        heic = attach(access, case, heic_stub(), kind="photo", label="smile")
    client = signed_in_client(personas.members["clinician"])
    base = f"/o/{personas.practice.slug}/cases/{case.number}"
    gallery = client.get(f"{base}/photos/").content.decode()
    assert 'data-type="heic"' in gallery and 'data-full=""' in gallery
    assert client.get(f"{base}/images/{heic.pk}/").status_code == 404


def test_nobody_outside_the_case_gets_the_viewer_the_gallery_or_an_image(
    personas: Personas, case_with_images: Case
) -> None:
    case = case_with_images
    pan = _file_id(case, "xray")
    paths = ["xrays/", "photos/", f"images/{pan}/"]

    def urls(org: str) -> list[str]:
        return [f"/o/{org}/cases/{case.number}/{path}" for path in paths]

    clinician = personas.members["clinician"]
    for url in urls(personas.practice.slug):
        assert signed_in_client(clinician).get(url).status_code == 200, url
        assert signed_in_client(personas.outsider).get(url).status_code == 404, url
        assert signed_in_client(personas.deactivated).get(url).status_code == 404, url
        assert Client().get(url).status_code == 302, url
        _t, raw = create_api_token(
            organization=personas.practice, name="t", scopes=["cases:read"], days=1, actor=clinician, user=clinician
        )
        assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(url).status_code == 403, url
    for url in urls(personas.other_practice.slug):
        assert signed_in_client(personas.outsider).get(url).status_code == 404, url
    # This case's file through another case's URL.
    other = draft_case(clinician_access(personas), patient_name="John Doe")
    client = signed_in_client(clinician)
    assert client.get(f"/o/{personas.practice.slug}/cases/{other.number}/images/{pan}/").status_code == 404
    # The lab: nothing of a draft, everything while it has the case, nothing once revoked.
    lab = signed_in_client(personas.lab_manager)
    for url in urls(personas.lab.slug):
        assert lab.get(url).status_code == 404, url
    Case.objects.filter(pk=case.pk).update(status="submitted")
    for url in urls(personas.lab.slug):
        assert lab.get(url).status_code == 200, url
    actions.revoke_lab_access(clinician_access(personas, "owner"), Case.objects.get(pk=case.pk))
    for url in urls(personas.lab.slug):
        assert lab.get(url).status_code == 404, url
