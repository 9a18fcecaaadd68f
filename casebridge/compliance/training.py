"""Workforce training (issue 16, item 5): modules with a short quiz, assigned by role, due within
N days of joining or of the last completion when refreshed yearly; completion with a score;
coverage for the compliance checklist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance.models import TrainingCompletion, TrainingModule
from casebridge.orgs.models import Membership, Organization


def parse_quiz(text: str) -> list[dict[str, Any]]:
    """The quiz as typed: one question per block, first line the question, then choices, the right
    one starting with '*'. Blocks are separated by a blank line."""
    quiz = []
    for block in [b for b in text.replace("\r", "").split("\n\n") if b.strip()]:
        lines = [line.strip() for line in block.strip().split("\n") if line.strip()]
        if len(lines) < 3:
            raise ValidationError({"quiz": "Each question needs at least two choices below it."})
        choices = [line.lstrip("*").strip() for line in lines[1:]]
        right = [i for i, line in enumerate(lines[1:]) if line.startswith("*")]
        if len(right) != 1:
            raise ValidationError({"quiz": f"Mark exactly one right answer with * in: {lines[0][:60]}"})
        quiz.append({"question": lines[0], "choices": choices, "answer": right[0]})
    return quiz


def save_module(
    access: OrgAccess, *, title: str, body: str, quiz_text: str, roles: list[str], due_days: int
) -> TrainingModule:
    access.require(Perm.COMPLIANCE_MANAGE)
    errors = {}
    if not title.strip():
        errors["title"] = "Give the module a title."
    if not body.strip():
        errors["body"] = "Write the module's text."
    if errors:
        raise ValidationError(errors)
    quiz = parse_quiz(quiz_text)
    with transaction.atomic():
        module = TrainingModule.objects.create(
            organization=access.organization,
            title=title.strip(),
            body=body.strip(),
            quiz=quiz,
            roles=roles,
            due_days=due_days,
        )
        record(
            "compliance.training.module_saved",
            actor=access.actor,
            organization=access.organization,
            details={"module": str(module.pk), "questions": len(quiz), "roles": roles},
        )
    return module


def assigned(module: TrainingModule, membership: Membership) -> bool:
    return not module.roles or membership.role in module.roles


def due_at(module: TrainingModule, membership: Membership, last: TrainingCompletion | None) -> datetime | None:
    """When this member must (again) complete the module; None when done for now."""
    if last is not None and last.passed:
        if not module.annual:
            return None
        return last.completed_at + timedelta(days=365)
    return max(membership.created_at, module.created_at) + timedelta(days=module.due_days)


def take(access: OrgAccess, module: TrainingModule, answers: list[int]) -> TrainingCompletion:
    """Record one attempt: the score is the share of right answers."""
    user = access.actor
    if not isinstance(user, User) or access.membership is None or not assigned(module, access.membership):
        raise ValidationError("This module is not assigned to you.")
    right = sum(1 for q, a in zip(module.quiz, answers, strict=False) if q["answer"] == a)
    score = round(100 * right / len(module.quiz)) if module.quiz else 100
    with transaction.atomic():
        completion = TrainingCompletion.objects.create(
            module=module, user=user, score=score, passed=score >= module.pass_mark
        )
        record(
            "compliance.training.completed",
            actor=user,
            organization=access.organization,
            details={"module": str(module.pk), "score": score, "passed": completion.passed},
        )
    return completion


@dataclass
class Coverage:
    required: int
    done: int
    overdue: int


def coverage(organization: Organization) -> Coverage:
    now = timezone.now()
    required = done = overdue = 0
    modules = list(TrainingModule.objects.filter(organization=organization))
    for membership in Membership.objects.filter(organization=organization, is_active=True):
        for module in modules:
            if not assigned(module, membership):
                continue
            required += 1
            last = module.completions.filter(user_id=membership.user_id, passed=True).first()
            when = due_at(module, membership, last)
            if when is None or when > now:
                done += 1 if last is not None else 0
            if when is not None and when <= now:
                overdue += 1
    return Coverage(required, done, overdue)
