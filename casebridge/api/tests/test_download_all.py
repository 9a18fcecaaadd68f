"""Download all through the API (and the case page's link to it): every file the caller may read
in one ZIP under the files' case names, decrypted as it streams, one audit event naming every
file and the patient; the other organization, a token without the scope and the revoked lab
get nothing."""

from __future__ import annotations

import pytest

from casebridge.api.tests.conftest import World, ready_case
from casebridge.audit.models import Event
from casebridge.sharing.tests.test_download_all import unzip as _unzip
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject

pytestmark = pytest.mark.django_db


def _plaintext(file_id: str) -> bytes:
    stored = StoredObject.objects.get(pk=file_id)
    return b"".join(bytes(s) for s in vault.read_version(vault.get_version(stored)))


def test_the_lab_downloads_every_file_under_its_case_name_in_one_audited_zip(world: World) -> None:
    number = ready_case(world)
    world.api().post(f"cases/{number}/submit")
    lab = world.api("technician")
    files = {a["name"]: a["file_id"] for a in lab.get(f"cases/{number}/attachments").json()}

    response = lab.client.get(f"/api/v1/cases/{number}/files.zip")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{number}.zip"'
    entries = _unzip(response)
    assert sorted(entries) == sorted(files) and f"{number}_upper_1.stl" in entries
    assert all(entries[name] == _plaintext(file_id) for name, file_id in files.items())
    event = Event.objects.get(action="case.files_downloaded")
    assert sorted(event.details["files"]) == sorted(files.values()) and event.patient_ref


def test_nobody_else_gets_the_archive(world: World) -> None:
    number = ready_case(world)
    assert world.api("technician").client.get(f"/api/v1/cases/{number}/files.zip").status_code == 404  # a draft
    world.api().post(f"cases/{number}/submit")
    assert world.api("outsider").client.get(f"/api/v1/cases/{number}/files.zip").status_code == 404
    no_scope = world.api("technician", ["org:read"]).client.get(f"/api/v1/cases/{number}/files.zip")
    assert no_scope.status_code == 403
    world.api("owner").post(f"cases/{number}/revoke-lab-access")
    assert world.api("technician").client.get(f"/api/v1/cases/{number}/files.zip").status_code == 404
    assert not Event.objects.filter(action="case.files_downloaded").exists()
