"""The Files page and its recent-files partial: own files only, neutral names, constant queries."""

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


def test_files_page_lists_only_the_members_own_files_under_neutral_names(personas: Personas) -> None:
    staff, clinician = personas.members["staff"], personas.members["clinician"]
    mine = stored_file(personas.practice, staff, size=3 * 1024 * 1024)
    theirs = stored_file(personas.practice, clinician)
    response = signed_in_client(staff).get(reverse("files", args=[personas.practice.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert mine.neutral_name() in html
    assert "3.0\xa0MB" in html
    assert reverse("file_content", args=[mine.pk]) in html
    assert theirs.neutral_name() not in html
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
    assert response.content.decode().count("file_") == 6 * 2  # name cell + download label


def test_members_without_the_upload_permission_get_no_files_link(personas: Personas) -> None:
    response = signed_in_client(personas.members["auditor"]).get(reverse("org_home", args=[personas.practice.slug]))
    assert reverse("files", args=[personas.practice.slug]) not in response.content.decode()
    response = signed_in_client(personas.members["staff"]).get(reverse("org_home", args=[personas.practice.slug]))
    assert reverse("files", args=[personas.practice.slug]) in response.content.decode()
