"""One search through every case a person may see: typed on any tab, it finds cases in every
state, by case number, words of the patient's name, chart number, date of birth in the usual
notations, or the doctor's, lab's or practice's name; never another organization's cases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.cases.queries import case_search, dates_in
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _case(personas: Personas, patient: str, *, born: date | None = None, chart: str = "", closed: bool = False) -> Case:
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    case = actions.create_case(
        access,
        patient_name=patient,
        case_type="digital_crown",
        patient_dob=born,
        chart_number=chart,
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )
    if closed:  # as if the whole story had run: a completed, archived crown
        Case.objects.filter(pk=case.pk).update(status=Status.COMPLETED, archived_at=timezone.now())
    return case


def _found(personas: Personas, term: str, view: str = "open") -> str:
    client = signed_in_client(personas.members["staff"])
    url = reverse("case_list", args=[personas.practice.slug])
    posted = client.post(url, {"q": term, "view": view})
    assert posted.status_code == 302 and term not in posted["Location"]
    return client.get(posted["Location"]).content.decode()


def test_a_search_typed_on_the_open_tab_finds_a_completed_archived_case(personas: Personas) -> None:
    old = _case(personas, "Rosa Carter", closed=True)
    other = _case(personas, "Ann Other")

    html = _found(personas, "Carter", view="open")

    assert old.number in html and other.number not in html
    assert "Completed" in html and "found in all cases" in html


@pytest.mark.parametrize(
    "term", ["C-1717", "c-1717", "1985-03-14", "03/14/1985", "14.03.1985", "carter rosa", "ROS", "car"]
)
def test_chart_number_date_of_birth_and_words_of_the_name_find_the_patient(personas: Personas, term: str) -> None:
    wanted = _case(personas, "Rosa Carter", born=date(1985, 3, 14), chart="C-1717")
    unwanted = _case(personas, "Oscar Rosario", born=date(1985, 4, 3), chart="C-17")

    html = _found(personas, term)

    assert wanted.number in html
    if term not in ("ROS",):  # "ros" starts a word of both names
        assert unwanted.number not in html


def test_a_word_must_start_a_word_of_the_name_and_all_words_must_match(personas: Personas) -> None:
    _case(personas, "Rosa Carter")
    assert Case.objects.filter(case_search("arter")).count() == 0  # inside a word: not a name match
    assert Case.objects.filter(case_search("rosa carter")).count() == 1
    assert Case.objects.filter(case_search("rosa smith")).count() == 0


def test_an_ambiguous_date_is_read_both_ways_and_nonsense_is_no_date() -> None:
    assert dates_in("03/04/1985") == {date(1985, 3, 4), date(1985, 4, 3)}
    assert dates_in("1985-03-14") == {date(1985, 3, 14)}
    assert dates_in("31/02/1985") == set() and dates_in("Carter") == set()


def test_another_organizations_cases_are_never_found(personas: Personas) -> None:
    mine = _case(personas, "Rosa Carter", chart="C-9")
    outsider = personas.outsider
    client = signed_in_client(outsider)
    url = reverse("case_list", args=[personas.other_practice.slug])
    for term in ("Carter", "C-9", mine.number):
        html = client.get(client.post(url, {"q": term, "view": "all"})["Location"]).content.decode()
        rows = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]  # the search box repeats the term
        assert mine.number not in rows and "Rosa Carter" not in rows and "No cases here." in rows


def test_the_term_is_in_no_url_and_no_audit_event(personas: Personas) -> None:
    _case(personas, "Rosa Carter", chart="C-4242")
    _found(personas, "C-4242")
    assert Event.objects.filter(action="patient.viewed", details__searched=True).exists()
    for event in Event.objects.all():
        assert "C-4242" not in str(event.details) and "Carter" not in str(event.details)
