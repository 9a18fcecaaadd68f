"""A reviewer saves the audit log's current filters under a name and finds them again; filters
the page cannot understand are not saved; each person sees and deletes only their own."""

from __future__ import annotations

import pytest
from django.urls import reverse

from casebridge.audit.models import SavedFilter
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def test_saving_finding_and_deleting_filters(personas: Personas) -> None:
    auditor = signed_in_client(personas.members["auditor"])
    slug = personas.practice.slug
    url = reverse("audit_filters", args=[slug])
    saved = auditor.post(url, {"name": "Refusals", "query": "action=access.denied&outcome=denied"})
    assert saved.status_code == 302 and saved["Location"].endswith("?action=access.denied&outcome=denied")
    page = auditor.get(reverse("audit_log", args=[slug])).content.decode()
    assert "Refusals" in page and "?action=access.denied&amp;outcome=denied" in page
    auditor.post(url, {"name": "Bad", "query": "outcome=maybe"})
    assert not SavedFilter.objects.filter(name="Bad").exists()
    officer = signed_in_client(personas.members["compliance_officer"])
    assert "Refusals" not in officer.get(reverse("audit_log", args=[slug])).content.decode()
    mine = SavedFilter.objects.get()
    officer.post(url, {"delete": str(mine.pk)})
    assert SavedFilter.objects.filter(pk=mine.pk).exists()  # not theirs to delete
    auditor.post(url, {"delete": str(mine.pk)})
    assert not SavedFilter.objects.exists()
    assert signed_in_client(personas.members["staff"]).post(url, {"name": "x", "query": ""}).status_code == 403
