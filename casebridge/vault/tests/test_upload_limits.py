"""Uploads begun and not finished are limited per person and per organization: announcing
gigabytes that never come is refused with a clear answer, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.core.testing import Personas
from casebridge.vault.models import Upload
from casebridge.vault.tests.samples import binary_stl
from casebridge.vault.tests.test_uploads import _client, _upload

pytestmark = pytest.mark.django_db
GiB = 1 << 30


def _create(client: Client, length: int) -> object:
    return client.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH=str(length))


def test_a_person_past_their_uploads_in_flight_is_refused_with_413(
    personas: Personas, vault_home: Path, settings: pytest.FixtureRequest
) -> None:
    settings.VAULT_UPLOADS_IN_FLIGHT_PER_PERSON = 2
    front_desk = _client(personas, "staff")
    assert _create(front_desk, 1000).status_code == 201
    assert _create(front_desk, 1000).status_code == 201

    refused = _create(front_desk, 1000)

    assert refused.status_code == 413
    assert "You have 2 uploads in progress" in refused.json()["detail"]
    assert Upload.objects.count() == 2
    # Someone else of the organization is not held back by it.
    assert _create(_client(personas, "clinician"), 1000).status_code == 201


def test_announced_bytes_count_per_person_and_per_organization(
    personas: Personas, vault_home: Path, settings: pytest.FixtureRequest
) -> None:
    settings.VAULT_UPLOAD_BYTES_IN_FLIGHT_PER_PERSON = 12 * GiB
    settings.VAULT_UPLOAD_BYTES_IN_FLIGHT_PER_ORGANIZATION = 14 * GiB
    front_desk, clinician = _client(personas, "staff"), _client(personas, "clinician")
    for _ in range(2):
        assert _create(front_desk, 5 * GiB).status_code == 201
    mine = _create(front_desk, 5 * GiB)
    assert mine.status_code == 413 and "10.0 GiB" in mine.json()["detail"]
    theirs = _create(clinician, 5 * GiB)
    assert theirs.status_code == 413
    assert "Your organization has 2 uploads in progress" in theirs.json()["detail"]
    assert Upload.objects.count() == 2


def test_finished_uploads_no_longer_count(
    personas: Personas, vault_home: Path, settings: pytest.FixtureRequest
) -> None:
    settings.VAULT_UPLOADS_IN_FLIGHT_PER_PERSON = 1
    front_desk = _client(personas, "staff")
    _upload(front_desk, binary_stl(5000))
    assert _create(front_desk, 1000).status_code == 201
