"""The CBCT viewer in Chromium: a synthetic CBCT streams in through DICOMweb, all three planes
render, scrolling moves through the slices, a distance between two markers 30 mm apart
measures 30 mm, and every voxel of the volume the planes are drawn from holds its slice's stored
value rescaled to Hounsfield units."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from playwright.sync_api import Page, expect

from casebridge.access.policy import resolve
from casebridge.audit.models import Event
from casebridge.cases.models import Case
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas, build_personas
from casebridge.imaging.models import IngestJob, IngestState, Series
from casebridge.imaging.synthetic import CBCT_MARKER_DISTANCE_MM, CBCT_SPACING_MM, cbct_series
from casebridge.imaging.tests.cases import attach, draft_case, zipped

pytestmark = pytest.mark.browser
SLICES, SIZE = 40, 128
SEED = "viewer"


@pytest.fixture
def cbct_case(transactional_db: None, vault_home: Path) -> tuple[Personas, Case, Series]:
    p = build_personas()
    access = resolve(p.members["clinician"], p.practice)
    assert access is not None
    case = draft_case(access)
    slices = cbct_series(SEED, slices=SLICES, size=SIZE)
    stored = attach(access, case, zipped({f"IM{i:04d}": data for i, data in enumerate(slices)}), kind="cbct")
    job = IngestJob.objects.get(source=stored)  # queued by attaching, run at commit by the test backend
    assert job.state == IngestState.DONE
    return p, case, Series.objects.get(study__case=case)


def _plane_pixels(page: Page, plane: str) -> int:
    """How many pixels of a plane's canvas are not black: something was drawn."""
    return int(
        page.evaluate(
            """plane => {
                const canvas = document.querySelector(`[data-plane="${plane}"] canvas`);
                const copy = document.createElement("canvas");
                copy.width = canvas.width; copy.height = canvas.height;
                const ctx = copy.getContext("2d");
                ctx.drawImage(canvas, 0, 0);
                const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
                let lit = 0;
                for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 30) lit++;
                return lit;
            }""",
            plane,
        )
    )


