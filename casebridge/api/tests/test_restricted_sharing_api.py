"""A patient's restriction of sharing (compliance/subject_requests.py) refuses new external links
through the API as on the pages, with the reason, and creates nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.api.tests.conftest import World, ready_case
from casebridge.cases.models import Case
from casebridge.compliance import subject_requests as requests
from casebridge.compliance.models import RequestKind
from casebridge.sharing.models import ExternalLink

pytestmark = pytest.mark.django_db


def test_the_api_refuses_a_link_for_a_restricted_patient_with_the_reason(world: World) -> None:
    number = ready_case(world)
    api = world.api()
    assert api.post(f"cases/{number}/submit").status_code == 200
    files = [a["file_id"] for a in api.get(f"cases/{number}/attachments").json()]
    share = {"files": files[:1], "recipient_email": "x@y.test", "purpose": "referral"}
    officer = resolve(world.personas.members["compliance_officer"], world.practice)
    assert officer is not None
    made = requests.register(
        officer,
        patient=Case.objects.get(number=number).patient,
        kind=RequestKind.RESTRICTION,
        received_on=timezone.localdate(),
        under_gdpr=False,
    )
    requests.restrict(officer, made, "No sharing outside the practice.")

    refused = api.post(f"cases/{number}/links", share)

    assert refused.status_code == 403
    assert "restrict the sharing" in refused.json()["detail"]
    assert not ExternalLink.objects.exists()
    requests.lift(officer, made, "The patient consents to the referral.")
    assert api.post(f"cases/{number}/links", share).status_code == 201
