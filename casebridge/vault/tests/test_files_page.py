"""The Files page, a person's inbox: own files only, named by type and time (the uploaded names
never reach the server) or by their case name once attached, where each is used, attach to a
case and delete, constant queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from casebridge.accounts.models import User
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs.models import Organization
from casebridge.vault.models import ObjectVersion, StoredObject

pytestmark = pytest.mark.django_db


def stored_file(org: Organization, user: User, size: int = 2048) -> StoredObject:
    """Rows only: the list never opens the ciphertext."""
    stored = StoredObject.objects.create(
        organization=org, created_by=user, file_type="stl", mime_type="model/stl", extension="stl", current_version=1
    )
    ObjectVersion.objects.create(
        stored_object=stored,
        version=1,
        size=size,
        ciphertext_size=size + 100,
        sha256="0" * 64,
        blob_name=f"objects/{stored.pk}/v1",
        org_key_version=1,
        wrapped_dek=b"k",
        created_by=user,
    )
    return stored


def test_files_page_lists_only_the_members_own_files(personas: Personas) -> None:
    staff, clinician = personas.members["staff"], personas.members["clinician"]
    mine = stored_file(personas.practice, staff, size=3 * 1024 * 1024)
    theirs = stored_file(personas.practice, clinician)
    response = signed_in_client(staff).get(reverse("files", args=[personas.practice.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "STL upload of " in html and "not in a case" in html
    assert "3.0\xa0MB" in html
    assert reverse("file_content", args=[mine.pk]) in html
    assert reverse("file_content", args=[theirs.pk]) not in html
    # What the page's script needs, none of it inline.
    assert 'data-endpoint="/api/v1/uploads/"' in html
    assert f'data-organization="{personas.practice.slug}"' in html
    assert "<script>" not in html


def test_recent_files_partial_costs_the_same_queries_however_many_files(
    personas: Personas, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    staff = personas.members["staff"]
    client = signed_in_client(staff)
    url = reverse("files_recent", args=[personas.practice.slug])
    stored_file(personas.practice, staff)
    client.get(url)  # warm the session and the permission lookups
    with CaptureQueriesContext(connection) as baseline:
        assert client.get(url).status_code == 200
    for _ in range(5):
        stored_file(personas.practice, staff)
    with django_assert_num_queries(len(baseline.captured_queries)):
        response = client.get(url)
    assert response.content.decode().count("STL upload of ") == 6


def test_members_without_the_upload_permission_get_no_files_link(personas: Personas) -> None:
    response = signed_in_client(personas.members["auditor"]).get(reverse("org_home", args=[personas.practice.slug]))
    assert reverse("files", args=[personas.practice.slug]) not in response.content.decode()
    response = signed_in_client(personas.members["staff"]).get(reverse("org_home", args=[personas.practice.slug]))
    assert reverse("files", args=[personas.practice.slug]) in response.content.decode()


# --- the inbox's actions --------------------------------------------------------------------
@pytest.fixture
def inbox(personas: Personas, vault_home: object) -> tuple[Personas, StoredObject, str]:
    """A draft case and a real upload (encrypted in the vault) of the practice's staff member."""
    from casebridge.imaging.tests.cases import clinician_access, draft_case, stored
    from casebridge.vault.tests.samples import binary_stl

    staff = clinician_access(personas, "staff")
    case = draft_case(clinician_access(personas), patient_name="Rosa Carter")
    return personas, stored(staff, binary_stl(1200)), case.number


def test_an_upload_is_attached_to_a_case_through_the_case_rules_and_then_shows_where_it_is_used(
    inbox: tuple[Personas, StoredObject, str],
) -> None:
    from casebridge.audit.models import Event
    from casebridge.cases.models import Attachment

    personas, upload, number = inbox
    client = signed_in_client(personas.members["staff"])
    page = client.get(reverse("files", args=[personas.practice.slug])).content.decode()
    assert f"{number} · Rosa Carter" in page  # the case picker
    assert Event.objects.filter(action="patient.viewed", details__via="web.files").exists()

    done = client.post(
        reverse("file_attach", args=[personas.practice.slug, upload.pk]),
        {"case": number, "kind": "scan", "label": "upper"},
        follow=True,
    )

    attachment = Attachment.objects.get(stored_object=upload)
    assert attachment.case.number == number and attachment.kind == "scan"
    html = done.content.decode()
    assert f"Attached to {number} as {number}_upper_1.stl" in html
    assert f"{number}_upper_1.stl" in html and "Part of the case's record" in html
    assert reverse("file_destroy", args=[personas.practice.slug, upload.pk]) not in html  # no delete once used
    assert (
        Event.objects.filter(action="case.file_attached").exists()
        or Event.objects.filter(action__startswith="case.", target_id=str(attachment.case.pk)).exists()
    )


def test_an_unused_upload_is_deleted_and_a_used_one_cannot_be(inbox: tuple[Personas, StoredObject, str]) -> None:
    personas, upload, number = inbox
    client = signed_in_client(personas.members["staff"])
    url = reverse("file_destroy", args=[personas.practice.slug, upload.pk])
    assert client.post(url, {"reason": "x"}).status_code == 302  # too short: said, nothing destroyed
    upload.refresh_from_db()
    assert upload.destroyed_at is None

    assert client.post(url, {"reason": "Uploaded by mistake"}).status_code == 302
    upload.refresh_from_db()
    assert upload.destroyed_at is not None
    assert client.post(url, {"reason": "Uploaded by mistake"}).status_code == 404  # gone

    from casebridge.imaging.tests.cases import clinician_access, stored
    from casebridge.vault.tests.samples import binary_stl

    used = stored(clinician_access(personas, "staff"), binary_stl(900))
    client.post(reverse("file_attach", args=[personas.practice.slug, used.pk]), {"case": number, "kind": "scan"})
    refused = client.post(reverse("file_destroy", args=[personas.practice.slug, used.pk]), {"reason": "Mistake!"})
    assert refused.status_code == 404  # the case keeps it: only its practice's owners destroy it, from the API
    used.refresh_from_db()
    assert used.destroyed_at is None and used.attached_at is not None


def test_another_persons_or_organizations_upload_is_not_found(inbox: tuple[Personas, StoredObject, str]) -> None:
    personas, upload, number = inbox
    body = {"case": number, "kind": "scan", "label": "upper"}
    clinician = signed_in_client(personas.members["clinician"])  # same practice, not the uploader
    assert clinician.post(reverse("file_attach", args=[personas.practice.slug, upload.pk]), body).status_code == 404
    outsider = signed_in_client(personas.outsider)
    for slug in (personas.practice.slug, personas.other_practice.slug):
        assert outsider.post(reverse("file_attach", args=[slug, upload.pk]), body).status_code == 404
        assert outsider.post(reverse("file_destroy", args=[slug, upload.pk]), {"reason": "Not mine"}).status_code == 404
    upload.refresh_from_db()
    assert upload.destroyed_at is None and upload.attached_at is None


def test_a_case_that_is_not_the_persons_is_refused_without_attaching(
    inbox: tuple[Personas, StoredObject, str],
) -> None:
    personas, upload, _number = inbox
    client = signed_in_client(personas.members["staff"])
    done = client.post(
        reverse("file_attach", args=[personas.practice.slug, upload.pk]),
        {"case": "CB-1999-000001", "kind": "scan"},
        follow=True,
    )
    assert "Choose one of your cases" in done.content.decode()
    upload.refresh_from_db()
    assert upload.attached_at is None
