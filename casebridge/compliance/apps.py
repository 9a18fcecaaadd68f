from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "casebridge.compliance"
    label = "compliance"
    verbose_name = "Compliance workspace"
