"""The 3D scan viewer in Chromium: a case's STL and coloured PLY load, show their true size,
can be toggled, sectioned and measured, and nobody outside the case gets the page."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from casebridge.access.policy import OrgAccess, resolve
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.core.browser_testing import assert_no_inline_scripts, screenshot, sign_in
from casebridge.core.testing import Personas, build_personas, signed_in_client
from casebridge.imaging.synthetic import stl_mesh
from casebridge.imaging.tests.cases import draft_case
from casebridge.vault import api as vault


def coloured_ply(size_mm: float = 20.0) -> bytes:
    """A binary PLY cube, `size_mm` on each side, every corner its own colour."""
    corners = [(x, y, z) for x in (0.0, size_mm) for y in (0.0, size_mm) for z in (0.0, size_mm)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(corners)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces) * 2}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode()
    body = b"".join(struct.pack("<3f3B", *c, 40 * i % 256, 200, 255 - 30 * i) for i, c in enumerate(corners))
    for a, b, c, d in faces:
        body += struct.pack("<B3i", 3, a, b, c) + struct.pack("<B3i", 3, a, c, d)
    return header + body


def stl_extent(content: bytes) -> tuple[float, float, float]:
    count = struct.unpack_from("<I", content, 80)[0]
    points = [struct.unpack_from("<3f", content, 84 + 50 * t + 12 + 12 * v) for t in range(count) for v in range(3)]
    x, y, z = (max(p[i] for p in points) - min(p[i] for p in points) for i in range(3))
    return x, y, z


def _access(p: Personas, role: str = "clinician") -> OrgAccess:
    access = resolve(p.members[role], p.practice)
    assert access is not None
    return access


def _attach(access: OrgAccess, case: Case, content: bytes, label: str) -> None:
    stored = vault.put_stream(
        organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
    ).stored_object
    actions.attach_file(access, case, stored, kind="scan", label=label)


@pytest.fixture
def scanned(transactional_db: None, vault_home: Path) -> tuple[Personas, Case, bytes]:
    p = build_personas()
    access = _access(p)
    case = draft_case(access)
    crown = stl_mesh("viewer-test")
    _attach(access, case, crown, "upper")
    _attach(access, case, coloured_ply(), "lower")
    return p, case, crown


@pytest.mark.browser
def test_a_clinician_views_the_cases_scans_toggles_sections_and_measures(
    page: Page, scanned: tuple[Personas, Case, bytes]
) -> None:
    p, case, crown = scanned
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, p.members["clinician"])
    page.goto(f"/o/{p.practice.slug}/cases/{case.number}/")
    page.get_by_role("link", name="View 3D scans").click()
    viewer = page.locator("#mesh-viewer")
    expect(viewer).to_have_attribute("data-state", "ready")
    expect(page.get_by_role("status")).to_have_text("2 scans loaded.")
    assert_no_inline_scripts(page)

    # Together: the crown and the 20 mm cube; the crown alone is smaller, so the size must cover the cube.
    size = page.locator("[data-size]").inner_text().removesuffix(" mm")
    width, depth, height = (float(v) for v in size.split(" \N{MULTIPLICATION SIGN} "))
    cx, cy, cz = stl_extent(crown)
    assert width >= max(cx, 20.0) - 0.1 and depth >= max(cy, 20.0) - 0.1 and height >= max(cz, 20.0) - 0.1

    layers = page.get_by_role("group", name="Scans")
    expect(layers.get_by_role("checkbox")).to_have_count(2)
    layers.get_by_role("checkbox").first.uncheck()
    page.get_by_label("Section").fill("10")
    page.get_by_label("Lighting").select_option("flat")
    expect(viewer).to_have_attribute("data-lighting", "flat")

    page.get_by_role("button", name="Occlusal").click()
    page.get_by_role("button", name="Measure distance").click()
    canvas = page.locator("[data-canvas] canvas")
    box = canvas.bounding_box()
    assert box is not None
    # The cube (the crown is hidden) fills the middle of an occlusal view: two clicks on its top.
    canvas.click(position={"x": box["width"] * 0.45, "y": box["height"] * 0.5})
    canvas.click(position={"x": box["width"] * 0.55, "y": box["height"] * 0.5})
    expect(page.locator("[data-distance]")).to_contain_text("mm")
    distance = float(viewer.get_attribute("data-measured-mm") or "0")
    assert 0 < distance < 20 * 1.75
    screenshot(page, "scan-viewer")
    assert errors == []
    assert Event.objects.filter(action="imaging.scans_viewed", patient_ref=str(case.patient_id)).count() == 1
    assert Event.objects.filter(action="file.downloaded").count() == 2


@pytest.mark.django_db
def test_the_viewer_page_is_the_cases_alone(personas: Personas, vault_home: Path) -> None:
    access = _access(personas)
    case = draft_case(access)
    url = f"/o/{personas.practice.slug}/cases/{case.number}/scans/"
    assert signed_in_client(personas.members["clinician"]).get(url).status_code == 200
    assert signed_in_client(personas.outsider).get(url).status_code == 404
    assert signed_in_client(personas.deactivated).get(url).status_code == 404
    assert Client().get(url).status_code == 302
    outsider_url = f"/o/{personas.other_practice.slug}/cases/{case.number}/scans/"
    assert signed_in_client(personas.outsider).get(outsider_url).status_code == 404
