"""Training: a compliance officer writes a module with a quiz and assigns it by role; members
see it due, take it, pass or fail by the mark; coverage feeds the checklist; a module of
another organization is out of reach."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from casebridge.audit.models import Event
from casebridge.compliance import dashboard, training
from casebridge.compliance.models import TrainingCompletion, TrainingModule
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db

QUIZ = """Where may patient files be sent?
Any e-mail address
*Through CaseBridge to connected organizations

What do you do with a lost laptop?
*Report it to the security officer at once
Wait a week"""


def _module(personas: Personas, roles: list[str] | None = None) -> TrainingModule:
    officer = signed_in_client(personas.members["compliance_officer"])
    form = {"title": "HIPAA basics", "body": "Minimum necessary...", "quiz": QUIZ, "due_days": "14"}
    officer.post(reverse("training", args=[personas.practice.slug]), {**form, "roles": roles or []})
    return TrainingModule.objects.get()


def test_the_quiz_is_written_as_text_and_checked() -> None:
    quiz = training.parse_quiz(QUIZ)
    assert [q["answer"] for q in quiz] == [1, 0] and quiz[0]["choices"][1].startswith("Through")
    with pytest.raises(ValidationError, match="exactly one right answer"):
        training.parse_quiz("Q?\n*a\n*b")


def test_members_take_a_module_and_coverage_follows(personas: Personas) -> None:
    module = _module(personas, roles=["staff", "clinician"])
    assert module.quiz and module.roles == ["staff", "clinician"]
    training_check = next(c for c in dashboard.checks(personas.practice) if c.key == "training")
    assert training_check.state == dashboard.ATTENTION  # training: 0 of 2 done
    staff = signed_in_client(personas.members["staff"])
    page = staff.get(reverse("training", args=[personas.practice.slug])).content.decode()
    assert "HIPAA basics" in page and "due" in page
    url = reverse("training_module", args=[personas.practice.slug, module.pk])
    staff.post(url, {"q0": "0", "q1": "0"})  # half right: failed
    staff.post(url, {"q0": "1", "q1": "0"})
    results = list(TrainingCompletion.objects.order_by("completed_at").values_list("score", "passed"))
    assert results == [(50, False), (100, True)]
    assert training.coverage(personas.practice).done == 1
    assert Event.objects.filter(action="compliance.training.completed").count() == 2
    auditor = signed_in_client(personas.members["auditor"])  # not assigned
    auditor.post(url, {"q0": "1", "q1": "0"})
    assert TrainingCompletion.objects.count() == 2


def test_only_compliance_managers_write_and_outsiders_see_nothing(personas: Personas) -> None:
    staff = signed_in_client(personas.members["staff"])
    staff.post(reverse("training", args=[personas.practice.slug]), {"title": "x", "body": "y", "quiz": ""})
    assert not TrainingModule.objects.exists()
    module = _module(personas)
    outsider = signed_in_client(personas.outsider)
    other = reverse("training_module", args=[personas.other_practice.slug, module.pk])
    assert outsider.get(other).status_code == 404
