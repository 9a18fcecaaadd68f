"""Live updates of the case page: the status fragment notices when the other side acts; only the
case's parties may poll it; polling never keeps an idle session alive."""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casebridge.access.policy import case_for
from casebridge.accounts.middleware import SESSION_SEEN_AT
from casebridge.audit.models import Event
from casebridge.cases import actions, live
from casebridge.cases.models import Case
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _lab, _ready_crown
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _submitted(p: Personas) -> Case:
    case = _ready_crown(p)
    actions.submit_case(_access(p), case)
    return case


def _page_stamp(client: Client, p: Personas, case: Case) -> str:
    html = client.get(reverse("case_detail", args=[p.practice.slug, case.number])).content.decode()
    found = re.search(r'hx-get="[^"]*/live/\?seen=([^"]+)" hx-trigger="every 15s"', html)
    assert found is not None, "the case page polls its status fragment"
    return found.group(1)


def _poll(client: Client, p: Personas, case: Case, seen: str, org: str = "") -> tuple[int, str]:
    url = reverse("case_live", args=[org or p.practice.slug, case.number])
    response = client.get(url, {"seen": seen}, HTTP_HX_REQUEST="true")
    return response.status_code, response.content.decode()


def test_the_fragment_says_nothing_until_the_lab_acts_then_names_the_new_status(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.members["clinician"])
    seen = _page_stamp(client, world, case)
    status, html = _poll(client, world, case, seen)
    assert status == 200 and 'id="case-live"' in html and "alert" not in html
    actions.confirm_receipt(_lab(world), case_for(_lab(world), case.number))
    status, html = _poll(client, world, case, seen)
    assert "This case is now <strong>Received by lab</strong>" in html and "Reload to see what changed" in html
    # The fragment keeps the page's marker, so the notice stays until the page is reloaded.
    assert f"seen={seen}" in html


def test_a_message_from_the_other_side_is_noticed(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.members["clinician"])
    seen = _page_stamp(client, world, case)
    actions.post_message(_lab(world), case, "Is the margin subgingival?")
    assert "There is news on this case" in _poll(client, world, case, seen)[1]


def test_polling_shows_no_patient_data_and_writes_no_audit_event(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.members["clinician"])
    seen = _page_stamp(client, world, case)
    events = Event.objects.count()
    html = _poll(client, world, case, "received.1.0.0")[1]
    assert Event.objects.count() == events
    assert "Jane" not in html and "Roe" not in html and seen


def test_a_malformed_marker_is_refused_clearly(world: Personas) -> None:
    case = _submitted(world)
    status, html = _poll(signed_in_client(world.members["clinician"]), world, case, "<script>")
    assert status == 400 and "Reload the case page" in html


def test_only_the_parties_may_poll_and_a_lab_never_a_draft(world: Personas) -> None:
    draft = _ready_crown(world)
    seen = live.stamp(draft)
    assert _poll(signed_in_client(world.lab_manager), world, draft, seen, world.lab.slug)[0] == 404
    assert _poll(signed_in_client(world.outsider), world, draft, seen)[0] == 404
    assert _poll(signed_in_client(world.outsider), world, draft, seen, world.other_practice.slug)[0] == 404


@pytest.mark.parametrize("poll", ["case_live", "notification_bell"])
def test_polling_does_not_extend_the_idle_timer(world: Personas, poll: str) -> None:
    case = _submitted(world)
    client = signed_in_client(world.members["clinician"])
    seen = _page_stamp(client, world, case)
    url = (
        reverse("case_live", args=[world.practice.slug, case.number]) + f"?seen={seen}"
        if poll == "case_live"
        else reverse("notification_bell", args=[world.practice.slug])
    )
    session = client.session
    session[SESSION_SEEN_AT] = time.time() - 100
    session.save()
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    assert client.session[SESSION_SEEN_AT] < time.time() - 99
    # A page the person opens is activity.
    client.get(reverse("org_home", args=[world.practice.slug]))
    assert client.session[SESSION_SEEN_AT] > time.time() - 5
    # Once idle past the limit, a poll ends the session instead of keeping it.
    session = client.session
    session[SESSION_SEEN_AT] = time.time() - 16 * 60
    session.save()
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 401
    assert client.get(reverse("org_home", args=[world.practice.slug])).status_code == 302


def test_a_poll_costs_the_same_few_queries_however_busy_the_case(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.members["clinician"])
    seen = _page_stamp(client, world, case)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert _poll(client, world, case, seen)[0] == 200
        return len(queries)

    few = count()
    for i in range(10):
        actions.post_message(_lab(world), case, f"news {i}")
    assert count() == few
