from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "casebridge.compliance"
    label = "compliance"
    verbose_name = "Compliance workspace"

    def ready(self) -> None:
        from casebridge.compliance import risk, vendors
        from casebridge.core.tasks import register_periodic

        register_periodic("compliance.vendor_reminders", vendors.remind)
        register_periodic("compliance.risk_reminders", risk.remind)
