"""record(): the one way to write an audit event, in the caller's transaction."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from casebridge.audit import catalog
from casebridge.audit.models import ActorType, Event, Outcome, PendingSeal
from casebridge.core import context

logger = logging.getLogger(__name__)

_PHI_KEYS = frozenset({"patient_name", "name", "first_name", "last_name", "dob", "birth_date", "date_of_birth"})


def _actor_fields(actor: Any) -> tuple[str, str, str]:
    if actor is None:
        return ActorType.SYSTEM, "", "system"
    actor_kind = getattr(actor, "audit_actor_type", None)
    if actor_kind is not None:
        return actor_kind, str(actor.pk), actor.audit_label
    if getattr(actor, "is_authenticated", False):
        return ActorType.USER, str(actor.pk), getattr(actor, "email", "")
    return ActorType.ANONYMOUS, "", ""


def record(
    action: str,
    *,
    actor: Any = None,
    organization: Any = None,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    patient_ref: str = "",
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
    actor_label: str = "",
) -> Event:
    """Append one event; it commits or rolls back with the change it describes.

    `actor` is a user, a service account, None for the system, or AnonymousUser (then
    `actor_label` may name what was attempted, e.g. the e-mail typed at sign-in).
    """
    catalog.get(action)  # unknown actions are a programming error, never silently logged
    details = dict(details or {})
    leaked = _PHI_KEYS.intersection(details)
    if leaked:
        raise ValueError(f"audit details must not carry PHI fields: {sorted(leaked)}")
    actor_type, actor_id, label = _actor_fields(actor)
    if actor_label:
        label = actor_label
    ctx = context.current()
    org_id = getattr(organization, "pk", organization)
    emergency_id = None
    if ctx is not None:
        if ctx.api_token is not None:
            details.setdefault("token", str(ctx.api_token.pk))
        grant = ctx.emergency_access
        if grant is not None and org_id is not None and grant.organization_id == org_id:
            emergency_id = grant.pk
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    with transaction.atomic():
        event = Event.objects.create(
            actor_type=actor_type,
            actor_id=actor_id,
            actor_label=label[:254],
            organization_id=org_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            patient_ref=patient_ref,
            ip=ctx.ip if ctx else None,
            user_agent=ctx.user_agent if ctx else "",
            request_id=ctx.request_id if ctx else "",
            outcome=outcome,
            emergency_access_id=emergency_id,
            details=details,
        )
        PendingSeal.objects.create(event=event)
        transaction.on_commit(_seal_soon)
    return event


def _seal_soon() -> None:
    # Non-blocking: if another process is sealing, it or the periodic sealer will take ours.
    from casebridge.audit.chain import seal_pending

    try:
        seal_pending(blocking=False)
    except Exception:  # the event is committed and queued; sealing is retried periodically
        logger.exception("audit sealing deferred")
