"""DICOMweb as outside tools see it: dicomweb-client against the running server."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.core.testing import Personas
from casebridge.imaging.models import IngestJob, IngestState, Series
from casebridge.imaging.synthetic import cbct_series
from casebridge.imaging.tests.cases import attach, clinician_access, connect_lab, draft_case, zipped

pytestmark = pytest.mark.django_db(transaction=True)
SLICES = 6


@pytest.fixture
def study(personas: Personas, vault_home: Path) -> tuple[Case, list[bytes]]:
    connect_lab(personas)
    access = clinician_access(personas)
    case = draft_case(access, patient_name="Rosa Carter", lab=personas.lab)
    slices = cbct_series("dicomweb", slices=SLICES, size=32)
    source = attach(access, case, zipped({f"{i}.dcm": data for i, data in enumerate(slices)}), kind="cbct")
    job = IngestJob.objects.get(source=source)  # queued by attaching, run at commit by the test backend
    assert job.state == IngestState.DONE
    return case, slices


def _client(
    live_server: Any, personas: Personas, who: str = "clinician", scopes: list[str] | None = None
) -> DICOMwebClient:
    user = personas.members[who] if who != "outsider" else personas.outsider
    organization = personas.practice if who != "outsider" else personas.other_practice
    _token, raw = create_api_token(
        organization=organization, name="viewer", scopes=scopes or ["cases:read"], days=1, actor=user, user=user
    )
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {raw}"})


def _uids(slices: list[bytes]) -> tuple[str, str, list[str]]:
    datasets = [pydicom.dcmread(io.BytesIO(s)) for s in slices]
    return datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID, [d.SOPInstanceUID for d in datasets]


def test_qido_finds_the_study_by_case_number_and_lists_series_and_instances(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    case, slices = study
    study_uid, series_uid, sop_uids = _uids(slices)
    client = _client(live_server, personas)

    found = client.search_for_studies(search_filters={"AccessionNumber": case.number})
    assert [s["0020000D"]["Value"][0] for s in found] == [study_uid]
    assert found[0]["00201208"]["Value"] == [SLICES] and found[0]["00080061"]["Value"] == ["CT"]
    series = client.search_for_series(study_uid)
    assert [s["0020000E"]["Value"][0] for s in series] == [series_uid]
    instances = client.search_for_instances(study_uid, series_uid, search_filters={"limit": 4, "offset": 2})
    assert [i["00080018"]["Value"][0] for i in instances] == sop_uids[2:6]
    assert Event.objects.filter(action="dicomweb.searched", patient_ref=str(case.patient_id)).exists()


def test_wado_returns_metadata_instances_frames_and_rendered_images(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    _case, slices = study
    study_uid, series_uid, sop_uids = _uids(slices)
    client = _client(live_server, personas)

    metadata = client.retrieve_series_metadata(study_uid, series_uid)
    assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(sop_uids)
    assert "BulkDataURI" in metadata[0]["7FE00010"]
    instance = client.retrieve_instance(study_uid, series_uid, sop_uids[3])
    original = pydicom.dcmread(io.BytesIO(slices[3]))
    assert instance.SOPInstanceUID == sop_uids[3] and (instance.pixel_array == original.pixel_array).all()
    frames = client.retrieve_instance_frames(
        study_uid, series_uid, sop_uids[3], frame_numbers=[1], media_types=(("application/octet-stream", "*"),)
    )
    assert frames == [original.PixelData]
    rendered = client.retrieve_instance_rendered(study_uid, series_uid, sop_uids[3], media_types=("image/png",))
    image = np.asarray(Image.open(io.BytesIO(rendered)))
    assert image.shape == (32, 32) and image.max() > image.min()
    series = client.retrieve_series(study_uid, series_uid)
    assert sorted(i.SOPInstanceUID for i in series) == sorted(sop_uids)


def test_frames_of_a_multi_frame_instance_are_its_own_bytes(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    """Frames of a native multi-frame object are read from their own place in it (the pixel data
    element is skipped while the header is read), and are exactly the object's frames."""
    from pydicom.data import get_testdata_file

    case, _slices = study
    content = Path(str(get_testdata_file("rtdose.dcm"))).read_bytes()
    attach(clinician_access(personas), case, content, kind="cbct")
    original = pydicom.dcmread(io.BytesIO(content))
    size = original.Rows * original.Columns * original.BitsAllocated // 8
    client = _client(live_server, personas)

    frames = client.retrieve_instance_frames(
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.SOPInstanceUID,
        frame_numbers=[3, 15],
        media_types=(("application/octet-stream", "*"),),
    )

    assert frames == [original.PixelData[2 * size : 3 * size], original.PixelData[14 * size : 15 * size]]


