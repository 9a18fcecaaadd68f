"""Account actions: setup links, API tokens, service accounts, ending sessions."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.roles import Perm
from casebridge.accounts.models import ApiToken, NotifyTopic, ServiceAccount, SetupLink, TokenScope, User
from casebridge.audit.api import record
from casebridge.core import secrets as cb_secrets
from casebridge.orgs.kinds import check_role_fits

if TYPE_CHECKING:
    from casebridge.access.policy import OrgAccess

TOKEN_PREFIX = "cb_"  # noqa: S105  (a public marker, not a secret)


# --- Setup links --------------------------------------------------------------------------
def create_setup_link(user: User, *, actor: Any = None) -> str:
    raw, digest = cb_secrets.new_secret()
    with transaction.atomic():
        SetupLink.objects.filter(user=user, used_at__isnull=True).update(used_at=timezone.now())
        link = SetupLink.objects.create(
            user=user,
            digest=digest,
            expires_at=timezone.now() + timedelta(seconds=settings.SETUP_LINK_TTL_SECONDS),
        )
        record("auth.setup_link.created", actor=actor, target=user, details={"link": str(link.pk)})
    return raw


def find_setup_link(raw: str) -> SetupLink | None:
    link = SetupLink.objects.select_related("user").filter(digest=cb_secrets.digest(raw)).first()
    if link is None or link.used_at is not None or link.expires_at <= timezone.now():
        return None
    if not link.user.is_active:
        return None
    return link


def use_setup_link(raw: str, password: str) -> User:
    """Set the first password through a setup link; the link is spent whatever happens next."""
    with transaction.atomic():
        link = find_setup_link(raw)
        if link is None:
            raise ValidationError("This setup link is invalid, used or expired. Ask for a new one.")
        # Lock the row so two parallel submissions cannot both use the link.
        link = SetupLink.objects.select_for_update().get(pk=link.pk)
        if link.used_at is not None:
            raise ValidationError("This setup link is invalid, used or expired. Ask for a new one.")
        user = link.user
        validate_password(password, user)
        user.set_password(password)
        user.save(update_fields=["password"])
        link.used_at = timezone.now()
        link.save(update_fields=["used_at"])
        record("auth.password.set", actor=user, target=user)
    return user


# --- Sessions -----------------------------------------------------------------------------
def end_sessions(user: User, *, actor: Any, reason: str, keep_session_key: str | None = None) -> int:
    """End every session of `user` (except one, optionally): their next request is refused."""
    ended = 0
    with transaction.atomic():
        for usersession in UserSession.objects.filter(user=user):
            if keep_session_key and usersession.session_key == keep_session_key:
                continue
            usersession.end()
            ended += 1
        if ended:
            record(
                "auth.session.revoked",
                actor=actor,
                target=user,
                details={"count": ended, "reason": reason},
            )
    return ended


def end_session(usersession: UserSession, *, actor: User, reason: str) -> None:
    """End one session of the person's own (the security page's "sign out" on another device)."""
    if usersession.user_id != actor.pk:
        raise ValidationError("You can only end your own sessions.")
    with transaction.atomic():
        usersession.end()
        record("auth.session.revoked", actor=actor, target=actor, details={"count": 1, "reason": reason})


# --- API tokens ---------------------------------------------------------------------------
def _validate_scopes(scopes: list[str]) -> list[str]:
    valid = set(TokenScope.values)
    unknown = [s for s in scopes if s not in valid]
    if unknown or not scopes:
        raise ValidationError(f"Choose one or more scopes from: {', '.join(sorted(valid))}.")
    return sorted(set(scopes))


def create_api_token(
    *, organization: Any, name: str, scopes: list[str], days: int, actor: Any, user: User
) -> tuple[ApiToken, str]:
    """A personal token of `user` for one organization, returned with its secret (shown once,
    never stored). People create only their own tokens, and only where they are active members;
    the token can never do more than their role there (access.policy.resolve)."""
    from casebridge.access.policy import resolve

    if not isinstance(actor, User) or actor.pk != user.pk:
        raise ValidationError("A personal API token can only be created by the person it belongs to.")
    if resolve(user, organization) is None:
        raise ValidationError("You are not an active member of that organization.")
    return _issue_token(organization=organization, name=name, scopes=scopes, days=days, actor=actor, user=user)


def _issue_token(
    *,
    organization: Any,
    name: str,
    scopes: list[str],
    days: int,
    actor: Any,
    user: User | None = None,
    service_account: ServiceAccount | None = None,
) -> tuple[ApiToken, str]:
    """Create the token row and its event; callers have checked who may hold it."""
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValidationError(f"A token lives between 1 and {settings.API_TOKEN_MAX_DAYS} days.")
    if not name.strip():
        raise ValidationError("Give the token a name that says what uses it.")
    scopes = _validate_scopes(scopes)
    prefix = secrets.token_hex(6)
    raw_secret, _ = cb_secrets.new_secret()
    raw = f"{TOKEN_PREFIX}{prefix}_{raw_secret}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            organization=organization,
            user=user,
            service_account=service_account,
            name=name.strip(),
            prefix=prefix,
            digest=cb_secrets.digest(raw),
            scopes=scopes,
            expires_at=timezone.now() + timedelta(days=days),
            created_by=actor if isinstance(actor, User) else None,
        )
        record(
            "token.created",
            actor=actor,
            organization=organization,
            target=token,
            details={"scopes": scopes, "days": days, "prefix": prefix},
        )
    return token, raw


def revoke_api_token(token: ApiToken, *, actor: User) -> None:
    """A person revokes one of their own personal tokens (administrators revoke a member's
    tokens by deactivating or removing the member, a service account's by deactivating it)."""
    if token.user_id is None or token.user_id != actor.pk:
        raise ValidationError("You can only revoke your own tokens.")
    _revoke(token, actor=actor)


def _revoke(token: ApiToken, *, actor: Any) -> None:
    if token.revoked_at is not None:
        return
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record("token.revoked", actor=actor, organization=token.organization_id, target=token)


def revoke_tokens_of(access: OrgAccess, user: User) -> int:
    """Revoke every token `user` holds for the organization of `access` (members management)."""
    access.require(Perm.MEMBERS_MANAGE)
    count = 0
    tokens = ApiToken.objects.filter(user=user, organization=access.organization, revoked_at__isnull=True)
    for token in tokens:
        _revoke(token, actor=access.actor)
        count += 1
    return count


def authenticate_token(raw: str) -> ApiToken | None:
    """The usable token for this secret, or None (unknown, revoked, expired, inactive owner)."""
    if not raw.startswith(TOKEN_PREFIX) or raw.count("_") < 2:
        return None
    prefix = raw[len(TOKEN_PREFIX) :].split("_", 1)[0]
    token = ApiToken.objects.select_related("user", "service_account", "organization").filter(prefix=prefix).first()
    if token is None or not cb_secrets.matches(raw, token.digest) or not token.is_usable:
        return None
    owner = token.principal
    if not owner.is_active:
        return None
    return token


def mark_token_used(token: ApiToken, *, method: str, path_name: str) -> None:
    # One transaction: the last-used time and its event commit together, in one commit (fsync).
    with transaction.atomic():
        record(**token_used(token, method=method, path_name=path_name))


def token_used(token: ApiToken, *, method: str, path_name: str) -> dict[str, Any]:
    """Move the token's last-used time (in the caller's transaction) and return the arguments
    of its `token.used` event, for record() or record_many() in the same transaction."""
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return {
        "action": "token.used",
        "actor": token.principal,
        "organization": token.organization_id,
        "target": token,
        "details": {"method": method, "route": path_name},
    }


# --- Service accounts ---------------------------------------------------------------------
def create_service_account(
    access: OrgAccess, *, name: str, role: str, scopes: list[str], days: int
) -> tuple[ServiceAccount, str]:
    """A service account in the organization of `access`, with its first token (returned once)."""
    from casebridge.access.roles import Role

    access.require(Perm.SERVICE_ACCOUNTS_MANAGE)
    organization = access.organization
    name = name.strip()
    if not name:
        raise ValidationError("Give the service account a name that says what it is for.")
    if role not in Role.values or role == Role.OWNER:
        raise ValidationError(f"Role must be one of: {', '.join(r for r in Role.values if r != Role.OWNER)}.")
    check_role_fits(organization.kind, role)  # no lab role for a practice's integration, and so on
    if ServiceAccount.objects.filter(organization=organization, name=name).exists():
        raise ValidationError(f"A service account named {name!r} already exists here.")
    with transaction.atomic():
        account = ServiceAccount.objects.create(
            organization=organization,
            name=name,
            role=role,
            created_by=access.actor if isinstance(access.actor, User) else None,
        )
        record(
            "service_account.created",
            actor=access.actor,
            organization=organization,
            target=account,
            details={"role": role},
        )
        _token, raw = _issue_token(
            organization=organization,
            name=f"{name} token",
            scopes=scopes,
            days=days,
            actor=access.actor,
            service_account=account,
        )
    return account, raw


def deactivate_service_account(access: OrgAccess, account: ServiceAccount) -> None:
    """Deactivate a service account of the organization of `access` and revoke its tokens."""
    access.require(Perm.SERVICE_ACCOUNTS_MANAGE)
    if account.organization_id != access.organization.pk:
        raise ValidationError("That service account belongs to another organization.")
    if not account.is_active:
        return
    with transaction.atomic():
        account.is_active = False
        account.save(update_fields=["is_active"])
        for token in account.tokens.filter(revoked_at__isnull=True):
            _revoke(token, actor=access.actor)
        record(
            "service_account.deactivated",
            actor=access.actor,
            organization=account.organization_id,
            target=account,
        )


def save_tooth_notation(user: User, notation: str) -> None:
    """The numbering the person's tooth charts and prescriptions are shown in (a display choice,
    like the rest of save_preferences: no audit event)."""
    user.tooth_notation = notation
    user.save(update_fields=["tooth_notation"])


def save_preferences(user: User, cleaned: dict[str, Any]) -> None:
    """Name, tooth numbering and which case events to e-mail; only the person's own display
    choices, so no audit event (nothing here widens or narrows anyone's access)."""
    user.full_name = cleaned["full_name"]
    user.tooth_notation = cleaned["tooth_notation"]
    for topic in NotifyTopic.values:
        setattr(user, topic, bool(cleaned.get(topic)))
    user.save(update_fields=["full_name", "tooth_notation", *NotifyTopic.values])
