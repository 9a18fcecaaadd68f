"""`attach_candidates`, the query behind the Files page's case picker, never hides a case that
the attach rule (`attach_refusal`) would take: whatever the status, side, revocation or archive."""

from __future__ import annotations

import pytest
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.cases import actions
from casebridge.cases.models import Case, Status
from casebridge.core.testing import Personas
from casebridge.imaging.tests.cases import clinician_access, connect_lab, draft_case

pytestmark = pytest.mark.django_db


def test_every_case_the_attach_rule_allows_is_a_candidate_for_both_sides(personas: Personas) -> None:
    connect_lab(personas)
    practice = clinician_access(personas)
    lab = resolve(personas.lab_manager, personas.lab)
    assert lab is not None
    variants = [{}, {"lab_access_revoked_at": timezone.now()}, {"archived_at": timezone.now()}]
    for status in Status.values:
        for variant in variants:
            case = draft_case(practice, lab=personas.lab)
            Case.objects.filter(pk=case.pk).update(status=status, **variant)
    cases = list(Case.objects.all())

    for access in (practice, lab):
        allowed = {c.pk for c in cases if actions.may_attach(access, c)}
        offered = set(actions.attach_candidates(access).values_list("pk", flat=True))
        assert allowed, "each side may add files to some of these cases"
        assert allowed <= offered
        # And today no wider: the picker's query leaves out every case the rule would refuse.
        assert offered == allowed
