"""Thumbnails: made in the background once a photo, X-ray, scan or DICOM study joins a case,
stored encrypted in the vault, served to the case's parties only, shown on the case page and in
the case list."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from casebridge.access.principal import Principal
from casebridge.accounts.actions import create_api_token
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging import thumbnails
from casebridge.imaging.models import Instance, Series, Thumbnail
from casebridge.imaging.synthetic import (
    XRAY_MARKER_DISTANCE_MM,
    XRAY_SPACING_MM,
    cbct_series,
    photo,
    stl_mesh,
    xray_set,
)
from casebridge.imaging.tests.cases import attach, clinician_access, connect_lab, draft_case, zipped
from casebridge.imaging.tests.test_scan_viewer import coloured_ply
from casebridge.vault import api as vault
from casebridge.vault.config import blob_store

pytestmark = pytest.mark.django_db


def _picture(result: tuple[bytes, int, int]) -> Image.Image:
    data, width, height = result
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert image.size == (width, height)
    assert max(width, height) <= thumbnails.THUMBNAIL_SIZE
    return image


# --- rendering ------------------------------------------------------------------------------
def test_an_intraoral_xray_keeps_its_markers_bright_on_a_dark_background() -> None:
    image = _picture(thumbnails.render_dicom(io.BytesIO(xray_set("thumb")[0])))
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    rows, columns = grey.shape
    gap = XRAY_MARKER_DISTANCE_MM / XRAY_SPACING_MM
    left = grey[rows // 2, int(columns / 2 - gap / 2)]
    assert left > 200 and grey[5, 5] < 80  # a marker, and the background


def test_a_cbct_slice_and_a_monochrome1_image_render() -> None:
    _picture(thumbnails.render_dicom(io.BytesIO(cbct_series("thumb", slices=3, size=64)[1])))
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(xray_set("thumb-inverted", images=1)[0]))
    ds.PhotometricInterpretation = "MONOCHROME1"
    out = io.BytesIO()
    ds.save_as(out)
    inverted = np.asarray(_picture(thumbnails.render_dicom(io.BytesIO(out.getvalue()))).convert("L"))
    assert inverted[5, 5] > 170  # the dark background shows white


def test_photos_scale_down_and_16_bit_tiff_xrays_are_stretched() -> None:
    assert _picture(thumbnails.render_raster(io.BytesIO(photo("thumb", width=1024, height=768)))).size == (256, 192)
    _picture(thumbnails.render_raster(io.BytesIO(photo("thumb", fmt="PNG"))))
    ramp = np.tile(np.linspace(1000, 3000, 300, dtype=np.uint16), (100, 1))
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, format="TIFF")
    grey = np.asarray(_picture(thumbnails.render_raster(io.BytesIO(out.getvalue()))).convert("L"))
    assert grey[:, 2].mean() < 30 and grey[:, -3].mean() > 220


def _ascii_stl(binary: bytes) -> bytes:
    count = struct.unpack_from("<I", binary, 80)[0]
    lines = ["solid crown"]
    for t in range(count):
        values = struct.unpack_from("<12f", binary, 84 + 50 * t)
        lines.append("facet normal 0 0 1\nouter loop")
        lines += [f"vertex {values[3 + 3 * v]} {values[4 + 3 * v]} {values[5 + 3 * v]}" for v in range(3)]
        lines.append("endloop\nendfacet")
    return ("\n".join(lines) + "\nendsolid crown\n").encode()


def _obj_cube() -> bytes:
    corners = [(x, y, z) for x in (0, 10) for y in (0, 10) for z in (0, 4)]
    faces = [(1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2), (3, 4, 8), (3, 8, 7)]
    faces += [(2, 6, 8), (2, 8, 4), (1, 3, 7), (1, 7, 5)]  # top and bottom
    return (
        "".join(f"v {x} {y} {z}\n" for x, y, z in corners) + "".join(f"f {a} {b} {c}\n" for a, b, c in faces)
    ).encode()


@pytest.mark.parametrize(
    ("file_type", "content"),
    [
        ("stl", stl_mesh("thumb")),
        ("stl", _ascii_stl(stl_mesh("thumb-ascii", rings=6, segments=10))),
        ("ply", coloured_ply()),
        ("obj", _obj_cube()),
    ],
)
def test_scans_render_as_a_shaded_view_of_their_surface(file_type: str, content: bytes) -> None:
    image = _picture(thumbnails.render_mesh(content, file_type))
    grey = np.asarray(image.convert("L"))
    covered = (grey < 250).mean()
    assert covered > 0.3  # a surface, not a scatter of dots
    assert grey[grey < 250].std() < 80  # shaded, not noise


def test_what_cannot_be_pictured_says_so() -> None:
    with pytest.raises(thumbnails.NoThumbnail):
        thumbnails.render_raster(io.BytesIO(b"\xff\xd8\xff\xe0 not really a JPEG"))
    with pytest.raises(thumbnails.NoThumbnail):
        thumbnails.render_dicom(io.BytesIO(b"\0" * 128 + b"DICM" + b"\0" * 20))
    with pytest.raises(thumbnails.NoThumbnail):
        thumbnails.render_mesh(b"ply\nformat ascii 1.0\nend_header\n", "ply")


# --- at ingest, in the vault ----------------------------------------------------------------
@pytest.fixture
def pictured(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> tuple[Case, dict[str, Any]]:
    """A case with a photo, a scan and a full-mouth set of four intraoral X-rays (a ZIP of DICOM)."""
    access = clinician_access(personas)
    connect_lab(personas)
    case = draft_case(access, lab=personas.lab)
    with django_capture_on_commit_callbacks(execute=True):
        shade = attach(access, case, photo("shade"), kind="photo", label="shade")
    with django_capture_on_commit_callbacks(execute=True):
        scan = attach(access, case, stl_mesh("upper"), kind="scan", label="upper")
    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, zipped({f"IO{i}": d for i, d in enumerate(xray_set("fmx"))}), kind="cbct")
    return case, {"photo": shade, "scan": scan}


def test_attaching_makes_thumbnails_of_the_photo_the_scan_the_series_and_each_xray(
    pictured: tuple[Case, dict[str, Any]],
) -> None:
    case, files = pictured
    series = Series.objects.get(study__case=case)
    assert series.modality == "IO" and series.instance_count == 4
    assert Thumbnail.objects.filter(source=files["photo"]).exists()
    assert Thumbnail.objects.filter(source=files["scan"]).exists()
    assert Thumbnail.objects.get(series=series).made_from == 4
    instances = Instance.objects.filter(series=series)
    assert Thumbnail.objects.filter(source__in=[i.stored_object for i in instances]).count() == 4
    assert Thumbnail.objects.count() == 7


def test_the_worker_indexes_a_study_before_it_makes_the_pictures_queued_earlier(personas: Personas) -> None:
    """With the worker's own queue (the database backend): pictures queued first, an ingest
    queued after them is taken first; each series' picture is a task of its own."""
    from django.db import transaction
    from django.test import override_settings
    from django_tasks_db.models import DBTaskResult

    from casebridge.imaging import tasks

    backend = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    with override_settings(TASKS=backend):
        tasks.thumbnail_series.enqueue("series-a")
        tasks.thumbnail_series.enqueue("series-b")
        tasks.thumbnail_file.enqueue("file-c")
        tasks.ingest_study.enqueue("job-d")
        taken = []
        for _ in range(4):
            with transaction.atomic():
                result = DBTaskResult.objects.ready().get_locked()
                assert result is not None
                taken.append((result.task_path.rsplit(".", 1)[-1], result.args_kwargs["args"][0]))
                result.delete()
    assert taken[0] == ("ingest_study", "job-d")
    assert sorted(taken[1:]) == [
        ("thumbnail_file", "file-c"),
        ("thumbnail_series", "series-a"),
        ("thumbnail_series", "series-b"),
    ]


