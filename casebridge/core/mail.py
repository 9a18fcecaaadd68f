"""Notification e-mail: rendered from templates, queued after the transaction commits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string


def absolute_url(path: str) -> str:
    return settings.PUBLIC_URL.rstrip("/") + path


def queue_mail(to: list[str], template: str, context: dict[str, Any]) -> None:
    """Render `template`_subject.txt / _body.txt and send once the current transaction commits.

    Templates must never include patient data: case numbers, event names and links only.
    """
    from casebridge.core.tasks import deliver_mail

    if not to:
        return
    ctx = {"public_url": settings.PUBLIC_URL, **context}
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + render_to_string(f"mail/{template}_subject.txt", ctx).strip()
    body = render_to_string(f"mail/{template}_body.txt", ctx)
    transaction.on_commit(lambda: deliver_mail.enqueue(to, subject, body))
