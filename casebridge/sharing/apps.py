"""The sharing app: expiring external links and the accounting of disclosures (45 CFR 164.528)."""

from __future__ import annotations

from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "casebridge.sharing"
    label = "sharing"
    default_auto_field = "django.db.models.BigAutoField"
