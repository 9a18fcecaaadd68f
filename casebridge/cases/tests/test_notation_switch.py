"""Tooth numbering switched on the case form itself: the preference is saved by a small POST that
carries nothing of the form, and the form's tooth labels are read in the numbering it showed."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.cases.models import Case
from casebridge.cases.tests import test_views, test_workflow
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA

SAVE = "/account/preferences/notation/"


def test_the_path_is_the_one_the_page_posts_to() -> None:
    assert reverse("notation_preference") == SAVE


def test_saving_the_numbering_changes_only_the_numbering(personas: Personas) -> None:
    user = personas.members["clinician"]
    user.full_name, user.notify_messages = "Dr. Clara", True
    user.save()
    response = signed_in_client(user).post(SAVE, {"tooth_notation": "palmer"})
    assert response.status_code == 200 and b"Palmer" in response.content
    user.refresh_from_db()
    assert user.tooth_notation == "palmer" and user.full_name == "Dr. Clara" and user.notify_messages


@pytest.mark.parametrize("posted", [{}, {"tooth_notation": "roman"}, {"tooth_notation": ""}])
def test_a_bad_numbering_is_refused_and_changes_nothing(personas: Personas, posted: dict[str, str]) -> None:
    user = personas.members["clinician"]
    response = signed_in_client(user).post(SAVE, posted)
    assert response.status_code == 400 and b"Choose Universal, FDI or Palmer" in response.content
    user.refresh_from_db()
    assert user.tooth_notation == "universal"


def test_only_a_signed_in_person_may_save_and_only_by_post(personas: Personas) -> None:
    anonymous = Client().post(SAVE, {"tooth_notation": "fdi"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("account_login"))
    assert signed_in_client(personas.members["clinician"]).get(SAVE).status_code == 405


def test_the_form_posts_its_labels_in_the_numbering_it_showed(world: Personas) -> None:
    """Switched to FDI on the page (the labels were rewritten there) while the saved preference
    is still Universal: '16' is the upper right first molar, not Universal tooth 16."""
    client = test_views._clinician(world, "universal")
    form = test_views._form(world, tooth_notation="fdi", item_tooth=["16", "15", "14"], item_shade=["A2", "A2", "A2"])
    response = client.post(reverse("case_new", args=[world.practice.slug]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert sorted(Case.objects.get().items.values_list("tooth", flat=True)) == [14, 15, 16]


def test_a_form_without_a_valid_numbering_falls_back_to_the_preference(world: Personas) -> None:
    client = test_views._clinician(world, "universal")
    form = test_views._form(world, tooth_notation="roman")  # Universal 3, 4, 5 in the default form
    assert client.post(reverse("case_new", args=[world.practice.slug]), form).status_code == 302
    assert sorted(Case.objects.get().items.values_list("tooth", flat=True)) == [14, 15, 16]


def test_the_form_offers_the_switch_with_every_label_of_every_tooth(world: Personas) -> None:
    page = test_views._clinician(world, "palmer").get(reverse("case_new", args=[world.practice.slug]))
    html = page.content.decode()
    assert 'name="tooth_notation"' in html and '<option value="palmer" selected>' in html
    assert 'hx-params="tooth_notation,csrfmiddlewaretoken"' in html  # never the half-filled form
    assert 'data-fdi="16" data-label="UR6" data-label-universal="3" data-label-palmer="UR6"' in html
    assert f'href="{reverse("preferences")}"' not in html  # the old link that lost the form
