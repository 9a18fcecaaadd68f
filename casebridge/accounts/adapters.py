"""allauth adapters: invitation-only sign-up, mandatory MFA, MFA secrets encrypted at rest."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.http import HttpRequest

from casebridge.vault.keyring import get_keyring

_MFA_PURPOSE = "mfa-secrets"
_MFA_PREFIX = "cbenc1"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # People join through an invitation or a setup link, never by signing themselves up.
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        if not super().is_reauthentication_required(app=app, **kwargs):
            return False
        # A sign-in moments ago (password and, once enrolled, MFA) is as good as confirming
        # identity again: asking twice in a row only trains people to type passwords blindly.
        from casebridge.accounts.middleware import SESSION_AUTH_AT

        session = getattr(self.request, "session", None)
        signed_in_at = session.get(SESSION_AUTH_AT) if session is not None else None
        return not (signed_in_at and time.time() - signed_in_at < settings.ACCOUNT_REAUTHENTICATION_TIMEOUT)


def encrypt_secret(text: str) -> str:
    ring = get_keyring()
    key_id = ring.current_secret_id()
    nonce = os.urandom(12)
    sealed = AESGCM(ring.derive(_MFA_PURPOSE, key_id)).encrypt(nonce, text.encode(), _MFA_PREFIX.encode())
    return f"{_MFA_PREFIX}:{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt_secret(stored: str) -> str:
    try:
        prefix, key_id, payload = stored.split(":", 2)
    except ValueError:
        raise ValueError("stored MFA secret is not in CaseBridge's encrypted form") from None
    if prefix != _MFA_PREFIX:
        raise ValueError("stored MFA secret is not in CaseBridge's encrypted form")
    blob = base64.b64decode(payload)
    try:
        plain = AESGCM(get_keyring().derive(_MFA_PURPOSE, key_id)).decrypt(blob[:12], blob[12:], prefix.encode())
    except InvalidTag:
        raise ValueError("stored MFA secret failed its integrity check") from None
    return plain.decode()


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return encrypt_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_secret(encrypted_text)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # MFA is mandatory: the last TOTP or passkey cannot be removed, only replaced.
        if authenticator.type == Authenticator.Type.RECOVERY_CODES:
            return False
        others = Authenticator.objects.filter(
            user_id=authenticator.user_id,
            type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN],
        ).exclude(pk=authenticator.pk)
        return others.exists()

    def send_notification_mail(self, *args: Any, **kwargs: Any) -> None:
        # Security notifications go through our own templates and queue (see signals.py).
        return None
