"""People, service accounts, API tokens and single-use setup links."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from casebridge.core.models import BaseModel


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("an e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username or "")


class Notation(models.TextChoices):
    UNIVERSAL = "universal", "Universal (1-32)"
    FDI = "fdi", "FDI / ISO 3950 (11-48)"
    PALMER = "palmer", "Palmer"


class NotifyTopic(models.TextChoices):
    """The kinds of case event a person can choose to be e-mailed about: each names a User field."""

    NEW_CASE = "notify_new_cases", "New cases"
    STATUS = "notify_status", "Status changes"
    MESSAGES = "notify_messages", "Messages and questions"
    DESIGNS = "notify_designs", "Design approvals"


class User(AbstractBaseUser):
    """One person, one login: shared accounts are not possible (HIPAA unique user id)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    tooth_notation = models.CharField(max_length=16, choices=Notation.choices, default=Notation.UNIVERSAL)
    # Which case events this person wants e-mailed (cases.actions._notify); the page always shows all.
    notify_new_cases = models.BooleanField("E-mail me about new cases", default=True)
    notify_status = models.BooleanField("E-mail me about status changes", default=True)
    notify_messages = models.BooleanField("E-mail me about messages and questions", default=True)
    notify_designs = models.BooleanField("E-mail me about design approvals", default=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.full_name or self.email


class ServiceAccount(BaseModel):
    """A non-human identity for an integration; acts with one role in one organization."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="service_accounts")
    name = models.CharField(max_length=80)
    role = models.CharField(max_length=32)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    audit_actor_type = "service"
    is_authenticated = True

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="service_account_unique_name")]

    def __str__(self) -> str:
        return f"service:{self.name}"

    @property
    def audit_label(self) -> str:
        return f"service:{self.name}"


class TokenScope(models.TextChoices):
    ORG_READ = "org:read", "Read organization, members and connections"
    AUDIT_READ = "audit:read", "Read the audit log"
    CASES_READ = "cases:read", "Read cases and download their files"
    CASES_WRITE = "cases:write", "Create, submit and update cases, upload files"


class ApiToken(BaseModel):
    """A bearer token: shown once, stored as a SHA-256 digest, scoped, expiring, revocable."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens")
    service_account = models.ForeignKey(
        ServiceAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, service_account__isnull=True)
                | models.Q(user__isnull=True, service_account__isnull=False),
                name="api_token_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"token {self.prefix}"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    @property
    def principal(self) -> User | ServiceAccount:
        owner = self.user or self.service_account
        assert owner is not None
        return owner


class SetupLink(BaseModel):
    """A single-use, short-lived link that lets a person set their first password."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="setup_links")
    digest = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"setup link {self.pk}"
