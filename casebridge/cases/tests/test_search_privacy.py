"""A search term (usually a patient's name) never reaches a URL: it is posted, kept in the
session under an opaque id, and every link of the results carries that id, never the term."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.views import PAGE
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _draft(personas: Personas, patient: str) -> str:
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    return actions.create_case(
        access,
        patient_name=patient,
        case_type="digital_crown",
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    ).number


def test_a_search_is_posted_and_its_results_page_carries_an_opaque_id(personas: Personas) -> None:
    wanted = _draft(personas, "Rosa Carter")
    _draft(personas, "Ann Other")
    client = signed_in_client(personas.members["staff"])
    url = reverse("case_list", args=[personas.practice.slug])

    posted = client.post(url, {"q": "Carter", "view": "all"})

    assert posted.status_code == 302 and "Carter" not in posted["Location"]
    assert "search=" in posted["Location"] and "view=all" in posted["Location"]
    page = client.get(posted["Location"])
    html = page.content.decode()
    assert wanted in html and "Ann Other" not in html
    assert "Carter" not in page.wsgi_request.get_full_path()
    assert "q=Carter" not in html and "?q=" not in html


def test_the_next_page_keeps_the_search_by_its_id(personas: Personas) -> None:
    for i in range(PAGE + 2):
        _draft(personas, f"Rosa Carter {i}")
    _draft(personas, "Ann Other")
    client = signed_in_client(personas.members["staff"])
    url = reverse("case_list", args=[personas.practice.slug])
    first = client.get(client.post(url, {"q": "Carter", "view": "all"})["Location"])
    html = first.content.decode()
    older = html.split('class="button" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "Carter" not in older and "search=" in older

    second = client.get(url + older)

    assert "Rosa Carter" in second.content.decode() and "Ann Other" not in second.content.decode()


def test_a_search_id_is_worth_nothing_in_another_session(personas: Personas) -> None:
    _draft(personas, "Rosa Carter")
    _draft(personas, "Ann Other")
    url = reverse("case_list", args=[personas.practice.slug])
    location = signed_in_client(personas.members["staff"]).post(url, {"q": "Carter", "view": "all"})["Location"]

    elsewhere = signed_in_client(personas.members["clinician"]).get(location).content.decode()

    # No search there: the whole list, as without one; the id reveals nothing.
    assert "Ann Other" in elsewhere and "Rosa Carter" in elsewhere