def test_a_thumbnail_is_an_encrypted_vault_object_never_plaintext_on_disk(
    pictured: tuple[Case, dict[str, Any]],
) -> None:
    _case, files = pictured
    thumbnail = Thumbnail.objects.get(source=files["photo"])
    plaintext = b"".join(bytes(c) for c in vault.read_version(vault.get_version(thumbnail.image)))
    assert plaintext.startswith(b"\xff\xd8\xff")
    assert thumbnail.image.attached_at is not None  # never among anyone's loose files
    on_disk = [p.read_bytes() for p in blob_store().root.rglob("*") if p.is_file()]
    assert on_disk and not any(plaintext[:64] in blob for blob in on_disk)


def test_a_new_version_gets_a_new_thumbnail_and_the_old_picture_is_destroyed(
    pictured: tuple[Case, dict[str, Any]], personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    _case, files = pictured
    before = Thumbnail.objects.get(source=files["photo"])
    old_image = before.image
    access = clinician_access(personas)
    content = photo("shade, retaken")
    pending = vault.seal_version(
        organization_id=access.organization.pk,
        object_id=files["photo"].pk,
        version=files["photo"].current_version + 1,
        chunks=[content],
        length=len(content),
    )
    with django_capture_on_commit_callbacks(execute=True):
        actions.add_version(access, files["photo"], pending)
    after = Thumbnail.objects.get(source=files["photo"])
    files["photo"].refresh_from_db()
    assert after.made_from == files["photo"].current_version > before.made_from
    old_image.refresh_from_db()
    assert old_image.is_destroyed


def test_a_damaged_photo_is_attached_without_a_thumbnail(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> None:
    access = clinician_access(personas)
    case = draft_case(access)
    broken = photo("broken", fmt="PNG")[:200]
    with django_capture_on_commit_callbacks(execute=True):
        try:
            stored = attach(access, case, broken, kind="photo")
        except Exception:  # the metadata cleaner may refuse it first: then there is nothing to picture
            return
    assert not Thumbnail.objects.filter(source=stored).exists()


# --- served to the case's parties only ------------------------------------------------------
def _url(personas: Personas, case: Case, thumbnail: Thumbnail, org: str = "") -> str:
    return f"/o/{org or personas.practice.slug}/cases/{case.number}/thumbnails/{thumbnail.pk}/"


def test_the_case_page_and_the_case_list_show_thumbnails_the_parties_may_fetch(
    pictured: tuple[Case, dict[str, Any]], personas: Personas
) -> None:
    case, files = pictured
    clinician = signed_in_client(personas.members["clinician"])
    page = clinician.get(f"/o/{personas.practice.slug}/cases/{case.number}/").content.decode()
    for thumbnail in Thumbnail.objects.filter(source__in=[files["photo"], files["scan"]]):
        assert _url(personas, case, thumbnail) in page
    assert 'alt="Photo 1 (shade)"' in page and "Jane" not in page.split('class="thumbs"')[1].split("</ul>")[0]
    assert "View X-rays" in page and "Photo gallery" in page
    # The intraoral series opens in the X-ray viewer, not the CBCT viewer.
    series = Series.objects.get(study__case=case)
    assert f"/cases/{case.number}/imaging/{series.pk}/" not in page
    listing = clinician.get(f"/o/{personas.practice.slug}/cases/?view=all").content.decode()
    assert f"/o/{personas.practice.slug}/cases/{case.number}/thumbnails/" in listing
    response = clinician.get(_url(personas, case, Thumbnail.objects.get(source=files["photo"])))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, no-store"
    assert Image.open(io.BytesIO(response.content)).format == "JPEG"
    for picture in (
        Thumbnail.objects.get(series=series),
        Thumbnail.objects.filter(source__dicom_instance__series=series)[0],
    ):
        assert _url(personas, case, picture) in page or picture.series_id is None
        assert clinician.get(_url(personas, case, picture)).status_code == 200


def test_nobody_outside_the_case_gets_a_thumbnail(pictured: tuple[Case, dict[str, Any]], personas: Personas) -> None:
    case, files = pictured
    thumbnail = Thumbnail.objects.get(source=files["photo"])
    url = _url(personas, case, thumbnail)
    assert signed_in_client(personas.outsider).get(url).status_code == 404
    assert (
        signed_in_client(personas.outsider)
        .get(_url(personas, case, thumbnail, personas.other_practice.slug))
        .status_code
        == 404
    )
    assert signed_in_client(personas.deactivated).get(url).status_code == 404
    assert Client().get(url).status_code == 302
    # A bearer token, even one with every read scope: these are browser pages.
    user = personas.members["clinician"]
    _t, raw = create_api_token(
        organization=personas.practice, name="t", scopes=["cases:read"], days=1, actor=user, user=user
    )
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(url).status_code == 403
    # Another case's URL for this picture: the picture must be of the case named.
    other = draft_case(clinician_access(personas), patient_name="John Doe")
    assert signed_in_client(user).get(_url(personas, other, thumbnail)).status_code == 404
    # The lab sees the case's pictures while it has the case, not after its access is revoked.
    lab_url = _url(personas, case, thumbnail, personas.lab.slug)
    lab = signed_in_client(personas.lab_manager)
    assert lab.get(lab_url).status_code == 404  # a draft is the practice's alone
    Case.objects.filter(pk=case.pk).update(status="submitted")
    assert lab.get(lab_url).status_code == 200
    actions.revoke_lab_access(clinician_access(personas, "owner"), Case.objects.get(pk=case.pk))
    assert lab.get(lab_url).status_code == 404
    # A destroyed file's picture goes with it.
    vault.destroy_object(files["photo"], actor=None, reason="test")
    assert signed_in_client(user).get(url).status_code == 404


def test_destroying_a_file_of_the_case_destroys_its_picture(
    pictured: tuple[Case, dict[str, Any]], personas: Personas
) -> None:
    _case, files = pictured
    thumbnail = Thumbnail.objects.select_related("image").get(source=files["photo"])
    owner = clinician_access(personas, "owner")
    actions.destroy_file(Principal(owner.actor, None), files["photo"], reason="sent to the wrong case")
    thumbnail.image.refresh_from_db()
    assert thumbnail.image.is_destroyed
    with pytest.raises(vault.ObjectUnavailable):
        vault.get_version(thumbnail.image)


# --- catching up ----------------------------------------------------------------------------
def test_files_and_series_attached_without_pictures_are_caught_up_once(
    pictured: tuple[Case, dict[str, Any]],
) -> None:
    from io import StringIO

    from django.core.management import call_command

    _case, files = pictured
    for thumbnail in Thumbnail.objects.select_related("image"):  # as before thumbnails existed
        thumbnail.delete()
    assert Thumbnail.objects.count() == 0
    missing_files, missing_series = thumbnails.missing()
    assert {f.pk for f in missing_files} == {files["photo"].pk, files["scan"].pk}
    assert len(missing_series) == 1

    out = StringIO()
    call_command("thumbnails", stdout=out)
    assert "made 3 thumbnail(s); 0 could not be made" in out.getvalue()
    assert Thumbnail.objects.count() == 7  # the photo, the scan, the series and its four X-rays
    assert thumbnails.missing() == ([], [])

    again = StringIO()
    call_command("thumbnails", stdout=again)
    assert "made 0 thumbnail(s)" in again.getvalue()
    assert Thumbnail.objects.count() == 7


def test_a_file_whose_picture_is_out_of_date_is_caught_up_and_one_that_cannot_be_read_is_counted(
    pictured: tuple[Case, dict[str, Any]],
) -> None:
    _case, files = pictured
    Thumbnail.objects.filter(source=files["photo"]).update(made_from=0)  # a lost task after a new version
    Thumbnail.objects.filter(source=files["scan"]).delete()
    blob_store().delete_many([vault.get_version(files["scan"]).blob_name])  # the scan's blob is lost
    missing_files, _ = thumbnails.missing()
    assert {f.pk for f in missing_files} == {files["photo"].pk, files["scan"].pk}
    assert thumbnails.backfill() == (1, 1)
    assert Thumbnail.objects.get(source=files["photo"]).made_from == files["photo"].current_version
    assert not Thumbnail.objects.filter(source=files["scan"]).exists()
