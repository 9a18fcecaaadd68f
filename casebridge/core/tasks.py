"""Background tasks shared by every app: mail delivery and the periodic housekeeping tick."""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django_tasks import task

logger = logging.getLogger(__name__)


@task()
def deliver_mail(to: list[str], subject: str, body: str) -> None:
    # Subjects and bodies are built from templates that carry no PHI (case numbers and links).
    send_mail(subject, body, None, to, fail_silently=False)
    logger.info("mail delivered to %d recipient(s)", len(to))


@task()
def housekeeping() -> None:
    """Idempotent periodic work; safe to run on several workers at once."""
    from casebridge.audit.chain import checkpoint_now, seal_pending
    from casebridge.orgs.actions import record_expired_emergency_grants
    from casebridge.vault.uploads import expire_uploads

    seal_pending()
    record_expired_emergency_grants()
    expire_uploads()
    checkpoint_now()
