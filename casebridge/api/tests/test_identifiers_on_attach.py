"""One reporting pipeline at attach (issue 14): when a file joins a case, its version records which
kinds of identifier de-identification would remove (from the de-identifying steps' own reports)
and which the attach removed; the case page shows them before anything is shared. Kinds only:
no value of the file reaches the database field or the page."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image

from casebridge.api.tests.conftest import World, ready_case
from casebridge.api.tests.test_download_deidentified import PATIENT_NAME, _attach
from casebridge.cases import actions
from casebridge.core.testing import signed_in_client
from casebridge.deid.tests import photos
from casebridge.imaging import synthetic
from casebridge.imaging.tests.cases import clinician_access
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject

pytestmark = pytest.mark.django_db


def _recorded(file_id: str) -> dict[str, object]:
    stored = StoredObject.objects.get(pk=file_id)
    found = stored.versions.get(version=stored.current_version).identifiers
    assert isinstance(found, dict)
    return found


def _jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[271] = f"Phone {photos.MARKER}"
    exif.get_ifd(0x8825).update(photos.GPS)
    out = io.BytesIO()
    photos.picture().save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_attach_records_what_de_identification_would_remove_and_the_case_page_shows_it(world: World) -> None:
    number = ready_case(world)
    dicom_id = _attach(world, number, synthetic.dicom_image("kinds", patient_name=PATIENT_NAME))
    tiff_id = _attach(world, number, photos.tiff(), kind="photo")
    jpeg_id = _attach(world, number, _jpeg_with_gps(), kind="photo")

    assert _recorded(dicom_id) == {"present": ["UIDs", "patient ID", "patient name"], "removed_on_attach": []}
    tiff = _recorded(tiff_id)
    assert {"GPS location", "camera maker notes", "embedded thumbnail"} <= set(tiff["present"])
    # the JPEG was cleaned when attached: nothing left, and the page says what went
    jpeg = _recorded(jpeg_id)
    assert jpeg["present"] == [] and {"GPS location", "camera make and model"} <= set(jpeg["removed_on_attach"])

    client = signed_in_client(world.personas.members["clinician"])
    page = client.get(reverse("case_detail", args=[world.practice.slug, number])).content.decode()
    assert "De-identification removes: UIDs, patient ID, patient name" in page
    assert "Removed when attached: GPS location" in page
    assert "Nothing left for de-identification to remove" in page
    assert PATIENT_NAME not in page and "ROENTGEN" not in page and photos.MARKER not in page


def test_a_file_that_cannot_be_de_identified_says_so_on_the_case_page(world: World) -> None:
    number = ready_case(world)
    good = synthetic.dicom_image("cut", patient_name=PATIENT_NAME)
    file_id = _attach(world, number, good[: len(good) - 300])
    assert "refused" in _recorded(file_id)
    client = signed_in_client(world.personas.members["clinician"])
    page = client.get(reverse("case_detail", args=[world.practice.slug, number])).content.decode()
    assert "Cannot be de-identified (" in page and "left out of de-identified copies" in page


def test_a_new_version_records_its_own_identifiers(world: World) -> None:
    number = ready_case(world)
    file_id = _attach(world, number, photos.tiff(), kind="photo")
    clean = io.BytesIO()
    Image.new("RGB", (8, 8)).save(clean, "TIFF")
    access = clinician_access(world.personas)
    stored = StoredObject.objects.get(pk=file_id)
    pending = vault.seal_version(
        organization_id=access.organization.pk,
        object_id=stored.pk,
        version=stored.current_version + 1,
        chunks=[clean.getvalue()],
        length=len(clean.getvalue()),
    )
    actions.add_version(access, stored, pending)
    assert _recorded(file_id) == {"present": [], "removed_on_attach": []}
    assert stored.versions.get(version=1).identifiers["present"]  # the first version keeps its own
