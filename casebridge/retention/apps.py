from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "casebridge.retention"
    label = "retention"
    verbose_name = "Backups and retention"
