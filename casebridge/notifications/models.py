"""One stored notification per person and case event: the same event an e-mail announces."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casebridge.accounts.models import NotifyTopic
from casebridge.core.models import BaseModel


class Notification(BaseModel):
    """What happened on which case, for one person in one organization. Like the e-mail it
    carries the case number and a fixed wording of the event, never patient data."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="notifications")
    topic = models.CharField(max_length=32, choices=NotifyTopic.choices)
    event = models.CharField(max_length=120)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The bell's count and the page, newest first, both per person and organization.
            models.Index(fields=["recipient", "organization", "read_at"], name="notification_unread"),
            models.Index(fields=["recipient", "organization", "-created_at", "-id"], name="notification_feed"),
        ]

    def __str__(self) -> str:
        return f"notification {self.pk}"
