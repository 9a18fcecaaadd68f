"""Whether a person has the second factor CaseBridge requires."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.contrib.auth.base_user import AbstractBaseUser

PRIMARY_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def has_second_factor(user: AbstractBaseUser) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type__in=PRIMARY_FACTORS).exists()
