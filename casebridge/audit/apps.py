from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "casebridge.audit"
    label = "audit"
    verbose_name = "Audit log"