def test_frames_are_audited_once_per_look_at_the_series(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    _case, slices = study
    study_uid, series_uid, sop_uids = _uids(slices)
    client = _client(live_server, personas)
    for sop in sop_uids:
        client.retrieve_instance_frames(
            study_uid, series_uid, sop, frame_numbers=[1], media_types=(("application/octet-stream", "*"),)
        )
    assert Event.objects.filter(action="dicomweb.retrieved", details__what="frames").count() == 1


def test_a_viewer_streaming_the_series_after_its_metadata_is_one_look_and_the_stream_is_whole(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    _case, slices = study
    study_uid, series_uid, _sop_uids = _uids(slices)
    client = _client(live_server, personas)
    # A tool that retrieves the series without opening it first is recorded, every time.
    client.retrieve_series(study_uid, series_uid)
    assert Event.objects.filter(action="dicomweb.retrieved", details__what="instances").count() == 1

    client.retrieve_series_metadata(study_uid, series_uid)  # the viewer opens the series
    instances = client.retrieve_series(study_uid, series_uid)  # and streams its pixels

    assert sorted(bytes(i.PixelData) for i in instances) == sorted(
        bytes(pydicom.dcmread(io.BytesIO(s)).PixelData) for s in slices
    )
    looks = Event.objects.filter(action="dicomweb.retrieved", details__series=series_uid)
    assert sorted(e.details["what"] for e in looks) == ["instances", "metadata"]


def test_another_organization_and_a_token_without_cases_read_get_nothing(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    case, slices = study
    study_uid, series_uid, sop_uids = _uids(slices)
    outsider = _client(live_server, personas, "outsider")
    assert outsider.search_for_studies() == []
    assert outsider.search_for_studies(search_filters={"AccessionNumber": case.number}) == []
    for call in (
        lambda c: c.search_for_series(study_uid),
        lambda c: c.retrieve_series_metadata(study_uid, series_uid),
        lambda c: c.retrieve_instance(study_uid, series_uid, sop_uids[0]),
        lambda c: c.retrieve_instance_frames(study_uid, series_uid, sop_uids[0], frame_numbers=[1]),
    ):
        with pytest.raises(requests.HTTPError) as refused:
            call(outsider)
        assert refused.value.response.status_code == 404
    auditor = _client(live_server, personas, "owner", scopes=["audit:read"])
    assert auditor.search_for_studies() == []
    with pytest.raises(requests.HTTPError):
        auditor.retrieve_series_metadata(study_uid, series_uid)


def test_anonymous_requests_and_patient_searches_are_refused(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    assert requests.get(f"{live_server.url}/dicomweb/studies", timeout=10).status_code == 401
    client = _client(live_server, personas)
    for key in ("PatientName", "00100010", "PatientID", "PatientBirthDate"):
        with pytest.raises(requests.HTTPError) as refused:
            client.search_for_studies(search_filters={key: "Carter*"})
        assert refused.value.response.status_code == 400
    with pytest.raises(requests.HTTPError) as unknown:
        client.search_for_studies(search_filters={"Whatever": "1"})
    assert unknown.value.response.status_code == 400


def test_the_lab_sees_the_study_while_it_has_the_case_and_not_after_revocation(
    live_server: Any, personas: Personas, study: tuple[Case, list[bytes]]
) -> None:
    case, slices = study
    study_uid, series_uid, _sop = _uids(slices)
    practice = clinician_access(personas)
    lab_user = personas.lab_manager
    _t, raw = create_api_token(
        organization=personas.lab, name="lab", scopes=["cases:read"], days=1, actor=lab_user, user=lab_user
    )
    lab = DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {raw}"})
    assert lab.search_for_studies() == []  # a draft is the practice's alone
    Case.objects.filter(pk=case.pk).update(status="submitted")  # as if sent: the lab now has it
    assert [s["0020000D"]["Value"][0] for s in lab.search_for_studies()] == [study_uid]
    actions.revoke_lab_access(practice, Case.objects.get(pk=case.pk))
    assert lab.search_for_studies() == []
    with pytest.raises(requests.HTTPError) as refused:
        lab.retrieve_series_metadata(study_uid, series_uid)
    assert refused.value.response.status_code == 404
    assert Series.objects.count() == 1
