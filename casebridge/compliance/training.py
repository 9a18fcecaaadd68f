"""Workforce training (issue 16, item 5): modules with a short quiz and attached documents,
assigned by role, due within N days of joining or of the last completion when refreshed yearly;
completion with a score and a certificate; coverage for the compliance checklist. A module can be
made onboarding: members who join afterwards open no patient data until they pass it (the gate
itself is in access.policy.resolve, so pages, the API and DICOMweb all follow it)."""

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
from casebridge.compliance import documents
from casebridge.compliance.models import TrainingAttachment, TrainingCompletion, TrainingModule
from casebridge.core.pdf import document, latin
from casebridge.orgs.models import Membership, Organization

ATTACHMENT_LIMIT = 50 * 1024 * 1024  # training documents: policies, slides; not scans


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
    access: OrgAccess,
    *,
    title: str,
    body: str,
    quiz_text: str,
    roles: list[str],
    due_days: int,
    onboarding: bool = False,
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
            onboarding_since=timezone.now() if onboarding else None,
        )
        record(
            "compliance.training.module_saved",
            actor=access.actor,
            organization=access.organization,
            details={"module": str(module.pk), "questions": len(quiz), "roles": roles, "onboarding": onboarding},
        )
    return module


def set_onboarding(access: OrgAccess, module: TrainingModule, required: bool) -> None:
    """Make a module required before patient data for members who join from now on (or stop
    requiring it). Members already at work keep their access."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if module.organization_id != access.organization.pk:
        raise ValidationError("This module belongs to another organization.")
    if required == (module.onboarding_since is not None):
        return
    with transaction.atomic():
        module.onboarding_since = timezone.now() if required else None
        module.save(update_fields=["onboarding_since"])
        record(
            "compliance.training.onboarding",
            actor=access.actor,
            organization=access.organization,
            details={"module": str(module.pk), "required": required},
        )


def attach(access: OrgAccess, module: TrainingModule, *, title: str, chunks: Any, length: int) -> TrainingAttachment:
    """Store a document with a module, encrypted in the vault like every other file (scanned for
    malware there when scanning is on); its type is recognised from its bytes."""
    access.require(Perm.COMPLIANCE_MANAGE)
    errors = {}
    if module.organization_id != access.organization.pk:
        raise ValidationError("This module belongs to another organization.")
    if not title.strip():
        errors["title"] = "Name the document (for example: Sanctions policy 2026)."
    if length <= 0:
        errors["document"] = "Choose a file: this one is empty."
    elif length > ATTACHMENT_LIMIT:
        errors["document"] = f"Training documents are limited to {ATTACHMENT_LIMIT // (1024 * 1024)} MB."
    if errors:
        raise ValidationError(errors)
    version = documents.store(access, chunks, length)
    with transaction.atomic():
        attachment = TrainingAttachment.objects.create(
            module=module, title=title.strip()[:150], stored_object=version.stored_object, added_by=_person(access)
        )
        record(
            "compliance.training.attached",
            actor=access.actor,
            organization=access.organization,
            target=version.stored_object,
            details={"module": str(module.pk), "attachment": str(attachment.pk), "size": length},
        )
    return attachment


def _person(access: OrgAccess) -> User | None:
    return access.actor if isinstance(access.actor, User) else None


def may_read(access: OrgAccess, module: TrainingModule) -> bool:
    """Who reads a module and its documents: the members it is assigned to, and its managers."""
    if module.organization_id != access.organization.pk:
        return False
    if access.has(Perm.COMPLIANCE_MANAGE):
        return True
    return access.membership is not None and assigned(module, access.membership)


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


def certificate_pdf(access: OrgAccess, completion: TrainingCompletion) -> bytes:
    """A certificate of one passed completion: who, which module, score, when, valid until (for
    yearly modules). The person themselves or a compliance manager may print it."""
    module = completion.module
    mine = isinstance(access.actor, User) and completion.user_id == access.actor.pk
    if module.organization_id != access.organization.pk or not (mine or access.has(Perm.COMPLIANCE_MANAGE)):
        raise ValidationError("This certificate is not yours to print.")
    if not completion.passed:
        raise ValidationError("Only a passed module has a certificate.")
    person = completion.user
    pdf = document("Training certificate")
    pdf.set_font("Helvetica", "B", 22)
    pdf.ln(20)
    pdf.cell(0, 12, "Certificate of completion", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("Helvetica", "", 13)
    lines = [
        "This certifies that",
        person.display_name,
        "completed the training module",
        module.title,
        f"of {access.organization.name}",
        f"on {completion.completed_at:%B %d, %Y} with a score of {completion.score}% (pass mark {module.pass_mark}%).",
    ]
    if module.annual:
        until = completion.completed_at + timedelta(days=365)
        lines.append(f"Valid until {until:%B %d, %Y}: the module is refreshed yearly.")
    for i, line in enumerate(lines):
        pdf.set_font("Helvetica", "B" if i in (1, 3) else "", 15 if i in (1, 3) else 12)
        pdf.multi_cell(0, 9, latin(line), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(12)
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(
        0,
        5,
        latin(
            "Security awareness and training, 45 CFR 164.308(a)(5); training of the workforce on "
            f"policies and procedures, 45 CFR 164.530(b). Record {completion.pk}, kept by CaseBridge."
        ),
        align="C",
    )
    record(
        "compliance.training.certificate",
        actor=access.actor,
        organization=access.organization,
        details={"module": str(module.pk), "completion": completion.pk, "person": str(person.pk)},
    )
    return bytes(pdf.output())


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
