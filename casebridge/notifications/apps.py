"""The notifications app: the bell in the navigation and its page."""

from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "casebridge.notifications"
    label = "notifications"
    default_auto_field = "django.db.models.BigAutoField"
