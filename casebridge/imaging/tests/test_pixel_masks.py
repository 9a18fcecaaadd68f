"""Pixel masks for burned-in text (issue 14, item 2): an organization's rectangles per device
model, kept on its settings page (org settings permission, audited), drawn on a preview of a real
image before sharing, and blanked by the de-identified download when Clean Pixel Data is chosen
(method code 113101 written); the wrong role, another organization and a token get nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from PIL import Image
from pydicom.data import get_testdata_file

from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Case
from casebridge.core.testing import Personas, signed_in_client
from casebridge.deid import Options, deidentify, export
from casebridge.deid.pixels import MaskError, blank, parse_regions
from casebridge.imaging.models import PixelMask
from casebridge.imaging.synthetic import xray_set
from casebridge.imaging.tests.cases import attach, attach_what_sending_needs, clinician_access, connect_lab, draft_case
from casebridge.sharing import actions as share_actions
from casebridge.sharing.tests.conftest import last_code, last_token
from casebridge.sharing.tests.test_download_all import unzip

SECRET = b"s" * 32
MASK = {"operation": "save", "manufacturer": "CaseBridge", "model": "Synthetic sensor", "regions": "0, 0, 60, 20"}


# --- the library ----------------------------------------------------------------------------
def test_regions_are_read_line_by_line_and_bad_ones_say_which_line() -> None:
    assert parse_regions("0, 0, 60, 20\n\n10;5;3;4\n") == [(0, 0, 60, 20), (10, 5, 3, 4)]
    for text, message in (
        ("", "at least one"),
        ("0, 0, 60", "line 1"),
        ("1,2,3,4\n0, 0, 0, 20", "line 2: width and height"),
        ("-1, 0, 5, 5", "line 1"),
        ("0, 0, 70000, 5", "65535"),
        ("\n".join(["0,0,1,1"] * 21), "at most 20"),
    ):
        with pytest.raises(MaskError, match=message):
            parse_regions(text)


def test_blank_sets_the_rectangles_to_black_in_every_frame_and_says_so() -> None:
    original = xray_set("mask", images=1, modality="PX")[0]
    deidentified = deidentify(original, Options(), SECRET).data
    assert deidentified is not None

    data, count = blank(deidentified, [(0, 0, 60, 20), (190, 150, 50, 50)])

    ds = pydicom.dcmread(io.BytesIO(data))
    before = pydicom.dcmread(io.BytesIO(original)).pixel_array
    after = ds.pixel_array
    assert count == 60 * 20 + 10 * 10 and after[:20, :60].max() == 0 and after[150:, 190:].max() == 0
    untouched = np.ones(after.shape, dtype=bool)
    untouched[:20, :60] = untouched[150:, 190:] = False
    assert (after[untouched] == before[untouched]).all()  # nothing else changed
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113101"]
    assert "Clean Pixel Data Option" in list(ds.DeidentificationMethod)
    assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"


def test_a_compressed_image_is_decoded_blanked_and_written_uncompressed() -> None:
    source = Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes()
    deidentified = deidentify(source, Options(), SECRET).data
    assert deidentified is not None
    data, count = blank(deidentified, [(0, 0, 8, 8)])
    ds = pydicom.dcmread(io.BytesIO(data))
    assert count == 64 and ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    expected = pydicom.dcmread(io.BytesIO(source)).pixel_array.copy()
    expected[:8, :8] = 0
    assert (ds.pixel_array == expected).all()


def test_rectangles_outside_the_image_change_nothing() -> None:
    deidentified = deidentify(xray_set("mask", images=1)[0], Options(), SECRET).data
    assert deidentified is not None
    assert blank(deidentified, [(5000, 5000, 10, 10)]) == (deidentified, 0)


# --- the settings page, the preview and the download -------------------------------------------
@pytest.fixture
def panoramic(personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any) -> Case:
    """A case sent to the lab with one panoramic X-ray from the synthetic sensor, indexed."""
    access = clinician_access(personas)
    connect_lab(personas)
    case = draft_case(access, lab=personas.lab)
    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, xray_set("pan", images=1, modality="PX")[0], kind="cbct", label="xray")
        attach_what_sending_needs(access, case)
    case_actions.submit_case(access, case)
    return case


def _pages(personas: Personas) -> str:
    return f"/o/{personas.practice.slug}/settings/pixel-masks/"


def test_the_owner_saves_and_deletes_a_mask_and_both_are_audited(personas: Personas, panoramic: Case) -> None:
    owner = signed_in_client(personas.members["owner"])
    page = owner.get(_pages(personas))
    assert page.status_code == 200 and b"164.514(b)(2)(i)" in page.content
    assert b"CaseBridge Synthetic sensor" in page.content  # the devices of its studies are offered

    assert owner.post(_pages(personas), MASK).status_code == 302
    mask = PixelMask.objects.get(organization=personas.practice)
    assert mask.regions == [[0, 0, 60, 20]] and mask.updated_by == personas.members["owner"]
    saved = Event.objects.get(action="deid.pixel_mask.saved")
    assert saved.details["model"] == "Synthetic sensor" and saved.details["regions"] == [[0, 0, 60, 20]]
    # saving the same device again replaces its rectangles
    owner.post(_pages(personas), {**MASK, "regions": "0, 0, 10, 10\n5, 5, 5, 5"})
    assert PixelMask.objects.get().regions == [[0, 0, 10, 10], [5, 5, 5, 5]]

    assert owner.post(_pages(personas), {"operation": "delete", "mask": str(mask.pk)}).status_code == 302
    assert not PixelMask.objects.exists()
    assert Event.objects.get(action="deid.pixel_mask.deleted").details["manufacturer"] == "CaseBridge"


def test_bad_rectangles_are_refused_on_the_form_and_nothing_is_saved(personas: Personas, panoramic: Case) -> None:
    owner = signed_in_client(personas.members["owner"])
    response = owner.post(_pages(personas), {**MASK, "regions": "0, 0, sixty, 20"})
    assert response.status_code == 400 and b"line 1: write x, y, width, height" in response.content
    response = owner.post(_pages(personas), {**MASK, "model": "  "})
    assert response.status_code == 400 and b"model name" in response.content
    assert not PixelMask.objects.exists() and not Event.objects.filter(action="deid.pixel_mask.saved").exists()


def test_members_without_the_settings_permission_and_other_organizations_cannot_touch_masks(
    personas: Personas, panoramic: Case
) -> None:
    owner = signed_in_client(personas.members["owner"])
    owner.post(_pages(personas), MASK)
    mask = PixelMask.objects.get()
    clinician = signed_in_client(personas.members["clinician"])
    assert clinician.get(_pages(personas)).status_code == 403
    assert clinician.post(_pages(personas), {"operation": "delete", "mask": str(mask.pk)}).status_code == 403
    # the other practice's owner deletes nothing of this one, through its own page either
    outsider = signed_in_client(personas.outsider)
    assert outsider.post(_pages(personas), MASK).status_code == 404
    other = f"/o/{personas.other_practice.slug}/settings/pixel-masks/"
    response = outsider.post(other, {"operation": "delete", "mask": str(mask.pk)})
    assert response.status_code == 400 and b"No such mask" in response.content
    clinician_raw = create_api_token(
        organization=personas.practice,
        name="t",
        scopes=["org:read", "cases:read", "cases:write"],
        days=1,
        actor=personas.members["owner"],
        user=personas.members["owner"],
    )[1]
    assert Client(HTTP_AUTHORIZATION=f"Bearer {clinician_raw}").post(_pages(personas), MASK).status_code == 403
    assert PixelMask.objects.get().regions == [[0, 0, 60, 20]]
    assert Event.objects.filter(action__startswith="deid.pixel_mask").count() == 1


def _file(case: Case) -> str:
    return str(case.attachments.get(label="xray").stored_object_id)


def test_the_preview_draws_the_mask_on_the_first_frame(personas: Personas, panoramic: Case) -> None:
    preview = f"/o/{personas.practice.slug}/cases/{panoramic.number}/images/{_file(panoramic)}/mask.png"
    clinician = signed_in_client(personas.members["clinician"])
    assert clinician.get(preview).status_code == 404  # no mask for this device yet
    signed_in_client(personas.members["owner"]).post(_pages(personas), MASK)
    case_page = clinician.get(f"/o/{personas.practice.slug}/cases/{panoramic.number}/").content.decode()
    assert preview in case_page and "clean_pixel=1" in case_page

    response = clinician.get(preview)

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content)).convert("RGB")
    assert image.size == (200, 160)
    red, green, _blue = image.getpixel((30, 10))  # inside the rectangle: tinted red
    assert red > 2 * green and image.getpixel((100, 100))[0] == image.getpixel((100, 100))[1]
    assert Event.objects.filter(action="case.deid_previewed", details__pixel_mask=True).count() == 1
    # the lab has no mask of its own: nothing to preview; strangers see no case
    lab_preview = preview.replace(personas.practice.slug, personas.lab.slug)
    assert signed_in_client(personas.lab_manager).get(lab_preview).status_code == 404
    assert signed_in_client(personas.outsider).get(preview).status_code == 404
    assert Client().get(preview).status_code == 302


def test_clean_pixel_data_blanks_the_masked_device_in_the_de_identified_download(
    personas: Personas, panoramic: Case
) -> None:
    signed_in_client(personas.members["owner"]).post(_pages(personas), MASK)
    clinician = signed_in_client(personas.members["clinician"])
    url = f"/api/v1/cases/{panoramic.number}/files.zip?deidentified=1"

    plain = unzip(clinician.get(url))
    masked = unzip(clinician.get(url + "&clean_pixel=1"))

    name = next(n for n in masked if n.endswith(".dcm"))
    without = pydicom.dcmread(io.BytesIO(plain[name]))
    with_mask = pydicom.dcmread(io.BytesIO(masked[name]))
    assert without.pixel_array[:20, :60].max() > 0 and with_mask.pixel_array[:20, :60].max() == 0
    assert (with_mask.pixel_array[20:, :] == without.pixel_array[20:, :]).all()
    assert "113101" in [c.CodeValue for c in with_mask.DeidentificationMethodCodeSequence]
    assert "113101" not in [c.CodeValue for c in without.DeidentificationMethodCodeSequence]
    report = json.loads(masked[export.REPORT_JSON])
    assert "clean_pixel" in report["options"]
    entry = next(f for f in report["files"] if f["name"] == name)
    assert entry["pixel_mask"].startswith("1 rectangle(s) blanked, 1200 pixels")
    assert "Clean Pixel Data: 1 rectangle(s)" in masked[export.REPORT_TXT].decode()
    events = Event.objects.filter(action="case.files_downloaded").order_by("occurred_at", "id")
    assert [e.details["options"] for e in events] == [[], ["clean_pixel"]]
    # the lab downloads with Clean Pixel Data too, but it has no mask: pixels unchanged, and it says so
    lab = signed_in_client(personas.lab_manager)
    lab_zip = unzip(lab.get(url + "&clean_pixel=1"))
    lab_entry = next(f for f in json.loads(lab_zip[export.REPORT_JSON])["files"] if f["name"] == name)
    assert lab_entry["pixel_mask"].startswith("no mask for this device model")
    assert (pydicom.dcmread(io.BytesIO(lab_zip[name])).pixel_array == without.pixel_array).all()


def test_a_link_with_clean_pixel_data_sends_masked_images_without_a_reason(
    personas: Personas, panoramic: Case, django_capture_on_commit_callbacks: Any
) -> None:
    signed_in_client(personas.members["owner"]).post(_pages(personas), MASK)
    access = clinician_access(personas)
    xray = panoramic.attachments.get(label="xray")
    with django_capture_on_commit_callbacks(execute=True):
        link = share_actions.create_link(
            access,
            panoramic,
            attachments=[xray],
            recipient_email="dr.who@referral.test",
            purpose="second opinion",
            clean_pixel=True,
        )
    assert link.deid_options == ["clean_pixel"] and link.originals_reason == ""
    created = Event.objects.get(action="share.link.created")
    assert created.details["deid_options"] == ["clean_pixel"] and created.details["less_strict_reason"] is None
    token = last_token()
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/s/{token}/code/").status_code == 302
    assert client.post(f"/s/{token}/verify/", {"code": last_code()}).status_code == 302

    entries = unzip(client.get(f"/s/{token}/files.zip"))

    name = next(n for n in entries if n.endswith(".dcm"))
    ds = pydicom.dcmread(io.BytesIO(entries[name]))
    assert ds.pixel_array[:20, :60].max() == 0 and ds.pixel_array[20:, :].max() > 0
    assert "113101" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    single = client.get(f"/s/{token}/files/{xray.stored_object_id}/")
    assert pydicom.dcmread(io.BytesIO(b"".join(single.streaming_content))).pixel_array[:20, :60].max() == 0
    # originals cannot be "cleaned": Clean Pixel Data goes with de-identified copies only
    with pytest.raises(ValidationError, match="Say why"):
        share_actions.create_link(
            access,
            panoramic,
            attachments=[xray],
            recipient_email="dr.who@referral.test",
            purpose="second opinion",
            deidentify=False,
            clean_pixel=True,
        )