def test_a_clinician_scrolls_a_cbct_in_three_planes_and_measures_a_known_distance(
    page: Page, cbct_case: tuple[Personas, Case, Series]
) -> None:
    p, case, _series = cbct_case
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    imaging = page.get_by_role("region", name="Imaging", exact=True)
    expect(imaging).to_contain_text(f"CT · {SLICES} images")
    imaging.get_by_role("link", name="View").click()

    viewer = page.locator("#cbct-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.get_by_role("status")).to_have_text(f"{SLICES} slices loaded.")
    assert_no_inline_scripts(page)
    first_slice_ms = int(viewer.get_attribute("data-first-slice-ms") or "0")
    for plane in ("axial", "coronal", "sagittal"):
        assert _plane_pixels(page, plane) > 500, plane

    # Scrolling moves the axial plane through the volume (keys: one slice; the wheel works alike).
    axial = page.locator('[data-plane="axial"]')
    before = page.evaluate("() => window.caseBridgeViewer.engine.getViewport('axial').getCamera().focalPoint[2]")
    axial.focus()
    page.keyboard.press("PageDown")
    after = page.evaluate("() => window.caseBridgeViewer.engine.getViewport('axial').getCamera().focalPoint[2]")
    assert abs(after - before) == pytest.approx(10 * CBCT_SPACING_MM, abs=CBCT_SPACING_MM)
    page.keyboard.press("PageUp")

    # The markers lie in the middle slice, 30 mm apart: drag between them with the distance tool.
    page.get_by_role("button", name="Distance").click()
    expect(page.get_by_role("button", name="Distance")).to_have_attribute("aria-pressed", "true")
    marker_gap = CBCT_MARKER_DISTANCE_MM / CBCT_SPACING_MM
    ends = page.evaluate(
        """([gap, size, spacing, middle]) => {
            const viewport = window.caseBridgeViewer.engine.getViewport('axial');
            const z = middle * spacing;
            const camera = viewport.getCamera();
            const lift = camera.position[2] - camera.focalPoint[2];
            viewport.setCamera({ ...camera,
              focalPoint: [camera.focalPoint[0], camera.focalPoint[1], z],
              position: [camera.position[0], camera.position[1], z + lift] });
            viewport.render();
            const row = size * 0.25, centre = size / 2;
            return [[centre - gap / 2, row], [centre + gap / 2, row]].map(([x, y]) =>
              viewport.worldToCanvas([x * spacing, y * spacing, z]));
        }""",
        [marker_gap, SIZE, CBCT_SPACING_MM, SLICES // 2],
    )
    box = axial.bounding_box()
    assert box is not None
    (x1, y1), (x2, y2) = ends
    page.mouse.move(box["x"] + x1, box["y"] + y1)
    page.mouse.down()
    page.mouse.move(box["x"] + (x1 + x2) / 2, box["y"] + (y1 + y2) / 2, steps=5)
    page.mouse.move(box["x"] + x2, box["y"] + y2, steps=5)
    # The tool moves its handle once per animation frame: let the last move land before letting go.
    page.wait_for_timeout(300)
    page.mouse.move(box["x"] + x2 + 0.5, box["y"] + y2)
    page.wait_for_timeout(300)
    page.mouse.up()
    expect(page.locator("[data-measurement]")).to_contain_text("mm")
    measured = float(viewer.get_attribute("data-measured-mm") or "0")
    assert measured == pytest.approx(CBCT_MARKER_DISTANCE_MM, abs=1.0)

    page.get_by_label("Window").select_option("soft tissue")
    page.get_by_role("button", name="Reset").click()
    screenshot(page, "cbct-viewer")
    assert errors == []
    assert first_slice_ms < 10_000  # the benchmark measures it properly; this only bounds a regression
    assert Event.objects.filter(action="imaging.study_viewed", patient_ref=str(case.patient_id)).count() == 1


def _expected_hounsfield() -> dict[str, np.ndarray]:
    """Each slice's stored values rescaled to Hounsfield units, by SOP Instance UID, in order."""
    expected = {}
    for data in cbct_series(SEED, slices=SLICES, size=SIZE):
        ds = pydicom.dcmread(io.BytesIO(data))
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        expected[str(ds.SOPInstanceUID)] = hu
    return expected


def _assert_volume_holds(page: Page, expected: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Every voxel of the loaded volume is its slice's expected value, each slice where its image
    id says; the volume's slices by SOP Instance UID."""
    volume = page.evaluate(
        """() => {
            const volume = window.caseBridgeViewer.volume;
            const [width, height, depth] = volume.dimensions;
            const slices = [];
            for (let k = 0; k < depth; k += 1) {
                const values = [];
                for (let j = 0; j < height; j += 1) {
                    for (let i = 0; i < width; i += 1) values.push(volume.voxelManager.getAtIJK(i, j, k));
                }
                slices.push([/\\/instances\\/([0-9.]+)\\/frames\\//.exec(volume.imageIds[k])[1], values]);
            }
            return { dataType: volume.dataType, dimensions: volume.dimensions, slices };
        }"""
    )
    assert volume["dimensions"] == [SIZE, SIZE, SLICES]
    assert volume["dataType"] == "Int16Array"
    assert sorted(sop for sop, _ in volume["slices"]) == sorted(expected)
    for sop, values in volume["slices"]:
        np.testing.assert_array_equal(np.array(values, dtype=np.int32).reshape(SIZE, SIZE), expected[sop], err_msg=sop)
    return dict(volume["slices"])


def test_every_slice_lands_in_the_volume_with_its_rescaled_values(
    page: Page, cbct_case: tuple[Personas, Case, Series]
) -> None:
    """The slices the viewer makes into images on the page (the middle one from its frames
    request, the rest from the series stream, made into the volume's numbers in its worker) hold
    exactly what the loader's decoder would give: stored value x RescaleSlope + RescaleIntercept,
    every voxel, in the right slice."""
    p, case, series = cbct_case
    expected = _expected_hounsfield()
    marker_sop = list(expected)[SLICES // 2]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/imaging/{series.pk}/")
    viewer = page.locator("#cbct-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    # Every slice took the page's own path, none the decoder workers'.
    assert viewer.get_attribute("data-slices-made-on-page") == str(SLICES)

    slices = _assert_volume_holds(page, expected)
    # What a reader would check: the markers' slice (the middle one, the first the viewer asks
    # for) has them at 2000 HU, the jaw's bone at 400 HU, the background below -900 HU.
    marker_slice = slices[marker_sop]
    assert max(marker_slice) == 2000 and 400 in marker_slice and min(marker_slice) < -900
    assert errors == []


def test_when_the_series_stream_fails_every_slice_comes_by_its_own_request(
    page: Page, cbct_case: tuple[Personas, Case, Series]
) -> None:
    """The series stream is refused on its way (a proxy that drops long answers, a server
    restarting): the viewer still fills the whole volume, each slice but the first by its own
    WADO-RS frames request through the loader's decoder, with the same values."""
    p, case, series = cbct_case
    expected = _expected_hounsfield()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    stream_path = f"/series/{series.series_uid}"
    page.route(lambda url: url.endswith(stream_path), lambda route: route.abort())
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/imaging/{series.pk}/")
    viewer = page.locator("#cbct-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.get_by_role("status")).to_have_text(f"{SLICES} slices loaded.")
    assert viewer.get_attribute("data-stream-end-ms")  # it was asked for, and ended
    # Only the first slice, from its own request, was made on the page.
    assert viewer.get_attribute("data-slices-made-on-page") == "1"
    _assert_volume_holds(page, expected)
    assert errors == []


def test_when_the_stream_worker_cannot_start_every_slice_comes_through_the_loader(
    page: Page, cbct_case: tuple[Personas, Case, Series]
) -> None:
    """The stream's worker fails as the page opens, before the metadata says which slices to
    expect (its script refused: a proxy, a half-deployed release). The viewer still fills the
    whole volume, every slice by its own frames request through the loader, with the same values."""
    p, case, series = cbct_case
    expected = _expected_hounsfield()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route(lambda url: "series_stream_worker" in url, lambda route: route.abort())
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/imaging/{series.pk}/")
    viewer = page.locator("#cbct-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.get_by_role("status")).to_have_text(f"{SLICES} slices loaded.")
    assert viewer.get_attribute("data-slices-made-on-page") == "0"  # nor the first by a second request
    _assert_volume_holds(page, expected)
    assert errors == []


def test_a_compressed_cbct_comes_slice_by_slice_through_the_decoder(
    page: Page, transactional_db: None, vault_home: Path
) -> None:
    """The series stream opens as the page opens, before the viewer knows what the series holds.
    A CBCT stored RLE-compressed has nothing the stream can make into numbers: the viewer closes
    it once the metadata says so, and every slice comes by its own frames request through the
    loader's decoder, with the same Hounsfield values."""
    from pydicom.uid import RLELossless

    p = build_personas()
    access = resolve(p.members["clinician"], p.practice)
    assert access is not None
    case = draft_case(access)
    compressed = {}
    for i, data in enumerate(cbct_series(SEED, slices=SLICES, size=SIZE)):
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.compress(RLELossless, generate_instance_uid=False)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        compressed[f"IM{i:04d}"] = out.getvalue()
    attach(access, case, zipped(compressed), kind="cbct")
    series = Series.objects.get(study__case=case)
    assert series.transfer_syntax == RLELossless and series.instances.count() == SLICES

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/imaging/{series.pk}/")
    viewer = page.locator("#cbct-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(page.get_by_role("status")).to_have_text(f"{SLICES} slices loaded.")
    assert viewer.get_attribute("data-slices-made-on-page") == "0"
    _assert_volume_holds(page, _expected_hounsfield())
    assert errors == []
